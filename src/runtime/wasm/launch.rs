//! What the daemon tells a pod's monitor to run as a wasm container, and what the monitor
//! records when it ends. Both cross the monitor's control socket or the disk as JSON.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::runtime::stdin::StdinMode;
use crate::runtime::wasm::binary::WasmBinary;

/// A directory the guest sees (a WASI preopen).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preopen {
    /// Host directory.
    pub host: PathBuf,
    /// Path in the guest.
    pub guest: String,
    /// Writes are refused.
    pub readonly: bool,
}

/// Everything a monitor needs to create and run one wasm container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WasmLaunch {
    /// Container id.
    pub container_id: String,
    /// The artifact precompiled at pull (`.cwasm`).
    pub artifact: PathBuf,
    /// Core module or component.
    pub binary: WasmBinary,
    /// argv, argv[0] first.
    pub argv: Vec<String>,
    /// Environment.
    pub env: Vec<(String, String)>,
    /// Directories the guest sees.
    pub preopens: Vec<Preopen>,
    /// Most bytes of linear memory the container's Store may hold in all.
    pub memory_limit: Option<u64>,
    /// The CRI log file; None discards output.
    pub log_path: Option<PathBuf>,
    /// Where the exit is recorded.
    pub exit_file: PathBuf,
    /// Whether the container has a stdin for attach sessions.
    #[serde(default)]
    pub stdin: StdinMode,
}

/// How a container ended, written atomically by the monitor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    /// When the container was started, Unix nanoseconds; 0 if it never was. Recovery takes it
    /// from here when the monitor that knew it is gone (starts are not checkpointed).
    #[serde(default)]
    pub started_at: i64,
    /// Exit code: the guest's, 134 for a trap, 137 when stopped or over its memory limit.
    pub exit_code: i32,
    /// Unix nanoseconds.
    pub finished_at: i64,
    /// Completed, Error or OOMKilled.
    pub reason: String,
    /// What happened, for people (the trap, the limit).
    pub message: String,
}

impl ExitRecord {
    /// Writes the record to `path` atomically for every reader while the host runs, without
    /// waiting for the disk. After a host crash the pod's monitor is gone too, so the daemon
    /// reports the container as ended with its monitor whether or not the file survived
    /// (`ContainerManager::refresh`); the fsync cost 1.6 ms per container here, the largest
    /// share of a short container's run.
    pub fn save(&self, path: &std::path::Path) -> crate::error::Result<()> {
        crate::store::checkpoint::write_unsynced(path, self)
    }
}
