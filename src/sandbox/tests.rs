//! Sandbox lifecycle logic against fakes: no root, no processes, no mounts.

use std::sync::Arc;

use cri_proto::{PodSandboxConfig, PodSandboxMetadata, RunPodSandboxRequest};

use super::{SandboxHost, SandboxManager};
use crate::config::{Config, PodNetworkMode};
use crate::error::Error;
use crate::monitor::launcher::FakeMonitors;
use crate::network::PodNetworks;
use crate::network::exec::{CniCommand, FakePluginExec};
use crate::os::cgroup::FakeCgroups;
use crate::os::mount::FakeMounter;
use crate::store::checkpoint;
use crate::store::sandbox::{SandboxPhase, SandboxRecord};

struct Fixture {
    _dir: tempfile::TempDir,
    config: Arc<Config>,
    mounts: Arc<FakeMounter>,
    cgroups: Arc<FakeCgroups>,
    monitors: Arc<FakeMonitors>,
    cni: Arc<FakePluginExec>,
    network: Arc<PodNetworks>,
}

const CONFLIST: &str = r#"{"cniVersion":"1.0.0","name":"pods","plugins":[{"type":"bridge"}]}"#;

impl Fixture {
    fn new() -> Self {
        Self::with(FakeMounter::default(), FakeMonitors::default())
    }

    fn with(mounts: FakeMounter, monitors: FakeMonitors) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let conf_dir = dir.path().join("net.d");
        std::fs::create_dir(&conf_dir).unwrap();
        std::fs::write(conf_dir.join("10-pods.conflist"), CONFLIST).unwrap();
        let cni = Arc::new(FakePluginExec::default());
        cni.respond(
            "bridge",
            CniCommand::Add,
            Ok(serde_json::json!({"cniVersion":"1.0.0","ips":[{"address":"10.88.0.9/16"}]})),
        );
        let network = Arc::new(PodNetworks::new(PodNetworkMode::Cni, conf_dir, cni.clone()));
        let config = Config {
            root: dir.path().join("root"),
            state: dir.path().join("state"),
            ..Config::default()
        };
        Fixture {
            _dir: dir,
            config: Arc::new(config),
            mounts: Arc::new(mounts),
            cgroups: Arc::new(FakeCgroups::default()),
            monitors: Arc::new(monitors),
            cni,
            network,
        }
    }

    fn manager(&self) -> SandboxManager {
        SandboxManager::new(
            self.config.clone(),
            SandboxHost {
                mounts: self.mounts.clone(),
                cgroups: self.cgroups.clone(),
                monitors: self.monitors.clone(),
                network: self.network.clone(),
            },
        )
    }

    fn nothing_left(&self, manager: &SandboxManager, id: &str) {
        assert!(
            self.mounts.targets().is_empty(),
            "pins left: {:?}",
            self.mounts.targets()
        );
        assert!(
            self.cgroups.paths().is_empty(),
            "cgroups left: {:?}",
            self.cgroups.paths()
        );
        assert!(self.monitors.running_pods().is_empty(), "monitors left");
        assert!(!manager.layout().pod_dir(id).exists());
        assert!(!manager.layout().sandbox_dir(id).exists());
    }
}

fn request(name: &str) -> RunPodSandboxRequest {
    RunPodSandboxRequest {
        config: Some(PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.into(),
                uid: "u".into(),
                namespace: "ns".into(),
                attempt: 0,
            }),
            ..Default::default()
        }),
        runtime_handler: String::new(),
    }
}

#[test]
fn run_checkpoints_pins_and_joins_the_cgroup() {
    let fx = Fixture::new();
    let manager = fx.manager();
    let record = manager.run(request("a")).unwrap();
    assert_eq!(record.phase, SandboxPhase::Ready);
    let saved: SandboxRecord =
        checkpoint::read(&manager.layout().sandbox_checkpoint(&record.id)).unwrap();
    assert_eq!(saved, record, "the checkpoint holds what memory holds");
    let pid = record.monitor.unwrap().pid;
    let mounted = fx.mounts.mounted.lock().unwrap().clone();
    assert_eq!(
        mounted.len(),
        4,
        "net, ipc, uts and (default POD) pid are pinned"
    );
    assert!(mounted.iter().all(|(source, target)| {
        source.starts_with(format!("/proc/{pid}/ns"))
            && target.starts_with(manager.layout().pod_dir(&record.id))
    }));
    assert_eq!(
        fx.cgroups.paths(),
        vec![format!("/crishim/crishim-{}", record.id)]
    );
}

#[test]
fn a_failed_run_undoes_everything_and_frees_the_name() {
    let fx = Fixture::with(
        FakeMounter {
            fail_bind_suffix: Some("uts".into()),
            ..Default::default()
        },
        FakeMonitors::default(),
    );
    let manager = fx.manager();
    let err = manager.run(request("a")).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert!(err.to_string().contains("bind mount"), "{err}");
    assert!(manager.list(None).is_empty());
    let leftovers = std::fs::read_dir(manager.layout().sandboxes_dir())
        .unwrap()
        .count();
    assert_eq!(leftovers, 0, "no checkpoint survives");
    assert_eq!(
        std::fs::read_dir(manager.config.state.join("pods"))
            .unwrap()
            .count(),
        0
    );
    assert!(
        fx.mounts.targets().is_empty(),
        "pins left: {:?}",
        fx.mounts.targets()
    );
    assert!(fx.cgroups.paths().is_empty() && fx.monitors.running_pods().is_empty());
    // The name is free again: a retry fails at the same mount, not with AlreadyExists.
    assert!(matches!(manager.run(request("a")), Err(Error::Io { .. })));

    let fx = Fixture::with(
        FakeMounter::default(),
        FakeMonitors {
            fail_launch: Some("no".into()),
            ..Default::default()
        },
    );
    let manager = fx.manager();
    assert!(manager.run(request("a")).is_err());
    assert_eq!(
        std::fs::read_dir(manager.layout().sandboxes_dir())
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(manager.config.state.join("pods"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn same_metadata_is_already_exists_until_removed() {
    let fx = Fixture::new();
    let manager = fx.manager();
    let first = manager.run(request("a")).unwrap();
    assert!(matches!(
        manager.run(request("a")),
        Err(Error::AlreadyExists(_))
    ));
    manager.stop(&first.id).unwrap();
    assert!(
        matches!(manager.run(request("a")), Err(Error::AlreadyExists(_))),
        "stopped pods keep the name"
    );
    manager.remove(&first.id).unwrap();
    manager.run(request("a")).unwrap();
}

#[test]
fn stop_and_remove_are_idempotent() {
    let fx = Fixture::new();
    let manager = fx.manager();
    let id = manager.run(request("a")).unwrap().id;
    manager.stop(&id).unwrap();
    manager.stop(&id).unwrap();
    let stopped = manager.status(&id, false).unwrap();
    assert_eq!(
        stopped.status.unwrap().state,
        cri_proto::PodSandboxState::SandboxNotready as i32
    );
    assert!(fx.mounts.targets().is_empty() && fx.monitors.running_pods().is_empty());
    manager.remove(&id).unwrap();
    manager.remove(&id).unwrap();
    manager.stop(&id).unwrap();
    assert!(matches!(
        manager.status(&id, false),
        Err(Error::NotFound(_))
    ));
    fx.nothing_left(&manager, &id);
}

#[test]
fn a_dead_monitor_makes_the_pod_not_ready_on_disk_too() {
    let fx = Fixture::new();
    let manager = fx.manager();
    let record = manager.run(request("a")).unwrap();
    let pid = record.monitor.unwrap().pid;
    assert!(!manager.monitor_exited(&record.id, pid + 1).unwrap());
    assert_eq!(
        manager.list(None)[0].state,
        cri_proto::PodSandboxState::SandboxReady as i32,
        "another pid is not ours"
    );
    assert!(manager.monitor_exited(&record.id, pid).unwrap());
    assert!(
        !manager.monitor_exited(&record.id, pid).unwrap(),
        "once only"
    );
    let saved: SandboxRecord =
        checkpoint::read(&manager.layout().sandbox_checkpoint(&record.id)).unwrap();
    assert_eq!(saved.phase, SandboxPhase::NotReady);
    assert_eq!(saved.not_ready_reason.as_deref(), Some("monitor exited"));
}

#[test]
fn recovery_reconnects_marks_dead_undoes_creating_and_skips_corrupt() {
    let fx = Fixture::new();
    let before = fx.manager();
    let live = before.run(request("live")).unwrap();
    let dead = before.run(request("dead")).unwrap();
    let stopped = before.run(request("stopped")).unwrap();
    before.stop(&stopped.id).unwrap();
    fx.monitors.kill(&dead.id);
    // A RunPodSandbox interrupted by a crash: Creating on disk, its monitor up.
    let mut creating = live.clone();
    creating.id = "c".repeat(64);
    creating.phase = SandboxPhase::Creating;
    creating.monitor = None;
    creating.config.metadata.as_mut().unwrap().name = "creating".into();
    checkpoint::write(&before.layout().sandbox_checkpoint(&creating.id), &creating).unwrap();
    std::fs::create_dir_all(before.layout().pod_dir(&creating.id)).unwrap();
    let spec = fx.monitors.running.lock().unwrap()[0].0.clone();
    fx.monitors.running.lock().unwrap().push((
        crate::monitor::launcher::MonitorSpec {
            pod_id: creating.id.clone(),
            ..spec
        },
        crate::store::sandbox::MonitorProcess {
            pid: 4242,
            start_time: 1,
        },
    ));
    // And a corrupt checkpoint.
    let corrupt = before.layout().sandbox_checkpoint(&"d".repeat(64));
    std::fs::create_dir_all(corrupt.parent().unwrap()).unwrap();
    std::fs::write(&corrupt, "{").unwrap();
    drop(before);

    let after = fx.manager();
    let recovered = after.recover().unwrap();
    assert_eq!(
        recovered
            .live
            .iter()
            .map(|(id, _)| id.clone())
            .collect::<Vec<_>>(),
        vec![live.id.clone()]
    );
    assert_eq!(
        (recovered.not_ready, recovered.undone, recovered.skipped),
        (2, 1, 1)
    );
    let state = |id: &str| after.status(id, false).unwrap().status.unwrap().state;
    assert_eq!(
        state(&live.id),
        cri_proto::PodSandboxState::SandboxReady as i32
    );
    assert_eq!(
        state(&dead.id),
        cri_proto::PodSandboxState::SandboxNotready as i32
    );
    assert_eq!(
        state(&stopped.id),
        cri_proto::PodSandboxState::SandboxNotready as i32
    );
    let dead_saved: SandboxRecord =
        checkpoint::read(&after.layout().sandbox_checkpoint(&dead.id)).unwrap();
    assert_eq!(dead_saved.phase, SandboxPhase::NotReady);
    assert!(matches!(
        after.status(&creating.id, false),
        Err(Error::NotFound(_))
    ));
    assert!(!after.layout().sandbox_dir(&creating.id).exists());
    assert!(
        !fx.monitors.running_pods().contains(&creating.id),
        "the orphaned monitor was stopped"
    );
    assert!(
        corrupt.exists(),
        "a corrupt checkpoint is left for a human to look at"
    );
    assert!(
        matches!(after.run(request("live")), Err(Error::AlreadyExists(_))),
        "recovered pods keep their names"
    );
}

#[test]
fn an_operation_waiting_on_a_removed_pod_writes_nothing() {
    let fx = Fixture::new();
    let manager = fx.manager();
    let record = manager.run(request("a")).unwrap();
    // Found before the removal, as a monitor watcher or a racing Stop would have found it.
    let stale = manager.index.lookup(&record.id).unwrap().unwrap();
    manager.remove(&record.id).unwrap();
    assert!(stale.is_removed());
    manager.stop_entry(&stale).unwrap();
    manager
        .on_monitor_exit(&stale, record.monitor.unwrap().pid)
        .unwrap();
    assert!(
        !manager.layout().sandbox_dir(&record.id).exists(),
        "no checkpoint comes back"
    );
}

fn commands(fx: &Fixture) -> Vec<(String, CniCommand)> {
    fx.cni
        .calls()
        .into_iter()
        .map(|c| (c.plugin, c.command))
        .collect()
}

#[test]
fn pods_get_their_cni_ip_and_give_it_back_on_stop_and_remove() {
    let fx = Fixture::new();
    let manager = fx.manager();
    let record = manager.run(request("a")).unwrap();
    assert_eq!(record.pod_ips, vec!["10.88.0.9"]);
    let network = manager
        .status(&record.id, false)
        .unwrap()
        .status
        .unwrap()
        .network
        .unwrap();
    assert_eq!(network.ip, "10.88.0.9");
    let add = &fx.cni.calls()[0];
    assert_eq!(add.container_id, record.id);
    assert_eq!(
        std::path::Path::new(&add.netns),
        manager
            .layout()
            .namespace_pin(&record.id, crate::store::layout::NamespaceKind::Net)
    );
    manager.stop(&record.id).unwrap();
    let stopped = manager.status(&record.id, false).unwrap().status.unwrap();
    assert_eq!(
        stopped.network.unwrap().ip,
        "",
        "a stopped pod has given its IP back"
    );
    manager.remove(&record.id).unwrap();
    let bridge = || "bridge".to_string();
    assert_eq!(
        commands(&fx),
        vec![
            (bridge(), CniCommand::Add),
            (bridge(), CniCommand::Del),
            (bridge(), CniCommand::Del)
        ],
        "DEL on stop, and again on remove"
    );
    fx.nothing_left(&manager, &record.id);
}

#[test]
fn a_failed_cni_add_is_undone_with_del() {
    let fx = Fixture::new();
    fx.cni.respond(
        "bridge",
        CniCommand::Add,
        Err(Error::Internal(
            "no IP addresses available in range set".into(),
        )),
    );
    let manager = fx.manager();
    let err = manager.run(request("a")).unwrap_err().to_string();
    assert!(err.contains("no IP addresses available"), "{err}");
    assert_eq!(commands(&fx)[1], ("bridge".to_string(), CniCommand::Del));
    assert!(manager.list(None).is_empty());
    assert_eq!(
        std::fs::read_dir(manager.layout().sandboxes_dir())
            .unwrap()
            .count(),
        0
    );
    assert!(fx.mounts.targets().is_empty() && fx.monitors.running_pods().is_empty());
    assert!(fx.cgroups.paths().is_empty());
}

#[test]
fn host_network_pods_skip_cni() {
    let fx = Fixture::new();
    let manager = fx.manager();
    let mut req = request("a");
    req.config.as_mut().unwrap().linux = Some(cri_proto::LinuxPodSandboxConfig {
        security_context: Some(cri_proto::LinuxSandboxSecurityContext {
            namespace_options: Some(cri_proto::NamespaceOption {
                network: cri_proto::NamespaceMode::Node as i32,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    let record = manager.run(req).unwrap();
    assert!(record.pod_ips.is_empty());
    manager.remove(&record.id).unwrap();
    assert!(fx.cni.calls().is_empty());
}
