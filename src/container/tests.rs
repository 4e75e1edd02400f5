//! Container lifecycle logic against fakes: a fake monitor client, fake pod monitors, mounts
//! and cgroups; no root, no processes.

use std::sync::Arc;

use cri_proto::{
    ContainerConfig, ContainerEventType, ContainerMetadata, ContainerState, PodSandboxConfig,
};

use super::ContainerManager;
use crate::config::{Config, PodNetworkMode};
use crate::error::Error;
use crate::image::service::Images;
use crate::monitor::client::FakeMonitorClient;
use crate::monitor::launcher::FakeMonitors;
use crate::monitor::protocol::Request;
use crate::network::PodNetworks;
use crate::network::exec::FakePluginExec;
use crate::os::cgroup::FakeCgroups;
use crate::os::mount::FakeMounter;
use crate::runtime::linux::launch::{ExecOutcome, LinuxLaunch};
use crate::runtime::wasm::binary::WasmBinary;
use crate::runtime::wasm::launch::{ExitRecord, WasmLaunch};
use crate::sandbox::{SandboxHost, SandboxManager};
use crate::store::checkpoint;
use crate::store::container::{
    CONTAINER_CHECKPOINT_VERSION, ContainerBackend, ContainerPhase, ContainerRecord,
};
use crate::store::layout::Layout;

struct Fixture {
    _dir: tempfile::TempDir,
    config: Arc<Config>,
    sandboxes: Arc<SandboxManager>,
    images: Arc<Images>,
    monitor: Arc<FakeMonitorClient>,
    cgroups: Arc<FakeCgroups>,
    pod: String,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let config = Arc::new(Config {
            root: dir.path().join("root"),
            state: dir.path().join("state"),
            pod_network: PodNetworkMode::None,
            ..Config::default()
        });
        let host = SandboxHost {
            mounts: Arc::new(FakeMounter::default()),
            cgroups: Arc::new(FakeCgroups::default()),
            monitors: Arc::new(FakeMonitors::default()),
            network: Arc::new(PodNetworks::new(
                PodNetworkMode::None,
                dir.path().join("net.d"),
                Arc::new(FakePluginExec::default()),
            )),
        };
        let sandboxes = Arc::new(SandboxManager::new(config.clone(), host));
        let pod = sandboxes
            .run(cri_proto::RunPodSandboxRequest {
                config: Some(PodSandboxConfig {
                    metadata: Some(cri_proto::PodSandboxMetadata {
                        name: "p".into(),
                        uid: "u".into(),
                        namespace: "n".into(),
                        attempt: 0,
                    }),
                    ..Default::default()
                }),
                runtime_handler: String::new(),
            })
            .unwrap()
            .id;
        let images = Arc::new(Images::open(config.clone()).unwrap());
        Fixture {
            _dir: dir,
            config,
            sandboxes,
            images,
            monitor: Arc::new(FakeMonitorClient::default()),
            cgroups: Arc::new(FakeCgroups::default()),
            pod,
        }
    }

    fn manager(&self) -> ContainerManager {
        ContainerManager::new(
            self.config.clone(),
            self.images.clone(),
            self.sandboxes.clone(),
            self.monitor.clone(),
            Arc::new(FakeMounter::default()),
            self.cgroups.clone(),
        )
    }

    fn layout(&self) -> Layout {
        Layout::new(&self.config.root, &self.config.state)
    }

    /// A record of container `id` in `phase`, checkpointed.
    fn record(&self, id: &str, name: &str, phase: ContainerPhase) -> ContainerRecord {
        let layout = self.layout();
        let record = ContainerRecord {
            version: CONTAINER_CHECKPOINT_VERSION,
            id: id.into(),
            pod_id: self.pod.clone(),
            config: ContainerConfig {
                metadata: Some(ContainerMetadata {
                    name: name.into(),
                    attempt: 0,
                }),
                ..Default::default()
            },
            image_id: "sha256:i".into(),
            image_ref: String::new(),
            backend: ContainerBackend::Wasm {
                launch: WasmLaunch {
                    container_id: id.into(),
                    artifact: "/nonexistent.cwasm".into(),
                    binary: WasmBinary::Module,
                    argv: vec!["m.wasm".into()],
                    env: Vec::new(),
                    preopens: Vec::new(),
                    memory_limit: None,
                    log_path: None,
                    exit_file: layout.container_exit(id),
                    stdin: Default::default(),
                },
            },
            selected_by: "test".into(),
            phase,
            created_at: 1,
            started_at: 0,
            log_path: None,
            bundle: None,
            exit: None,
        };
        checkpoint::write(&layout.container_checkpoint(id), &record).unwrap();
        record
    }

    /// A record of Linux container `id` in `phase`, checkpointed.
    fn linux_record(&self, id: &str, name: &str, phase: ContainerPhase) -> ContainerRecord {
        let layout = self.layout();
        let mut record = self.record(id, name, phase);
        record.backend = ContainerBackend::Linux {
            user: Default::default(),
            launch: LinuxLaunch {
                container_id: id.into(),
                bundle: layout.container_bundle(&self.pod, id),
                state_root: layout.linux_state_root(&self.pod),
                cgroup: format!("/crishim-{id}"),
                stop_signal: libc::SIGTERM,
                log_path: None,
                exit_file: layout.container_exit(id),
                stdin: Default::default(),
            },
        };
        checkpoint::write(&layout.container_checkpoint(id), &record).unwrap();
        record
    }

    fn write_exit(&self, id: &str, code: i32) {
        let exit = ExitRecord {
            started_at: 4,
            exit_code: code,
            finished_at: 5,
            reason: "Error".into(),
            message: String::new(),
        };
        checkpoint::write(&self.layout().container_exit(id), &exit).unwrap();
    }
}

fn state(manager: &ContainerManager, id: &str) -> (i32, i32) {
    let status = manager.status(id, false).unwrap().status.unwrap();
    (status.state, status.exit_code)
}

/// Container `id` is reported exited with 137 because its pod's monitor ended.
fn assert_ended_with_its_monitor(manager: &ContainerManager, id: &str) {
    let status = manager.status(id, false).unwrap().status.unwrap();
    assert_eq!(status.state, ContainerState::ContainerExited as i32);
    assert_eq!((status.exit_code, status.reason.as_str()), (137, "Error"));
    assert!(
        status.message.contains("monitor ended"),
        "{}",
        status.message
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn recovery_undoes_creating_records_and_picks_up_recorded_exits() {
    let fx = Fixture::new();
    fx.record("a", "creating", ContainerPhase::Creating);
    fx.record("b", "created", ContainerPhase::Created);
    fx.record("c", "running", ContainerPhase::Running);
    fx.write_exit("c", 3);
    std::fs::write(fx.layout().container_checkpoint("d"), "{").unwrap();
    let manager = fx.manager();
    assert_eq!(manager.recover().await.unwrap(), 2);
    assert!(
        !fx.layout().container_checkpoint("a").exists(),
        "the half-created one is undone"
    );
    assert!(
        fx.monitor.requests().contains(&Request::RemoveContainer {
            container_id: "a".into()
        }),
        "and its monitor told to forget it"
    );
    assert_eq!(
        state(&manager, "b").0,
        ContainerState::ContainerCreated as i32
    );
    assert_eq!(
        state(&manager, "c"),
        (ContainerState::ContainerExited as i32, 3)
    );
    let saved: ContainerRecord = checkpoint::read(&fx.layout().container_checkpoint("c")).unwrap();
    assert_eq!(
        saved.phase,
        ContainerPhase::Running,
        "an exit the monitor recorded is not written again: its exit file is the record"
    );
    let restarted = fx.manager();
    restarted.recover().await.unwrap();
    assert_eq!(
        state(&restarted, "c"),
        (ContainerState::ContainerExited as i32, 3),
        "a later restart reads the same exit"
    );
    assert!(
        fx.layout().container_checkpoint("d").exists(),
        "a corrupt record is left alone"
    );
    assert!(matches!(
        manager.status("a", false),
        Err(Error::NotFound(_))
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn recovery_learns_starts_from_the_monitor_and_removes_what_no_record_names() {
    let fx = Fixture::new();
    fx.record("known", "known", ContainerPhase::Created);
    fx.record("started", "started", ContainerPhase::Created);
    fx.record("ended", "ended", ContainerPhase::Created);
    fx.write_exit("ended", 3);
    *fx.monitor.held.lock().unwrap() = vec!["known".into(), "started".into(), "ghost".into()];
    *fx.monitor.held_started.lock().unwrap() = [("started".to_string(), 77)].into();
    let manager = fx.manager();
    manager.recover().await.unwrap();
    manager
        .reconcile_with_monitors(std::slice::from_ref(&fx.pod))
        .await;
    let removed: Vec<Request> = fx
        .monitor
        .requests()
        .into_iter()
        .filter(|r| matches!(r, Request::RemoveContainer { .. }))
        .collect();
    assert_eq!(
        removed,
        vec![Request::RemoveContainer {
            container_id: "ghost".into()
        }],
        "only the container no record names is removed"
    );
    assert_eq!(
        state(&manager, "known").0,
        ContainerState::ContainerCreated as i32
    );
    let started = manager.status("started", false).unwrap().status.unwrap();
    assert_eq!(
        (started.state, started.started_at),
        (ContainerState::ContainerRunning as i32, 77),
        "a start the monitor knows is running again, from when the monitor says"
    );
    let ended = manager.status("ended", false).unwrap().status.unwrap();
    assert_eq!(
        (ended.state, ended.exit_code, ended.started_at),
        (ContainerState::ContainerExited as i32, 3, 4),
        "one the live monitor forgot when it ended is known from its exit record"
    );
    let before = fx.monitor.requests().len();
    manager.remove("ended").await.unwrap();
    assert_eq!(
        fx.monitor.requests().len(),
        before,
        "its removal has nothing to ask the monitor"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn recovery_takes_starts_of_pods_whose_monitor_is_gone_from_their_exit_records() {
    let fx = Fixture::new();
    fx.record("ran", "ran", ContainerPhase::Created);
    fx.write_exit("ran", 2);
    fx.record("never", "never", ContainerPhase::Created);
    let manager = fx.manager();
    manager.recover().await.unwrap();
    manager.reconcile_with_monitors(&[]).await;
    let ran = manager.status("ran", false).unwrap().status.unwrap();
    assert_eq!(
        (ran.state, ran.exit_code, ran.started_at, ran.finished_at),
        (ContainerState::ContainerExited as i32, 2, 4, 5),
        "its exit record says it ran, and when"
    );
    assert_eq!(
        state(&manager, "never").0,
        ContainerState::ContainerCreated as i32
    );
    assert!(
        fx.monitor.requests().is_empty(),
        "no monitor is asked: none is live"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn start_and_stop_go_through_the_monitor_and_the_exit_file() {
    let fx = Fixture::new();
    fx.record("a", "x", ContainerPhase::Created);
    let manager = fx.manager();
    manager.recover().await.unwrap();
    manager.start("a").await.unwrap();
    let running = manager.status("a", false).unwrap().status.unwrap();
    assert_eq!(running.state, ContainerState::ContainerRunning as i32);
    assert!(running.started_at > 0, "the monitor's start time");
    let saved: ContainerRecord = checkpoint::read(&fx.layout().container_checkpoint("a")).unwrap();
    assert_eq!(
        saved.phase,
        ContainerPhase::Created,
        "a start is not checkpointed: recovery asks the monitor"
    );
    assert!(matches!(
        manager.start("a").await,
        Err(Error::FailedPrecondition(_))
    ));
    let exit_file = fx.layout().container_exit("a");
    let code = 137;
    *fx.monitor.on_request.lock().unwrap() = Some(Box::new(move |request| {
        if matches!(request, Request::StopContainer { .. }) {
            let exit = ExitRecord {
                exit_code: code,
                finished_at: 9,
                reason: "Error".into(),
                message: "stopped by StopContainer".into(),
                ..ExitRecord::default()
            };
            checkpoint::write(&exit_file, &exit).unwrap();
        }
    }));
    manager.stop("a", 2).await.unwrap();
    let stops: Vec<_> = fx
        .monitor
        .requests()
        .into_iter()
        .filter(|r| matches!(r, Request::StopContainer { .. }))
        .collect();
    assert_eq!(
        stops,
        vec![Request::StopContainer {
            container_id: "a".into(),
            timeout_ms: 2000
        }]
    );
    assert_eq!(
        state(&manager, "a"),
        (ContainerState::ContainerExited as i32, 137)
    );
    manager.stop("a", 2).await.unwrap();
    manager.stop("unknown", 0).await.unwrap();
    manager.remove("a").await.unwrap();
    manager.remove("a").await.unwrap();
    assert!(!fx.layout().container_checkpoint("a").exists());
    assert!(!fx.layout().container_exit("a").exists());
    assert!(matches!(
        manager.status("a", false),
        Err(Error::NotFound(_))
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn reopening_the_log_of_a_container_that_just_ended_is_a_failed_precondition() {
    let fx = Fixture::new();
    fx.record("a", "x", ContainerPhase::Running);
    let manager = fx.manager();
    manager.recover().await.unwrap();
    manager.reopen_log("a").await.unwrap();
    // It ends between the daemon's look and the monitor's answer: the monitor forgot it.
    let exit_file = fx.layout().container_exit("a");
    *fx.monitor.on_request.lock().unwrap() = Some(Box::new(move |_| {
        checkpoint::write(&exit_file, &ExitRecord::default()).unwrap();
    }));
    *fx.monitor.fail_with.lock().unwrap() = Some(|| Error::NotFound("no container a".into()));
    assert!(matches!(
        manager.reopen_log("a").await,
        Err(Error::FailedPrecondition(_))
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn record_and_exit_files_come_from_the_file_pool_and_go_back_to_it() {
    let fx = Fixture::new();
    let layout = fx.layout();
    let pooled = || std::fs::read_dir(layout.file_pool_dir()).unwrap().count();
    fx.record("a", "x", ContainerPhase::Created);
    let manager = fx.manager();
    manager.recover().await.unwrap();
    manager.remove("a").await.unwrap();
    assert_eq!(pooled(), 1, "the removed record's file is kept");

    let b = fx.record("b", "y", ContainerPhase::Created);
    let manager = fx.manager();
    manager.recover().await.unwrap();
    manager.provide_exit_file(&b);
    let exit_temp = checkpoint::temp_path(&layout.container_exit("b"));
    assert!(exit_temp.is_file(), "a pooled file waits for the exit");
    assert_eq!(pooled(), 0);
    manager.remove("b").await.unwrap();
    assert!(!exit_temp.exists());
    assert_eq!(
        pooled(),
        2,
        "the record and the unused exit file of a container that never ran"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn recovery_keeps_the_exit_files_waiting_for_known_containers_only() {
    let fx = Fixture::new();
    let layout = fx.layout();
    fx.record("live", "x", ContainerPhase::Running);
    let waiting = checkpoint::temp_path(&layout.container_exit("live"));
    let unclaimed = checkpoint::temp_path(&layout.container_exit("gone"));
    let torn = checkpoint::temp_path(&layout.container_checkpoint("torn"));
    for file in [&waiting, &unclaimed, &torn] {
        std::fs::write(file, b"").unwrap();
    }
    let manager = fx.manager();
    assert_eq!(manager.recover().await.unwrap(), 1);
    assert!(waiting.exists(), "its monitor may be writing the exit now");
    assert!(!unclaimed.exists() && !torn.exists());
    let pooled = std::fs::read_dir(layout.file_pool_dir()).unwrap().count();
    assert_eq!(pooled, 2, "what no container claims is kept for reuse");
}

#[tokio::test(flavor = "multi_thread")]
async fn records_in_the_directories_of_an_earlier_layout_are_moved_out_and_removed_whole() {
    let fx = Fixture::new();
    let layout = fx.layout();
    let legacy = layout.legacy_container_dir("old");
    let mut record = fx.record("old", "x", ContainerPhase::Running);
    if let ContainerBackend::Wasm { launch } = &mut record.backend {
        launch.exit_file = legacy.join("exit.json");
    }
    std::fs::remove_file(layout.container_checkpoint("old")).unwrap();
    checkpoint::write(&legacy.join("state.json"), &record).unwrap();
    let exit = ExitRecord {
        exit_code: 7,
        ..ExitRecord::default()
    };
    checkpoint::write(&legacy.join("exit.json"), &exit).unwrap();
    let torn = layout.containers_dir().join("new.json.tmp");
    std::fs::write(&torn, b"{").unwrap();
    let manager = fx.manager();
    assert_eq!(manager.recover().await.unwrap(), 1);
    assert!(
        layout.container_checkpoint("old").is_file(),
        "the checkpoint is at today's place"
    );
    assert!(!torn.exists(), "a temp file a crash left is deleted");
    assert_eq!(
        state(&manager, "old"),
        (ContainerState::ContainerExited as i32, 7),
        "the exit is read where its monitor wrote it"
    );
    manager.remove("old").await.unwrap();
    let left: Vec<_> = std::fs::read_dir(layout.containers_dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");

    let outside = layout.root().join("outside.json");
    std::fs::write(&outside, b"{}").unwrap();
    let mut elsewhere = fx.record("elsewhere", "y", ContainerPhase::Created);
    if let ContainerBackend::Wasm { launch } = &mut elsewhere.backend {
        launch.exit_file = outside.clone();
    }
    checkpoint::write(&layout.container_checkpoint("elsewhere"), &elsewhere).unwrap();
    let manager = fx.manager();
    manager.recover().await.unwrap();
    manager.remove("elsewhere").await.unwrap();
    assert!(
        outside.exists(),
        "nothing outside the containers dir is deleted"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_container_whose_monitor_is_gone_is_reported_exited() {
    let fx = Fixture::new();
    fx.record("a", "x", ContainerPhase::Running);
    let manager = fx.manager();
    manager.recover().await.unwrap();
    assert_eq!(
        state(&manager, "a").0,
        ContainerState::ContainerRunning as i32
    );
    *fx.monitor.fail_with.lock().unwrap() =
        Some(|| Error::Unavailable("monitor socket refused".into()));
    manager.stop_pod(&fx.pod).await.unwrap();
    fx.sandboxes.stop(&fx.pod).unwrap();
    assert_ended_with_its_monitor(&manager, "a");
    manager.remove_pod(&fx.pod).await.unwrap();
    assert!(manager.list(None).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exit_record_torn_by_a_host_crash_counts_only_once_the_monitor_is_gone() {
    let fx = Fixture::new();
    fx.record("a", "x", ContainerPhase::Running);
    std::fs::write(fx.layout().container_exit("a"), b"").unwrap();
    let manager = fx.manager();
    manager.recover().await.unwrap();
    assert!(
        matches!(manager.status("a", false), Err(Error::InvalidArgument(m)) if m.contains("corrupt checkpoint")),
        "a live monitor's exit record is never torn: reading one is an error"
    );
    fx.sandboxes.stop(&fx.pod).unwrap();
    assert_ended_with_its_monitor(&manager, "a");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reported_exit_is_taken_at_once_only_when_no_operation_holds_the_container() {
    let fx = Fixture::new();
    fx.record("a", "x", ContainerPhase::Running);
    let manager = fx.manager();
    manager.recover().await.unwrap();
    fx.write_exit("a", 4);
    let entry = manager.entry("a").unwrap();
    let op = entry.lock_op().await;
    assert!(
        !manager.notice_exit_unless_busy("a"),
        "held: the caller must wait for the operation"
    );
    assert_eq!(entry.snapshot().phase, ContainerPhase::Running);
    drop(op);
    assert!(manager.notice_exit_unless_busy("a"));
    assert_eq!(entry.snapshot().phase, ContainerPhase::Exited);
    assert!(
        manager.notice_exit_unless_busy("gone"),
        "an unknown id was removed since: nothing to wait for"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn exits_missed_while_nobody_followed_the_monitor_are_read_from_their_files() {
    let fx = Fixture::new();
    fx.record("ended", "x", ContainerPhase::Running);
    fx.record("running", "y", ContainerPhase::Running);
    fx.write_exit("ended", 6);
    let manager = fx.manager();
    manager.recover().await.unwrap();
    let mut events = manager.subscribe_events();
    manager.notice_exits_of_pod(&fx.pod).await;
    let entry = |id: &str| manager.entry(id).unwrap().snapshot();
    assert_eq!(entry("ended").phase, ContainerPhase::Exited);
    assert_eq!(entry("ended").exit.unwrap().exit_code, 6);
    assert_eq!(entry("running").phase, ContainerPhase::Running);
    let stopped = events.try_recv().unwrap();
    assert_eq!(
        (stopped.container_id.as_str(), stopped.container_event_type),
        ("ended", ContainerEventType::ContainerStoppedEvent as i32)
    );
    assert!(events.try_recv().is_err(), "nothing for the running one");
}

#[tokio::test(flavor = "multi_thread")]
async fn events_carry_the_pod_and_its_containers_and_an_exit_is_told_once() {
    let fx = Fixture::new();
    fx.record("a", "x", ContainerPhase::Created);
    let manager = fx.manager();
    manager.recover().await.unwrap();
    manager.start("a").await.unwrap();
    assert!(
        manager.pod_status_for_event(&fx.pod).is_none(),
        "nothing is built while nobody listens"
    );
    let mut events = manager.subscribe_events();
    manager.start("b").await.unwrap_err();
    fx.write_exit("a", 4);
    manager.notice_exit("a").await;
    manager.notice_exit("a").await;
    manager.status("a", false).unwrap();
    manager.remove("a").await.unwrap();
    let stopped = events.try_recv().unwrap();
    assert_eq!(
        (stopped.container_id.as_str(), stopped.container_event_type),
        ("a", ContainerEventType::ContainerStoppedEvent as i32)
    );
    assert_eq!(stopped.pod_sandbox_status.as_ref().unwrap().id, fx.pod);
    let statuses: Vec<(String, i32, i32)> = stopped
        .containers_statuses
        .iter()
        .map(|s| (s.id.clone(), s.state, s.exit_code))
        .collect();
    assert_eq!(
        statuses,
        vec![("a".into(), ContainerState::ContainerExited as i32, 4)]
    );
    let deleted = events.try_recv().unwrap();
    assert_eq!(
        (deleted.container_id.as_str(), deleted.container_event_type),
        ("a", ContainerEventType::ContainerDeletedEvent as i32)
    );
    assert!(deleted.containers_statuses.is_empty());
    assert!(
        events.try_recv().is_err(),
        "one STOPPED however often the exit is seen, and nothing for a failed start"
    );

    manager.publish_pod_event(&fx.pod, ContainerEventType::ContainerStoppedEvent);
    let pod = manager.pod_status_for_event(&fx.pod).unwrap();
    fx.sandboxes.stop(&fx.pod).unwrap();
    fx.sandboxes.remove(&fx.pod).unwrap();
    manager.publish_pod_event(&fx.pod, ContainerEventType::ContainerStartedEvent);
    manager.publish_pod_deleted(pod);
    let kinds: Vec<(String, i32)> = std::iter::from_fn(|| events.try_recv().ok())
        .map(|e| (e.container_id.clone(), e.container_event_type))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (
                fx.pod.clone(),
                ContainerEventType::ContainerStoppedEvent as i32
            ),
            (
                fx.pod.clone(),
                ContainerEventType::ContainerDeletedEvent as i32
            ),
        ],
        "a pod's own events; none for a pod that is gone, but its DELETED from the status taken before"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn creating_needs_a_ready_pod_and_a_pulled_image() {
    let fx = Fixture::new();
    let manager = fx.manager();
    let request = |pod: &str, image: &str| cri_proto::CreateContainerRequest {
        pod_sandbox_id: pod.into(),
        config: Some(ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: "c".into(),
                attempt: 0,
            }),
            image: Some(cri_proto::ImageSpec {
                image: image.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        sandbox_config: None,
    };
    assert!(matches!(
        manager.create(request(&fx.pod, "nothing:here")).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        manager.create(request("missing", "x")).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        manager.create(request(&fx.pod, "")).await,
        Err(Error::InvalidArgument(_))
    ));
    fx.sandboxes.stop(&fx.pod).unwrap();
    assert!(matches!(
        manager.create(request(&fx.pod, "x")).await,
        Err(Error::FailedPrecondition(_))
    ));
    assert!(
        fx.monitor.requests().is_empty(),
        "nothing reached the monitor"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn resources_of_a_linux_container_are_updated_in_its_cgroup_and_record() {
    let fx = Fixture::new();
    fx.linux_record("l", "linux", ContainerPhase::Running);
    fx.record("w", "wasm", ContainerPhase::Running);
    let manager = fx.manager();
    manager.recover().await.unwrap();
    let resources = cri_proto::LinuxContainerResources {
        memory_limit_in_bytes: 1 << 30,
        cpu_shares: 512,
        ..Default::default()
    };
    manager
        .update_resources("l", Some(resources.clone()))
        .await
        .unwrap();
    let updates = fx.cgroups.updates.lock().unwrap().clone();
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].0, "/crishim-l");
    let limits = &updates[0].1;
    assert_eq!(limits.memory().as_ref().unwrap().limit(), Some(1 << 30));
    assert_eq!(limits.cpu().as_ref().unwrap().shares(), Some(512));
    let status = manager.status("l", false).unwrap().status.unwrap();
    assert_eq!(status.resources.unwrap().linux, Some(resources));
    assert!(matches!(
        manager.update_resources("w", None).await,
        Err(Error::Unimplemented(_))
    ));
    fx.write_exit("l", 0);
    assert!(matches!(
        manager.update_resources("l", None).await,
        Err(Error::FailedPrecondition(_))
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_sync_asks_the_monitor_of_a_running_linux_container() {
    let fx = Fixture::new();
    fx.linux_record("l", "linux", ContainerPhase::Running);
    fx.record("w", "wasm", ContainerPhase::Running);
    let manager = fx.manager();
    manager.recover().await.unwrap();
    assert!(matches!(
        manager.exec_sync("l", Vec::new(), 1).await,
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        manager.exec_sync("w", vec!["true".into()], 1).await,
        Err(Error::Unimplemented(_))
    ));
    // The fake monitor answers Done, not a result: that is an error, never a fake success.
    assert!(matches!(
        manager.exec_sync("l", vec!["true".into()], 1).await,
        Err(Error::Internal(_))
    ));
    let asked = fx.monitor.requests();
    assert_eq!(
        asked.last(),
        Some(&Request::ExecSync {
            container_id: "l".into(),
            argv: vec!["true".into()],
            timeout_ms: 1000,
        })
    );
    fx.write_exit("l", 0);
    assert!(matches!(
        manager.exec_sync("l", vec!["true".into()], 1).await,
        Err(Error::FailedPrecondition(_))
    ));
    let outcome = ExecOutcome::Failed {
        message: "exec: \"nope\": executable file not found".into(),
    };
    assert!(matches!(
        super::linux::exec_result("l", &["nope".into()], std::time::Duration::ZERO, outcome),
        Err(Error::InvalidArgument(m)) if m.contains("nope")
    ));
}
