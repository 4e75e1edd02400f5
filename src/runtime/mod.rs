//! Container runtimes: Linux containers through libcontainer and wasm through wasmtime.

pub mod linux;
pub mod stdin;
pub mod wasm;
