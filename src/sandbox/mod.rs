//! Pod sandbox lifecycle: the domain logic behind RunPodSandbox, StopPodSandbox,
//! RemovePodSandbox, PodSandboxStatus, ListPodSandbox, and recovery at daemon start.
//!
//! Everything here is synchronous: the gRPC layer runs it on blocking threads. OS side effects
//! go through the [`Mounter`], [`Cgroups`] and [`MonitorControl`] traits.

mod lifecycle;
mod query;
mod recover;
mod spec;

use std::path::Path;
use std::sync::Arc;

use crate::config::Config;
use crate::error::{Error, IoContext, Result};
use crate::monitor::launcher::MonitorControl;
use crate::network::{PodNetworks, pinned_netns};
use crate::os::cgroup::Cgroups;
use crate::os::mount::Mounter;
use crate::store::checkpoint;
use crate::store::layout::{Layout, NamespaceKind};
use crate::store::sandbox::{SandboxPhase, SandboxRecord};
use crate::store::sandbox_index::{SandboxEntry, SandboxIndex};
use crate::streaming::session::Session;

pub use recover::Recovered;

/// The OS-facing parts the sandbox logic drives.
#[derive(Clone)]
pub struct SandboxHost {
    /// Namespace pinning.
    pub mounts: Arc<dyn Mounter>,
    /// Pod cgroups.
    pub cgroups: Arc<dyn Cgroups>,
    /// Monitor processes.
    pub monitors: Arc<dyn MonitorControl>,
    /// CNI networking.
    pub network: Arc<PodNetworks>,
}

/// Owns every sandbox of the daemon.
pub struct SandboxManager {
    config: Arc<Config>,
    layout: Layout,
    index: SandboxIndex,
    host: SandboxHost,
}

impl SandboxManager {
    /// A manager with no sandboxes yet; call [`SandboxManager::recover`] before serving.
    pub fn new(config: Arc<Config>, host: SandboxHost) -> Self {
        let layout = Layout::new(&config.root, &config.state);
        SandboxManager {
            config,
            layout,
            index: SandboxIndex::default(),
            host,
        }
    }

    /// The on-disk layout in use.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Pod networking (for the runtime Status and UpdateRuntimeConfig).
    pub fn network(&self) -> &PodNetworks {
        &self.host.network
    }

    /// The cgroup mode of the host ("v1", "hybrid", "v2").
    pub fn cgroup_mode(&self) -> &'static str {
        self.host.cgroups.mode()
    }

    /// The record of pod `id` as it is now (NotFound when there is none).
    pub fn snapshot(&self, id: &str) -> Result<SandboxRecord> {
        Ok(self.entry(id)?.snapshot())
    }

    /// A port-forward session to `ports` in a ready pod's network namespace (the host's for a
    /// pod on the host network).
    pub fn port_forward_session(&self, id: &str, ports: &[i32]) -> Result<Session> {
        if id.is_empty() {
            return Err(Error::InvalidArgument(
                "PortForward: pod_sandbox_id is required".into(),
            ));
        }
        let record = self.snapshot(id)?;
        if record.phase != SandboxPhase::Ready {
            return Err(Error::FailedPrecondition(format!(
                "pod sandbox {} is not ready",
                record.id
            )));
        }
        let netns = record
            .namespaces
            .net
            .then(|| self.layout.namespace_pin(&record.id, NamespaceKind::Net));
        let ports = ports
            .iter()
            .map(|p| {
                u16::try_from(*p)
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| Error::InvalidArgument(format!("PortForward: bad port {p}")))
            })
            .collect::<Result<Vec<u16>>>()?;
        Ok(Session::PortForward {
            pod_id: record.id,
            netns,
            ports,
        })
    }

    fn entry(&self, id: &str) -> Result<Arc<SandboxEntry>> {
        self.index
            .lookup(id)?
            .ok_or_else(|| Error::NotFound(format!("pod sandbox {id:?} not found")))
    }

    /// Writes the record's checkpoint (always before the in-memory copy changes).
    fn save(&self, record: &SandboxRecord) -> Result<()> {
        checkpoint::write(&self.layout.sandbox_checkpoint(&record.id), record)
    }

    /// Stops what runs for a pod and undoes its network, pins and cgroup; idempotent. Every
    /// step is tried even when one fails; the first error is returned. CNI DEL comes first,
    /// while the namespace still exists (it runs again, with no namespace, on later calls).
    fn stop_runtime(&self, record: &SandboxRecord) -> Result<()> {
        let mut outcomes = Vec::new();
        let netns = self.layout.namespace_pin(&record.id, NamespaceKind::Net);
        outcomes.push(
            self.host
                .network
                .detach(&self.layout.network_cache(&record.id), pinned_netns(&netns)),
        );
        if let Some(process) = &record.monitor {
            let socket = self.layout.monitor_socket(&record.id);
            outcomes.push(self.host.monitors.shutdown(&socket, process));
        }
        for kind in record.namespaces.owned() {
            let pin = self.layout.namespace_pin(&record.id, kind);
            outcomes.push(self.host.mounts.unmount(&pin));
        }
        outcomes.push(self.host.mounts.unmount(&self.layout.pod_shm(&record.id)));
        outcomes.push(self.host.cgroups.remove(&record.cgroup));
        outcomes.into_iter().collect()
    }

    /// Deletes a pod's runtime dir and its record dir; idempotent.
    fn delete_dirs(&self, id: &str) -> Result<()> {
        remove_dir_all_if_exists(&self.layout.pod_dir(id))?;
        remove_dir_all_if_exists(&self.layout.sandbox_dir(id))
    }
}

fn remove_dir_all_if_exists(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other.with_path("remove", dir),
    }
}

/// Unix nanoseconds now.
pub(crate) fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
