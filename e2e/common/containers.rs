//! A pod with test images pulled and container helpers, shared by the container e2e tests.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cri_proto::runtime_service_client::RuntimeServiceClient;
use cri_proto::*;
use tonic::transport::Channel;

use super::registry::TestRegistry;
use super::{TestDaemon, pod_config};

/// A daemon with the test images pulled, and one pod whose logs go to `logs`.
pub struct PodEnv {
    pub registry: TestRegistry,
    pub daemon: TestDaemon,
    pub client: RuntimeServiceClient<Channel>,
    pub pod: String,
    pub logs: PathBuf,
}

impl PodEnv {
    pub async fn start(images: &[&str]) -> PodEnv {
        Self::start_with_handler(images, "").await
    }

    pub async fn start_with_handler(images: &[&str], handler: &str) -> PodEnv {
        let registry = TestRegistry::start(images);
        let daemon = TestDaemon::start().await;
        let mut image_client = daemon.images().await;
        for image in images {
            image_client
                .pull_image(PullImageRequest {
                    image: Some(ImageSpec {
                        image: registry.reference(image),
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .await
                .unwrap_or_else(|e| panic!("pull {image}: {e:?}"));
        }
        let mut client = daemon.runtime().await;
        let logs = daemon.dir.join("pod-logs");
        let pod = new_pod(&mut client, "wasm", handler, &logs, HashMap::new()).await;
        PodEnv {
            registry,
            daemon,
            client,
            pod,
            logs,
        }
    }

    pub fn container(&self, image: &str, name: &str, args: &[&str]) -> ContainerConfig {
        ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            image: Some(ImageSpec {
                image: self.registry.reference(image),
                ..Default::default()
            }),
            args: args.iter().map(|s| s.to_string()).collect(),
            log_path: format!("{name}/0.log"),
            labels: [("app".to_string(), name.to_string())].into(),
            ..Default::default()
        }
    }

    pub async fn create(&mut self, config: ContainerConfig) -> Result<String, tonic::Status> {
        let pod = self.pod.clone();
        self.create_in(&pod, config).await
    }

    pub async fn create_in(
        &mut self,
        pod: &str,
        config: ContainerConfig,
    ) -> Result<String, tonic::Status> {
        self.client
            .create_container(CreateContainerRequest {
                pod_sandbox_id: pod.to_string(),
                config: Some(config),
                sandbox_config: None,
            })
            .await
            .map(|r| r.into_inner().container_id)
    }

    pub async fn start_container(&mut self, id: &str) {
        self.client
            .start_container(StartContainerRequest {
                container_id: id.into(),
            })
            .await
            .unwrap();
    }

    /// StartContainer that must fail: its error.
    pub async fn start_error(&mut self, id: &str) -> tonic::Status {
        self.client
            .start_container(StartContainerRequest {
                container_id: id.into(),
            })
            .await
            .unwrap_err()
    }

    /// Creates and starts; returns the id.
    pub async fn run(&mut self, config: ContainerConfig) -> String {
        let id = match self.create(config).await {
            Ok(id) => id,
            Err(e) => panic!("CreateContainer: {e:?}\n{}", self.monitor_log()),
        };
        self.start_container(&id).await;
        id
    }

    /// StopContainer with `timeout` seconds.
    pub async fn stop(&mut self, id: &str, timeout: i64) {
        self.client
            .stop_container(StopContainerRequest {
                container_id: id.into(),
                timeout,
            })
            .await
            .unwrap();
    }

    /// RemoveContainer.
    pub async fn remove(&mut self, id: &str) {
        self.client
            .remove_container(RemoveContainerRequest {
                container_id: id.into(),
            })
            .await
            .unwrap();
    }

    /// ContainerStatus of a container that must not be found, or the like: its error.
    pub async fn status_error(&mut self, id: &str) -> tonic::Status {
        self.client
            .container_status(ContainerStatusRequest {
                container_id: id.into(),
                verbose: false,
            })
            .await
            .unwrap_err()
    }

    /// `kill -9`s the daemon, checks that the CRI log `log` keeps growing for `down` while it
    /// is gone, then starts it again and reconnects.
    pub async fn kill_daemon_while_logging(&mut self, log: &Path, down: Duration) {
        self.daemon.kill9();
        let during = log_lines(log).len();
        tokio::time::sleep(down).await;
        assert!(
            log_lines(log).len() > during,
            "{} keeps growing while the daemon is down",
            log.display()
        );
        self.daemon.spawn().await;
        self.client = self.daemon.runtime().await;
    }

    /// The pod monitor's own log (libcontainer's diagnostics land there), for failures.
    pub fn monitor_log(&self) -> String {
        let path = self.daemon.layout().monitor_log(&self.pod);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        format!("--- {} ---\n{text}", path.display())
    }

    pub async fn status(&mut self, id: &str) -> ContainerStatus {
        self.client
            .container_status(ContainerStatusRequest {
                container_id: id.into(),
                verbose: true,
            })
            .await
            .unwrap()
            .into_inner()
            .status
            .unwrap()
    }

    pub async fn info(&mut self, id: &str) -> serde_json::Value {
        let response = self
            .client
            .container_status(ContainerStatusRequest {
                container_id: id.into(),
                verbose: true,
            })
            .await
            .unwrap()
            .into_inner();
        serde_json::from_str(&response.info["info"]).unwrap()
    }

    /// Waits (up to 20 s) for the container to exit and returns its status.
    pub async fn exited(&mut self, id: &str) -> ContainerStatus {
        for _ in 0..800 {
            let status = self.status(id).await;
            if status.state == ContainerState::ContainerExited as i32 {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("container {id} did not exit within 20 s");
    }

    pub fn log(&self, name: &str) -> Vec<(String, String, String)> {
        log_lines(&self.logs.join(name).join("0.log"))
    }
}

/// Runs a pod whose container logs go to `logs`.
pub async fn new_pod(
    client: &mut RuntimeServiceClient<Channel>,
    name: &str,
    handler: &str,
    logs: &Path,
    annotations: HashMap<String, String>,
) -> String {
    let mut config = pod_config(name, &[]);
    config.log_directory = logs.display().to_string();
    config.annotations.extend(annotations);
    client
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: handler.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .pod_sandbox_id
}

/// (stream, tag, text) of each line of a CRI log file; checks every timestamp's shape.
pub fn log_lines(path: &Path) -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| {
            let mut parts = l.splitn(4, ' ');
            let time = parts.next().unwrap();
            assert!(
                time.len() == 30 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
                "RFC3339Nano timestamp: {l}"
            );
            (
                parts.next().unwrap().to_string(),
                parts.next().unwrap().to_string(),
                parts.next().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

pub fn line(stream: &str, tag: &str, text: &str) -> (String, String, String) {
    (stream.into(), tag.into(), text.into())
}

/// Waits (up to 10 s) until the CRI log file `path` has a line; panics naming it otherwise.
pub async fn wait_for_log(path: &Path) {
    assert!(
        super::eventually(Duration::from_secs(10), async || !log_lines(path)
            .is_empty())
        .await,
        "nothing was logged to {} within 10 s",
        path.display()
    );
}

/// CRI environment variables from pairs.
pub fn env(pairs: &[(&str, &str)]) -> Vec<KeyValue> {
    pairs
        .iter()
        .map(|(k, v)| KeyValue {
            key: k.to_string(),
            value: v.to_string(),
        })
        .collect()
}
