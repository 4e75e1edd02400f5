//! What a wasm binary is, from its 8-byte header: `\0asm`, then version 1 for a core module
//! (WASI p1) or version 0x0d, layer 1 for a component (WASI p2).

/// The two kinds of wasm binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WasmBinary {
    /// A core module (WASI preview 1, `_start`).
    Module,
    /// A component (WASI preview 2, `wasi:cli/run`).
    Component,
}

const MAGIC: &[u8; 4] = b"\0asm";

/// True when `bytes` start with the wasm magic.
pub fn has_magic(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// The kind of `bytes`, or None when they are not a wasm binary of a known version.
pub fn detect(bytes: &[u8]) -> Option<WasmBinary> {
    if !has_magic(bytes) || bytes.len() < 8 {
        return None;
    }
    match bytes[4..8] {
        [1, 0, 0, 0] => Some(WasmBinary::Module),
        [0x0d, 0, 1, 0] => Some(WasmBinary::Component),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_tell_modules_from_components() {
        assert_eq!(detect(b"\0asm\x01\0\0\0rest"), Some(WasmBinary::Module));
        assert_eq!(
            detect(b"\0asm\x0d\0\x01\0rest"),
            Some(WasmBinary::Component)
        );
        assert_eq!(detect(b"\0asm\x02\0\0\0"), None);
        assert_eq!(detect(b"\0asm"), None);
        assert_eq!(detect(b"\x7fELF\x02\x01\x01\0"), None);
        assert!(has_magic(b"\0asm\x01") && !has_magic(b"#!/bin/sh"));
    }
}
