//! The in-memory index of sandboxes: by id (exact or unique prefix, as crictl users type them)
//! and by the name key kubelet keeps unique.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use crate::error::{Error, Result};
use crate::store::sandbox::SandboxRecord;

/// One sandbox in memory: its record, and a lock that serializes lifecycle operations on it.
#[derive(Debug)]
pub struct SandboxEntry {
    op: Mutex<()>,
    record: RwLock<SandboxRecord>,
    removed: std::sync::atomic::AtomicBool,
}

impl SandboxEntry {
    /// Takes the operation lock: Stop, Remove and monitor-exit handling run one at a time.
    pub fn lock_op(&self) -> MutexGuard<'_, ()> {
        self.op.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks the sandbox removed (under the operation lock), so an operation that looked it up
    /// before the removal and waited for the lock does nothing, and writes no checkpoint.
    pub fn mark_removed(&self) {
        self.removed
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// True once the sandbox is removed.
    pub fn is_removed(&self) -> bool {
        self.removed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// A copy of the record as it is now.
    pub fn snapshot(&self) -> SandboxRecord {
        self.record
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the record; call only after its checkpoint is written.
    pub fn replace(&self, record: SandboxRecord) {
        *self.record.write().unwrap_or_else(|e| e.into_inner()) = record;
    }
}

#[derive(Debug, Default)]
struct Inner {
    by_id: HashMap<String, Arc<SandboxEntry>>,
    names: HashMap<String, String>,
}

/// All sandboxes known to the daemon.
#[derive(Debug, Default)]
pub struct SandboxIndex {
    inner: RwLock<Inner>,
}

impl SandboxIndex {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Claims `name_key` for sandbox `id`, or AlreadyExists naming the holder.
    pub fn reserve_name(&self, name_key: &str, id: &str) -> Result<()> {
        let mut inner = self.write();
        if let Some(holder) = inner.names.get(name_key) {
            return Err(Error::AlreadyExists(format!(
                "a sandbox with name {name_key:?} already exists: {holder}; remove it first"
            )));
        }
        inner.names.insert(name_key.to_string(), id.to_string());
        Ok(())
    }

    /// Gives back a name claimed by `id` (after a failed RunPodSandbox).
    pub fn release_name(&self, name_key: &str, id: &str) {
        let mut inner = self.write();
        if inner.names.get(name_key).is_some_and(|holder| holder == id) {
            inner.names.remove(name_key);
        }
    }

    /// Adds a sandbox; its name must be reserved for it already (or free).
    pub fn insert(&self, record: SandboxRecord) -> Arc<SandboxEntry> {
        let mut inner = self.write();
        inner.names.insert(record.name_key(), record.id.clone());
        let id = record.id.clone();
        let entry = Arc::new(SandboxEntry {
            op: Mutex::new(()),
            record: RwLock::new(record),
            removed: std::sync::atomic::AtomicBool::new(false),
        });
        inner.by_id.insert(id, entry.clone());
        entry
    }

    /// Forgets a sandbox and frees its name.
    pub fn remove(&self, id: &str) {
        let mut inner = self.write();
        if let Some(entry) = inner.by_id.remove(id) {
            let key = entry.snapshot().name_key();
            if inner.names.get(&key).is_some_and(|holder| holder == id) {
                inner.names.remove(&key);
            }
        }
    }

    /// Finds a sandbox by full id or by a prefix that matches exactly one.
    pub fn lookup(&self, id: &str) -> Result<Option<Arc<SandboxEntry>>> {
        if id.is_empty() {
            return Err(Error::InvalidArgument("pod sandbox id is empty".into()));
        }
        let inner = self.read();
        if let Some(entry) = inner.by_id.get(id) {
            return Ok(Some(entry.clone()));
        }
        let mut matches = inner.by_id.iter().filter(|(k, _)| k.starts_with(id));
        match (matches.next(), matches.next()) {
            (Some((_, entry)), None) => Ok(Some(entry.clone())),
            (None, _) => Ok(None),
            (Some(_), Some(_)) => Err(Error::InvalidArgument(format!(
                "pod sandbox id prefix {id:?} matches more than one sandbox"
            ))),
        }
    }

    /// Every sandbox.
    pub fn all(&self) -> Vec<Arc<SandboxEntry>> {
        self.read().by_id.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sandbox::PodNamespaces;
    use cri_proto::{PodSandboxConfig, PodSandboxMetadata};

    fn record(id: &str, name: &str) -> SandboxRecord {
        let config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.into(),
                namespace: "ns".into(),
                uid: "u".into(),
                attempt: 0,
            }),
            ..Default::default()
        };
        SandboxRecord::new(
            id.into(),
            config,
            String::new(),
            PodNamespaces::default(),
            String::new(),
            0,
        )
    }

    #[test]
    fn names_are_unique_until_released_or_removed() {
        let index = SandboxIndex::default();
        index.reserve_name("k", "a1").unwrap();
        assert!(matches!(
            index.reserve_name("k", "b2"),
            Err(Error::AlreadyExists(_))
        ));
        index.release_name("k", "b2");
        assert!(
            index.reserve_name("k", "b2").is_err(),
            "only the holder releases"
        );
        index.release_name("k", "a1");
        index.reserve_name("k", "b2").unwrap();

        let r = record("abc", "web");
        let key = r.name_key();
        index.insert(r);
        assert!(index.reserve_name(&key, "zzz").is_err());
        index.remove("abc");
        index.reserve_name(&key, "zzz").unwrap();
    }

    #[test]
    fn lookup_by_id_or_unique_prefix() {
        let index = SandboxIndex::default();
        index.insert(record("abc1", "a"));
        index.insert(record("abd2", "b"));
        assert_eq!(index.lookup("abc1").unwrap().unwrap().snapshot().id, "abc1");
        assert_eq!(index.lookup("abd").unwrap().unwrap().snapshot().id, "abd2");
        assert!(index.lookup("ab").is_err(), "ambiguous prefix");
        assert!(index.lookup("x").unwrap().is_none());
        assert!(index.lookup("").is_err());
    }
}
