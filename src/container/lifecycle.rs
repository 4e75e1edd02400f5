//! CreateContainer, StartContainer, StopContainer, RemoveContainer, ReopenContainerLog, the
//! cascade from the pod RPCs, and noticing exits.

use std::sync::Arc;
use std::time::Duration;

use cri_proto::{ContainerEventType, CreateContainerRequest};

use super::select::{self, Choice};
use super::{ContainerEntry, ContainerManager, MONITOR_TIMEOUT, blocking_section, spec};
use crate::error::{Error, Result};
use crate::image::precompile::Precompiled;
use crate::image::rootfs;
use crate::image::store::{ImageKind, ImageRecord};
use crate::monitor::client::outcome;
use crate::monitor::protocol::{Request, Response};
use crate::runtime::wasm::launch::{ExitRecord, Preopen, WasmLaunch};
use crate::sandbox::now_nanos;
use crate::store::checkpoint;
use crate::store::container::{ContainerBackend, ContainerPhase, ContainerRecord, name_key};
use crate::store::sandbox::{SandboxPhase, SandboxRecord};

impl ContainerManager {
    /// Creates a container in a ready pod: checks everything it needs, checkpoints it as
    /// Creating, has the monitor load it, then checkpoints it as Created. Nothing is left of a
    /// container whose creation failed.
    pub async fn create(&self, request: CreateContainerRequest) -> Result<String> {
        let config = request.config.ok_or_else(|| {
            Error::InvalidArgument("CreateContainerRequest: config is required".into())
        })?;
        let name = config
            .metadata
            .as_ref()
            .map(|m| m.name.as_str())
            .unwrap_or_default();
        if name.is_empty() {
            return Err(Error::InvalidArgument(
                "container metadata.name is required".into(),
            ));
        }
        let image_name = config
            .image
            .as_ref()
            .map(|i| i.image.as_str())
            .unwrap_or_default();
        if image_name.is_empty() {
            return Err(Error::InvalidArgument("container image is required".into()));
        }
        let pod = self.sandboxes.snapshot(&request.pod_sandbox_id)?;
        if pod.phase != SandboxPhase::Ready {
            return Err(Error::FailedPrecondition(format!(
                "pod sandbox {} is not ready",
                pod.id
            )));
        }
        let image = self.images.store().find(image_name)?.ok_or_else(|| {
            Error::NotFound(format!("image {image_name:?} not found: pull it first"))
        })?;
        let handler = self.config.handler_kind(&pod.runtime_handler)?;
        let choice = select::choose(
            handler,
            &config.annotations,
            &pod.config.annotations,
            image.kind,
        );
        let id = crate::store::new_id()?;
        let key = name_key(&pod.id, &config);
        self.reserve_name(&key, &id)?;
        // A wasm artifact's container is built from files and memory: at once. A root
        // filesystem to mount, or an entrypoint to compile, may take long.
        let build = || self.build_record(&id, config, &pod, &image, choice);
        let built = match image.kind == ImageKind::Wasm && !image.has_filesystem() {
            true => build(),
            false => blocking_section(build),
        };
        let created = match built {
            Ok(record) => self.register(record).await,
            Err(e) => Err(e),
        };
        match created {
            Ok(()) => {
                if self.listened()
                    && let Ok(entry) = self.entry(&id)
                {
                    self.publish(&entry.snapshot(), ContainerEventType::ContainerCreatedEvent);
                }
                Ok(id)
            }
            Err(e) => {
                self.release_name(&key, &id);
                Err(e)
            }
        }
    }

    /// The record of a new container as the selection rules chose: a wasm launch, or a Linux
    /// bundle. The artifact is looked up once: it settles the last rule and is what runs.
    fn build_record(
        &self,
        id: &str,
        config: cri_proto::ContainerConfig,
        pod: &SandboxRecord,
        image: &ImageRecord,
        choice: Choice,
    ) -> Result<ContainerRecord> {
        let (rule, artifact) = match choice {
            Choice::Linux(rule) => (rule, None),
            Choice::Wasm(rule) => match self.images.wasm_artifact(image)? {
                Some(artifact) => (rule, Some(artifact)),
                None => return Err(no_wasm(rule, image)),
            },
            Choice::WasmIfEntrypoint(rule) => match self.images.wasm_artifact(image)? {
                Some(artifact) => (rule, Some(artifact)),
                None => (LINUX_BY_DEFAULT, None),
            },
        };
        match artifact {
            Some(artifact) => self.wasm_record(id, config, pod, image, artifact, rule),
            None => self.linux_record(id, config, pod, image, rule),
        }
    }

    /// Builds the launch, with the image's files mounted last: nothing can fail after it but
    /// the monitor, whose failure undoes it.
    fn wasm_record(
        &self,
        id: &str,
        config: cri_proto::ContainerConfig,
        pod: &SandboxRecord,
        image: &ImageRecord,
        artifact: Precompiled,
        rule: &'static str,
    ) -> Result<ContainerRecord> {
        let mut launch = self.wasm_launch(id, &config, &pod.config, image, artifact)?;
        let bundle = image
            .has_filesystem()
            .then(|| self.layout.container_bundle(&pod.id, id));
        if let Some(bundle) = &bundle {
            let root = rootfs::prepare(self.images.store(), &*self.mounts, id, image, bundle)?;
            let readonly = config
                .linux
                .as_ref()
                .and_then(|l| l.security_context.as_ref())
                .is_some_and(|s| s.readonly_rootfs);
            launch.preopens.insert(
                0,
                Preopen {
                    host: root,
                    guest: "/".into(),
                    readonly,
                },
            );
        }
        let backend = ContainerBackend::Wasm { launch };
        Ok(ContainerRecord::creating(
            id, &pod.id, image, config, backend, bundle, rule,
        ))
    }

    /// Has the monitor create the container, then makes it known. A StopPodSandbox or
    /// RemovePodSandbox that ran meanwhile did not see it: it must not outlive its pod's
    /// monitor as a created container.
    async fn register(&self, record: ContainerRecord) -> Result<()> {
        let (id, pod_id) = (record.id.clone(), record.pod_id.clone());
        let record = self.create_in_monitor(record).await?;
        self.containers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), Arc::new(ContainerEntry::new(record)));
        if self.pod_monitor_gone(&pod_id) {
            self.remove(&id).await?;
            return Err(Error::FailedPrecondition(format!(
                "pod sandbox {pod_id} was stopped while the container was being created"
            )));
        }
        Ok(())
    }

    async fn create_in_monitor(&self, mut record: ContainerRecord) -> Result<ContainerRecord> {
        // The Creating marker lets recovery undo a create that a daemon crash cut short: a
        // mounted root filesystem. A container without one (a wasm artifact) leaves nothing on
        // the host, and what it may leave in the monitor recovery removes by asking the
        // monitors (`reconcile_with_monitors`): one file less per short-lived container.
        if record.bundle.is_some()
            && let Err(e) = self.save(&record)
        {
            self.undo_create(&record).await;
            return Err(e);
        }
        let request = match &record.backend {
            ContainerBackend::Wasm { launch } => Request::CreateWasm {
                launch: launch.clone(),
            },
            ContainerBackend::Linux { launch, .. } => Request::CreateLinux {
                launch: launch.clone(),
            },
        };
        self.provide_exit_file(&record);
        let created = self.ask(&record.pod_id, &request, MONITOR_TIMEOUT).await;
        let saved = created.and_then(|()| {
            record.phase = ContainerPhase::Created;
            self.save(&record)
        });
        if let Err(e) = saved {
            self.undo_create(&record).await;
            return Err(e);
        }
        Ok(record)
    }

    /// Removes what a failed or interrupted CreateContainer left: the monitor's copy, the
    /// record dir. Errors are logged: the original error is what the caller reports.
    pub(super) async fn undo_create(&self, record: &ContainerRecord) {
        let forget = Request::RemoveContainer {
            container_id: record.id.clone(),
        };
        if let Err(e) = self.ask(&record.pod_id, &forget, MONITOR_TIMEOUT).await
            && !matches!(e, Error::NotFound(_) | Error::Unavailable(_))
        {
            tracing::warn!(container_id = %record.id, error = %e, "undoing a create: the monitor kept the container");
        }
        if let Err(e) = self.remove_bundle(record) {
            tracing::error!(container_id = %record.id, error = %e, "undoing a create: cannot remove its root filesystem");
        }
        if let Err(e) = self.delete_record(record) {
            tracing::error!(container_id = %record.id, error = %e, "undoing a create: cannot delete its record");
        }
    }

    /// Unmounts and deletes the container's root filesystem, if it has one; idempotent.
    pub(super) fn remove_bundle(&self, record: &ContainerRecord) -> Result<()> {
        match &record.bundle {
            Some(bundle) => blocking_section(|| {
                rootfs::remove(self.images.store(), &*self.mounts, &record.id, bundle)
            }),
            None => Ok(()),
        }
    }

    fn wasm_launch(
        &self,
        id: &str,
        config: &cri_proto::ContainerConfig,
        pod: &cri_proto::PodSandboxConfig,
        image: &ImageRecord,
        artifact: Precompiled,
    ) -> Result<WasmLaunch> {
        let run = self.images.run_config(image)?;
        let name = image
            .layers
            .iter()
            .find_map(|l| l.title.clone())
            .or_else(|| image.repo_tags.first().cloned())
            .unwrap_or_else(|| image.id.clone());
        let mut env = spec::env(config, &run);
        if !config.working_dir.is_empty() {
            env.push(("PWD".into(), config.working_dir.clone()));
        }
        Ok(WasmLaunch {
            container_id: id.to_string(),
            artifact: artifact.path,
            binary: artifact.binary,
            argv: spec::argv(config, &run, &name),
            env,
            preopens: spec::preopens(config)?,
            memory_limit: config
                .linux
                .as_ref()
                .and_then(|l| l.resources.as_ref())
                .map(|r| r.memory_limit_in_bytes)
                .filter(|limit| *limit > 0)
                .map(|limit| limit as u64),
            log_path: spec::log_path(&pod.log_directory, &config.log_path)?,
            exit_file: self.layout.container_exit(id),
            stdin: spec::stdin_mode(config),
        })
    }

    /// Starts a created container. The start is not checkpointed (a file write is a third of
    /// a wasm start's cost): the monitor knows it, and recovery asks it or the exit record
    /// (`reconcile_with_monitors`).
    pub async fn start(&self, id: &str) -> Result<()> {
        let entry = self.entry(id)?;
        let _op = entry.lock_op().await;
        if entry.is_removed() {
            return Err(Error::NotFound(format!("container {id:?} not found")));
        }
        let mut record = entry.snapshot();
        if record.phase != ContainerPhase::Created {
            return Err(Error::FailedPrecondition(format!(
                "container {} is {:?}, not created: it cannot be started",
                record.id, record.phase
            )));
        }
        let request = Request::StartContainer {
            container_id: record.id.clone(),
        };
        let started_at = match self.send(&record.pod_id, &request, MONITOR_TIMEOUT).await? {
            Response::Started { started_at } => started_at,
            other => {
                outcome(other.clone())?;
                return Err(Error::Internal(format!(
                    "the pod's monitor answered StartContainer with {other:?}"
                )));
            }
        };
        record.phase = ContainerPhase::Running;
        record.started_at = started_at;
        self.publish(&record, ContainerEventType::ContainerStartedEvent);
        entry.replace(record);
        Ok(())
    }

    /// Stops a running container: `timeout` seconds to end, then it is interrupted. An unknown
    /// id and a container that is not running are success.
    pub async fn stop(&self, id: &str, timeout: i64) -> Result<()> {
        let Some(entry) = self.find(id)? else {
            return Ok(());
        };
        self.stop_entry(&entry, Duration::from_secs(timeout.max(0) as u64))
            .await
    }

    async fn stop_entry(&self, entry: &ContainerEntry, timeout: Duration) -> Result<()> {
        let _op = entry.lock_op().await;
        if entry.is_removed() {
            return Ok(());
        }
        let record = self.refresh(entry)?;
        if record.phase != ContainerPhase::Running {
            return Ok(());
        }
        let request = Request::StopContainer {
            container_id: record.id.clone(),
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        };
        match self
            .ask(
                &record.pod_id,
                &request,
                timeout.saturating_add(MONITOR_TIMEOUT),
            )
            .await
        {
            // A wasm container that has just ended is forgotten by then: its exit file tells.
            Ok(()) | Err(Error::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let record = self.refresh(entry)?;
        if record.phase == ContainerPhase::Running {
            return Err(Error::Internal(format!(
                "container {} was stopped but its exit is not recorded",
                record.id
            )));
        }
        Ok(())
    }

    /// Removes a container, stopping it first; its log file stays (kubelet owns it). An
    /// unknown id is success.
    pub async fn remove(&self, id: &str) -> Result<()> {
        let Some(entry) = self.find(id)? else {
            return Ok(());
        };
        self.stop_entry(&entry, Duration::ZERO).await?;
        let _op = entry.lock_op().await;
        if entry.is_removed() {
            return Ok(());
        }
        let record = entry.snapshot();
        let forget = Request::RemoveContainer {
            container_id: record.id.clone(),
        };
        // A wasm container that ran was forgotten by its monitor when it ended.
        let forgotten = record.phase == ContainerPhase::Exited
            && matches!(record.backend, ContainerBackend::Wasm { .. });
        let forgot = match forgotten {
            true => Ok(()),
            false => self.ask(&record.pod_id, &forget, MONITOR_TIMEOUT).await,
        };
        match forgot {
            Ok(()) | Err(Error::NotFound(_)) => {}
            // A monitor that is gone has forgotten it already; a Linux container may outlive
            // a monitor that died, so what is left of it is killed and deleted here.
            Err(Error::Unavailable(_)) => {
                if let ContainerBackend::Linux { launch, .. } = &record.backend {
                    blocking_section(|| crate::runtime::linux::container::delete(launch))
                        .map_err(Error::Internal)?;
                }
            }
            Err(e) => return Err(e),
        }
        self.remove_bundle(&record)?;
        self.delete_record(&record)?;
        entry
            .removed
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.containers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&record.id);
        self.release_name(&record.name_key(), &record.id);
        self.publish(&record, ContainerEventType::ContainerDeletedEvent);
        Ok(())
    }

    /// Reopens a running container's log file (kubelet rotated it).
    pub async fn reopen_log(&self, id: &str) -> Result<()> {
        let entry = self.entry(id)?;
        let _op = entry.lock_op().await;
        let record = self.refresh(&entry)?;
        if record.phase != ContainerPhase::Running {
            return Err(Error::FailedPrecondition(format!(
                "container {} is not running",
                record.id
            )));
        }
        let request = Request::ReopenLog {
            container_id: record.id.clone(),
        };
        match self.ask(&record.pod_id, &request, MONITOR_TIMEOUT).await {
            // A wasm container that ended meanwhile is forgotten by its monitor, which wrote
            // its exit file first.
            Err(Error::NotFound(_)) if self.refresh(&entry)?.phase != ContainerPhase::Running => {
                Err(Error::FailedPrecondition(format!(
                    "container {} is not running",
                    record.id
                )))
            }
            other => other,
        }
    }

    /// Stops every container of a pod now (StopPodSandbox comes next); each is tried, the
    /// first error is returned.
    /// A monitor that no longer answers is not an error here: stopping the pod ends it, and
    /// its containers are then recorded as ended with it.
    pub async fn stop_pod(&self, pod_id: &str) -> Result<()> {
        let pod_id = self.full_pod_id(pod_id);
        let mut first_error = None;
        for entry in self.of_pod(&pod_id) {
            match self.stop_entry(&entry, Duration::ZERO).await {
                Ok(()) => {}
                Err(Error::Unavailable(message)) => {
                    tracing::warn!(pod_id, %message, "stopping the pod's containers: monitor gone");
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        self.monitors.forget(&self.layout.monitor_socket(&pod_id));
        first_error.map_or(Ok(()), Err)
    }

    /// Removes every container of a pod (RemovePodSandbox comes next); each is tried, the
    /// first error is returned.
    pub async fn remove_pod(&self, pod_id: &str) -> Result<()> {
        let mut first_error = None;
        for entry in self.of_pod(pod_id) {
            if let Err(e) = self.remove(&entry.snapshot().id).await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The containers of pod `pod_id`, which may be a unique prefix as the pod RPCs accept.
    pub(super) fn of_pod(&self, pod_id: &str) -> Vec<Arc<ContainerEntry>> {
        let pod_id = self.full_pod_id(pod_id);
        self.entries()
            .into_iter()
            .filter(|e| e.in_pod(&pod_id))
            .collect()
    }

    /// The id of pod `pod_id`, which may be a unique prefix as the pod RPCs accept.
    fn full_pod_id(&self, pod_id: &str) -> String {
        self.sandboxes
            .snapshot(pod_id)
            .map_or_else(|_| pod_id.to_string(), |pod| pod.id)
    }

    /// The record brought up to date: a running container whose exit the monitor recorded is
    /// Exited; one whose pod monitor is gone without recording it exited unseen. The
    /// transition publishes the container's STOPPED event. It does not
    /// wait for the operation lock, so listing and status never wait behind a stop's grace
    /// period; the transition itself happens under the record's write lock.
    pub(super) fn refresh(&self, entry: &ContainerEntry) -> Result<ContainerRecord> {
        let current = entry.snapshot();
        if current.phase != ContainerPhase::Running {
            return Ok(current);
        }
        let mut record = entry.record.write().unwrap_or_else(|e| e.into_inner());
        if record.phase != ContainerPhase::Running || entry.is_removed() {
            return Ok(record.clone());
        }
        let exit_file = record.exit_file().to_path_buf();
        let mut exited = record.clone();
        exited.phase = ContainerPhase::Exited;
        let recorded = match exit_file.exists() {
            true => match checkpoint::read::<ExitRecord>(&exit_file) {
                Ok(exit) => Some(exit),
                // The monitor writes it without fsync (`ExitRecord::save`): a host crash can
                // leave it empty, and then the container ended with its monitor.
                Err(e) if self.pod_monitor_gone(&record.pod_id) => {
                    tracing::warn!(container_id = %record.id, error = %e, "unreadable exit record of a pod whose monitor is gone");
                    None
                }
                Err(e) => return Err(e),
            },
            false => None,
        };
        if let Some(exit) = recorded {
            // No checkpoint: recovery reads this same exit file for a Running record, and a
            // new file per exit is a measurable share of a short-lived container's cost.
            exited.exit = Some(exit);
        } else if self.pod_monitor_gone(&record.pod_id) {
            exited.exit = Some(ExitRecord {
                started_at: record.started_at,
                exit_code: 137,
                finished_at: now_nanos(),
                reason: "Error".into(),
                message: "the pod's monitor ended before the container did".into(),
            });
            self.save(&exited)?;
        } else {
            return Ok(record.clone());
        }
        *record = exited.clone();
        drop(record);
        // Whoever sees the exit first (a status read, a stop, the monitor's report) makes
        // the one transition, and with it the one STOPPED event.
        self.publish(&exited, ContainerEventType::ContainerStoppedEvent);
        Ok(exited)
    }

    fn pod_monitor_gone(&self, pod_id: &str) -> bool {
        self.sandboxes
            .snapshot(pod_id)
            .map_or(true, |pod| pod.phase != SandboxPhase::Ready)
    }
}

/// The rule named when no rule chose wasm and the entrypoint is not wasm either.
const LINUX_BY_DEFAULT: &str = "no rule chose wasm and the image's entrypoint is not wasm";

fn no_wasm(rule: &str, image: &ImageRecord) -> Error {
    Error::InvalidArgument(format!(
        "{rule} selects wasm, but image {} has no wasm module or component (no wasm layer, and its entrypoint {:?} is not a wasm file)",
        image.id, image.program
    ))
}
