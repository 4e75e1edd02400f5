//! `crishim-bench`: a CRI load generator. It talks to any CRI endpoint given with `--endpoint`
//! (crishim, containerd, CRI-O), so runtimes can be measured side by side on one machine, and
//! prints p50/p90/p99/max latency per RPC and the throughput (`--json` for machines).
//!
//! Scenarios:
//! - `sandbox-lifecycle`: RunPodSandbox, PodSandboxStatus, StopPodSandbox, RemovePodSandbox,
//!   `--count` times at `--concurrency`.
//! - `idle-pods`: starts `--count` pods, writes `--ready-file` once all run, holds them for
//!   `--hold-secs` (measure memory meanwhile), then stops and removes them.
//! - `pull`: PullImage then RemoveImage of `--image`, `--count` times one after the other
//!   (each pull starts from an empty store: download, verify, unpack).
//! - `container-run`: in one pod, `--count` containers of `--image` (pulled first) with
//!   `--arg`s: CreateContainer, StartContainer, its exit seen (see `--exit-seen`), RemoveContainer;
//!   reports Create+Start and RunToExit (create to exit seen) latencies and containers/s.
//! - `pod-to-exit`: `--count` times: RunPodSandbox, then one container of `--image` run to its
//!   exit (PodToExit: from RunPodSandbox to the exit seen); then the pod is removed.
//! - `idle-container-pods`: like `idle-pods`, each pod also running one container of `--image`
//!   with `--arg`s (a guest that stays up), to measure memory per pod.
//! - `container-lifecycle`: in one pod, `--count` containers of `--image` that stay up:
//!   CreateContainer, StartContainer, StopContainer (with `--stop-timeout`, default 0),
//!   RemoveContainer.
//!
//! `--command` (repeatable) sets the containers' command (a Linux image's `true` or `sleep`).
//! `--exit-seen` says how an exit is seen: from GetContainerEvents (`events`, the default;
//! polling if the runtime has no events) or by polling ContainerStatus (`poll`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use cri_proto::image_service_client::ImageServiceClient;
use cri_proto::runtime_service_client::RuntimeServiceClient;
use cri_proto::*;
use serde::Serialize;
use tokio::sync::Mutex;
use tonic::transport::Channel;

#[derive(Parser, Clone)]
#[command(
    name = "crishim-bench",
    about = "CRI load generator for any CRI endpoint"
)]
struct Args {
    /// CRI endpoint, e.g. unix:///run/crishim/crishim.sock or unix:///run/containerd/containerd.sock.
    #[arg(long)]
    endpoint: String,
    /// What to measure.
    #[arg(long, value_enum, default_value_t = Scenario::SandboxLifecycle)]
    scenario: Scenario,
    /// How many pods.
    #[arg(long, short = 'n', default_value_t = 100)]
    count: usize,
    /// How many in flight at once.
    #[arg(long, short = 'c', default_value_t = 1)]
    concurrency: usize,
    /// RuntimeClass handler for the pods.
    #[arg(long, default_value = "")]
    runtime_handler: String,
    /// Run the pods with the host network (no CNI involved on any runtime).
    #[arg(long)]
    host_network: bool,
    /// pull and container scenarios: the image.
    #[arg(long)]
    image: Option<String>,
    /// Container scenarios: the container's args (repeat for several).
    #[arg(long = "arg")]
    args: Vec<String>,
    /// Container scenarios: the container's command, replacing the image's entrypoint
    /// (repeat for several words).
    #[arg(long = "command")]
    command: Vec<String>,
    /// container-lifecycle: StopContainer's timeout in seconds.
    #[arg(long, default_value_t = 0)]
    stop_timeout: i64,
    /// pull: keep the image after the last pull (to measure its disk use).
    #[arg(long)]
    keep: bool,
    /// idle-pods: file to create once every pod runs.
    #[arg(long)]
    ready_file: Option<PathBuf>,
    /// idle-pods: how long to hold the pods.
    #[arg(long, default_value_t = 0)]
    hold_secs: u64,
    /// Print a JSON report instead of a table.
    #[arg(long)]
    json: bool,
    /// container-run, pod-to-exit: how an exit is seen.
    #[arg(long, value_enum, default_value_t = ExitSeen::Events)]
    exit_seen: ExitSeen,
}

/// How the load generator learns that a container exited.
#[derive(Clone, Copy, ValueEnum)]
enum ExitSeen {
    /// From its STOPPED event (GetContainerEvents); polling when the runtime has no events.
    Events,
    /// ContainerStatus every 0.5 ms (1 ms with tokio's timer).
    Poll,
}

#[derive(Clone, Copy, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Scenario {
    SandboxLifecycle,
    IdlePods,
    Pull,
    ContainerRun,
    PodToExit,
    IdleContainerPods,
    ContainerLifecycle,
}

/// Latencies of one RPC, in seconds.
#[derive(Default)]
struct Samples(Vec<f64>);

#[derive(Serialize)]
struct RpcStats {
    count: usize,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

impl Samples {
    fn stats(&self) -> RpcStats {
        let mut sorted = self.0.clone();
        sorted.sort_by(f64::total_cmp);
        // Nearest-rank percentile.
        let pick = |q: f64| -> f64 {
            if sorted.is_empty() {
                return 0.0;
            }
            let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
            sorted[rank - 1] * 1e3
        };
        RpcStats {
            count: sorted.len(),
            p50_ms: pick(0.50),
            p90_ms: pick(0.90),
            p99_ms: pick(0.99),
            max_ms: pick(1.0),
        }
    }
}

#[derive(Serialize)]
struct Report {
    scenario: Scenario,
    endpoint: String,
    count: usize,
    concurrency: usize,
    errors: usize,
    wall_seconds: f64,
    pods_per_second: f64,
    rpcs: BTreeMap<&'static str, RpcStats>,
}

#[derive(Default)]
struct Recorder {
    samples: Mutex<BTreeMap<&'static str, Samples>>,
    errors: AtomicUsize,
    first_error: Mutex<Option<String>>,
}

impl Recorder {
    /// Adds one measured span that is not a single RPC (e.g. create to exit).
    async fn record(&self, name: &'static str, elapsed: Duration) {
        self.samples
            .lock()
            .await
            .entry(name)
            .or_default()
            .0
            .push(elapsed.as_secs_f64());
    }

    /// Counts a failure that is not an RPC error.
    async fn fail(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.first_error.lock().await.get_or_insert(what);
    }

    /// Times one call; an error is counted and the first one kept for the report.
    async fn time<T>(
        &self,
        rpc: &'static str,
        call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Option<T> {
        let start = Instant::now();
        let result = call.await;
        let elapsed = start.elapsed().as_secs_f64();
        match result {
            Ok(response) => {
                self.samples
                    .lock()
                    .await
                    .entry(rpc)
                    .or_default()
                    .0
                    .push(elapsed);
                Some(response.into_inner())
            }
            Err(status) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                self.first_error.lock().await.get_or_insert_with(|| {
                    format!("{rpc}: {:?}: {}", status.code(), status.message())
                });
                None
            }
        }
    }
}

fn pod_config(args: &Args, run_id: u32, index: usize) -> PodSandboxConfig {
    let name = format!("bench-{run_id}-{index}");
    let network = if args.host_network {
        NamespaceMode::Node
    } else {
        NamespaceMode::Pod
    };
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.clone(),
            uid: format!("{name}-uid"),
            namespace: "crishim-bench".to_string(),
            attempt: 0,
        }),
        hostname: name,
        labels: [("crishim-bench".to_string(), run_id.to_string())].into(),
        linux: Some(LinuxPodSandboxConfig {
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(NamespaceOption {
                    network: network as i32,
                    pid: NamespaceMode::Container as i32,
                    ipc: NamespaceMode::Pod as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn run_pod(
    client: &mut RuntimeServiceClient<Channel>,
    rec: &Recorder,
    args: &Args,
    run_id: u32,
    i: usize,
) -> Option<String> {
    let request = RunPodSandboxRequest {
        config: Some(pod_config(args, run_id, i)),
        runtime_handler: args.runtime_handler.clone(),
    };
    rec.time("RunPodSandbox", client.run_pod_sandbox(request))
        .await
        .map(|r| r.pod_sandbox_id)
}

async fn stop_and_remove(client: &mut RuntimeServiceClient<Channel>, rec: &Recorder, id: &str) {
    let stop = StopPodSandboxRequest {
        pod_sandbox_id: id.to_string(),
    };
    rec.time("StopPodSandbox", client.stop_pod_sandbox(stop))
        .await;
    let remove = RemovePodSandboxRequest {
        pod_sandbox_id: id.to_string(),
    };
    rec.time("RemovePodSandbox", client.remove_pod_sandbox(remove))
        .await;
}

fn container_config(args: &Args, name: String) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata { name, attempt: 0 }),
        image: Some(ImageSpec {
            image: args.image.clone().unwrap_or_default(),
            ..Default::default()
        }),
        command: args.command.clone(),
        args: args.args.clone(),
        ..Default::default()
    }
}

/// CreateContainer + StartContainer; records their sum as "Create+Start".
async fn start_container(
    client: &mut RuntimeServiceClient<Channel>,
    rec: &Recorder,
    args: &Args,
    pod_id: &str,
    name: String,
) -> Option<String> {
    let started = Instant::now();
    let create = CreateContainerRequest {
        pod_sandbox_id: pod_id.to_string(),
        config: Some(container_config(args, name)),
        sandbox_config: None,
    };
    let id = rec
        .time("CreateContainer", client.create_container(create))
        .await?
        .container_id;
    let start = StartContainerRequest {
        container_id: id.clone(),
    };
    rec.time("StartContainer", client.start_container(start))
        .await?;
    rec.record("Create+Start", started.elapsed()).await;
    Some(id)
}

/// The containers whose STOPPED event has come, from one GetContainerEvents stream.
#[derive(Default)]
struct Exits {
    seen: std::sync::Mutex<std::collections::HashSet<String>>,
    arrived: tokio::sync::Notify,
}

impl Exits {
    /// Subscribes to the runtime's events; None (with a note) when it has none.
    async fn follow(channel: Channel) -> Option<Arc<Exits>> {
        let mut client = RuntimeServiceClient::new(channel);
        let mut stream = match client.get_container_events(GetEventsRequest {}).await {
            Ok(response) => response.into_inner(),
            Err(e) => {
                eprintln!("crishim-bench: no container events ({e}); polling ContainerStatus");
                return None;
            }
        };
        let exits = Arc::new(Exits::default());
        let followed = exits.clone();
        tokio::spawn(async move {
            while let Ok(Some(event)) = stream.message().await {
                if event.container_event_type == ContainerEventType::ContainerStoppedEvent as i32 {
                    followed
                        .seen
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(event.container_id);
                    followed.arrived.notify_waiters();
                }
            }
        });
        Some(exits)
    }

    /// Waits up to 60 s for container `id`'s STOPPED event.
    async fn wait(&self, id: &str) -> bool {
        let waited = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                let arrived = self.arrived.notified();
                tokio::pin!(arrived);
                arrived.as_mut().enable();
                if self
                    .seen
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(id)
                {
                    return;
                }
                arrived.await;
            }
        });
        waited.await.is_ok()
    }
}

/// Follows exits by events when `--exit-seen events` and the runtime has them.
async fn follow_exits(args: &Args, channel: &Channel) -> Option<Arc<Exits>> {
    match args.exit_seen {
        ExitSeen::Events => Exits::follow(channel.clone()).await,
        ExitSeen::Poll => None,
    }
}

/// Waits for container `id` to exit (at most a minute): its event, or else ContainerStatus
/// polls; false when it did not.
async fn wait_exited(
    client: &mut RuntimeServiceClient<Channel>,
    exits: Option<&Exits>,
    id: &str,
) -> bool {
    if let Some(exits) = exits {
        return exits.wait(id).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let request = ContainerStatusRequest {
            container_id: id.to_string(),
            verbose: false,
        };
        let exited = client.container_status(request).await.ok().and_then(|r| {
            r.into_inner()
                .status
                .map(|s| s.state == ContainerState::ContainerExited as i32)
        });
        if exited == Some(true) {
            return true;
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    false
}

/// Pulls `--image` once, for the container scenarios.
async fn pull_image(channel: Channel, args: &Args) -> Result<(), String> {
    let image = args
        .image
        .clone()
        .ok_or("the container scenarios need --image")?;
    let pull = PullImageRequest {
        image: Some(ImageSpec {
            image,
            ..Default::default()
        }),
        auth: None,
        sandbox_config: None,
    };
    ImageServiceClient::new(channel)
        .pull_image(pull)
        .await
        .map(drop)
        .map_err(|e| format!("PullImage: {}", e.message()))
}

/// Runs `per_pod` for pod indexes 0..count, `concurrency` at a time, each worker on its own
/// connection as separate kubelet goroutines would share one; returns the wall time.
async fn drive<F, Fut>(args: &Args, channel: Channel, per_pod: F) -> Duration
where
    F: Fn(RuntimeServiceClient<Channel>, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let per_pod = Arc::new(per_pod);
    let start = Instant::now();
    let workers: Vec<_> = (0..args.concurrency.max(1))
        .map(|_| {
            let next = next.clone();
            let per_pod = per_pod.clone();
            let client = RuntimeServiceClient::new(channel.clone());
            let count = args.count;
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        break;
                    }
                    per_pod(client.clone(), i).await;
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
    start.elapsed()
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let channel = match cri_proto::connect(&args.endpoint).await {
        Ok(channel) => channel,
        Err(e) => {
            eprintln!("crishim-bench: cannot connect to {}: {e}", args.endpoint);
            return ExitCode::FAILURE;
        }
    };
    let rec = Arc::new(Recorder::default());
    let run_id = std::process::id();
    let wall = match args.scenario {
        Scenario::SandboxLifecycle => {
            let (rec2, args2) = (rec.clone(), args.clone());
            drive(&args, channel, move |mut client, i| {
                let (rec, args) = (rec2.clone(), args2.clone());
                async move {
                    let Some(id) = run_pod(&mut client, &rec, &args, run_id, i).await else {
                        return;
                    };
                    let status = PodSandboxStatusRequest {
                        pod_sandbox_id: id.clone(),
                        verbose: false,
                    };
                    rec.time("PodSandboxStatus", client.pod_sandbox_status(status))
                        .await;
                    stop_and_remove(&mut client, &rec, &id).await;
                }
            })
            .await
        }
        Scenario::IdlePods => {
            let ids = Arc::new(Mutex::new(Vec::new()));
            let (rec2, args2, ids2) = (rec.clone(), args.clone(), ids.clone());
            let wall = drive(&args, channel.clone(), move |mut client, i| {
                let (rec, args, ids) = (rec2.clone(), args2.clone(), ids2.clone());
                async move {
                    if let Some(id) = run_pod(&mut client, &rec, &args, run_id, i).await {
                        ids.lock().await.push(id);
                    }
                }
            })
            .await;
            hold_then_remove(&args, channel, &rec, &ids.lock().await, "pods running").await;
            wall
        }
        Scenario::ContainerRun
        | Scenario::PodToExit
        | Scenario::IdleContainerPods
        | Scenario::ContainerLifecycle => {
            if let Err(e) = pull_image(channel.clone(), &args).await {
                eprintln!("crishim-bench: {e}");
                return ExitCode::FAILURE;
            }
            match args.scenario {
                Scenario::ContainerRun | Scenario::ContainerLifecycle => {
                    containers_in_one_pod(&args, channel, rec.clone(), run_id).await
                }
                Scenario::PodToExit => pod_to_exit(&args, channel, rec.clone(), run_id).await,
                _ => idle_container_pods(&args, channel, rec.clone(), run_id).await,
            }
        }
        Scenario::Pull => {
            let Some(image) = args.image.clone() else {
                eprintln!("crishim-bench: the pull scenario needs --image");
                return ExitCode::FAILURE;
            };
            let mut images = ImageServiceClient::new(channel);
            let spec = Some(ImageSpec {
                image,
                ..Default::default()
            });
            let start = Instant::now();
            for i in 0..args.count {
                let pull = PullImageRequest {
                    image: spec.clone(),
                    auth: None,
                    sandbox_config: None,
                };
                rec.time("PullImage", images.pull_image(pull)).await;
                if args.keep && i + 1 == args.count {
                    break;
                }
                let remove = RemoveImageRequest {
                    image: spec.clone(),
                };
                rec.time("RemoveImage", images.remove_image(remove)).await;
            }
            start.elapsed()
        }
    };

    let samples = rec.samples.lock().await;
    let report = Report {
        scenario: args.scenario,
        endpoint: args.endpoint.clone(),
        count: args.count,
        concurrency: args.concurrency,
        errors: rec.errors.load(Ordering::Relaxed),
        wall_seconds: wall.as_secs_f64(),
        pods_per_second: args.count as f64 / wall.as_secs_f64().max(1e-9),
        rpcs: samples.iter().map(|(rpc, s)| (*rpc, s.stats())).collect(),
    };
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(e) => eprintln!("crishim-bench: {e}"),
        }
    } else {
        print_table(&report);
    }
    if let Some(error) = rec.first_error.lock().await.as_ref() {
        eprintln!(
            "crishim-bench: {} calls failed; first: {error}",
            report.errors
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// `container-run` and `container-lifecycle`: `--count` containers in one pod; each is run to
/// its exit (RunToExit recorded), or stopped, then removed.
async fn containers_in_one_pod(
    args: &Args,
    channel: Channel,
    rec: Arc<Recorder>,
    run_id: u32,
) -> Duration {
    let mut client = RuntimeServiceClient::new(channel.clone());
    let Some(pod) = run_pod(&mut client, &rec, args, run_id, 0).await else {
        return Duration::ZERO;
    };
    let exits = follow_exits(args, &channel).await;
    let (rec2, args2, pod2) = (rec.clone(), args.clone(), pod.clone());
    let wall = drive(args, channel, move |mut client, i| {
        let (rec, args, pod, exits) = (rec2.clone(), args2.clone(), pod2.clone(), exits.clone());
        async move {
            let started = Instant::now();
            let name = format!("bench-{i}");
            let Some(id) = start_container(&mut client, &rec, &args, &pod, name).await else {
                return;
            };
            if matches!(args.scenario, Scenario::ContainerLifecycle) {
                let stop = StopContainerRequest {
                    container_id: id.clone(),
                    timeout: args.stop_timeout,
                };
                rec.time("StopContainer", client.stop_container(stop)).await;
            } else if wait_exited(&mut client, exits.as_deref(), &id).await {
                rec.record("RunToExit", started.elapsed()).await;
            } else {
                rec.fail(format!("container {id} did not exit")).await;
                return;
            }
            let remove = RemoveContainerRequest { container_id: id };
            rec.time("RemoveContainer", client.remove_container(remove))
                .await;
        }
    })
    .await;
    stop_and_remove(&mut client, &rec, &pod).await;
    wall
}

async fn pod_to_exit(args: &Args, channel: Channel, rec: Arc<Recorder>, run_id: u32) -> Duration {
    let exits = follow_exits(args, &channel).await;
    let (rec2, args2) = (rec.clone(), args.clone());
    drive(args, channel, move |mut client, i| {
        let (rec, args, exits) = (rec2.clone(), args2.clone(), exits.clone());
        async move {
            let started = Instant::now();
            let Some(pod) = run_pod(&mut client, &rec, &args, run_id, i).await else {
                return;
            };
            let name = "bench".to_string();
            if let Some(id) = start_container(&mut client, &rec, &args, &pod, name).await {
                if wait_exited(&mut client, exits.as_deref(), &id).await {
                    rec.record("PodToExit", started.elapsed()).await;
                } else {
                    rec.fail(format!("container {id} did not exit")).await;
                }
            }
            stop_and_remove(&mut client, &rec, &pod).await;
        }
    })
    .await
}

async fn idle_container_pods(
    args: &Args,
    channel: Channel,
    rec: Arc<Recorder>,
    run_id: u32,
) -> Duration {
    let pods = Arc::new(Mutex::new(Vec::new()));
    let (rec2, args2, pods2) = (rec.clone(), args.clone(), pods.clone());
    let wall = drive(args, channel.clone(), move |mut client, i| {
        let (rec, args, pods) = (rec2.clone(), args2.clone(), pods2.clone());
        async move {
            let Some(pod) = run_pod(&mut client, &rec, &args, run_id, i).await else {
                return;
            };
            let name = "idle".to_string();
            if start_container(&mut client, &rec, &args, &pod, name)
                .await
                .is_some()
            {
                pods.lock().await.push(pod);
            }
        }
    })
    .await;
    let pods = pods.lock().await;
    hold_then_remove(args, channel, &rec, &pods, "pods with a running container").await;
    wall
}

/// Writes the ready file (the number of `pods`), holds the pods `--hold-secs` (memory is
/// measured meanwhile), then stops and removes them.
async fn hold_then_remove(
    args: &Args,
    channel: Channel,
    rec: &Recorder,
    pods: &[String],
    what: &str,
) {
    if let Some(file) = &args.ready_file {
        let _ = std::fs::write(file, format!("{}\n", pods.len()));
    }
    eprintln!(
        "crishim-bench: {} {what}; holding them {}s",
        pods.len(),
        args.hold_secs
    );
    tokio::time::sleep(Duration::from_secs(args.hold_secs)).await;
    let mut client = RuntimeServiceClient::new(channel);
    for pod in pods {
        stop_and_remove(&mut client, rec, pod).await;
    }
}

fn print_table(report: &Report) {
    println!(
        "{} against {}: {} pods, concurrency {}, {:.2} s wall, {:.1} pods/s, {} errors",
        serde_json::to_value(report.scenario)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
        report.endpoint,
        report.count,
        report.concurrency,
        report.wall_seconds,
        report.pods_per_second,
        report.errors
    );
    println!(
        "{:<18} {:>6} {:>9} {:>9} {:>9} {:>9}",
        "rpc", "count", "p50 ms", "p90 ms", "p99 ms", "max ms"
    );
    for (rpc, s) in &report.rpcs {
        println!(
            "{rpc:<18} {:>6} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
            s.count, s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples = Samples((1..=100).map(|ms| ms as f64 / 1e3).collect());
        let stats = samples.stats();
        assert_eq!(stats.count, 100);
        assert!((stats.p50_ms - 50.0).abs() < 1e-9);
        assert!((stats.p90_ms - 90.0).abs() < 1e-9);
        assert!((stats.p99_ms - 99.0).abs() < 1e-9);
        assert!((stats.max_ms - 100.0).abs() < 1e-9);
        assert_eq!(Samples::default().stats().count, 0);
    }
}
