//! The daemon's shared state: config, the sandbox manager, runtime settings kubelet pushes,
//! and the tasks that watch each pod's monitor for an unexpected exit.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::config::Config;
use crate::container::ContainerManager;
use crate::error::{Error, Result};
use crate::image::service::Images;
use crate::monitor::client::SocketMonitorClient;
use crate::monitor::exit_watch;
use crate::monitor::launcher::ProcessMonitors;
use crate::network::PodNetworks;
use crate::network::exec::HostPluginExec;
use crate::os::cgroup::{Cgroups, HostCgroups};
use crate::os::mount::HostMounter;
use crate::os::process::{Pidfd, start_time};
use crate::sandbox::{SandboxHost, SandboxManager};
use crate::store::layout::Layout;
use crate::store::sandbox::{MonitorProcess, SandboxPhase};
use crate::streaming::http::StreamingServer;

/// How long to wait before asking a monitor again for its exits. The wait doubles while
/// asking fails (a monitor of an older daemon has no exit reports).
const REFOLLOW_DELAY: Duration = Duration::from_millis(200);

/// The longest wait between two failed requests for a monitor's exits.
const REFOLLOW_DELAY_MAX: Duration = Duration::from_secs(10);

/// Everything the RPCs share.
pub struct Daemon {
    /// The configuration in effect.
    pub config: Arc<Config>,
    /// Pod sandboxes.
    pub sandboxes: Arc<SandboxManager>,
    /// Images.
    pub images: Arc<Images>,
    /// Containers.
    pub containers: Arc<ContainerManager>,
    /// The exec/attach/port-forward server.
    pub streaming: Arc<StreamingServer>,
}

impl Daemon {
    /// Builds the daemon on the real host and recovers its pods from disk. Must run inside a
    /// tokio runtime (it starts the monitor watchers).
    pub async fn start(config: Config) -> Result<Arc<Daemon>> {
        let exe =
            std::env::current_exe().map_err(|e| Error::io("find the crishim executable", e))?;
        let cgroups: Arc<dyn Cgroups> = Arc::new(HostCgroups::detect()?);
        let host = SandboxHost {
            mounts: Arc::new(HostMounter),
            cgroups: cgroups.clone(),
            monitors: Arc::new(ProcessMonitors::new(
                exe,
                Duration::from_millis(config.monitor_start_timeout_ms),
                Duration::from_millis(config.monitor_stop_timeout_ms),
            )),
            network: Arc::new(PodNetworks::new(
                config.pod_network,
                config.cni.conf_dir.clone(),
                Arc::new(HostPluginExec::new(
                    config.cni.bin_dirs.clone(),
                    Duration::from_millis(config.cni.plugin_timeout_ms),
                )),
            )),
        };
        let config = Arc::new(config);
        let images = Arc::new(Images::open(config.clone())?);
        let sandboxes = Arc::new(SandboxManager::new(config.clone(), host));
        let recovered = sandboxes.recover()?;
        tracing::info!(
            live = recovered.live.len(),
            not_ready = recovered.not_ready,
            undone = recovered.undone,
            skipped = recovered.skipped,
            "recovered pod sandboxes from disk"
        );
        let containers = Arc::new(ContainerManager::new(
            config.clone(),
            images.clone(),
            sandboxes.clone(),
            Arc::new(SocketMonitorClient::default()),
            Arc::new(HostMounter),
            cgroups,
        ));
        let containers_loaded = containers.recover().await?;
        let live_pods: Vec<String> = recovered.live.iter().map(|(id, _)| id.clone()).collect();
        containers.reconcile_with_monitors(&live_pods).await;
        tracing::info!(
            containers = containers_loaded,
            "recovered containers from disk"
        );
        let (streaming, listener) = StreamingServer::bind(&config.stream_server_address)?;
        tokio::spawn(streaming.clone().serve(listener));
        let daemon = Arc::new(Daemon {
            config,
            sandboxes,
            images,
            containers,
            streaming,
        });
        for (id, process) in recovered.live {
            daemon.watch_monitor(id, process);
        }
        Ok(daemon)
    }

    /// Watches a pod's monitor: follows the exits it reports, and marks the pod NotReady when
    /// the monitor exits on its own.
    pub fn watch_monitor(&self, pod_id: String, process: MonitorProcess) {
        self.follow_exits(pod_id.clone());
        let sandboxes = self.sandboxes.clone();
        let containers = self.containers.clone();
        tokio::spawn(async move {
            // Checked after opening: a pidfd of a later process that reused the pid is not ours.
            let pidfd = Pidfd::open(process.pid)
                .ok()
                .filter(|_| start_time(process.pid) == Some(process.start_time));
            if let Some(pidfd) = pidfd {
                // SAFETY: Pidfd owns its fd and returns the same one for as long as it lives.
                match unsafe { AsyncFd::register_with_interest(pidfd, Interest::READABLE) } {
                    Ok(fd) => {
                        let _ = fd.readable().await;
                        fd.get_ref().reap();
                    }
                    Err(e) => {
                        let e = e.to_string();
                        tracing::error!(pod_id = %pod_id, error = %e, "cannot watch pod monitor");
                        return;
                    }
                }
            }
            let outcome = tokio::task::spawn_blocking(move || {
                let ended = sandboxes.monitor_exited(&pod_id, process.pid)?;
                if ended {
                    containers.notice_pod_ended(&pod_id);
                }
                Ok::<_, Error>(())
            })
            .await;
            if let Ok(Err(e)) = outcome {
                tracing::error!(error = %e, "recording a monitor exit failed");
            }
        });
    }

    /// Follows the exits pod `pod_id`'s monitor reports, as long as the pod is ready, and
    /// brings those containers up to date (their STOPPED events go out then). A monitor that
    /// dropped the connection (it could not write to it) is asked again; once it has accepted,
    /// the exit files of the pod's containers tell the exits missed meanwhile.
    fn follow_exits(&self, pod_id: String) {
        let containers = self.containers.clone();
        let sandboxes = self.sandboxes.clone();
        let socket = Layout::new(&self.config.root, &self.config.state).monitor_socket(&pod_id);
        tokio::spawn(async move {
            let ready = |pod_id: &str| {
                sandboxes
                    .snapshot(pod_id)
                    .is_ok_and(|pod| pod.phase == SandboxPhase::Ready)
            };
            let mut delay = REFOLLOW_DELAY;
            while ready(&pod_id) {
                let (missed, reported) = (containers.clone(), containers.clone());
                let pod = pod_id.clone();
                let watching = move || {
                    tokio::spawn(async move { missed.notice_exits_of_pod(&pod).await });
                };
                let followed = exit_watch::follow(socket.clone(), watching, move |id| {
                    if !reported.notice_exit_unless_busy(&id) {
                        let containers = reported.clone();
                        tokio::spawn(async move { containers.notice_exit(&id).await });
                    }
                })
                .await;
                match followed {
                    Ok(()) => delay = REFOLLOW_DELAY,
                    Err(e) => {
                        tracing::debug!(pod_id = %pod_id, error = %e, "following the monitor's exits");
                        delay = (delay * 2).min(REFOLLOW_DELAY_MAX);
                    }
                }
                tokio::time::sleep(delay).await;
            }
        });
    }
}
