//! Linux containers on the daemon's side: CreateContainer builds the bundle (root filesystem,
//! the pod's shared files, config.json from the CRI config) and has the monitor create the
//! container through the helper; ExecSync asks the monitor, which runs the helper.

use std::time::Duration;

use base64::Engine as _;
use cri_proto::{LinuxContainerSecurityContext, NamespaceMode};

use super::{ContainerManager, pod_files, spec};
use crate::error::{Error, Result};
use crate::image::rootfs;
use crate::image::store::{ImageKind, ImageRecord};
use crate::monitor::client::outcome as outcome_of;
use crate::monitor::protocol::{Request, Response};
use crate::runtime::linux::launch::{ExecOutcome, LinuxLaunch, parse_signal};
use crate::runtime::linux::spec::{self as linux_spec, NamespaceSource, Namespaces, SpecInput};
use crate::runtime::linux::user;
use crate::store::container::{ContainerBackend, ContainerPhase, ContainerRecord};
use crate::store::layout::NamespaceKind;
use crate::store::sandbox::SandboxRecord;

/// What ExecSync returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecResult {
    /// The command's stdout.
    pub stdout: Vec<u8>,
    /// The command's stderr.
    pub stderr: Vec<u8>,
    /// Its exit code.
    pub exit_code: i32,
}

/// How much longer than the exec's own timeout the monitor may take to answer.
const EXEC_HELPER_GRACE: Duration = Duration::from_secs(10);

/// How long an ExecSync without a timeout may run.
const EXEC_WITHOUT_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

impl ContainerManager {
    /// Builds the container's bundle and its record (the monitor creates it from them). A
    /// failure leaves nothing behind.
    pub(super) fn linux_record(
        &self,
        id: &str,
        config: cri_proto::ContainerConfig,
        pod: &SandboxRecord,
        image: &ImageRecord,
        rule: &'static str,
    ) -> Result<ContainerRecord> {
        if image.kind == ImageKind::Wasm {
            return Err(Error::InvalidArgument(format!(
                "{rule} selects a Linux container, but image {} is a wasm artifact with no \
                 filesystem to run",
                image.id
            )));
        }
        let run = self.images.run_config(image)?;
        let log_path = spec::log_path(&pod.config.log_directory, &config.log_path)?;
        let stop_signal = match run.stop_signal.as_deref() {
            None | Some("") => libc::SIGTERM,
            Some(name) => parse_signal(name).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "image {} has an unknown StopSignal {name:?}",
                    image.id
                ))
            })?,
        };
        let namespaces = namespaces(&self.layout, pod, security(&config))?;
        let pod_files = {
            let _one_at_a_time = self
                .pod_files_lock
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            pod_files::ensure(&self.layout, &*self.mounts, pod)?
        };
        let bundle = self.layout.container_bundle(&pod.id, id);
        let root = rootfs::prepare(self.images.store(), &*self.mounts, id, image, &bundle)?;
        let cgroup = container_cgroup(&pod.cgroup, id);
        let written =
            user::resolve(&root, security(&config), run.user.as_deref()).and_then(|user| {
                let spec = linux_spec::build(&SpecInput {
                    container: &config,
                    pod: &pod.config,
                    image: &run,
                    rootfs: root.clone(),
                    namespaces,
                    cgroups_path: cgroup.clone(),
                    pod_files,
                    user: user.clone(),
                    min_oom_score_adj: own_oom_score_adj(),
                })?;
                let path = bundle.join("config.json");
                spec.save(&path)
                    .map_err(|e| Error::Internal(format!("write {}: {e}", path.display())))?;
                Ok(user)
            });
        let user = match written {
            Ok(user) => user,
            Err(e) => {
                if let Err(undo) = rootfs::remove(self.images.store(), &*self.mounts, id, &bundle) {
                    tracing::error!(container_id = %id, error = %undo, "undoing a create: cannot remove its root filesystem");
                }
                return Err(e);
            }
        };
        let launch = LinuxLaunch {
            container_id: id.to_string(),
            bundle: bundle.clone(),
            state_root: self.layout.linux_state_root(&pod.id),
            cgroup,
            stop_signal,
            log_path: log_path.clone(),
            exit_file: self.layout.container_exit(id),
            stdin: spec::stdin_mode(&config),
        };
        let bundle = Some(bundle);
        let backend = ContainerBackend::Linux { launch, user };
        Ok(ContainerRecord::creating(
            id, &pod.id, image, config, backend, bundle, rule,
        ))
    }

    /// ExecSync: runs `cmd` in a running Linux container (the monitor runs the helper, which
    /// joins its namespaces, cgroup and user) and returns its output and exit code. A timeout (seconds,
    /// 0 = none) kills the command and is DeadlineExceeded.
    pub async fn exec_sync(&self, id: &str, cmd: Vec<String>, timeout: i64) -> Result<ExecResult> {
        if cmd.is_empty() {
            return Err(Error::InvalidArgument("ExecSync: cmd is required".into()));
        }
        let entry = self.entry(id)?;
        let record = self.refresh(&entry)?;
        let ContainerBackend::Linux { .. } = &record.backend else {
            return Err(Error::Unimplemented(
                "ExecSync: exec into a wasm container is not supported yet (a wasm container \
                 has no processes to run a command beside it)"
                    .into(),
            ));
        };
        if record.phase != ContainerPhase::Running {
            return Err(Error::FailedPrecondition(format!(
                "container {} is not running",
                record.id
            )));
        }
        let timeout = Duration::from_secs(timeout.max(0) as u64);
        let request = Request::ExecSync {
            container_id: record.id.clone(),
            argv: cmd.clone(),
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        };
        let wait = if timeout.is_zero() {
            EXEC_WITHOUT_TIMEOUT
        } else {
            timeout + EXEC_HELPER_GRACE
        };
        let outcome = match self.send(&record.pod_id, &request, wait).await? {
            Response::Exec { outcome } => outcome,
            other => {
                outcome_of(other)?;
                return Err(Error::Internal(format!(
                    "ExecSync in container {}: the monitor did not answer with a result",
                    record.id
                )));
            }
        };
        exec_result(&record.id, &cmd, timeout, outcome)
    }

    /// UpdateContainerResources: new cgroup limits for a created or running Linux container,
    /// kept in its record (ContainerStatus reports them). Wasm containers answer Unimplemented.
    pub async fn update_resources(
        &self,
        id: &str,
        resources: Option<cri_proto::LinuxContainerResources>,
    ) -> Result<()> {
        let entry = self.entry(id)?;
        let _op = entry.lock_op().await;
        let mut record = self.refresh(&entry)?;
        let ContainerBackend::Linux { launch, .. } = &record.backend else {
            return Err(Error::Unimplemented(
                "UpdateContainerResources: a wasm container's limits are fixed when it is created"
                    .into(),
            ));
        };
        if !matches!(
            record.phase,
            ContainerPhase::Created | ContainerPhase::Running
        ) {
            return Err(Error::FailedPrecondition(format!(
                "container {} is {:?}: only a created or running container can be updated",
                record.id, record.phase
            )));
        }
        let Some(resources) = resources else {
            return Ok(());
        };
        let limits = linux_spec::limits(&resources)?;
        self.cgroups.update(&launch.cgroup, &limits)?;
        record
            .config
            .linux
            .get_or_insert_with(Default::default)
            .resources = Some(resources);
        self.save(&record)?;
        entry.replace(record);
        Ok(())
    }
}

fn security(config: &cri_proto::ContainerConfig) -> Option<&LinuxContainerSecurityContext> {
    config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
}

/// The container's namespaces: the pod's network, IPC and UTS (or the host's when the pod
/// uses them); PID per the container's NamespaceOption, the pod's when it shares one.
fn namespaces(
    layout: &crate::store::layout::Layout,
    pod: &SandboxRecord,
    security: Option<&LinuxContainerSecurityContext>,
) -> Result<Namespaces> {
    let pinned = |owned: bool, kind: NamespaceKind| {
        if owned {
            NamespaceSource::Join(layout.namespace_pin(&pod.id, kind))
        } else {
            NamespaceSource::Host
        }
    };
    let pid_mode = security
        .and_then(|s| s.namespace_options.as_ref())
        .map_or(NamespaceMode::Container as i32, |o| o.pid);
    let pid = if pod.namespaces.pid {
        pinned(true, NamespaceKind::Pid)
    } else if pid_mode == NamespaceMode::Node as i32 {
        NamespaceSource::Host
    } else if pid_mode == NamespaceMode::Target as i32 {
        return Err(Error::Unimplemented(
            "a TARGET pid namespace (another container's) is not supported yet".into(),
        ));
    } else {
        NamespaceSource::New
    };
    Ok(Namespaces {
        network: pinned(pod.namespaces.net, NamespaceKind::Net),
        ipc: pinned(pod.namespaces.ipc, NamespaceKind::Ipc),
        uts: pinned(pod.namespaces.uts, NamespaceKind::Uts),
        pid,
    })
}

/// The container's cgroup: beside its pod monitor's, under the pod's cgroup parent.
fn container_cgroup(pod_cgroup: &str, id: &str) -> String {
    let parent = pod_cgroup.rsplit_once('/').map_or("", |(parent, _)| parent);
    format!("{parent}/crishim-{id}")
}

/// The daemon's own oom_score_adj, the lowest a container may ask for.
fn own_oom_score_adj() -> i32 {
    std::fs::read_to_string("/proc/self/oom_score_adj")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// What an ExecSync returns for what the helper reported.
pub(super) fn exec_result(
    id: &str,
    cmd: &[String],
    timeout: Duration,
    outcome: ExecOutcome,
) -> Result<ExecResult> {
    match outcome {
        ExecOutcome::Exited {
            timed_out: true, ..
        } => Err(Error::DeadlineExceeded(format!(
            "ExecSync {cmd:?} in container {id}: timeout {}s exceeded; the command was killed",
            timeout.as_secs()
        ))),
        ExecOutcome::Exited {
            exit_code,
            stdout,
            stderr,
            ..
        } => Ok(ExecResult {
            stdout: decode(&stdout)?,
            stderr: decode(&stderr)?,
            exit_code,
        }),
        ExecOutcome::Failed { message } => Err(exec_failure(id, cmd, message)),
        ExecOutcome::Started => Err(Error::Internal(format!(
            "ExecSync {cmd:?} in container {id}: the helper reported a start but no end"
        ))),
    }
}

fn decode(text: &str) -> Result<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| Error::Internal(format!("the exec helper's output is not base64: {e}")))
}

/// A command that is not in the container is the caller's mistake; the rest is ours.
fn exec_failure(id: &str, cmd: &[String], message: String) -> Error {
    let text = format!("ExecSync {cmd:?} in container {id}: {message}");
    let lower = message.to_ascii_lowercase();
    if lower.contains("not found") || lower.contains("no such file") {
        Error::InvalidArgument(text)
    } else {
        Error::Internal(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_container_cgroup_sits_beside_the_monitor_s() {
        assert_eq!(
            container_cgroup("/kubepods/pod1/crishim-abc", "def"),
            "/kubepods/pod1/crishim-def"
        );
        assert_eq!(container_cgroup("/crishim-abc", "def"), "/crishim-def");
    }
}
