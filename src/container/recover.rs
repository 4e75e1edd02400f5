//! Rebuilding the container index from checkpoints when the daemon starts.

use std::sync::Arc;

use super::{ContainerEntry, ContainerManager, MONITOR_TIMEOUT};
use crate::error::{Error, Result};
use crate::monitor::protocol::{Request, Response};
use crate::runtime::wasm::launch::ExitRecord;
use crate::store::checkpoint;
use crate::store::container::{CONTAINER_CHECKPOINT_VERSION, ContainerPhase, ContainerRecord};
use crate::store::layout::{CHECKPOINT_SUFFIX, EXIT_SUFFIX, EXIT_TEMP_SUFFIX};

/// The checkpoint's name in a record directory of an earlier crishim.
const LEGACY_CHECKPOINT: &str = "state.json";

impl ContainerManager {
    /// Loads every container checkpoint (after the pods are recovered): a half-created
    /// container is undone; the rest come back as they were, and a running one's exit is
    /// picked up from its exit file when it is asked about. A corrupt checkpoint is logged and
    /// skipped. Returns how many containers came back.
    pub async fn recover(&self) -> Result<usize> {
        let dir = self.layout.containers_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(Error::io_path("list", &dir, e)),
        };
        // Listed before anything moves: a checkpoint moved out of an old record directory
        // must not be listed a second time.
        let entries: Vec<_> = entries.flatten().collect();
        let mut loaded = 0;
        for entry in &entries {
            let Some(id) = self.checkpointed_id(entry) else {
                continue;
            };
            let record: ContainerRecord = match checkpoint::read(
                &self.layout.container_checkpoint(&id),
            ) {
                Ok(record) => record,
                Err(e) => {
                    tracing::error!(container_id = %id, error = %e, "skipping a container checkpoint that cannot be read");
                    continue;
                }
            };
            if record.version != CONTAINER_CHECKPOINT_VERSION || record.id != id {
                tracing::error!(container_id = %id, version = record.version, "skipping a container checkpoint of another version or id");
                continue;
            }
            if record.phase == ContainerPhase::Creating {
                self.undo_create(&record).await;
                tracing::info!(container_id = %id, "undid a CreateContainer interrupted by a daemon crash");
                continue;
            }
            if let Err(e) = self.reserve_name(&record.name_key(), &record.id) {
                tracing::error!(container_id = %id, error = %e, "skipping a container whose name is taken");
                continue;
            }
            self.containers
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id, Arc::new(ContainerEntry::new(record)));
            loaded += 1;
        }
        self.retire_unclaimed_exit_files(&entries);
        Ok(loaded)
    }

    /// The files put where a container's exit is to be written ([`Self::provide_exit_file`])
    /// stay for the containers that came back (their monitors may be writing to them now);
    /// those of no container go back to the file pool.
    fn retire_unclaimed_exit_files(&self, entries: &[std::fs::DirEntry]) {
        let containers = self.containers.read().unwrap_or_else(|e| e.into_inner());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_suffix(EXIT_TEMP_SUFFIX) else {
                continue;
            };
            if !containers.contains_key(id)
                && let Err(e) = self.file_pool.retire(&entry.path())
            {
                tracing::warn!(file = %name, error = %e, "cannot delete an unused exit file");
            }
        }
    }

    /// The container whose checkpoint `entry` of the containers dir is, if it is one. A
    /// temp file that a crash left mid-write goes to the file pool; the files put where exits
    /// are to be written are left to [`Self::retire_unclaimed_exit_files`]. A record
    /// directory of an earlier crishim has its checkpoint moved out to today's place; its exit
    /// file stays where that container's monitor writes it.
    fn checkpointed_id(&self, entry: &std::fs::DirEntry) -> Option<String> {
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            let legacy = entry.path().join(LEGACY_CHECKPOINT);
            let current = self.layout.container_checkpoint(&name);
            return match std::fs::rename(&legacy, &current) {
                Ok(()) => Some(name),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => {
                    tracing::error!(container_id = %name, error = %e, "cannot move a container checkpoint out of its old record directory");
                    None
                }
            };
        }
        if name.ends_with(EXIT_TEMP_SUFFIX) {
            return None;
        }
        if name.ends_with(".tmp") {
            if let Err(e) = self.file_pool.retire(&entry.path()) {
                tracing::warn!(file = %name, error = %e, "cannot delete a checkpoint's temp file");
            }
            return None;
        }
        if name.ends_with(EXIT_SUFFIX) {
            return None;
        }
        name.strip_suffix(CHECKPOINT_SUFFIX).map(str::to_string)
    }

    /// Brings the loaded records up to date with what runs. Starts are not checkpointed, so
    /// a Created record may be of a started container:
    /// - the monitor of a live pod (`live_pod_ids`) says which of the containers it holds were
    ///   started, and when; a container it holds that no record names (a CreateContainer cut
    ///   short by a daemon crash before its record was written) is removed;
    /// - of a container that has ended (a wasm container is forgotten by its monitor then),
    ///   or whose pod's monitor is gone, the exit record says whether and when it ran.
    ///
    /// Failures are logged; the pod's end removes what is left anyway.
    pub async fn reconcile_with_monitors(&self, live_pod_ids: &[String]) {
        for pod_id in live_pod_ids {
            self.reconcile_with_monitor(pod_id).await;
        }
        for entry in self.entries() {
            let record = entry.snapshot();
            if record.phase != ContainerPhase::Created {
                continue;
            }
            let exit_file = record.exit_file();
            if !exit_file.exists() {
                continue;
            }
            match checkpoint::read::<ExitRecord>(exit_file) {
                Ok(exit) => {
                    let mut exited = record;
                    exited.phase = ContainerPhase::Exited;
                    exited.started_at = exit.started_at;
                    exited.exit = Some(exit);
                    entry.replace(exited);
                }
                Err(e) => {
                    tracing::warn!(container_id = %record.id, error = %e, "unreadable exit record of a container recorded as created")
                }
            }
        }
    }

    async fn reconcile_with_monitor(&self, pod_id: &str) {
        let listed = self
            .send(pod_id, &Request::ListContainers, MONITOR_TIMEOUT)
            .await;
        let (ids, started) = match listed {
            Ok(Response::Containers { ids, started }) => (ids, started),
            Ok(other) => {
                tracing::warn!(pod_id = %pod_id, answer = ?other, "the monitor did not list its containers");
                return;
            }
            Err(e) => {
                tracing::warn!(pod_id = %pod_id, error = %e, "cannot list the monitor's containers");
                return;
            }
        };
        let mut unknown = Vec::new();
        for id in ids {
            let known = self
                .containers
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(&id)
                .cloned();
            let Some(entry) = known else {
                unknown.push(id);
                continue;
            };
            let mut record = entry.snapshot();
            if let (ContainerPhase::Created, Some(started_at)) = (record.phase, started.get(&id)) {
                record.phase = ContainerPhase::Running;
                record.started_at = *started_at;
                entry.replace(record);
            }
        }
        for id in unknown {
            let forget = Request::RemoveContainer {
                container_id: id.clone(),
            };
            match self.ask(pod_id, &forget, MONITOR_TIMEOUT).await {
                Ok(()) => {
                    tracing::info!(pod_id = %pod_id, container_id = %id, "removed a container the monitor had and no record names")
                }
                Err(e) => {
                    tracing::warn!(pod_id = %pod_id, container_id = %id, error = %e, "cannot remove a container no record names")
                }
            }
        }
    }
}
