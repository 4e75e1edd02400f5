//! crishim: a Kubernetes CRI runtime for Linux containers and WebAssembly.
//!
//! See ARCHITECTURE.md in the team's shared folder for the process model: a daemon (`serve`)
//! and one monitor process per pod (`monitor`).

pub mod config;
pub mod container;
pub mod daemon;
pub mod error;
pub mod filter;
pub mod image;
pub mod logs;
pub mod monitor;
pub mod network;
pub mod os;
pub mod runtime;
pub mod sandbox;
pub mod server;
pub mod store;
pub mod streaming;
