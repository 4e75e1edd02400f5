//! Containers: the domain logic behind CreateContainer, StartContainer, StopContainer,
//! RemoveContainer, ContainerStatus, ListContainers and ReopenContainerLog, and the cascade
//! from StopPodSandbox and RemovePodSandbox. Containers run inside their pod's monitor (wasm
//! instances, and Linux containers as its children); this side keeps the records, checkpoints
//! them, and asks the monitor through the [`MonitorClient`] trait. The operations that ask a
//! monitor are async and run on the daemon's multi-thread runtime: they hold no thread while
//! the monitor works, and what may block for long (mounts, deleting a root filesystem,
//! compiling) runs in [`blocking_section`]. Status and listing are synchronous.

mod events;
mod lifecycle;
pub mod linux;
mod pod_files;
mod query;
mod recover;
pub mod select;
pub mod spec;
mod streams;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::image::service::Images;
use crate::monitor::client::{MonitorClient, outcome};
use crate::monitor::protocol::{Request, Response};
use crate::os::cgroup::Cgroups;
use crate::os::mount::Mounter;
use crate::sandbox::SandboxManager;
use crate::store::checkpoint;
use crate::store::container::ContainerRecord;
use crate::store::file_pool::FilePool;
use crate::store::layout::Layout;

/// One container in memory: its record, and a lock serialising operations on it (held across
/// the monitor's answer).
pub struct ContainerEntry {
    op: tokio::sync::Mutex<()>,
    record: RwLock<ContainerRecord>,
    removed: AtomicBool,
}

impl ContainerEntry {
    fn new(record: ContainerRecord) -> Self {
        ContainerEntry {
            op: tokio::sync::Mutex::new(()),
            record: RwLock::new(record),
            removed: AtomicBool::new(false),
        }
    }

    async fn lock_op(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.op.lock().await
    }

    /// The operation lock if it is free now.
    fn try_lock_op(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        self.op.try_lock().ok()
    }

    fn snapshot(&self) -> ContainerRecord {
        self.record
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether the container belongs to pod `pod_id` (without copying its record).
    fn in_pod(&self, pod_id: &str) -> bool {
        self.record.read().unwrap_or_else(|e| e.into_inner()).pod_id == pod_id
    }

    fn replace(&self, record: ContainerRecord) {
        *self.record.write().unwrap_or_else(|e| e.into_inner()) = record;
    }

    fn is_removed(&self) -> bool {
        self.removed.load(Ordering::SeqCst)
    }
}

/// Owns every container of the daemon.
pub struct ContainerManager {
    config: Arc<Config>,
    layout: Layout,
    images: Arc<Images>,
    sandboxes: Arc<SandboxManager>,
    monitors: Arc<dyn MonitorClient>,
    mounts: Arc<dyn Mounter>,
    cgroups: Arc<dyn Cgroups>,
    containers: RwLock<HashMap<String, Arc<ContainerEntry>>>,
    names: Mutex<HashMap<String, String>>,
    /// Serialises making a pod's shared files (its first Linux containers may race).
    pod_files_lock: Mutex<()>,
    events: events::Events,
    /// Record and exit files are reused, not created and deleted, per container.
    file_pool: FilePool,
}

/// How long a monitor may take to answer a request that does not wait on the guest.
pub(super) const MONITOR_TIMEOUT: Duration = Duration::from_secs(30);

impl ContainerManager {
    /// A manager with no containers yet; call [`ContainerManager::recover`] before serving.
    pub fn new(
        config: Arc<Config>,
        images: Arc<Images>,
        sandboxes: Arc<SandboxManager>,
        monitors: Arc<dyn MonitorClient>,
        mounts: Arc<dyn Mounter>,
        cgroups: Arc<dyn Cgroups>,
    ) -> Self {
        let layout = Layout::new(&config.root, &config.state);
        ContainerManager {
            file_pool: FilePool::open(layout.file_pool_dir()),
            layout,
            config,
            images,
            sandboxes,
            monitors,
            mounts,
            cgroups,
            containers: RwLock::new(HashMap::new()),
            names: Mutex::new(HashMap::new()),
            pod_files_lock: Mutex::new(()),
            events: events::Events::default(),
        }
    }

    fn entry(&self, id: &str) -> Result<Arc<ContainerEntry>> {
        if id.is_empty() {
            return Err(Error::InvalidArgument("container id is required".into()));
        }
        let containers = self.containers.read().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = containers.get(id) {
            return Ok(entry.clone());
        }
        let mut matches = containers.iter().filter(|(k, _)| k.starts_with(id));
        match (matches.next(), matches.next()) {
            (Some((_, entry)), None) => Ok(entry.clone()),
            (Some(_), Some(_)) => Err(Error::InvalidArgument(format!(
                "container id prefix {id:?} is ambiguous"
            ))),
            _ => Err(Error::NotFound(format!("container {id:?} not found"))),
        }
    }

    fn find(&self, id: &str) -> Result<Option<Arc<ContainerEntry>>> {
        match self.entry(id) {
            Ok(entry) => Ok(Some(entry)),
            Err(Error::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn entries(&self) -> Vec<Arc<ContainerEntry>> {
        self.containers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Checkpoints a record without waiting for the disk. A daemon crash keeps the write (it is
    /// in the page cache). A host crash may lose it, which loses nothing: a live container ends
    /// with its monitor anyway, and an exit is in the exit file the monitor writes, which
    /// recovery reads (or, lost too, it ended with its monitor). That saves about 0.4 ms per
    /// CreateContainer here.
    fn save(&self, record: &ContainerRecord) -> Result<()> {
        let path = self.layout.container_checkpoint(&record.id);
        self.file_pool.take_to(&checkpoint::temp_path(&path));
        checkpoint::write_unsynced(&path, record)
    }

    /// Puts a pooled file where the monitor will write the container's exit (its temp file),
    /// so that the exit costs no new file either.
    fn provide_exit_file(&self, record: &ContainerRecord) {
        let exit_file = record.exit_file();
        if exit_file.parent() == Some(self.layout.containers_dir().as_path()) {
            self.file_pool.take_to(&checkpoint::temp_path(exit_file));
        }
    }

    /// Deletes the container's checkpoint and exit file, into the file pool (and the
    /// directory an earlier crishim kept them in, for a record it wrote); what is gone
    /// already is no error. Nothing outside the containers dir is deleted, whatever the record
    /// names.
    fn delete_record(&self, record: &ContainerRecord) -> Result<()> {
        self.file_pool
            .retire(&self.layout.container_checkpoint(&record.id))?;
        let exit_file = record.exit_file();
        let legacy = self.layout.legacy_container_dir(&record.id);
        let place = exit_file.parent();
        if place == Some(self.layout.containers_dir().as_path()) {
            self.file_pool.retire(exit_file)?;
            // A container that never ended left the file its exit would have been written to.
            if record.exit.is_none() {
                self.file_pool.retire(&checkpoint::temp_path(exit_file))?;
            }
        } else if place == Some(legacy.as_path()) {
            gone_already_is_fine(std::fs::remove_dir_all(&legacy), &legacy)?;
        }
        Ok(())
    }

    /// Sends `request` to pod `pod_id`'s monitor; its answer as a result.
    async fn ask(&self, pod_id: &str, request: &Request, timeout: Duration) -> Result<()> {
        outcome(self.send(pod_id, request, timeout).await?)
    }

    /// Sends `request` to pod `pod_id`'s monitor and returns its answer.
    async fn send(&self, pod_id: &str, request: &Request, timeout: Duration) -> Result<Response> {
        let socket = self.layout.monitor_socket(pod_id);
        self.monitors.send(&socket, request, timeout).await
    }

    fn reserve_name(&self, key: &str, id: &str) -> Result<()> {
        let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = names.get(key) {
            return Err(Error::AlreadyExists(format!(
                "a container with this name and attempt exists in the pod already: {existing}"
            )));
        }
        names.insert(key.to_string(), id.to_string());
        Ok(())
    }

    fn release_name(&self, key: &str, id: &str) {
        let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        if names.get(key).is_some_and(|owner| owner == id) {
            names.remove(key);
        }
    }
}

/// Runs `work`, which may block for long (a mount, deleting a root filesystem, compiling),
/// without stalling the other tasks of the daemon's runtime. It must be a multi-thread
/// runtime (a current-thread one panics); outside a runtime `work` simply runs.
fn blocking_section<T>(work: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(work)
}

/// A removal's outcome, where a path that does not exist is success.
fn gone_already_is_fine(removed: std::io::Result<()>, path: &std::path::Path) -> Result<()> {
    match removed {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io_path("remove", path, e))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
