//! The e2e harness: starts the real `crishim serve` on a temporary socket and state dirs and
//! gives tests a CRI client, as kubelet would use it. Needs root (namespaces, mounts, cgroups).

#![allow(dead_code)]

pub mod containers;
pub mod registry;
pub mod streamclient;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use cri_proto::image_service_client::ImageServiceClient;
use cri_proto::runtime_service_client::RuntimeServiceClient;
use cri_proto::*;
use crishim::os::cgroup::{Cgroups, HostCgroups};
use crishim::os::process::start_time;
use crishim::store::checkpoint;
use crishim::store::container::{ContainerBackend, ContainerRecord};
use crishim::store::layout::Layout;
use crishim::store::sandbox::SandboxRecord;
use tonic::transport::Channel;

/// Cgroup parent the test daemons put pods under, away from a real daemon's.
pub const TEST_CGROUP_PARENT: &str = "/crishim-e2e";

/// Fails loudly (never skips) when the tests cannot run here.
pub fn require_root() {
    if !nix::unistd::geteuid().is_root() {
        panic!(
            "the e2e tests need root (namespaces, mounts, cgroups): run `sudo hack/test.sh` \
             or `sudo -E cargo test --workspace`"
        );
    }
}

/// One daemon under test, with its own dirs.
pub struct TestDaemon {
    child: Option<Child>,
    /// Holds root, state, config and the daemon's log.
    pub dir: PathBuf,
    env: Vec<(String, String)>,
    /// A hosts file the daemon sees as /etc/hosts (in a mount namespace of its own).
    hosts: Option<PathBuf>,
    _tmp: Option<tempfile::TempDir>,
}

impl TestDaemon {
    /// Starts a daemon in a new temporary directory.
    pub async fn start() -> TestDaemon {
        Self::start_with_config("").await
    }

    /// Starts a daemon whose config.toml has `extra` appended.
    pub async fn start_with_config(extra: &str) -> TestDaemon {
        Self::start_with_env(extra, &[]).await
    }

    /// Starts a daemon with `extra` config and extra environment variables.
    pub async fn start_with_env(extra: &str, env: &[(&str, &str)]) -> TestDaemon {
        Self::start_full(extra, env, None, "none").await
    }

    /// Starts a daemon that networks pods through CNI; `extra` holds its `[cni]` table.
    pub async fn start_with_cni(extra: &str) -> TestDaemon {
        Self::start_full(extra, &[], None, "cni").await
    }

    /// Starts a daemon that resolves names through `hosts` instead of /etc/hosts (for image
    /// tests only: its mounts are in a mount namespace of its own).
    pub async fn start_with_hosts(extra: &str, env: &[(&str, &str)], hosts: &Path) -> TestDaemon {
        Self::start_full(extra, env, Some(hosts.to_path_buf()), "none").await
    }

    /// Other tests than the network ones run pods with loopback only (`pod_network = "none"`).
    async fn start_full(
        extra: &str,
        env: &[(&str, &str)],
        hosts: Option<PathBuf>,
        pod_network: &str,
    ) -> TestDaemon {
        require_root();
        let tmp = tempfile::Builder::new()
            .prefix("crishim-e2e-")
            .tempdir()
            .expect("tempdir");
        let mut daemon = TestDaemon {
            child: None,
            dir: tmp.path().to_path_buf(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            hosts,
            _tmp: Some(tmp),
        };
        std::fs::write(
            daemon.dir.join("config.toml"),
            format!(
                "default_cgroup_parent = \"{TEST_CGROUP_PARENT}\"\nmonitor_stop_timeout_ms = 3000\npod_network = \"{pod_network}\"\n{extra}\n"
            ),
        )
        .expect("write config");
        daemon.spawn().await;
        daemon
    }

    pub fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    pub fn state(&self) -> PathBuf {
        self.dir.join("state")
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("state/crishim.sock")
    }

    pub fn layout(&self) -> Layout {
        Layout::new(self.root(), self.state())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    /// The command line of this daemon (for tests that start it differently).
    pub fn command(&self) -> Command {
        let mut command = match &self.hosts {
            // unshare and sh exec in turn, so the child's pid is the daemon's.
            Some(hosts) => {
                let mut wrapped = Command::new("unshare");
                wrapped
                    .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
                    .arg("mount --bind \"$0\" /etc/hosts && exec \"$@\"")
                    .arg(hosts)
                    .arg(env!("CARGO_BIN_EXE_crishim"));
                wrapped
            }
            None => Command::new(env!("CARGO_BIN_EXE_crishim")),
        };
        command
            .arg("serve")
            .arg("--root")
            .arg(self.root())
            .arg("--state")
            .arg(self.state())
            .arg("--config")
            .arg(self.dir.join("config.toml"))
            .env("RUST_LOG", "debug")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    /// Starts (or restarts) the daemon process on this directory and waits for its socket.
    pub async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("daemon.log"))
            .expect("daemon log");
        let child = self
            .command()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start crishim serve");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if tokio::net::UnixStream::connect(self.socket()).await.is_ok() {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("crishim serve exited with {status}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "crishim serve did not listen in 20s:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn runtime(&self) -> RuntimeServiceClient<Channel> {
        RuntimeServiceClient::new(self.channel().await)
    }

    pub async fn images(&self) -> ImageServiceClient<Channel> {
        ImageServiceClient::new(self.channel().await)
    }

    async fn channel(&self) -> Channel {
        cri_proto::connect(&format!("unix://{}", self.socket().display()))
            .await
            .expect("connect to crishim")
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("daemon running").id() as i32
    }

    /// `kill -9` the daemon.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM the daemon and wait (without blocking the test's runtime) for it to exit.
    pub async fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("daemon running");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .expect("SIGTERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("wait for daemon") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "daemon still running 30s after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for TestDaemon {
    /// Kills the daemon, then whatever a failed test left: monitors, pins, container root
    /// filesystems, cgroups.
    fn drop(&mut self) {
        self.kill9();
        unmount_under(&self.dir);
        let layout = self.layout();
        let cgroups = HostCgroups::detect().ok();
        kill_linux_containers(&layout, cgroups.as_ref());
        let Ok(entries) = std::fs::read_dir(layout.sandboxes_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            let Ok(record) = checkpoint::read::<SandboxRecord>(&layout.sandbox_checkpoint(&id))
            else {
                continue;
            };
            if let Some(m) = record
                .monitor
                .filter(|m| start_time(m.pid) == Some(m.start_time))
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(m.pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            for kind in record.namespaces.owned() {
                let _ = nix::mount::umount2(
                    &layout.namespace_pin(&id, kind),
                    nix::mount::MntFlags::MNT_DETACH,
                );
            }
            if let Some(cgroups) = &cgroups {
                let _ = cgroups.remove(&record.cgroup);
            }
        }
    }
}

/// Kills what is left in the cgroup of every Linux container a failed test left, and removes
/// the cgroup.
fn kill_linux_containers(layout: &Layout, cgroups: Option<&HostCgroups>) {
    let Ok(entries) = std::fs::read_dir(layout.containers_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(record) = checkpoint::read::<ContainerRecord>(&entry.path()) else {
            continue;
        };
        let ContainerBackend::Linux { launch, .. } = record.backend else {
            continue;
        };
        for mount in cgroup_mounts() {
            let procs = mount
                .join(launch.cgroup.trim_start_matches('/'))
                .join("cgroup.procs");
            for pid in std::fs::read_to_string(procs).unwrap_or_default().lines() {
                if let Ok(pid) = pid.trim().parse::<i32>() {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
        if let Some(cgroups) = cgroups {
            let _ = cgroups.remove(&launch.cgroup);
        }
    }
}

/// Detaches every mount below `dir`, deepest first.
fn unmount_under(dir: &Path) {
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut targets: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect();
    targets.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for target in targets {
        let _ = nix::mount::umount2(&target, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// A pod config kubelet-style, with labels.
pub fn pod_config(name: &str, labels: &[(&str, &str)]) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.to_string(),
            uid: format!("uid-{name}"),
            namespace: "e2e".to_string(),
            attempt: 0,
        }),
        hostname: name.to_string(),
        log_directory: String::new(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        annotations: [("test".to_string(), "yes".to_string())].into(),
        ..Default::default()
    }
}

/// Sets the pod's namespace options.
pub fn with_namespaces(
    mut config: PodSandboxConfig,
    network: NamespaceMode,
    pid: NamespaceMode,
    ipc: NamespaceMode,
) -> PodSandboxConfig {
    config.linux = Some(LinuxPodSandboxConfig {
        security_context: Some(LinuxSandboxSecurityContext {
            namespace_options: Some(NamespaceOption {
                network: network as i32,
                pid: pid as i32,
                ipc: ipc as i32,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    config
}

/// StopPodSandbox, which must succeed.
pub async fn stop_pod(client: &mut RuntimeServiceClient<Channel>, id: &str) {
    client
        .stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: id.to_string(),
        })
        .await
        .expect("StopPodSandbox");
}

/// RemovePodSandbox, which must succeed.
pub async fn remove_pod(client: &mut RuntimeServiceClient<Channel>, id: &str) {
    client
        .remove_pod_sandbox(RemovePodSandboxRequest {
            pod_sandbox_id: id.to_string(),
        })
        .await
        .expect("RemovePodSandbox");
}

/// RunPodSandbox with the default handler, which must succeed; returns the pod id.
pub async fn run_pod(
    client: &mut RuntimeServiceClient<Channel>,
    config: PodSandboxConfig,
) -> String {
    client
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: String::new(),
        })
        .await
        .expect("RunPodSandbox")
        .into_inner()
        .pod_sandbox_id
}

pub async fn pod_status(
    client: &mut RuntimeServiceClient<Channel>,
    id: &str,
) -> PodSandboxStatusResponse {
    client
        .pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: id.to_string(),
            verbose: true,
        })
        .await
        .expect("PodSandboxStatus")
        .into_inner()
}

pub fn state_of(status: &PodSandboxStatusResponse) -> PodSandboxState {
    PodSandboxState::try_from(status.status.as_ref().expect("status").state).expect("state")
}

/// The verbose info document of a PodSandboxStatus.
pub fn info(status: &PodSandboxStatusResponse) -> serde_json::Value {
    serde_json::from_str(status.info.get("info").expect("verbose info")).expect("info is JSON")
}

/// The monitor pid from verbose info.
pub fn monitor_pid(status: &PodSandboxStatusResponse) -> i32 {
    info(status)["pid"].as_i64().expect("pid in info") as i32
}

/// True when the process exists and is not a zombie.
pub fn process_alive(pid: i32) -> bool {
    start_time(pid).is_some()
}

/// True when `path` is a mount point (a pinned namespace).
pub fn is_mounted(path: &Path) -> bool {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let wanted = path.to_string_lossy();
    mountinfo
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(&*wanted))
}

/// The inode of a namespace file (two files with one inode are the same namespace).
pub fn ns_inode(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .ino()
}

/// Waits up to `timeout` for `check` to hold.
pub async fn eventually(timeout: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    check().await
}

/// Mount points of every cgroup hierarchy (v1 controllers and the v2 tree).
pub fn cgroup_mounts() -> Vec<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    mountinfo
        .lines()
        .filter(|l| {
            l.split(" - ")
                .nth(1)
                .is_some_and(|r| r.starts_with("cgroup"))
        })
        .filter_map(|l| l.split(' ').nth(4).map(PathBuf::from))
        .collect()
}
