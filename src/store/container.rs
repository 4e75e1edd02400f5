//! The container record: what a container is, where it stands, and how it ended.

use std::path::{Path, PathBuf};

use cri_proto::ContainerConfig;
use serde::{Deserialize, Serialize};

use crate::image::store::ImageRecord;
use crate::runtime::linux::launch::LinuxLaunch;
use crate::runtime::linux::spec::ResolvedUser;
use crate::runtime::wasm::launch::{ExitRecord, WasmLaunch};

/// Version of the container checkpoint format written by this build.
pub const CONTAINER_CHECKPOINT_VERSION: u32 = 1;

/// Where a container stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainerPhase {
    /// CreateContainer is under way; a record left so by a crash is undone at recovery.
    Creating,
    /// Created, not started.
    Created,
    /// Started; its end is recorded in its exit file.
    Running,
    /// Ended.
    Exited,
}

/// How the container runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ContainerBackend {
    /// A wasm module or component in the pod's monitor.
    Wasm {
        /// What the monitor was told to run.
        launch: WasmLaunch,
    },
    /// A Linux container: a process of its own, created by libcontainer, child of the monitor.
    Linux {
        /// What the monitor was told to create.
        launch: LinuxLaunch,
        /// The user its process runs as, for ContainerStatus.
        #[serde(default)]
        user: ResolvedUser,
    },
}

/// One container, as checkpointed to `containers/<id>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerRecord {
    /// Checkpoint format version.
    pub version: u32,
    /// The container id (64 hex digits).
    pub id: String,
    /// Its pod sandbox.
    pub pod_id: String,
    /// The config kubelet sent, kept whole.
    pub config: ContainerConfig,
    /// The image id (config digest).
    pub image_id: String,
    /// The image's repo digest (`name@sha256:...`), empty when it has none.
    pub image_ref: String,
    /// How it runs.
    pub backend: ContainerBackend,
    /// Why that backend was chosen (the selection rule that matched).
    pub selected_by: String,
    /// Where it stands.
    pub phase: ContainerPhase,
    /// Unix nanoseconds.
    pub created_at: i64,
    /// Unix nanoseconds; 0 before it started.
    pub started_at: i64,
    /// The CRI log file, if the pod and container name one.
    pub log_path: Option<PathBuf>,
    /// The bundle holding the container's root filesystem (the image's files), if it has one.
    #[serde(default)]
    pub bundle: Option<PathBuf>,
    /// How it ended, once it has.
    pub exit: Option<ExitRecord>,
}

impl ContainerRecord {
    /// A new record in phase Creating, created now. The log path is the backend's.
    pub fn creating(
        id: &str,
        pod_id: &str,
        image: &ImageRecord,
        config: ContainerConfig,
        backend: ContainerBackend,
        bundle: Option<PathBuf>,
        selected_by: &str,
    ) -> ContainerRecord {
        let log_path = match &backend {
            ContainerBackend::Wasm { launch } => launch.log_path.clone(),
            ContainerBackend::Linux { launch, .. } => launch.log_path.clone(),
        };
        ContainerRecord {
            version: CONTAINER_CHECKPOINT_VERSION,
            id: id.to_string(),
            pod_id: pod_id.to_string(),
            image_id: image.id.clone(),
            image_ref: image.repo_digests.first().cloned().unwrap_or_default(),
            backend,
            selected_by: selected_by.to_string(),
            phase: ContainerPhase::Creating,
            created_at: crate::sandbox::now_nanos(),
            started_at: 0,
            log_path,
            bundle,
            exit: None,
            config,
        }
    }

    /// Where the monitor records this container's exit: the path it was given at creation
    /// (a record kept by an earlier crishim names another place than today's layout).
    pub fn exit_file(&self) -> &Path {
        match &self.backend {
            ContainerBackend::Wasm { launch } => &launch.exit_file,
            ContainerBackend::Linux { launch, .. } => &launch.exit_file,
        }
    }

    /// The key that must be unique among a pod's containers: name and attempt.
    pub fn name_key(&self) -> String {
        name_key(&self.pod_id, &self.config)
    }
}

/// The uniqueness key of a container config in pod `pod_id`.
pub fn name_key(pod_id: &str, config: &ContainerConfig) -> String {
    let m = config.metadata.clone().unwrap_or_default();
    format!("{pod_id}/{}/{}", m.name, m.attempt)
}
