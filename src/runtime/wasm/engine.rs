//! The one wasmtime configuration crishim uses. Precompiled artifacts only load into an engine
//! with the same settings, so pull-time precompilation and the runtime both build theirs here.

use std::hash::{DefaultHasher, Hash, Hasher};

use wasmtime::{Config, Engine};

use crate::error::{Error, Result};
use crate::runtime::wasm::binary::{self, WasmBinary};

/// The engine settings of every wasm container.
pub fn config() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    // StopContainer interrupts one container's Store through its own epoch deadline.
    config.epoch_interruption(true);
    config.cranelift_opt_level(wasmtime::OptLevel::Speed);
    config
}

/// A new engine with [`config`].
pub fn new_engine() -> Result<Engine> {
    Engine::new(&config()).map_err(|e| Error::Internal(format!("create the wasmtime engine: {e}")))
}

/// A short name for the engine's precompile compatibility (wasmtime version and settings),
/// used in the file names of precompiled artifacts.
pub fn compatibility_key(engine: &Engine) -> String {
    let mut hasher = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

/// Compiles a module or component ahead of time; bytes that are not wasm are InvalidArgument.
pub fn precompile(engine: &Engine, what: &str, bytes: &[u8]) -> Result<(WasmBinary, Vec<u8>)> {
    let kind = binary::detect(bytes).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "{what} is not a wasm module or component (no \\0asm header of a known version)"
        ))
    })?;
    let compiled = match kind {
        WasmBinary::Module => engine.precompile_module(bytes),
        WasmBinary::Component => engine.precompile_component(bytes),
    }
    .map_err(|e| Error::InvalidArgument(format!("{what} does not compile: {e:#}")))?;
    Ok((kind, compiled))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precompiles_a_module_and_refuses_garbage() {
        let engine = new_engine().unwrap();
        let module = wat::parse_str("(module (func (export \"_start\")))").unwrap();
        let (kind, compiled) = precompile(&engine, "test module", &module).unwrap();
        assert_eq!(kind, WasmBinary::Module);
        // SAFETY: the bytes were produced by this engine just above.
        unsafe { wasmtime::Module::deserialize(&engine, &compiled) }.unwrap();
        let err = precompile(&engine, "junk", b"#!/bin/sh\n").unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
        let err = precompile(&engine, "broken", b"\0asm\x01\0\0\0\x01\xff").unwrap_err();
        assert!(err.to_string().contains("does not compile"), "{err}");
        assert_eq!(
            compatibility_key(&engine),
            compatibility_key(&new_engine().unwrap())
        );
    }
}
