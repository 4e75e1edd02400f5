//! WebAssembly: telling modules from components, and the shared wasmtime engine.

pub mod binary;
pub mod engine;
pub mod host;
pub mod launch;
pub mod output;
