//! Every path crishim uses, derived from the `root` (persistent) and `state` (runtime) dirs.

use std::path::{Path, PathBuf};

/// The namespaces a pod can own and pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamespaceKind {
    /// Network namespace.
    Net,
    /// IPC namespace.
    Ipc,
    /// UTS (hostname) namespace.
    Uts,
    /// PID namespace (only when the pod shares one among its containers).
    Pid,
}

impl NamespaceKind {
    /// The name of the namespace under /proc/PID/ns.
    pub fn proc_name(self) -> &'static str {
        match self {
            NamespaceKind::Net => "net",
            NamespaceKind::Ipc => "ipc",
            NamespaceKind::Uts => "uts",
            NamespaceKind::Pid => "pid",
        }
    }
}

/// The end of a container checkpoint's file name, after the container id.
pub const CHECKPOINT_SUFFIX: &str = ".json";
/// The end of a container exit file's name, after the container id.
pub const EXIT_SUFFIX: &str = ".exit.json";
/// The end of the name of the file a container's exit is written to before it is renamed to
/// its exit file (`checkpoint::temp_path` of it).
pub const EXIT_TEMP_SUFFIX: &str = ".exit.json.tmp";

/// The on-disk layout of one daemon instance.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
    state: PathBuf,
}

impl Layout {
    /// A layout over a persistent `root` and a runtime `state` dir.
    pub fn new(root: impl Into<PathBuf>, state: impl Into<PathBuf>) -> Self {
        Layout {
            root: root.into(),
            state: state.into(),
        }
    }

    /// The persistent root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The runtime state dir.
    pub fn state(&self) -> &Path {
        &self.state
    }

    /// Directory holding one directory per sandbox record.
    pub fn sandboxes_dir(&self) -> PathBuf {
        self.root.join("sandboxes")
    }

    /// The record directory of one sandbox.
    pub fn sandbox_dir(&self, id: &str) -> PathBuf {
        self.sandboxes_dir().join(id)
    }

    /// Directory holding the container records: two files per container, no directory of
    /// its own (a directory costs an inode and a data block per short-lived container).
    pub fn containers_dir(&self) -> PathBuf {
        self.root.join("containers")
    }

    /// The checkpoint of one container: `containers/<id>.json`.
    pub fn container_checkpoint(&self, id: &str) -> PathBuf {
        self.containers_dir()
            .join(format!("{id}{CHECKPOINT_SUFFIX}"))
    }

    /// Where the monitor records a container's exit: `containers/<id>.exit.json`.
    pub fn container_exit(&self, id: &str) -> PathBuf {
        self.containers_dir().join(format!("{id}{EXIT_SUFFIX}"))
    }

    /// Where removed record files wait to be reused ([`FilePool`]).
    ///
    /// [`FilePool`]: crate::store::file_pool::FilePool
    pub fn file_pool_dir(&self) -> PathBuf {
        self.root.join("file-pool")
    }

    /// The record directory an earlier crishim kept per container (`containers/<id>/`, with
    /// `state.json` and `exit.json`); recovery moves its checkpoint out.
    pub fn legacy_container_dir(&self, id: &str) -> PathBuf {
        self.containers_dir().join(id)
    }

    /// The cached CNI attachment of one sandbox (what ADD was given and returned).
    pub fn network_cache(&self, id: &str) -> PathBuf {
        self.sandbox_dir(id).join("network.json")
    }

    /// The checkpoint of one sandbox.
    pub fn sandbox_checkpoint(&self, id: &str) -> PathBuf {
        self.sandbox_dir(id).join("state.json")
    }

    /// The runtime directory of a pod: monitor socket, namespace pins, monitor log.
    pub fn pod_dir(&self, id: &str) -> PathBuf {
        self.state.join("pods").join(id)
    }

    /// A container's bundle in its pod's runtime dir: its root filesystem mounts.
    pub fn container_bundle(&self, pod_id: &str, container_id: &str) -> PathBuf {
        self.pod_dir(pod_id).join("containers").join(container_id)
    }

    /// Files a pod shares with its Linux containers: hostname, hosts, resolv.conf.
    pub fn pod_files_dir(&self, id: &str) -> PathBuf {
        self.pod_dir(id).join("files")
    }

    /// The pod's /dev/shm, a tmpfs its Linux containers share.
    pub fn pod_shm(&self, id: &str) -> PathBuf {
        self.pod_dir(id).join("shm")
    }

    /// libcontainer's state root for the pod's Linux containers.
    pub fn linux_state_root(&self, id: &str) -> PathBuf {
        self.pod_dir(id).join("linux")
    }

    /// The monitor's control socket.
    pub fn monitor_socket(&self, id: &str) -> PathBuf {
        self.pod_dir(id).join("monitor.sock")
    }

    /// The monitor's own diagnostic log (not a container log).
    pub fn monitor_log(&self, id: &str) -> PathBuf {
        self.pod_dir(id).join("monitor.log")
    }

    /// The file a pod namespace is bind-mounted on.
    pub fn namespace_pin(&self, id: &str, kind: NamespaceKind) -> PathBuf {
        self.pod_dir(id).join("ns").join(kind.proc_name())
    }
}

impl Layout {
    /// The image store's directory.
    pub fn images_dir(&self) -> PathBuf {
        self.root.join("images")
    }

    /// The image index.
    pub fn image_index(&self) -> PathBuf {
        self.images_dir().join("index.json")
    }

    /// Where blobs live.
    pub fn blobs_dir(&self) -> PathBuf {
        self.images_dir().join("blobs").join("sha256")
    }

    /// One blob, by `sha256:<hex>` digest (callers pass verified digests only).
    pub fn blob(&self, digest: &str) -> PathBuf {
        self.blobs_dir().join(digest.trim_start_matches("sha256:"))
    }

    /// Downloads and unpacks in progress, on the same filesystem as their destinations.
    pub fn image_tmp_dir(&self) -> PathBuf {
        self.images_dir().join("tmp")
    }

    /// Unpacked layers.
    pub fn layers_dir(&self) -> PathBuf {
        self.root.join("layers")
    }

    /// One unpacked layer, by chain id.
    pub fn layer_dir(&self, chain_id: &str) -> PathBuf {
        self.layers_dir()
            .join(chain_id.trim_start_matches("sha256:"))
    }
}

impl Layout {
    /// Precompiled wasm artifacts.
    pub fn wasm_dir(&self) -> PathBuf {
        self.root.join("wasm")
    }

    /// The precompiled form of the wasm blob `digest` for engines with compatibility `key`.
    pub fn precompiled(&self, digest: &str, key: &str) -> PathBuf {
        self.wasm_dir().join(format!(
            "{}-{key}.cwasm",
            digest.trim_start_matches("sha256:")
        ))
    }
}
