//! Files kept for reuse by the container records. A short-lived container writes two small
//! files (its record and its exit file) and deletes both at removal. On ext4 each new file
//! costs an inode allocation, and without a journal the allocator skips every inode freed in
//! the last seconds: at a thousand containers a second, a new file cost about 75 µs here. A
//! removed file is moved into the pool instead of deleted, and a file about to be written
//! is a pooled one moved into its temp-file place first ([`checkpoint`] writes over an
//! existing temp file without truncating it): no inode is allocated or freed.
//!
//! [`checkpoint`]: crate::store::checkpoint

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, IoContext, Result};

/// How many files the pool keeps; more are deleted.
const CAPACITY: usize = 64;

/// The pool: files named by number in one directory, on the records' filesystem.
pub struct FilePool {
    dir: PathBuf,
    free: Mutex<Vec<u64>>,
    next_name: AtomicU64,
}

impl FilePool {
    /// The pool in `dir` (made if missing): the regular files there (from before a restart)
    /// are taken back, up to the pool's capacity; anything else there is deleted.
    pub fn open(dir: PathBuf) -> FilePool {
        if let Err(e) = std::fs::create_dir_all(&dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot make the file pool's directory; files are created and deleted instead");
        }
        let mut free = Vec::new();
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let number = entry.file_name().to_str().and_then(|n| n.parse().ok());
            let regular = entry.file_type().is_ok_and(|t| t.is_file());
            match number {
                Some(number) if regular && free.len() < CAPACITY => free.push(number),
                _ => discard(&entry.path()),
            }
        }
        let next_name = free.iter().max().map_or(0, |n| n + 1);
        FilePool {
            dir,
            free: Mutex::new(free),
            next_name: AtomicU64::new(next_name),
        }
    }

    /// Moves a pooled file to `place` (a temp file's path, written over next); false when
    /// the pool is empty or the move failed, and then the writer creates the file.
    pub fn take_to(&self, place: &Path) -> bool {
        let Some(number) = self.lock().pop() else {
            return false;
        };
        let pooled = self.dir.join(number.to_string());
        match std::fs::rename(&pooled, place) {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(file = %pooled.display(), error = %e, "a pooled file cannot be moved");
                discard(&pooled);
                false
            }
        }
    }

    /// Removes the file at `path`: into the pool while it has room, else deleted. A path
    /// that does not exist is success.
    pub fn retire(&self, path: &Path) -> Result<()> {
        let mut free = self.lock();
        if free.len() < CAPACITY {
            let number = self.next_name.fetch_add(1, Ordering::Relaxed);
            match std::fs::rename(path, self.dir.join(number.to_string())) {
                Ok(()) => {
                    free.push(number);
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && !path.exists() => {
                    return Ok(());
                }
                // No pool directory, another filesystem, a directory in the way: the file is
                // deleted instead.
                Err(_) => {}
            }
        }
        drop(free);
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::io_path("remove", path, e))
            }
            _ => Ok(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u64>> {
        self.free.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Deletes what is not fit for the pool; a failure is only logged (the pool does without).
fn discard(path: &Path) {
    let removed = match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(_) => return,
    };
    if let Err(e) = removed.with_path("remove", path) {
        tracing::warn!(error = %e, "cannot delete a file of the file pool");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_retired_file_is_taken_again_without_a_new_inode() {
        let dir = tempfile::tempdir().unwrap();
        let pool = FilePool::open(dir.path().join("pool"));
        let record = dir.path().join("a.json");
        std::fs::write(&record, b"old record").unwrap();
        let inode = std::fs::metadata(&record).unwrap().ino();
        pool.retire(&record).unwrap();
        assert!(!record.exists());
        pool.retire(&record).unwrap();
        let place = dir.path().join("b.json.tmp");
        assert!(pool.take_to(&place));
        assert_eq!(std::fs::metadata(&place).unwrap().ino(), inode);
        assert!(!pool.take_to(&dir.path().join("c.json.tmp")), "empty now");
    }

    #[test]
    fn reopening_takes_back_pooled_files_and_deletes_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let pool_dir = dir.path().join("pool");
        std::fs::create_dir(&pool_dir).unwrap();
        std::fs::write(pool_dir.join("7"), b"x").unwrap();
        std::fs::write(pool_dir.join("stray"), b"x").unwrap();
        std::fs::create_dir(pool_dir.join("8")).unwrap();
        let pool = FilePool::open(pool_dir.clone());
        assert!(!pool_dir.join("stray").exists());
        assert!(!pool_dir.join("8").exists());
        let record = dir.path().join("r.json");
        std::fs::write(&record, b"r").unwrap();
        pool.retire(&record).unwrap();
        assert!(pool_dir.join("7").exists() && pool_dir.join("8").is_file());
    }

    #[test]
    fn a_full_pool_deletes_what_it_cannot_keep() {
        let dir = tempfile::tempdir().unwrap();
        let pool = FilePool::open(dir.path().join("pool"));
        for i in 0..=CAPACITY {
            let file = dir.path().join(format!("{i}.json"));
            std::fs::write(&file, b"r").unwrap();
            pool.retire(&file).unwrap();
            assert!(!file.exists());
        }
        let kept = std::fs::read_dir(dir.path().join("pool")).unwrap().count();
        assert_eq!(kept, CAPACITY);
    }
}
