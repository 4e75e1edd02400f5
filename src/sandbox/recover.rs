//! Rebuilding the sandbox index from checkpoints when the daemon starts.

use super::SandboxManager;
use crate::error::{Error, Result};
use crate::network::pinned_netns;
use crate::store::checkpoint;
use crate::store::layout::NamespaceKind;
use crate::store::sandbox::{
    MonitorProcess, SANDBOX_CHECKPOINT_VERSION, SandboxPhase, SandboxRecord,
};

/// What recovery found.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Pods whose monitor still runs: the daemon watches each for exit.
    pub live: Vec<(String, MonitorProcess)>,
    /// Pods loaded as NotReady (stopped before, or their monitor died meanwhile).
    pub not_ready: usize,
    /// Half-created pods that were undone.
    pub undone: usize,
    /// Checkpoints that could not be read and were left alone.
    pub skipped: usize,
}

impl SandboxManager {
    /// Loads every sandbox checkpoint: a pod whose monitor still runs is Ready again; a pod
    /// whose monitor died is NotReady (checkpointed so); a half-created pod is undone; a corrupt
    /// checkpoint is logged and skipped.
    pub fn recover(&self) -> Result<Recovered> {
        let mut recovered = Recovered::default();
        let dir = self.layout.sandboxes_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(recovered),
            Err(e) => return Err(Error::io_path("list", &dir, e)),
        };
        for entry in entries.flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            match self.load(&id) {
                Ok(record) => self.recover_one(record, &mut recovered),
                Err(e) => {
                    tracing::error!(pod_id = %id, error = %e, "skipping sandbox checkpoint that cannot be recovered");
                    recovered.skipped += 1;
                }
            }
        }
        Ok(recovered)
    }

    fn load(&self, id: &str) -> Result<SandboxRecord> {
        let record: SandboxRecord = checkpoint::read(&self.layout.sandbox_checkpoint(id))?;
        if record.version != SANDBOX_CHECKPOINT_VERSION {
            return Err(Error::InvalidArgument(format!(
                "checkpoint version {} is not supported (this build reads version {SANDBOX_CHECKPOINT_VERSION})",
                record.version
            )));
        }
        if record.id != id {
            return Err(Error::InvalidArgument(format!(
                "checkpoint holds sandbox {:?}",
                record.id
            )));
        }
        Ok(record)
    }

    /// CNI CHECK of a live pod's attachment; a failure is logged for the operator (kubelet
    /// has no way to hear of it short of the pod failing).
    fn check_network(&self, id: &str) {
        let netns = self.layout.namespace_pin(id, NamespaceKind::Net);
        let Some(netns) = pinned_netns(&netns) else {
            return;
        };
        match self
            .host
            .network
            .check(&self.layout.network_cache(id), netns)
        {
            Ok(true) => tracing::info!(pod_id = %id, "CNI CHECK of a recovered pod passed"),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(pod_id = %id, error = %e, "CNI CHECK of a recovered pod failed")
            }
        }
    }

    fn recover_one(&self, mut record: SandboxRecord, recovered: &mut Recovered) {
        let id = record.id.clone();
        let socket = self.layout.monitor_socket(&id);
        match record.phase {
            SandboxPhase::Creating => {
                record.monitor = record
                    .monitor
                    .or_else(|| self.host.monitors.find(&id, &socket));
                match self.undo_run(&record) {
                    Ok(()) => {
                        tracing::info!(pod_id = %id, "undid a RunPodSandbox interrupted by a daemon crash");
                        recovered.undone += 1;
                    }
                    Err(e) => {
                        tracing::error!(pod_id = %id, error = %e, "could not undo an interrupted RunPodSandbox");
                        recovered.skipped += 1;
                    }
                }
                return;
            }
            SandboxPhase::Ready => {
                let alive = record
                    .monitor
                    .filter(|m| self.host.monitors.is_alive(&id, &socket, m));
                if let Some(monitor) = alive {
                    self.check_network(&id);
                    recovered.live.push((id.clone(), monitor));
                } else {
                    tracing::warn!(pod_id = %id, "pod monitor exited while crishim was down; pod is NotReady");
                    let saved = record
                        .mark_not_ready("monitor exited while crishim was down")
                        .and_then(|()| self.save(&record));
                    if let Err(e) = saved {
                        tracing::error!(pod_id = %id, error = %e, "could not checkpoint NotReady");
                    }
                    recovered.not_ready += 1;
                }
            }
            SandboxPhase::NotReady => recovered.not_ready += 1,
        }
        self.index.insert(record);
    }
}
