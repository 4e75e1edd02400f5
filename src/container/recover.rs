//! Rebuilding the container index from checkpoints when the daemon starts.

use std::sync::Arc;

use super::{ContainerEntry, ContainerManager};
use crate::error::{Error, Result};
use crate::store::checkpoint;
use crate::store::container::{CONTAINER_CHECKPOINT_VERSION, ContainerPhase, ContainerRecord};

impl ContainerManager {
    /// Loads every container checkpoint (after the pods are recovered): a half-created
    /// container is undone; the rest come back as they were, and a running one's exit is
    /// picked up from its exit file when it is asked about. A corrupt checkpoint is logged and
    /// skipped. Returns how many containers came back.
    pub fn recover(&self) -> Result<usize> {
        let dir = self.layout.containers_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(Error::io_path("list", &dir, e)),
        };
        let mut loaded = 0;
        for entry in entries.flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
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
                self.undo_create(&record);
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
        Ok(loaded)
    }
}
