//! Atomic, versioned JSON checkpoints: write a temp file, fsync it, rename it over the old
//! one, fsync the directory. A crash leaves either the old or the new file, never a torn one.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, IoContext, Result};

/// Writes `value` as JSON to `path` atomically, creating the parent directory.
pub fn write<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    write_with(path, value, true)
}

/// Writes `value` as JSON to `path` atomically (temp file + rename) but without waiting for
/// the disk: a crash of the process keeps it; after a host crash the file may be the old one,
/// the new one, missing, or empty (then recovery skips it). For records that only matter while
/// the processes they describe live (about 0.4 ms cheaper per write here than [`write`]).
pub fn write_unsynced<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    write_with(path, value, false)
}

/// The temp file a checkpoint of `path` is written to before it is renamed into place.
pub fn temp_path(path: &Path) -> PathBuf {
    path.with_extension("json.tmp")
}

/// Temp file, then rename over `path`; with `durable`, fsync of the file before and of the
/// directory after. A temp file that is there already (one the [`FilePool`] put there) is
/// written over, not truncated first, and cut to length after: no inode or data block is
/// allocated or freed for it.
///
/// [`FilePool`]: crate::store::file_pool::FilePool
fn write_with<T: Serialize>(path: &Path, value: &T, durable: bool) -> Result<()> {
    let dir = path.parent().ok_or_else(|| {
        Error::Internal(format!("checkpoint path {} has no parent", path.display()))
    })?;
    let bytes = serde_json::to_vec(value)
        .map_err(|e| Error::Internal(format!("encode checkpoint {}: {e}", path.display())))?;
    let tmp = temp_path(path);
    let open = || {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
    };
    // The directory is made only when missing: most writes go to one that exists.
    let mut file = match open() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).with_path("create", dir)?;
            open()
        }
        opened => opened,
    }
    .with_path("open", &tmp)?;
    file.write_all(&bytes).with_path("write", &tmp)?;
    let length = bytes.len() as u64;
    // Cut only when longer: a truncate marks the inode dirty, a stat does not.
    if file.metadata().with_path("stat", &tmp)?.len() != length {
        file.set_len(length).with_path("cut to length", &tmp)?;
    }
    if durable {
        file.sync_all().with_path("fsync", &tmp)?;
    }
    std::fs::rename(&tmp, path).with_path("rename into place", path)?;
    if durable {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .with_path("fsync", dir)?;
    }
    Ok(())
}

/// Reads a JSON checkpoint. Corrupt content is an InvalidArgument naming the file.
pub fn read<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).with_path("read", path)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::InvalidArgument(format!("corrupt checkpoint {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_replace() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/state.json");
        write(&path, &vec![1, 2]).unwrap();
        write(&path, &vec![3]).unwrap();
        assert_eq!(read::<Vec<i32>>(&path).unwrap(), vec![3]);
        assert!(!path.with_extension("json.tmp").exists());
    }

    #[test]
    fn a_longer_temp_file_left_in_place_is_written_over_and_cut_to_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        std::fs::write(temp_path(&path), vec![b'x'; 5000]).unwrap();
        write_unsynced(&path, &vec![4]).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"[4]");
        assert!(!temp_path(&path).exists());
    }

    #[test]
    fn corrupt_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, b"{\"trunc").unwrap();
        let err = read::<Vec<i32>>(&path).unwrap_err().to_string();
        assert!(
            err.contains("corrupt checkpoint") && err.contains("state.json"),
            "{err}"
        );
    }
}
