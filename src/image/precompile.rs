//! Precompiling wasm artifacts at pull time (and at start for images pulled by an older
//! engine), so starting a wasm container never compiles. Artifacts are cached by
//! (blob digest, engine compatibility key) under `<root>/wasm/`.

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;
use wasmtime::Engine;

use crate::error::{Error, IoContext, Result};
use crate::image::store::{ImageKind, ImageRecord, ImageStore, LayerRecord};
use crate::image::wasm::WASM_LAYER_MEDIA_TYPES;
use crate::runtime::wasm::binary::{self, WasmBinary};
use crate::runtime::wasm::engine;

/// One precompiled layer.
#[derive(Debug, Clone, Serialize)]
pub struct Precompiled {
    /// The layer blob.
    pub layer: String,
    /// Module or component.
    pub binary: WasmBinary,
    /// The `.cwasm` file.
    pub path: PathBuf,
}

/// Precompiles with the runtime's engine configuration.
pub struct Precompiler {
    engine: Engine,
    key: String,
}

impl Precompiler {
    /// A precompiler with the runtime's engine.
    pub fn new() -> Result<Precompiler> {
        let engine = engine::new_engine()?;
        let key = engine::compatibility_key(&engine);
        Ok(Precompiler { engine, key })
    }

    fn is_wasm_layer(store: &ImageStore, layer: &LayerRecord) -> Result<bool> {
        if WASM_LAYER_MEDIA_TYPES.contains(&layer.media_type.as_str()) {
            return Ok(true);
        }
        let path = store.layout().blob(&layer.digest);
        let mut head = [0u8; 4];
        let mut file = std::fs::File::open(&path).with_path("open blob", &path)?;
        let read = std::io::Read::read(&mut file, &mut head).with_path("read blob", &path)?;
        Ok(binary::has_magic(&head[..read]))
    }

    /// The precompiled files this engine has for `image`'s layers.
    pub fn existing(&self, store: &ImageStore, image: &ImageRecord) -> Vec<PathBuf> {
        image
            .layers
            .iter()
            .map(|l| store.layout().precompiled(&l.digest, &self.key))
            .filter(|p| p.exists())
            .collect()
    }

    /// The precompiled artifacts of a wasm image, compiling those missing for this engine.
    pub fn ensure(&self, store: &ImageStore, image: &ImageRecord) -> Result<Vec<Precompiled>> {
        if image.kind != ImageKind::Wasm {
            return Ok(Vec::new());
        }
        let dir = store.layout().wasm_dir();
        std::fs::create_dir_all(&dir).with_path("create", &dir)?;
        let mut done = Vec::new();
        for layer in &image.layers {
            if !Self::is_wasm_layer(store, layer)? {
                continue;
            }
            let path = store.layout().precompiled(&layer.digest, &self.key);
            let bytes = store.read_blob(&layer.digest)?;
            let kind = binary::detect(&bytes).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "layer {} of {} is not a wasm module or component",
                    layer.digest, image.id
                ))
            })?;
            if !path.exists() {
                let started = Instant::now();
                let (_, compiled) =
                    engine::precompile(&self.engine, &format!("layer {}", layer.digest), &bytes)?;
                let mut tmp = tempfile::NamedTempFile::new_in(&dir)
                    .with_path("create a temporary file in", &dir)?;
                std::io::Write::write_all(&mut tmp, &compiled).with_path("write", tmp.path())?;
                tmp.as_file().sync_all().with_path("fsync", tmp.path())?;
                tmp.persist(&path)
                    .map_err(|e| Error::io_path("store", &path, e.error))?;
                tracing::info!(layer = %layer.digest, kind = ?kind, wasm_bytes = bytes.len(), cwasm_bytes = compiled.len(),
                    millis = started.elapsed().as_millis() as u64, "wasm precompiled");
            }
            done.push(Precompiled {
                layer: layer.digest.clone(),
                binary: kind,
                path,
            });
        }
        Ok(done)
    }
}
