//! The per-pod monitor: the process that holds a pod's namespaces and parents its containers.
//! `process` is the monitor itself, `protocol` its control socket (`session` and `frames` for
//! the attach and exec sessions on it), `containers` its container
//! table, `exit_watch` the daemon's connections told of each exit, `orphans` the reaping of a shared pid namespace's orphans, `launcher` and `client`
//! the daemon's side that starts, checks, stops and asks monitors.

pub mod client;
pub mod containers;
pub mod exit_watch;
pub mod frames;
pub mod launcher;
pub mod orphans;
pub mod process;
pub mod protocol;
pub mod session;
pub mod spare_threads;
