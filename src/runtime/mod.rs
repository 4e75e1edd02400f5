//! Container runtimes. For now: the wasm engine configuration, shared by precompilation at
//! pull time and (later) by the monitor that runs wasm containers.

pub mod wasm;
