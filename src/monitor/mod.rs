//! The per-pod monitor: the process that holds a pod's namespaces and (in later issues) parents
//! its containers. `process` is the monitor itself, `protocol` its control socket, `launcher`
//! the daemon's side that starts, checks and stops monitors.

pub mod client;
pub mod containers;
pub mod launcher;
pub mod process;
pub mod protocol;
