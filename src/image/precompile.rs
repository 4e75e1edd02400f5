//! Precompiling wasm artifacts at pull time (and when the daemon starts, for images pulled by
//! an older engine), so starting a wasm container never compiles; the one exception is a Linux
//! image whose entrypoint turns out to be wasm, compiled at its first CreateContainer. Artifacts
//! are cached under `<root>/wasm/` by (layer blob digest, or layer and program path, engine
//! compatibility key).

use std::path::{Path, PathBuf};
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

    /// The precompiled files this engine has for `image`'s layers (a wasm layer's, or a
    /// program file's in a layer).
    pub fn existing(&self, store: &ImageStore, image: &ImageRecord) -> Vec<PathBuf> {
        let suffix = format!("-{}.cwasm", self.key);
        let prefixes: Vec<String> = image
            .layers
            .iter()
            .map(|l| format!("{}-", l.digest.trim_start_matches("sha256:")))
            .collect();
        let Ok(entries) = std::fs::read_dir(store.layout().wasm_dir()) else {
            return Vec::new();
        };
        let mut found: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.ends_with(&suffix) && prefixes.iter().any(|p| name.starts_with(p))
            })
            .map(|e| e.path())
            .collect();
        found.sort();
        found
    }

    /// The precompiled artifacts of a wasm image, compiling those missing for this engine.
    pub fn ensure(&self, store: &ImageStore, image: &ImageRecord) -> Result<Vec<Precompiled>> {
        if image.kind != ImageKind::Wasm {
            return Ok(Vec::new());
        }
        let mut done = Vec::new();
        for layer in &image.layers {
            if !Self::is_wasm_layer(store, layer)? {
                continue;
            }
            let path = store.layout().precompiled(&layer.digest, &self.key);
            let blob = store.layout().blob(&layer.digest);
            let file = std::fs::File::open(&blob).with_path("open blob", &blob)?;
            let (kind, bytes) = self.read_unless_compiled(&path, file, &blob)?;
            let kind = kind.ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "layer {} of {} is not a wasm module or component",
                    layer.digest, image.id
                ))
            })?;
            if let Some(bytes) = bytes {
                self.compile_to(&path, &layer.digest, kind, &bytes)?;
            }
            done.push(Precompiled {
                layer: layer.digest.clone(),
                binary: kind,
                path,
            });
        }
        if done.is_empty() {
            // A wasi/wasm platform image with tar layers: its module is the program file.
            let program = self.program_artifact(store, image)?.ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "wasm image {} has no module: no wasm layer, and its program {:?} is not a wasm file in its layers",
                    image.id, image.program
                ))
            })?;
            done.push(program);
        }
        Ok(done)
    }

    /// The precompiled program file of an image of any kind, when that file is wasm (the
    /// selection rule for Linux images whose entrypoint is a wasm file); None otherwise.
    pub fn program_artifact(
        &self,
        store: &ImageStore,
        image: &ImageRecord,
    ) -> Result<Option<Precompiled>> {
        let Some((layer, file)) = program_from_layers(store, image)? else {
            return Ok(None);
        };
        let program = image.program.as_deref().unwrap_or_default();
        let what = Path::new(program);
        // One layer can hold several programs: the artifact is named by the layer (so removing
        // the layer's blob removes it) and a hash of the path.
        let program_hash = crate::image::store::sha256_of(program.as_bytes());
        let name = format!("{layer}-{}", &program_hash["sha256:".len()..][..16]);
        let path = store.layout().precompiled(&name, &self.key);
        let (kind, bytes) = self.read_unless_compiled(&path, file, what)?;
        let Some(kind) = kind else {
            return Ok(None);
        };
        if let Some(bytes) = bytes {
            self.compile_to(&path, &layer, kind, &bytes)?;
        }
        Ok(Some(Precompiled {
            layer,
            binary: kind,
            path,
        }))
    }

    /// The kind of the wasm in `file` (None: not wasm), and its bytes when `compiled` does
    /// not exist yet. Only the header is read otherwise (every CreateContainer asks, and a
    /// Linux image's entrypoint is a whole executable).
    fn read_unless_compiled(
        &self,
        compiled: &Path,
        mut file: std::fs::File,
        what: &Path,
    ) -> Result<(Option<WasmBinary>, Option<Vec<u8>>)> {
        use std::io::Read;
        let mut head = [0u8; 8];
        let mut read = 0;
        while read < head.len() {
            match file.read(&mut head[read..]).with_path("read", what)? {
                0 => break,
                n => read += n,
            }
        }
        let kind = binary::detect(&head[..read]);
        if kind.is_none() || compiled.exists() {
            return Ok((kind, None));
        }
        let mut bytes = head[..read].to_vec();
        file.read_to_end(&mut bytes).with_path("read", what)?;
        Ok((kind, Some(bytes)))
    }

    /// Compiles `bytes` into `path` (its directory made when missing) unless it is there
    /// already.
    fn compile_to(&self, path: &Path, layer: &str, kind: WasmBinary, bytes: &[u8]) -> Result<()> {
        if path.exists() {
            return Ok(());
        }
        let dir = path.parent().unwrap_or(path);
        std::fs::create_dir_all(dir).with_path("create", dir)?;
        let started = Instant::now();
        let (_, compiled) = engine::precompile(&self.engine, &format!("layer {layer}"), bytes)?;
        let mut tmp =
            tempfile::NamedTempFile::new_in(dir).with_path("create a temporary file in", dir)?;
        std::io::Write::write_all(&mut tmp, &compiled).with_path("write", tmp.path())?;
        tmp.as_file().sync_all().with_path("fsync", tmp.path())?;
        tmp.persist(path)
            .map_err(|e| Error::io_path("store", path, e.error))?;
        tracing::info!(layer, kind = ?kind, wasm_bytes = bytes.len(), cwasm_bytes = compiled.len(),
            millis = started.elapsed().as_millis() as u64, "wasm precompiled");
        Ok(())
    }
}

/// The image's program file from the top-most unpacked layer that has it, resolved inside
/// that layer; a whiteout above hides it. Returns the layer's digest and the open file.
fn program_from_layers(
    store: &ImageStore,
    image: &ImageRecord,
) -> Result<Option<(String, std::fs::File)>> {
    use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
    let Some(program) = &image.program else {
        return Ok(None);
    };
    let relative = program.trim_start_matches('/');
    let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    for layer in image.layers.iter().rev() {
        let Some(chain) = &layer.chain_id else {
            continue;
        };
        let root_path = store.layout().layer_dir(chain);
        let root = rustix::fs::open(
            &root_path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io_path("open layer", &root_path, e.into()))?;
        let found = match rustix::fs::openat2(
            &root,
            relative,
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            resolve,
        ) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => continue,
            Err(e) => {
                return Err(Error::io(
                    format!("find {program} in layer {}", layer.digest),
                    e.into(),
                ));
            }
        };
        let stat = rustix::fs::fstat(&found)
            .map_err(|e| Error::io(format!("stat {program}"), e.into()))?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            // A whiteout (or anything else) hides what lower layers have.
            return Ok(None);
        }
        let file = rustix::fs::openat2(
            &root,
            relative,
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
            resolve,
        )
        .map_err(|e| {
            Error::io(
                format!("open {program} in layer {}", layer.digest),
                e.into(),
            )
        })?;
        return Ok(Some((layer.digest.clone(), std::fs::File::from(file))));
    }
    Ok(None)
}
