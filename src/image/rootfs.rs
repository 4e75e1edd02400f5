//! Container root filesystems (a Linux container's root, a wasm container's files): an overlay
//! whose lower dirs are the image's unpacked layers
//! (leased, so removing the image keeps them) and whose upper and work dirs are the
//! container's own. Used by CreateContainer and RemoveContainer.

use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::image::store::{ImageKind, ImageRecord, ImageStore};
use crate::os::mount::Mounter;

/// The directories of one container's root filesystem under `dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootfsDirs {
    /// Where the merged root is mounted.
    pub rootfs: PathBuf,
    /// The container's writable layer.
    pub upper: PathBuf,
    /// overlayfs' scratch dir.
    pub work: PathBuf,
    /// The lower dir used for an image with no layers.
    pub empty: PathBuf,
}

impl RootfsDirs {
    /// The layout under a container's directory.
    pub fn new(dir: &Path) -> RootfsDirs {
        RootfsDirs {
            rootfs: dir.join("rootfs"),
            upper: dir.join("upper"),
            work: dir.join("work"),
            empty: dir.join("empty"),
        }
    }
}

/// Mounts `container`'s root filesystem from `image` under `dir`; returns the rootfs path.
/// On failure nothing is left: no mount, no lease, no directory.
pub fn prepare(
    store: &ImageStore,
    mounts: &dyn Mounter,
    container: &str,
    image: &ImageRecord,
    dir: &Path,
) -> Result<PathBuf> {
    if image.kind != ImageKind::Linux && !image.has_filesystem() {
        return Err(Error::InvalidArgument(format!(
            "image {} is a wasm artifact: it has no root filesystem",
            image.id
        )));
    }
    let dirs = RootfsDirs::new(dir);
    let result = (|| {
        let mut lowers = store.lease_layers(container, image)?;
        if lowers.is_empty() {
            std::fs::create_dir_all(&dirs.empty).with_path("create", &dirs.empty)?;
            lowers.push(dirs.empty.clone());
        }
        for d in [&dirs.rootfs, &dirs.upper, &dirs.work] {
            std::fs::create_dir_all(d).with_path("create", d)?;
        }
        mounts.overlay(&lowers, &dirs.upper, &dirs.work, &dirs.rootfs)?;
        Ok(dirs.rootfs.clone())
    })();
    if result.is_err() {
        if let Err(e) = remove(store, mounts, container, dir) {
            tracing::error!(container, error = %e, "could not undo a failed rootfs");
        }
    }
    result
}

/// Unmounts and deletes a container's root filesystem and releases its layers; idempotent.
pub fn remove(store: &ImageStore, mounts: &dyn Mounter, container: &str, dir: &Path) -> Result<()> {
    mounts.unmount(&RootfsDirs::new(dir).rootfs)?;
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(Error::io_path("remove", dir, e));
        }
        _ => {}
    }
    store.release_layers(container)?;
    Ok(())
}

#[cfg(test)]
mod tests;
