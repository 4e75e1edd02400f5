//! Small traits around the OS side effects crishim has (mounts, cgroups, processes), each with a
//! real implementation and a fake, so the logic around them is unit-testable without root.

pub mod cgroup;
pub mod mount;
pub mod process;
