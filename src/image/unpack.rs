//! Unpacking a layer tar (plain, gzip or zstd) into a directory, safely: every path is resolved
//! inside the layer directory (openat2 with RESOLVE_IN_ROOT), so no entry, hard link or symlink
//! can create or change anything outside it. OCI whiteouts become overlayfs whiteouts (0/0
//! character devices) and opaque markers (`trusted.overlay.opaque=y`). Ownership, modes, mtimes
//! and xattrs are kept. Returns the diff id: the digest of the uncompressed tar.

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;
use sha2::{Digest, Sha256};

use crate::error::{Error, IoContext, Result};
use crate::image::store::sha256_digest;

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// Compression of a layer blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

impl Compression {
    /// From the layer media type, or the content's magic bytes when the type says nothing.
    pub fn detect(media_type: &str, head: &[u8]) -> Compression {
        if media_type.ends_with("+gzip") || media_type.ends_with(".tar.gzip") {
            Compression::Gzip
        } else if media_type.ends_with("+zstd") {
            Compression::Zstd
        } else if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// A reader that hashes what passes through it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Unpacks the layer blob `blob` (of `media_type`) into the existing directory `dest`.
pub fn unpack_layer(blob: impl Read, media_type: &str, dest: &Path) -> Result<String> {
    let mut blob = BufReader::with_capacity(256 * 1024, blob);
    let head = blob
        .fill_buf()
        .context(|| format!("read layer for {}", dest.display()))?;
    let decompressed: Box<dyn Read> = match Compression::detect(media_type, head) {
        Compression::None => Box::new(blob),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(blob)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(blob)
                .context(|| "start zstd decoder".to_string())?,
        ),
    };
    let mut tar_stream = HashingReader {
        inner: decompressed,
        hasher: Sha256::new(),
    };
    let root = open_dir(dest)?;
    {
        let mut archive = tar::Archive::new(&mut tar_stream);
        let entries = archive.entries().map_err(|e| bad_layer(dest, e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| bad_layer(dest, e))?;
            unpack_entry(&root, &mut entry).map_err(|e| match e {
                Error::Io { context, source } => {
                    Error::io(format!("{context} (layer {})", dest.display()), source)
                }
                other => other,
            })?;
        }
    }
    // Hash the tar's trailing padding too: the diff id covers the whole stream.
    std::io::copy(&mut tar_stream, &mut std::io::sink()).map_err(|e| bad_layer(dest, e))?;
    Ok(sha256_digest(tar_stream.hasher))
}

fn bad_layer(dest: &Path, e: std::io::Error) -> Error {
    Error::InvalidArgument(format!(
        "layer for {} is not a valid tar stream: {e}",
        dest.display()
    ))
}

fn open_dir(path: &Path) -> Result<OwnedFd> {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io_path("open", path, e.into()))
}

/// The entry path as clean components: no root, no `.`; `..` pops (clamped at the root, as
/// RESOLVE_IN_ROOT would clamp it anyway).
fn clean_components(raw: &[u8]) -> Vec<OsString> {
    let mut parts: Vec<OsString> = Vec::new();
    for component in Path::new(OsStr::from_bytes(raw)).components() {
        match component {
            Component::Normal(part) => parts.push(part.to_os_string()),
            Component::ParentDir => {
                parts.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    parts
}

fn join(parts: &[OsString]) -> OsString {
    let mut path = OsString::from(".");
    for part in parts {
        path.push("/");
        path.push(part);
    }
    path
}

fn errno_context(what: &str, parts: &[OsString], e: Errno) -> Error {
    Error::io(
        format!("{what} {}", Path::new(&join(parts)).display()),
        e.into(),
    )
}

/// Opens the directory `parts` inside `root`, creating missing ones (0755, root-owned, as
/// Docker does for directories a layer implies but does not list).
fn open_parent(root: &OwnedFd, parts: &[OsString]) -> Result<OwnedFd> {
    let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    match rustix::fs::openat2(root, join(parts).as_os_str(), flags, Mode::empty(), resolve) {
        Ok(fd) => Ok(fd),
        Err(Errno::NOENT) if !parts.is_empty() => {
            let (name, above) = parts.split_last().unwrap_or((&parts[0], &[]));
            let parent = open_parent(root, above)?;
            match rustix::fs::mkdirat(&parent, name.as_os_str(), Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(errno_context("create directory", parts, e)),
            }
            rustix::fs::openat2(root, join(parts).as_os_str(), flags, Mode::empty(), resolve)
                .map_err(|e| errno_context("open directory", parts, e))
        }
        Err(e) => Err(errno_context("open directory", parts, e)),
    }
}

/// Removes whatever is at `name` in `parent` (a non-empty directory is an error).
fn remove_existing(parent: &OwnedFd, name: &OsStr, parts: &[OsString]) -> Result<()> {
    match rustix::fs::unlinkat(parent, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(Errno::ISDIR) | Err(Errno::PERM) => {
            rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR)
                .map_err(|e| errno_context("replace", parts, e))
        }
        Err(e) => Err(errno_context("replace", parts, e)),
    }
}

fn unpack_entry<R: Read>(root: &OwnedFd, entry: &mut tar::Entry<'_, R>) -> Result<()> {
    let parts = clean_components(&entry.path_bytes());
    let Some((name, above)) = parts.split_last() else {
        // The layer root itself: only its metadata could be set, and the layer dir keeps its own.
        return Ok(());
    };
    let parent = open_parent(root, above)?;
    let name_str = name.to_string_lossy();
    if name_str == OPAQUE_MARKER {
        return rustix::fs::fsetxattr(&parent, "trusted.overlay.opaque", b"y", XattrFlags::empty())
            .map_err(|e| errno_context("mark opaque", above, e));
    }
    if let Some(hidden) = name_str.strip_prefix(WHITEOUT_PREFIX) {
        let hidden = OsStr::new(hidden);
        remove_existing(&parent, hidden, &parts)?;
        return rustix::fs::mknodat(&parent, hidden, FileType::CharacterDevice, Mode::empty(), 0)
            .map_err(|e| errno_context("create whiteout", &parts, e));
    }

    let header = entry.header().clone();
    let mode = Mode::from_raw_mode(header.mode().unwrap_or(0o644) & 0o7777);
    let uid = header.uid().unwrap_or(0) as u32;
    let gid = header.gid().unwrap_or(0) as u32;
    let mtime = header.mtime().unwrap_or(0) as i64;
    let xattrs = pax_xattrs(entry);
    let kind = header.entry_type();
    match kind {
        tar::EntryType::Directory => {
            match rustix::fs::mkdirat(&parent, name.as_os_str(), mode) {
                Ok(()) => {}
                Err(Errno::EXIST) => {
                    let is_dir =
                        rustix::fs::statat(&parent, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)
                            .is_ok_and(|st| {
                                FileType::from_raw_mode(st.st_mode) == FileType::Directory
                            });
                    if !is_dir {
                        remove_existing(&parent, name, &parts)?;
                        rustix::fs::mkdirat(&parent, name.as_os_str(), mode)
                            .map_err(|e| errno_context("create directory", &parts, e))?;
                    }
                }
                Err(e) => return Err(errno_context("create directory", &parts, e)),
            }
            let dir = rustix::fs::openat(
                &parent,
                name.as_os_str(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| errno_context("open directory", &parts, e))?;
            set_fd_metadata(&dir, uid, gid, mode, &xattrs, None, &parts)
        }
        tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
            remove_existing(&parent, name, &parts)?;
            let file = rustix::fs::openat(
                &parent,
                name.as_os_str(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )
            .map_err(|e| errno_context("create file", &parts, e))?;
            let mut file = std::fs::File::from(file);
            std::io::copy(entry, &mut file)
                .context(|| format!("write {}", Path::new(&join(&parts)).display()))?;
            set_fd_metadata(
                &OwnedFd::from(file),
                uid,
                gid,
                mode,
                &xattrs,
                Some(mtime),
                &parts,
            )
        }
        tar::EntryType::Symlink => {
            let target = entry.link_name_bytes().ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "symlink {} has no target",
                    join(&parts).to_string_lossy()
                ))
            })?;
            remove_existing(&parent, name, &parts)?;
            rustix::fs::symlinkat(OsStr::from_bytes(&target), &parent, name.as_os_str())
                .map_err(|e| errno_context("create symlink", &parts, e))?;
            chown_at(&parent, name, uid, gid, &parts)?;
            let times = timestamps(mtime);
            rustix::fs::utimensat(&parent, name.as_os_str(), &times, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| errno_context("set times of", &parts, e))
        }
        tar::EntryType::Link => {
            let target = entry.link_name_bytes().ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "hard link {} has no target",
                    join(&parts).to_string_lossy()
                ))
            })?;
            let target_parts = clean_components(&target);
            // The target is resolved inside the layer too, and must not be a directory.
            let source = rustix::fs::openat2(
                root,
                join(&target_parts).as_os_str(),
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
            )
            .map_err(|e| errno_context("find hard link target", &target_parts, e))?;
            remove_existing(&parent, name, &parts)?;
            rustix::fs::linkat(&source, "", &parent, name.as_os_str(), AtFlags::EMPTY_PATH)
                .map_err(|e| errno_context("create hard link", &parts, e))
        }
        tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
            let file_type = match kind {
                tar::EntryType::Char => FileType::CharacterDevice,
                tar::EntryType::Block => FileType::BlockDevice,
                _ => FileType::Fifo,
            };
            let major = header.device_major().ok().flatten().unwrap_or(0);
            let minor = header.device_minor().ok().flatten().unwrap_or(0);
            remove_existing(&parent, name, &parts)?;
            rustix::fs::mknodat(
                &parent,
                name.as_os_str(),
                file_type,
                mode,
                rustix::fs::makedev(major, minor),
            )
            .map_err(|e| errno_context("create device", &parts, e))?;
            chown_at(&parent, name, uid, gid, &parts)
        }
        other => {
            tracing::warn!(path = %join(&parts).to_string_lossy(), kind = ?other, "skipping unsupported tar entry");
            Ok(())
        }
    }
}

fn timestamps(mtime: i64) -> Timestamps {
    let at = Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: at,
        last_modification: at,
    }
}

fn chown_at(parent: &OwnedFd, name: &OsStr, uid: u32, gid: u32, parts: &[OsString]) -> Result<()> {
    rustix::fs::chownat(
        parent,
        name,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| errno_context("chown", parts, e))
}

/// Owner, then mode (chown clears set-id bits), xattrs and mtime, through an open fd.
fn set_fd_metadata(
    fd: &OwnedFd,
    uid: u32,
    gid: u32,
    mode: Mode,
    xattrs: &[(String, Vec<u8>)],
    mtime: Option<i64>,
    parts: &[OsString],
) -> Result<()> {
    rustix::fs::fchown(
        fd,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
    )
    .map_err(|e| errno_context("chown", parts, e))?;
    rustix::fs::fchmod(fd, mode).map_err(|e| errno_context("chmod", parts, e))?;
    for (key, value) in xattrs {
        rustix::fs::fsetxattr(fd.as_fd(), key.as_str(), value, XattrFlags::empty())
            .map_err(|e| errno_context(&format!("set xattr {key} on"), parts, e))?;
    }
    if let Some(mtime) = mtime {
        rustix::fs::futimens(fd, &timestamps(mtime))
            .map_err(|e| errno_context("set times of", parts, e))?;
    }
    Ok(())
}

/// Extended attributes carried in PAX headers (`SCHILY.xattr.<name>`).
fn pax_xattrs<R: Read>(entry: &mut tar::Entry<'_, R>) -> Vec<(String, Vec<u8>)> {
    let Ok(Some(extensions)) = entry.pax_extensions() else {
        return Vec::new();
    };
    extensions
        .flatten()
        .filter_map(|ext| {
            let key = ext.key().ok()?.strip_prefix("SCHILY.xattr.")?.to_string();
            Some((key, ext.value_bytes().to_vec()))
        })
        .collect()
}

#[cfg(test)]
mod tests;
