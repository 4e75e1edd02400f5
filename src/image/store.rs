//! The content store: blobs by digest (verified on write), image records in an index written
//! atomically, unpacked layers by chain id, container leases on layers, and garbage collection.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, IoContext, Result};
use crate::image::reference::{ImageRef, looks_like_id};
use crate::store::checkpoint;
use crate::store::layout::Layout;

/// Version of the image index format written by this build.
pub const IMAGE_INDEX_VERSION: u32 = 1;

/// What runs an image's containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageKind {
    /// A regular image: layers are unpacked into a root filesystem.
    Linux,
    /// A wasm artifact: a module or component, run by wasmtime.
    Wasm,
}

/// One layer of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// Blob digest (of the compressed content, as in the manifest).
    pub digest: String,
    /// Media type from the manifest.
    pub media_type: String,
    /// Blob size in bytes.
    pub size: u64,
    /// Chain id of the unpacked layer (Linux layers only).
    pub chain_id: Option<String>,
    /// The `org.opencontainers.image.title` annotation (a wasm module's file name).
    pub title: Option<String>,
}

/// One image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// Image id: the config digest.
    pub id: String,
    /// Normalised `name:tag`s pointing at it.
    pub repo_tags: Vec<String>,
    /// `name@manifest-digest`s it was pulled as.
    pub repo_digests: Vec<String>,
    /// Digest of the platform manifest.
    pub manifest_digest: String,
    /// Media type of that manifest.
    pub manifest_media_type: String,
    /// The manifest's artifactType, if any.
    pub artifact_type: Option<String>,
    /// Media type of the config blob.
    pub config_media_type: String,
    /// Linux or wasm.
    pub kind: ImageKind,
    /// `os/arch` of the image.
    pub platform: String,
    /// Bytes of the config and layer blobs.
    pub size: u64,
    /// The layers, bottom first.
    pub layers: Vec<LayerRecord>,
    /// The image config's User.
    pub user: String,
    /// The program the image runs (first word of Entrypoint, else Cmd), when it names one.
    #[serde(default)]
    pub program: Option<String>,
    /// Manifests and layer blobs of other pulls of the same image (the same config reached
    /// through another manifest, e.g. with other compression), kept so removal frees them.
    #[serde(default)]
    pub other_blobs: Vec<String>,
}

impl ImageRecord {
    /// Every blob this image holds: manifest, config, layers.
    fn blobs(&self) -> impl Iterator<Item = &str> {
        [self.manifest_digest.as_str(), self.id.as_str()]
            .into_iter()
            .chain(self.layers.iter().map(|l| l.digest.as_str()))
            .chain(self.other_blobs.iter().map(String::as_str))
    }

    /// True when the image has unpacked layers: files a container can see (every Linux image,
    /// and wasi/wasm platform images with tar layers; not wasm artifacts).
    pub fn has_filesystem(&self) -> bool {
        self.chain_ids().next().is_some()
    }

    fn chain_ids(&self) -> impl DoubleEndedIterator<Item = &str> {
        self.layers.iter().filter_map(|l| l.chain_id.as_deref())
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct IndexFile {
    version: u32,
    images: Vec<ImageRecord>,
    /// chain id → containers whose rootfs uses the layer.
    leases: BTreeMap<String, BTreeSet<String>>,
}

/// What a removal freed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Freed {
    /// Blob files deleted.
    pub blobs: usize,
    /// Layer directories deleted.
    pub layers: usize,
}

/// The image store of one daemon.
#[derive(Debug)]
pub struct ImageStore {
    layout: Layout,
    index: Mutex<IndexFile>,
    /// Pulls and leases hold it shared; removals that delete content hold it exclusively, so
    /// content a pull found present (and will reference) is not deleted under it.
    content: tokio::sync::RwLock<()>,
}

impl ImageStore {
    /// Opens the store, reading its index (a missing index is an empty store).
    pub fn open(layout: Layout) -> Result<ImageStore> {
        let path = layout.image_index();
        let index = if path.exists() {
            let index: IndexFile = checkpoint::read(&path)?;
            if index.version != IMAGE_INDEX_VERSION {
                return Err(Error::InvalidArgument(format!(
                    "image index {} has version {}; this build reads {IMAGE_INDEX_VERSION}",
                    path.display(),
                    index.version
                )));
            }
            index
        } else {
            IndexFile {
                version: IMAGE_INDEX_VERSION,
                ..IndexFile::default()
            }
        };
        for dir in [
            layout.blobs_dir(),
            layout.layers_dir(),
            layout.image_tmp_dir(),
        ] {
            std::fs::create_dir_all(&dir).with_path("create", &dir)?;
        }
        remove_leftovers(&layout)?;
        Ok(ImageStore {
            layout,
            index: Mutex::new(index),
            content: tokio::sync::RwLock::new(()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, IndexFile> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn save(&self, index: &IndexFile) -> Result<()> {
        checkpoint::write(&self.layout.image_index(), index)
    }

    /// The layout in use.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// True when the blob is stored.
    pub fn has_blob(&self, digest: &str) -> bool {
        self.layout.blob(digest).is_file()
    }

    /// Stores a blob read from `content`, verifying it hashes to `digest` (and has `size` bytes
    /// when given). Nothing is kept on a mismatch.
    pub fn put_blob(&self, digest: &str, size: Option<u64>, content: impl Read) -> Result<()> {
        let tmp = tempfile::NamedTempFile::new_in(self.layout.image_tmp_dir())
            .context(|| "create a temporary blob".to_string())?;
        let written = copy_hashing(content, tmp.as_file())?;
        if written.digest != digest || size.is_some_and(|s| s != written.size) {
            return Err(Error::Corrupt(format!(
                "blob {digest} failed verification: got {} ({} bytes, expected {} bytes)",
                written.digest,
                written.size,
                size.map_or("any".to_string(), |s| s.to_string())
            )));
        }
        self.commit_blob(tmp, digest)
    }

    /// Moves a verified temporary file into place as blob `digest`.
    pub fn commit_blob(&self, tmp: tempfile::NamedTempFile, digest: &str) -> Result<()> {
        tmp.as_file()
            .sync_all()
            .context(|| format!("fsync blob {digest}"))?;
        let path = self.layout.blob(digest);
        tmp.persist(&path)
            .map_err(|e| Error::io_path("store blob", &path, e.error))?;
        let dir = self.layout.blobs_dir();
        std::fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .with_path("fsync", &dir)
    }

    /// Reads a whole blob.
    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let path = self.layout.blob(digest);
        std::fs::read(&path).with_path("read blob", &path)
    }

    /// Records an image. Its tags move to it from any other image; an image already known
    /// by id gains the new tags and digests.
    pub fn add_image(&self, mut record: ImageRecord) -> Result<ImageRecord> {
        let mut index = self.lock();
        let mut next = index.clone();
        for other in next.images.iter_mut().filter(|i| i.id != record.id) {
            other.repo_tags.retain(|t| !record.repo_tags.contains(t));
        }
        if let Some(existing) = next.images.iter_mut().find(|i| i.id == record.id) {
            let known: BTreeSet<String> = existing.blobs().map(str::to_string).collect();
            let new_blobs: Vec<String> = record
                .blobs()
                .filter(|b| !known.contains(*b))
                .map(str::to_string)
                .collect();
            existing.other_blobs.extend(new_blobs);
            for tag in record.repo_tags.drain(..) {
                if !existing.repo_tags.contains(&tag) {
                    existing.repo_tags.push(tag);
                }
            }
            for digest in record.repo_digests.drain(..) {
                if !existing.repo_digests.contains(&digest) {
                    existing.repo_digests.push(digest);
                }
            }
            record = existing.clone();
        } else {
            next.images.push(record.clone());
        }
        self.save(&next)?;
        *index = next;
        Ok(record)
    }

    /// Finds an image by id (full, `sha256:`-prefixed), repo tag or repo digest.
    pub fn find(&self, text: &str) -> Result<Option<ImageRecord>> {
        let index = self.lock();
        if looks_like_id(text) {
            let id = if text.starts_with("sha256:") {
                text.to_string()
            } else {
                format!("sha256:{text}")
            };
            if let Some(image) = index.images.iter().find(|i| i.id == id) {
                return Ok(Some(image.clone()));
            }
        }
        let reference = ImageRef::parse(text)?;
        let found = index.images.iter().find(|i| match &reference.digest {
            Some(digest) => i.repo_digests.contains(&reference.repo_digest(digest)),
            None => reference
                .repo_tag()
                .is_some_and(|t| i.repo_tags.contains(&t)),
        });
        Ok(found.cloned())
    }

    /// Every image.
    pub fn list(&self) -> Vec<ImageRecord> {
        self.lock().images.clone()
    }

    /// Keeps content from being deleted while a pull that relies on it runs.
    pub async fn hold_for_pull(&self) -> tokio::sync::RwLockReadGuard<'_, ()> {
        self.content.read().await
    }

    /// Removes an image and frees every blob and layer nothing else uses (layers leased by
    /// containers stay until released). Waits for pulls in flight; call from a blocking thread.
    pub fn remove(&self, id: &str) -> Result<Freed> {
        let _deleting = self.content.blocking_write();
        let (after, removed) = {
            let mut index = self.lock();
            let mut next = index.clone();
            next.images.retain(|i| i.id != id);
            self.save(&next)?;
            let removed: Vec<ImageRecord> = index
                .images
                .iter()
                .filter(|i| i.id == id)
                .cloned()
                .collect();
            *index = next;
            (index.clone(), removed)
        };
        // Files are deleted without the index lock, so status and list calls do not wait.
        self.collect(&after, &removed)
    }

    /// Leases the layers of `image` for `container` and returns their directories, top first
    /// (the order overlayfs takes lower dirs in).
    pub fn lease_layers(&self, container: &str, image: &ImageRecord) -> Result<Vec<PathBuf>> {
        let _using = self.content.blocking_read();
        let mut index = self.lock();
        let mut next = index.clone();
        for chain in image.chain_ids() {
            next.leases
                .entry(chain.to_string())
                .or_default()
                .insert(container.to_string());
        }
        self.save(&next)?;
        *index = next;
        Ok(image
            .chain_ids()
            .rev()
            .map(|chain| self.layout.layer_dir(chain))
            .collect())
    }

    /// Drops every lease of `container`, freeing layers no image or container uses any more.
    pub fn release_layers(&self, container: &str) -> Result<Freed> {
        let _deleting = self.content.blocking_write();
        let (index, released) = {
            let mut index = self.lock();
            let mut next = index.clone();
            let mut released = Vec::new();
            for (chain, holders) in next.leases.iter_mut() {
                if holders.remove(container) {
                    released.push(chain.clone());
                }
            }
            next.leases.retain(|_, holders| !holders.is_empty());
            self.save(&next)?;
            *index = next;
            (index.clone(), released)
        };
        let mut freed = Freed::default();
        for chain in released {
            if self.layer_unused(&index, &chain) {
                remove_tree(&self.layout.layer_dir(&chain))?;
                freed.layers += 1;
            }
        }
        Ok(freed)
    }

    fn layer_unused(&self, index: &IndexFile, chain: &str) -> bool {
        !index.leases.contains_key(chain)
            && !index
                .images
                .iter()
                .any(|i| i.chain_ids().any(|c| c == chain))
    }

    fn collect(&self, index: &IndexFile, removed: &[ImageRecord]) -> Result<Freed> {
        let mut freed = Freed::default();
        let blobs_in_use: BTreeSet<&str> = index.images.iter().flat_map(|i| i.blobs()).collect();
        for image in removed {
            for blob in image.blobs() {
                if !blobs_in_use.contains(blob) {
                    self.remove_precompiled(blob)?;
                    match std::fs::remove_file(self.layout.blob(blob)) {
                        Ok(()) => freed.blobs += 1,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => {
                            return Err(Error::io_path("remove blob", &self.layout.blob(blob), e));
                        }
                    }
                }
            }
            for chain in image.chain_ids() {
                let dir = self.layout.layer_dir(chain);
                if self.layer_unused(index, chain) && dir.exists() {
                    remove_tree(&dir)?;
                    freed.layers += 1;
                }
            }
        }
        Ok(freed)
    }

    /// Deletes the precompiled forms (for any engine) of a wasm blob.
    fn remove_precompiled(&self, digest: &str) -> Result<()> {
        let prefix = format!("{}-", digest.trim_start_matches("sha256:"));
        let dir = self.layout.wasm_dir();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(());
        };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                std::fs::remove_file(entry.path()).with_path("remove", &entry.path())?;
            }
        }
        Ok(())
    }

    /// Bytes and inodes used by blobs and unpacked layers.
    pub fn usage(&self) -> (u64, u64) {
        let mut usage = (0, 0);
        for dir in [
            self.layout.images_dir(),
            self.layout.layers_dir(),
            self.layout.wasm_dir(),
        ] {
            disk_usage(&dir, &mut usage);
        }
        usage
    }
}

/// Deletes what a crash during a pull left: temporary blobs and half-unpacked layers.
fn remove_leftovers(layout: &Layout) -> Result<()> {
    let tmp = layout.image_tmp_dir();
    for entry in std::fs::read_dir(&tmp).with_path("list", &tmp)?.flatten() {
        remove_tree(&entry.path())
            .or_else(|_| std::fs::remove_file(entry.path()).with_path("remove", &entry.path()))?;
    }
    let layers = layout.layers_dir();
    for entry in std::fs::read_dir(&layers)
        .with_path("list", &layers)?
        .flatten()
    {
        if entry.file_name().to_string_lossy().starts_with(".unpack-") {
            tracing::info!(path = %entry.path().display(), "removing a layer left half-unpacked by a crash");
            remove_tree(&entry.path())?;
        }
    }
    Ok(())
}

fn remove_tree(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other.with_path("remove", dir),
    }
}

fn disk_usage(dir: &Path, usage: &mut (u64, u64)) {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        usage.0 += meta.blocks() * 512;
        usage.1 += 1;
        if meta.is_dir() {
            disk_usage(&entry.path(), usage);
        }
    }
}

/// Digest and size of content copied through [`copy_hashing`].
#[derive(Debug, PartialEq, Eq)]
pub struct Hashed {
    /// `sha256:<hex>`.
    pub digest: String,
    /// Bytes copied.
    pub size: u64,
}

/// Copies `from` into `to`, hashing as it goes.
pub fn copy_hashing(mut from: impl Read, mut to: impl Write) -> Result<Hashed> {
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("read blob content", e)),
        };
        hasher.update(&buf[..n]);
        to.write_all(&buf[..n])
            .context(|| "write blob content".to_string())?;
        size += n as u64;
    }
    Ok(Hashed {
        digest: sha256_digest(hasher),
        size,
    })
}

/// `sha256:<hex>` of a finished hasher.
pub fn sha256_digest(hasher: Sha256) -> String {
    let hex: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// `sha256:<hex>` of some bytes.
pub fn sha256_of(bytes: &[u8]) -> String {
    sha256_digest(Sha256::new_with_prefix(bytes))
}

/// The chain ids of layers with these diff ids, bottom first (OCI image spec).
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut chains: Vec<String> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        let chain = match chains.last() {
            None => diff_id.clone(),
            Some(parent) => sha256_of(format!("{parent} {diff_id}").as_bytes()),
        };
        chains.push(chain);
    }
    chains
}

#[cfg(test)]
mod tests;
