//! RunPodSandbox, StopPodSandbox, RemovePodSandbox, and what happens when a monitor dies.

use cri_proto::RunPodSandboxRequest;

use super::{SandboxManager, now_nanos, spec};
use crate::error::{Error, IoContext, Result};
use crate::monitor::launcher::MonitorSpec;
use crate::store::layout::NamespaceKind;
use crate::store::sandbox::{MonitorProcess, SandboxPhase, SandboxRecord};
use crate::store::sandbox_index::SandboxEntry;

impl SandboxManager {
    /// Creates a pod: checkpoint (Creating), monitor, namespace pins, cgroup, CNI ADD (unless
    /// on the host network), checkpoint (Ready). Any failure undoes every step (CNI DEL
    /// included) before returning the error.
    pub fn run(&self, request: RunPodSandboxRequest) -> Result<SandboxRecord> {
        let pod = request.config.ok_or_else(|| {
            Error::InvalidArgument("RunPodSandboxRequest: config is required".into())
        })?;
        let id = crate::store::new_id()?;
        let plan = spec::plan(&self.config, &pod, &request.runtime_handler, &id)?;
        let mut record = SandboxRecord::new(
            id.clone(),
            pod,
            request.runtime_handler,
            plan.namespaces,
            plan.cgroup,
            now_nanos(),
        );
        let name_key = record.name_key();
        self.index.reserve_name(&name_key, &id)?;
        match self.start(&mut record, plan.hostname, plan.sysctls) {
            Ok(()) => {
                self.index.insert(record.clone());
                Ok(record)
            }
            Err(e) => {
                if let Err(undo) = self.undo_run(&record) {
                    tracing::error!(pod_id = %id, error = %undo, "could not undo a failed RunPodSandbox");
                }
                self.index.release_name(&name_key, &id);
                Err(e)
            }
        }
    }

    fn start(
        &self,
        record: &mut SandboxRecord,
        hostname: Option<String>,
        sysctls: Vec<(String, String)>,
    ) -> Result<()> {
        let id = record.id.clone();
        self.save(record)?;
        let ns_dir = self.layout.pod_dir(&id).join("ns");
        std::fs::create_dir_all(&ns_dir).with_path("create", &ns_dir)?;
        let process = self.host.monitors.launch(&MonitorSpec {
            pod_id: id.clone(),
            socket: self.layout.monitor_socket(&id),
            log: self.layout.monitor_log(&id),
            hostname,
            sysctls,
            namespaces: record.namespaces,
        })?;
        // Known from here on, so that undo stops it.
        record.monitor = Some(process);
        for kind in record.namespaces.owned() {
            self.pin(&id, kind, &process)?;
        }
        self.host.cgroups.join(&record.cgroup, process.pid)?;
        let mut ready = record.clone();
        if record.namespaces.net {
            let netns = self.layout.namespace_pin(&id, NamespaceKind::Net);
            let cache = self.layout.network_cache(&id);
            ready.pod_ips = self
                .host
                .network
                .attach(&id, &record.config, &netns, &cache)?;
        }
        ready.mark_ready(process)?;
        self.save(&ready)?;
        *record = ready;
        Ok(())
    }

    /// Bind-mounts /proc/PID/ns/KIND on the pod's pin file so the namespace outlives processes.
    fn pin(&self, id: &str, kind: NamespaceKind, process: &MonitorProcess) -> Result<()> {
        let pin = self.layout.namespace_pin(id, kind);
        std::fs::File::create(&pin).with_path("create namespace pin", &pin)?;
        let source = format!("/proc/{}/ns/{}", process.pid, kind.proc_name());
        self.host.mounts.bind(source.as_ref(), &pin)
    }

    /// Undoes a RunPodSandbox that failed part-way (or that a crash interrupted).
    pub(super) fn undo_run(&self, record: &SandboxRecord) -> Result<()> {
        let stopped = self.stop_runtime(record);
        let deleted = self.delete_dirs(&record.id);
        stopped.and(deleted)
    }

    /// Stops a pod: CNI DEL, its monitor (and so everything in it), its namespace pins and its
    /// cgroup.
    /// An unknown id and a pod already stopped are success, as CRI requires.
    pub fn stop(&self, id: &str) -> Result<()> {
        match self.index.lookup(id)? {
            Some(entry) => self.stop_entry(&entry),
            None => Ok(()),
        }
    }

    /// Stop of a sandbox already looked up (it may have been removed meanwhile).
    pub(super) fn stop_entry(&self, entry: &SandboxEntry) -> Result<()> {
        let _op = entry.lock_op();
        if entry.is_removed() {
            return Ok(());
        }
        let mut record = entry.snapshot();
        self.stop_runtime(&record)?;
        if record.phase == SandboxPhase::Ready {
            record.mark_not_ready("stopped")?;
            self.save(&record)?;
            entry.replace(record);
        }
        Ok(())
    }

    /// Removes a pod, stopping it first when it runs. An unknown id is success.
    pub fn remove(&self, id: &str) -> Result<()> {
        let Some(entry) = self.index.lookup(id)? else {
            return Ok(());
        };
        let _op = entry.lock_op();
        if entry.is_removed() {
            return Ok(());
        }
        let record = entry.snapshot();
        self.stop_runtime(&record)?;
        self.delete_dirs(&record.id)?;
        entry.mark_removed();
        self.index.remove(&record.id);
        Ok(())
    }

    /// Called when the monitor `pid` of pod `id` has exited: a running pod becomes NotReady.
    /// True when it did (the monitor ended on its own, not by StopPodSandbox).
    pub fn monitor_exited(&self, id: &str, pid: i32) -> Result<bool> {
        match self.index.lookup(id)? {
            Some(entry) => self.on_monitor_exit(&entry, pid),
            None => Ok(false),
        }
    }

    /// A monitor exit for a sandbox already looked up (it may have been removed meanwhile).
    pub(super) fn on_monitor_exit(&self, entry: &SandboxEntry, pid: i32) -> Result<bool> {
        let id = entry.snapshot().id;
        let _op = entry.lock_op();
        if entry.is_removed() {
            return Ok(false);
        }
        let mut record = entry.snapshot();
        let ours = record.monitor.is_some_and(|m| m.pid == pid);
        if record.phase == SandboxPhase::Ready && ours {
            tracing::warn!(pod_id = %id, pid, "pod monitor exited unexpectedly; pod is now NotReady");
            record.mark_not_ready("monitor exited")?;
            self.save(&record)?;
            entry.replace(record);
            return Ok(true);
        }
        Ok(false)
    }
}
