//! PodSandboxStatus and ListPodSandbox, with every filter kubelet and crictl use.

use std::collections::HashMap;

use cri_proto::{
    LinuxPodSandboxStatus, Namespace, PodIp, PodSandbox, PodSandboxFilter, PodSandboxNetworkStatus,
    PodSandboxState, PodSandboxStatus, PodSandboxStatusResponse,
};
use serde_json::json;

use super::{SandboxManager, now_nanos};
use crate::error::Result;
use crate::filter::{id_matches, labels_match};
use crate::store::sandbox::{SandboxPhase, SandboxRecord};

fn cri_state(phase: SandboxPhase) -> PodSandboxState {
    match phase {
        SandboxPhase::Ready => PodSandboxState::SandboxReady,
        SandboxPhase::Creating | SandboxPhase::NotReady => PodSandboxState::SandboxNotready,
    }
}

/// True when `record` passes every part of `filter`.
fn matches(record: &SandboxRecord, filter: &PodSandboxFilter) -> bool {
    let state_ok = filter
        .state
        .as_ref()
        .is_none_or(|s| s.state == cri_state(record.phase) as i32);
    id_matches(&filter.id, &record.id)
        && state_ok
        && labels_match(&filter.label_selector, &record.config.labels)
}

/// The pod's IPs while it runs; none once stopped, as CNI DEL gave them back (containerd
/// reports none once the netns is closed).
fn network_status(record: &SandboxRecord) -> PodSandboxNetworkStatus {
    if record.phase != SandboxPhase::Ready {
        return PodSandboxNetworkStatus::default();
    }
    PodSandboxNetworkStatus {
        ip: record.pod_ips.first().cloned().unwrap_or_default(),
        additional_ips: record
            .pod_ips
            .iter()
            .skip(1)
            .map(|ip| PodIp { ip: ip.clone() })
            .collect(),
    }
}

impl SandboxManager {
    /// The status of one pod; `verbose` adds an `info` JSON document for debugging.
    pub fn status(&self, id: &str, verbose: bool) -> Result<PodSandboxStatusResponse> {
        let record = self.entry(id)?.snapshot();
        let namespace_options = record
            .config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref())
            .and_then(|s| s.namespace_options.clone())
            .unwrap_or_default();
        let status = PodSandboxStatus {
            id: record.id.clone(),
            metadata: record.config.metadata.clone(),
            state: cri_state(record.phase) as i32,
            created_at: record.created_at,
            network: Some(network_status(&record)),
            linux: Some(LinuxPodSandboxStatus {
                namespaces: Some(Namespace {
                    options: Some(namespace_options),
                }),
            }),
            labels: record.config.labels.clone(),
            annotations: record.config.annotations.clone(),
            runtime_handler: record.runtime_handler.clone(),
        };
        let info = if verbose {
            HashMap::from([("info".to_string(), self.verbose_info(&record).to_string())])
        } else {
            HashMap::new()
        };
        Ok(PodSandboxStatusResponse {
            status: Some(status),
            info,
            containers_statuses: Vec::new(),
            timestamp: now_nanos(),
        })
    }

    fn verbose_info(&self, record: &SandboxRecord) -> serde_json::Value {
        let pins: serde_json::Map<String, serde_json::Value> = record
            .namespaces
            .owned()
            .into_iter()
            .map(|kind| {
                let path = self.layout.namespace_pin(&record.id, kind);
                (kind.proc_name().to_string(), json!(path))
            })
            .collect();
        json!({
            "pid": record.monitor.map(|m| m.pid),
            "monitorSocket": self.layout.monitor_socket(&record.id),
            "monitorLog": self.layout.monitor_log(&record.id),
            "namespaces": pins,
            "cgroup": record.cgroup,
            "phase": record.phase,
            "notReadyReason": record.not_ready_reason,
            "runtimeHandler": record.runtime_handler,
            "podIPs": record.pod_ips,
            "networkCache": self.layout.network_cache(&record.id),
            "config": record.config,
        })
    }

    /// Every pod that passes `filter`, newest first.
    pub fn list(&self, filter: Option<&PodSandboxFilter>) -> Vec<PodSandbox> {
        let mut pods: Vec<PodSandbox> = self
            .index
            .all()
            .iter()
            .map(|entry| entry.snapshot())
            .filter(|record| filter.is_none_or(|f| matches(record, f)))
            .map(|record| PodSandbox {
                state: cri_state(record.phase) as i32,
                created_at: record.created_at,
                id: record.id,
                metadata: record.config.metadata,
                labels: record.config.labels,
                annotations: record.config.annotations,
                runtime_handler: record.runtime_handler,
            })
            .collect();
        pods.sort_by_key(|p| std::cmp::Reverse(p.created_at));
        pods
    }
}
