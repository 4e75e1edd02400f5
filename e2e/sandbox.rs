//! End-to-end tests of the daemon and pod sandboxes: the real `crishim serve` and real monitors,
//! namespaces, mounts and cgroups, driven over the CRI socket as kubelet drives them.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use cri_proto::*;
use tonic::Code;

#[tokio::test]
async fn version_status_and_runtime_config() {
    let daemon = TestDaemon::start().await;
    let mut client = daemon.runtime().await;
    let version = client
        .version(VersionRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(version.runtime_name, "crishim");
    assert_eq!(version.runtime_api_version, "v1");

    let status = client
        .status(StatusRequest { verbose: true })
        .await
        .unwrap()
        .into_inner();
    let conditions = status.status.unwrap().conditions;
    let runtime = conditions
        .iter()
        .find(|c| c.r#type == "RuntimeReady")
        .unwrap();
    assert!(runtime.status, "{runtime:?}");
    let network = conditions
        .iter()
        .find(|c| c.r#type == "NetworkReady")
        .unwrap();
    assert!(
        !network.status,
        "pod_network = \"none\": the network is not ready"
    );
    assert_eq!(network.reason, "NetworkPluginNotReady");
    let info: serde_json::Value = serde_json::from_str(&status.info["info"]).unwrap();
    assert_eq!(info["config"]["default_cgroup_parent"], TEST_CGROUP_PARENT);
    assert!(status.runtime_handlers.iter().any(|h| h.name == "wasmtime"));

    let config = client
        .runtime_config(RuntimeConfigRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        config.linux.unwrap().cgroup_driver,
        CgroupDriver::Cgroupfs as i32
    );

    client
        .update_runtime_config(UpdateRuntimeConfigRequest {
            runtime_config: Some(RuntimeConfig {
                network_config: Some(NetworkConfig {
                    pod_cidr: "10.88.0.0/16".into(),
                }),
            }),
        })
        .await
        .unwrap();
    let status = client
        .status(StatusRequest { verbose: true })
        .await
        .unwrap()
        .into_inner();
    let info: serde_json::Value = serde_json::from_str(&status.info["info"]).unwrap();
    assert_eq!(info["podCIDR"], "10.88.0.0/16");
}

#[tokio::test]
async fn sandbox_lifecycle_with_real_namespaces() {
    let daemon = TestDaemon::start().await;
    let mut client = daemon.runtime().await;
    let id = run_pod(&mut client, pod_config("web", &[("app", "web")])).await;
    assert_eq!(id.len(), 64);

    let status = pod_status(&mut client, &id).await;
    assert_eq!(state_of(&status), PodSandboxState::SandboxReady);
    let pod = status.status.as_ref().unwrap();
    assert_eq!(pod.metadata.as_ref().unwrap().name, "web");
    assert_eq!(pod.labels["app"], "web");
    assert_eq!(pod.annotations["test"], "yes");
    assert!(pod.created_at > 0);

    let pid = monitor_pid(&status);
    assert!(process_alive(pid));
    let layout = daemon.layout();
    for ns in [
        crishim::store::layout::NamespaceKind::Net,
        crishim::store::layout::NamespaceKind::Ipc,
        crishim::store::layout::NamespaceKind::Uts,
    ] {
        let pin = layout.namespace_pin(&id, ns);
        assert!(is_mounted(&pin), "{} pinned", pin.display());
        let proc_ns = std::path::PathBuf::from(format!("/proc/{pid}/ns/{}", ns.proc_name()));
        assert_eq!(
            ns_inode(&pin),
            ns_inode(&proc_ns),
            "pin is the monitor's {ns:?} namespace"
        );
        let host_ns = std::path::PathBuf::from(format!("/proc/self/ns/{}", ns.proc_name()));
        assert_ne!(
            ns_inode(&pin),
            ns_inode(&host_ns),
            "the pod has its own {ns:?} namespace"
        );
    }
    // The hostname is set inside the pod's UTS namespace, and loopback is up in its netns.
    let uts = layout.namespace_pin(&id, crishim::store::layout::NamespaceKind::Uts);
    let net = layout.namespace_pin(&id, crishim::store::layout::NamespaceKind::Net);
    let hostname = std::process::Command::new("nsenter")
        .arg(format!("--uts={}", uts.display()))
        .arg("hostname")
        .output()
        .expect("nsenter (util-linux)");
    assert_eq!(String::from_utf8_lossy(&hostname.stdout).trim(), "web");
    let flags = std::process::Command::new("nsenter")
        .arg(format!("--net={}", net.display()))
        .args(["cat", "/sys/class/net/lo/flags"])
        .output()
        .expect("nsenter");
    let flags = u32::from_str_radix(
        String::from_utf8_lossy(&flags.stdout)
            .trim()
            .trim_start_matches("0x"),
        16,
    )
    .unwrap();
    assert_eq!(flags & 1, 1, "lo is up in the pod network namespace");
    // The monitor is charged to the pod's cgroup.
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        cgroup.contains(&format!("{TEST_CGROUP_PARENT}/crishim-{id}")),
        "{cgroup}"
    );

    stop_pod(&mut client, &id).await;
    let status = pod_status(&mut client, &id).await;
    assert_eq!(state_of(&status), PodSandboxState::SandboxNotready);
    assert!(!process_alive(pid), "the monitor is gone after Stop");
    assert!(!is_mounted(&net), "the pins are gone after Stop");
    // Stop twice, and Stop/Remove of unknown ids, are success.
    stop_pod(&mut client, &id).await;
    remove_pod(&mut client, &id).await;
    remove_pod(&mut client, &id).await;
    let unknown = "f".repeat(64);
    stop_pod(&mut client, &unknown).await;
    remove_pod(&mut client, &unknown).await;

    let gone = client
        .pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: id.clone(),
            verbose: false,
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    assert!(!layout.pod_dir(&id).exists() && !layout.sandbox_dir(&id).exists());
    let leaf = format!("{TEST_CGROUP_PARENT}/crishim-{id}");
    let hierarchies = cgroup_mounts();
    assert!(!hierarchies.is_empty());
    for mount in hierarchies {
        assert!(
            !mount.join(leaf.trim_start_matches('/')).exists(),
            "cgroup left in {}",
            mount.display()
        );
    }
}

#[tokio::test]
async fn remove_of_a_running_pod_stops_it_first() {
    let daemon = TestDaemon::start().await;
    let mut client = daemon.runtime().await;
    let id = run_pod(&mut client, pod_config("busy", &[])).await;
    let pid = monitor_pid(&pod_status(&mut client, &id).await);
    remove_pod(&mut client, &id).await;
    assert!(!process_alive(pid));
    assert!(!is_mounted(
        &daemon
            .layout()
            .namespace_pin(&id, crishim::store::layout::NamespaceKind::Net)
    ));
    let list = client
        .list_pod_sandbox(ListPodSandboxRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(list.items.is_empty());
    // The monitor's exit is noticed by its watcher too: that must not bring the record back.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !daemon.layout().sandbox_dir(&id).exists(),
        "no checkpoint after Remove"
    );
}

#[tokio::test]
async fn host_namespaces_and_a_shared_pid_namespace() {
    use crishim::store::layout::NamespaceKind;
    let daemon = TestDaemon::start().await;
    let mut client = daemon.runtime().await;
    let config = with_namespaces(
        pod_config("hostnet", &[]),
        NamespaceMode::Node,
        NamespaceMode::Pod,
        NamespaceMode::Node,
    );
    let id = run_pod(&mut client, config).await;
    let pid = monitor_pid(&pod_status(&mut client, &id).await);
    let layout = daemon.layout();
    for (kind, shared_with_host) in [
        (NamespaceKind::Net, true),
        (NamespaceKind::Uts, true),
        (NamespaceKind::Ipc, true),
        (NamespaceKind::Pid, false),
    ] {
        let mine = std::path::PathBuf::from(format!("/proc/{pid}/ns/{}", kind.proc_name()));
        let host = std::path::PathBuf::from(format!("/proc/self/ns/{}", kind.proc_name()));
        assert_eq!(
            ns_inode(&mine) == ns_inode(&host),
            shared_with_host,
            "{kind:?}"
        );
        assert_eq!(
            is_mounted(&layout.namespace_pin(&id, kind)),
            !shared_with_host,
            "{kind:?} pin"
        );
    }
    // The monitor is pid 1 of the pod's pid namespace.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let nspid = status.lines().find(|l| l.starts_with("NSpid:")).unwrap();
    assert_eq!(nspid.split_whitespace().last(), Some("1"), "{nspid}");

    remove_pod(&mut client, &id).await;
    assert!(!process_alive(pid));
    assert!(!is_mounted(&layout.namespace_pin(&id, NamespaceKind::Pid)));
}

#[tokio::test]
async fn list_filters_by_id_prefix_state_and_labels() {
    let daemon = TestDaemon::start().await;
    let mut client = daemon.runtime().await;
    let a = run_pod(
        &mut client,
        pod_config("a", &[("app", "web"), ("tier", "front")]),
    )
    .await;
    let b = run_pod(
        &mut client,
        pod_config("b", &[("app", "web"), ("tier", "back")]),
    )
    .await;
    let c = run_pod(&mut client, pod_config("c", &[("app", "db")])).await;
    stop_pod(&mut client, &b).await;

    let mut list = async |filter: PodSandboxFilter| -> Vec<String> {
        let mut ids: Vec<String> = client
            .list_pod_sandbox(ListPodSandboxRequest {
                filter: Some(filter),
            })
            .await
            .unwrap()
            .into_inner()
            .items
            .into_iter()
            .map(|p| p.id)
            .collect();
        ids.sort();
        ids
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(
        list(PodSandboxFilter::default()).await,
        sorted(vec![a.clone(), b.clone(), c.clone()])
    );
    assert_eq!(
        list(PodSandboxFilter {
            id: a[..12].to_string(),
            ..Default::default()
        })
        .await,
        vec![a.clone()]
    );
    let ready = Some(PodSandboxStateValue {
        state: PodSandboxState::SandboxReady as i32,
    });
    let not_ready = Some(PodSandboxStateValue {
        state: PodSandboxState::SandboxNotready as i32,
    });
    assert_eq!(
        list(PodSandboxFilter {
            state: ready,
            ..Default::default()
        })
        .await,
        sorted(vec![a.clone(), c.clone()])
    );
    assert_eq!(
        list(PodSandboxFilter {
            state: not_ready,
            ..Default::default()
        })
        .await,
        vec![b.clone()]
    );
    let web = [("app".to_string(), "web".to_string())].into();
    assert_eq!(
        list(PodSandboxFilter {
            label_selector: web,
            ..Default::default()
        })
        .await,
        sorted(vec![a.clone(), b.clone()])
    );
    let web_front = [
        ("app".to_string(), "web".to_string()),
        ("tier".to_string(), "front".to_string()),
    ]
    .into();
    assert_eq!(
        list(PodSandboxFilter {
            label_selector: web_front,
            ..Default::default()
        })
        .await,
        vec![a.clone()]
    );
    let web_ready = [("app".to_string(), "web".to_string())].into();
    assert_eq!(
        list(PodSandboxFilter {
            label_selector: web_ready,
            state: ready,
            ..Default::default()
        })
        .await,
        vec![a.clone()]
    );
    let none = [("app".to_string(), "cache".to_string())].into();
    assert!(
        list(PodSandboxFilter {
            label_selector: none,
            ..Default::default()
        })
        .await
        .is_empty()
    );

    for id in [a, b, c] {
        remove_pod(&mut client, &id).await;
    }
}

#[tokio::test]
async fn same_pod_metadata_twice_is_already_exists() {
    let daemon = TestDaemon::start().await;
    let mut client = daemon.runtime().await;
    let first = run_pod(&mut client, pod_config("dup", &[])).await;
    let err = client
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(pod_config("dup", &[])),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    assert!(err.message().contains(&first), "{}", err.message());
    // A new attempt is a different pod.
    let mut retry = pod_config("dup", &[]);
    retry.metadata.as_mut().unwrap().attempt = 1;
    let second = run_pod(&mut client, retry).await;
    // Once the first is removed, its name is free again.
    remove_pod(&mut client, &first).await;
    let third = run_pod(&mut client, pod_config("dup", &[])).await;
    for id in [second, third] {
        remove_pod(&mut client, &id).await;
    }
}

#[tokio::test]
async fn bad_input_gets_clear_errors() {
    let daemon = TestDaemon::start().await;
    let mut client = daemon.runtime().await;
    let no_config = client
        .run_pod_sandbox(RunPodSandboxRequest::default())
        .await
        .unwrap_err();
    assert_eq!(no_config.code(), Code::InvalidArgument);

    let mut no_name = pod_config("x", &[]);
    no_name.metadata.as_mut().unwrap().name.clear();
    let err = client
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(no_name),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("metadata.name"), "{}", err.message());

    let mut no_metadata = pod_config("x", &[]);
    no_metadata.metadata = None;
    let err = client
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(no_metadata),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    let err = client
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(pod_config("x", &[])),
            runtime_handler: "kata".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("kata"), "{}", err.message());

    let mut escape = pod_config("x", &[]);
    escape.linux = Some(LinuxPodSandboxConfig {
        cgroup_parent: "/kubepods/../../x".into(),
        ..Default::default()
    });
    let err = client
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(escape),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    let err = client
        .pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: "0123456789".into(),
            verbose: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = client
        .pod_sandbox_status(PodSandboxStatusRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    let err = client
        .create_container(CreateContainerRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("config is required"),
        "{}",
        err.message()
    );
    let err = client
        .exec_sync(ExecSyncRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
    let err = client.attach(AttachRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
    assert!(err.message().contains("Attach"), "{}", err.message());
    let err = client
        .container_stats(ContainerStatsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
    assert!(
        err.message().contains("ContainerStats"),
        "{}",
        err.message()
    );
    let err = daemon
        .images()
        .await
        .pull_image(PullImageRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "an empty image spec");

    // Nothing failed above left a record or a pod dir behind, and the daemon still answers.
    let list = client
        .list_pod_sandbox(ListPodSandboxRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(list.items.is_empty());
    assert_eq!(
        std::fs::read_dir(daemon.layout().sandboxes_dir())
            .map(|d| d.count())
            .unwrap_or(0),
        0
    );
}

#[tokio::test]
async fn kill_9_of_the_daemon_loses_nothing() {
    use crishim::store::layout::NamespaceKind;
    let mut daemon = TestDaemon::start().await;
    let mut client = daemon.runtime().await;
    let running = run_pod(&mut client, pod_config("running", &[("k", "v")])).await;
    let stopped = run_pod(&mut client, pod_config("stopped", &[])).await;
    let dies = run_pod(&mut client, pod_config("dies", &[])).await;
    stop_pod(&mut client, &stopped).await;
    let before = client
        .list_pod_sandbox(ListPodSandboxRequest::default())
        .await
        .unwrap()
        .into_inner()
        .items;
    let running_pid = monitor_pid(&pod_status(&mut client, &running).await);
    let dies_pid = monitor_pid(&pod_status(&mut client, &dies).await);
    drop(client);

    daemon.kill9();
    assert!(
        process_alive(running_pid),
        "pods keep running without the daemon"
    );
    // One monitor dies while the daemon is down.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(dies_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    daemon.spawn().await;
    let mut client = daemon.runtime().await;

    let after = client
        .list_pod_sandbox(ListPodSandboxRequest::default())
        .await
        .unwrap()
        .into_inner()
        .items;
    assert_eq!(after.len(), 3);
    for pod in &before {
        let now = after
            .iter()
            .find(|p| p.id == pod.id)
            .expect("pod still listed");
        assert_eq!(now.metadata, pod.metadata);
        assert_eq!(now.labels, pod.labels);
        assert_eq!(now.created_at, pod.created_at);
        let expected = if pod.id == dies {
            PodSandboxState::SandboxNotready as i32
        } else {
            pod.state
        };
        assert_eq!(
            now.state,
            expected,
            "state of {}",
            pod.metadata.as_ref().unwrap().name
        );
    }
    let status = pod_status(&mut client, &running).await;
    assert_eq!(state_of(&status), PodSandboxState::SandboxReady);
    assert_eq!(monitor_pid(&status), running_pid, "same monitor");
    assert!(is_mounted(
        &daemon.layout().namespace_pin(&running, NamespaceKind::Net)
    ));
    let status = pod_status(&mut client, &dies).await;
    assert_eq!(
        info(&status)["notReadyReason"],
        "monitor exited while crishim was down"
    );

    // The restarted daemon still watches the monitors it reconnected to.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(running_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let noticed = eventually(Duration::from_secs(5), async || {
        state_of(&pod_status(&mut client, &running).await) == PodSandboxState::SandboxNotready
    })
    .await;
    assert!(noticed, "a monitor that dies is reported NOTREADY");

    for id in [running, stopped, dies] {
        remove_pod(&mut client, &id).await;
        assert!(!is_mounted(
            &daemon.layout().namespace_pin(&id, NamespaceKind::Net)
        ));
    }
}

#[tokio::test]
async fn sigterm_exits_cleanly_and_leaves_pods_running() {
    let mut daemon = TestDaemon::start().await;
    let mut client = daemon.runtime().await;
    let id = run_pod(&mut client, pod_config("survivor", &[])).await;
    let pid = monitor_pid(&pod_status(&mut client, &id).await);
    drop(client);
    let status = daemon.terminate().await;
    assert!(status.success(), "exit status {status}");
    assert!(process_alive(pid));
    assert!(
        !daemon.socket().exists(),
        "the socket is removed on a clean exit"
    );
    daemon.spawn().await;
    let mut client = daemon.runtime().await;
    assert_eq!(
        state_of(&pod_status(&mut client, &id).await),
        PodSandboxState::SandboxReady
    );
    remove_pod(&mut client, &id).await;
}

#[tokio::test]
async fn corrupt_checkpoints_are_skipped_at_recovery() {
    let mut daemon = TestDaemon::start().await;
    let mut client = daemon.runtime().await;
    let good = run_pod(&mut client, pod_config("good", &[])).await;
    drop(client);
    daemon.kill9();
    let bad_dir = daemon.layout().sandbox_dir(&"b".repeat(64));
    std::fs::create_dir_all(&bad_dir).unwrap();
    std::fs::write(bad_dir.join("state.json"), b"{\"version\": 1, \"id\": tru").unwrap();
    daemon.spawn().await;
    let mut client = daemon.runtime().await;
    let items = client
        .list_pod_sandbox(ListPodSandboxRequest::default())
        .await
        .unwrap()
        .into_inner()
        .items;
    assert_eq!(
        items.iter().map(|p| p.id.clone()).collect::<Vec<_>>(),
        vec![good.clone()]
    );
    assert!(
        daemon.log().contains("skipping sandbox checkpoint"),
        "the corrupt file is reported"
    );
    remove_pod(&mut client, &good).await;
}

#[tokio::test]
async fn socket_rules_and_two_daemons_side_by_side() {
    let first = TestDaemon::start().await;
    let second = TestDaemon::start().await;
    let mut one = first.runtime().await;
    let mut two = second.runtime().await;
    let a = run_pod(&mut one, pod_config("same-name", &[])).await;
    let b = run_pod(&mut two, pod_config("same-name", &[])).await;
    assert_eq!(
        one.list_pod_sandbox(ListPodSandboxRequest::default())
            .await
            .unwrap()
            .into_inner()
            .items
            .len(),
        1
    );
    assert_eq!(
        two.list_pod_sandbox(ListPodSandboxRequest::default())
            .await
            .unwrap()
            .into_inner()
            .items
            .len(),
        1
    );

    // A live socket is not taken over.
    let taken = first.command().output().expect("run a second serve");
    assert!(!taken.status.success());
    assert!(String::from_utf8_lossy(&taken.stderr).contains("another process is serving"));
    // A socket whose directory cannot be created is a clear error.
    let bad = first
        .command()
        .arg("--socket")
        .arg("/dev/null/crishim.sock")
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("create the socket directory /dev/null"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );

    one.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: a })
        .await
        .unwrap();
    two.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: b })
        .await
        .unwrap();
}

#[tokio::test]
async fn load_generator_reports_every_rpc() {
    let daemon = TestDaemon::start().await;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_crishim-bench"))
        .arg("--endpoint")
        .arg(format!("unix://{}", daemon.socket().display()))
        .args(["-n", "6", "-c", "2", "--json"])
        .output()
        .await
        .expect("run crishim-bench");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    assert_eq!(report["errors"], 0);
    for rpc in [
        "RunPodSandbox",
        "PodSandboxStatus",
        "StopPodSandbox",
        "RemovePodSandbox",
    ] {
        let stats = &report["rpcs"][rpc];
        assert_eq!(stats["count"], 6, "{rpc}: {stats}");
        let (p50, p99, max) = (
            stats["p50_ms"].as_f64().unwrap(),
            stats["p99_ms"].as_f64().unwrap(),
            stats["max_ms"].as_f64().unwrap(),
        );
        assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{rpc}: {stats}");
    }
    let mut client = daemon.runtime().await;
    let left = client
        .list_pod_sandbox(ListPodSandboxRequest::default())
        .await
        .unwrap()
        .into_inner()
        .items;
    assert!(left.is_empty(), "the scenario removes its pods");
}

#[tokio::test]
async fn cgroup_parent_from_the_pod_config_and_json_logs() {
    let daemon = TestDaemon::start().await;
    let mut client = daemon.runtime().await;
    let mut config = pod_config("parented", &[]);
    let parent = format!("{TEST_CGROUP_PARENT}/pod-parented");
    config.linux = Some(LinuxPodSandboxConfig {
        cgroup_parent: parent.clone(),
        ..Default::default()
    });
    let id = run_pod(&mut client, config).await;
    let pid = monitor_pid(&pod_status(&mut client, &id).await);
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        cgroups.contains(&format!("{parent}/crishim-{id}")),
        "{cgroups}"
    );
    remove_pod(&mut client, &id).await;
    for mount in cgroup_mounts() {
        let _ = std::fs::remove_dir(mount.join(parent.trim_start_matches('/')));
    }

    // --log-format json: every line the daemon writes is a JSON object.
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("json.sock");
    let json = std::process::Command::new(env!("CARGO_BIN_EXE_crishim"))
        .arg("serve")
        .arg("--root")
        .arg(dir.path().join("root"))
        .arg("--state")
        .arg(dir.path().join("state"))
        .arg("--socket")
        .arg(&socket)
        .args(["--log-format", "json"])
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let served = eventually(Duration::from_secs(10), async || socket.exists()).await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(json.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let output = json.wait_with_output().unwrap();
    assert!(
        served && output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stderr).unwrap();
    assert!(text.lines().count() >= 2, "{text}");
    for line in text.lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            value["level"].is_string() && value["timestamp"].is_string(),
            "{line}"
        );
    }
}
