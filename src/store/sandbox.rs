//! The sandbox record: what a pod is, where it stands, and the transitions it may make.

use cri_proto::PodSandboxConfig;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store::layout::NamespaceKind;

/// Version of the sandbox checkpoint format written by this build.
pub const SANDBOX_CHECKPOINT_VERSION: u32 = 1;

/// Where a sandbox stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SandboxPhase {
    /// RunPodSandbox is under way; a record left in this phase by a crash is undone at recovery.
    Creating,
    /// The monitor runs and the namespaces are pinned.
    Ready,
    /// Stopped, or its monitor died.
    NotReady,
}

/// The pod's own process holding its namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorProcess {
    /// Host pid of the monitor.
    pub pid: i32,
    /// Its start time (clock ticks since boot), to tell it from a later process with its pid.
    pub start_time: u64,
}

/// Which namespaces the pod owns (the rest are the host's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PodNamespaces {
    /// Own network namespace (false: host network).
    pub net: bool,
    /// Own IPC namespace.
    pub ipc: bool,
    /// Own UTS namespace.
    pub uts: bool,
    /// A PID namespace shared by the pod's containers.
    pub pid: bool,
}

impl PodNamespaces {
    /// The owned namespaces, in pinning order.
    pub fn owned(&self) -> Vec<NamespaceKind> {
        [
            (self.net, NamespaceKind::Net),
            (self.ipc, NamespaceKind::Ipc),
            (self.uts, NamespaceKind::Uts),
            (self.pid, NamespaceKind::Pid),
        ]
        .into_iter()
        .filter_map(|(owned, kind)| owned.then_some(kind))
        .collect()
    }
}

/// One pod sandbox, as checkpointed to `sandboxes/<id>/state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxRecord {
    /// Checkpoint format version.
    pub version: u32,
    /// The sandbox id (64 hex digits).
    pub id: String,
    /// Where the sandbox stands.
    pub phase: SandboxPhase,
    /// Creation time, Unix nanoseconds.
    pub created_at: i64,
    /// The config kubelet sent, kept whole: later RPCs (containers, networking) read it.
    pub config: PodSandboxConfig,
    /// The RuntimeClass handler it was created with.
    pub runtime_handler: String,
    /// The namespaces the pod owns.
    pub namespaces: PodNamespaces,
    /// The monitor's cgroup (a leaf under the pod's cgroup parent).
    pub cgroup: String,
    /// The monitor, once started.
    pub monitor: Option<MonitorProcess>,
    /// Why the pod is not ready, when it is not.
    pub not_ready_reason: Option<String>,
    /// The pod's IPs from CNI, primary first; empty on the host network or without CNI.
    #[serde(default)]
    pub pod_ips: Vec<String>,
}

impl SandboxRecord {
    /// A new record in the Creating phase.
    pub fn new(
        id: String,
        config: PodSandboxConfig,
        runtime_handler: String,
        namespaces: PodNamespaces,
        cgroup: String,
        created_at: i64,
    ) -> Self {
        SandboxRecord {
            version: SANDBOX_CHECKPOINT_VERSION,
            id,
            phase: SandboxPhase::Creating,
            created_at,
            config,
            runtime_handler,
            namespaces,
            cgroup,
            monitor: None,
            not_ready_reason: None,
            pod_ips: Vec::new(),
        }
    }

    /// The uniqueness key kubelet relies on: name, namespace, uid and attempt.
    pub fn name_key(&self) -> String {
        name_key(&self.config)
    }

    /// Creating → Ready, once the monitor runs.
    pub fn mark_ready(&mut self, monitor: MonitorProcess) -> Result<()> {
        if self.phase != SandboxPhase::Creating {
            return Err(self.bad_transition("ready"));
        }
        self.phase = SandboxPhase::Ready;
        self.monitor = Some(monitor);
        Ok(())
    }

    /// Ready (or already NotReady) → NotReady. The first reason is kept.
    pub fn mark_not_ready(&mut self, reason: &str) -> Result<()> {
        if self.phase == SandboxPhase::Creating {
            return Err(self.bad_transition("not ready"));
        }
        if self.phase == SandboxPhase::Ready {
            self.phase = SandboxPhase::NotReady;
            self.not_ready_reason = Some(reason.to_string());
        }
        Ok(())
    }

    fn bad_transition(&self, to: &str) -> Error {
        Error::FailedPrecondition(format!(
            "sandbox {} cannot become {to} from {:?}",
            self.id, self.phase
        ))
    }
}

/// The uniqueness key of a pod config (see [`SandboxRecord::name_key`]).
pub fn name_key(config: &PodSandboxConfig) -> String {
    let m = config.metadata.clone().unwrap_or_default();
    format!("{}_{}_{}_{}", m.name, m.namespace, m.uid, m.attempt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cri_proto::PodSandboxMetadata;

    fn record() -> SandboxRecord {
        let config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: "web".into(),
                uid: "u1".into(),
                namespace: "default".into(),
                attempt: 2,
            }),
            ..Default::default()
        };
        SandboxRecord::new(
            "ab".into(),
            config,
            String::new(),
            PodNamespaces::default(),
            "/x".into(),
            1,
        )
    }

    #[test]
    fn lifecycle_transitions() {
        let mut r = record();
        assert!(
            r.mark_not_ready("x").is_err(),
            "a creating pod cannot be stopped"
        );
        r.mark_ready(MonitorProcess {
            pid: 5,
            start_time: 9,
        })
        .unwrap();
        assert!(
            r.mark_ready(MonitorProcess {
                pid: 6,
                start_time: 9
            })
            .is_err()
        );
        r.mark_not_ready("stopped").unwrap();
        r.mark_not_ready("monitor died").unwrap();
        assert_eq!(r.phase, SandboxPhase::NotReady);
        assert_eq!(r.not_ready_reason.as_deref(), Some("stopped"));
        assert!(
            r.mark_ready(MonitorProcess {
                pid: 5,
                start_time: 9
            })
            .is_err()
        );
    }

    #[test]
    fn record_survives_a_json_round_trip() {
        let mut r = record();
        r.config.labels.insert("app".into(), "web".into());
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<SandboxRecord>(&text).unwrap(), r);
        assert_eq!(r.name_key(), "web_default_u1_2");
    }

    #[test]
    fn owned_namespaces_in_order() {
        let ns = PodNamespaces {
            net: true,
            ipc: false,
            uts: true,
            pid: true,
        };
        assert_eq!(
            ns.owned(),
            vec![NamespaceKind::Net, NamespaceKind::Uts, NamespaceKind::Pid]
        );
    }
}
