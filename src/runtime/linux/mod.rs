//! Linux containers through youki's libcontainer: the OCI spec from the CRI config, the
//! helper process that creates containers and runs execs, and what the monitor does with them.

pub mod container;
pub mod helper;
pub mod launch;
pub mod seccomp;
pub mod spec;
pub mod stdio;
pub mod user;
