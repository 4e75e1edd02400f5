//! End-to-end tests of wasm containers: the real daemon, real pod monitors running wasmtime,
//! images pulled from a real registry on 127.0.0.1 (built from the WAT sources in
//! hack/testimages/wat/), CRI log files read as kubelet reads them.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use common::containers::*;
use common::*;
use cri_proto::*;
use tonic::Code;

#[tokio::test]
async fn a_module_runs_with_argv_env_logs_and_exit_codes() {
    let mut env_ = PodEnv::start(&["wasm-probe"]).await;
    let hello = env_.container("wasm-probe", "hello", &[]);
    let id = env_.run(hello).await;
    let status = env_.exited(&id).await;
    assert_eq!((status.exit_code, status.reason.as_str()), (0, "Completed"));
    assert!(status.created_at <= status.started_at && status.started_at <= status.finished_at);
    assert_eq!(
        status.image.unwrap().image,
        env_.registry.reference("wasm-probe")
    );
    assert!(
        status.image_ref.contains("@sha256:"),
        "{}",
        status.image_ref
    );
    assert!(status.image_id.starts_with("sha256:"));
    assert_eq!(
        env_.log("hello"),
        vec![line("stdout", "F", "hello from wasm")]
    );
    assert!(status.log_path.ends_with("hello/0.log"));

    let mut echo = env_.container("wasm-probe", "echo", &["echo", "two words"]);
    echo.envs = env(&[("OVERRIDDEN", "cri"), ("NEW", "1")]);
    let id = env_.run(echo).await;
    assert_eq!(env_.exited(&id).await.exit_code, 0);
    let texts: Vec<String> = env_.log("echo").into_iter().map(|(_, _, t)| t).collect();
    assert_eq!(
        texts[..3],
        ["probe.wasm", "echo", "two words"],
        "argv[0] is the module, then the CRI args"
    );
    for want in ["FROM_IMAGE=yes", "OVERRIDDEN=cri", "NEW=1"] {
        assert!(texts.contains(&want.to_string()), "{want} in {texts:?}");
    }
    assert!(!texts.contains(&"OVERRIDDEN=image".to_string()));

    let id = env_
        .run(env_.container("wasm-probe", "fail", &["fail"]))
        .await;
    let status = env_.exited(&id).await;
    assert_eq!((status.exit_code, status.reason.as_str()), (3, "Error"));
    assert_eq!(
        env_.log("fail"),
        vec![line("stderr", "F", "hello from wasm")]
    );

    let id = env_
        .run(env_.container("wasm-probe", "trap", &["trap"]))
        .await;
    let status = env_.exited(&id).await;
    assert_eq!((status.exit_code, status.reason.as_str()), (134, "Error"));
    assert!(status.message.contains("unreachable"), "{}", status.message);

    let id = env_
        .run(env_.container("wasm-probe", "partial", &["partial"]))
        .await;
    env_.exited(&id).await;
    assert_eq!(env_.log("partial"), vec![line("stdout", "P", "no newline")]);

    // Filters.
    let lister = env_.client.clone();
    let list = |filter: ContainerFilter| {
        let mut client = lister.clone();
        async move {
            client
                .list_containers(ListContainersRequest {
                    filter: Some(filter),
                })
                .await
                .unwrap()
                .into_inner()
                .containers
        }
    };
    assert_eq!(list(ContainerFilter::default()).await.len(), 5);
    let by_label = list(ContainerFilter {
        label_selector: [("app".to_string(), "trap".to_string())].into(),
        ..Default::default()
    })
    .await;
    assert_eq!(by_label.len(), 1);
    assert_eq!(by_label[0].metadata.as_ref().unwrap().name, "trap");
    let by_prefix = list(ContainerFilter {
        id: by_label[0].id[..12].to_string(),
        ..Default::default()
    })
    .await;
    assert_eq!(by_prefix.len(), 1);
    let running = list(ContainerFilter {
        state: Some(ContainerStateValue {
            state: ContainerState::ContainerRunning as i32,
        }),
        ..Default::default()
    })
    .await;
    assert!(running.is_empty());
    let other_pod = list(ContainerFilter {
        pod_sandbox_id: "f".repeat(64),
        ..Default::default()
    })
    .await;
    assert!(other_pod.is_empty());

    // RemovePodSandbox removes the containers; their logs stay.
    remove_pod(&mut env_.client, &env_.pod).await;
    assert!(list(ContainerFilter::default()).await.is_empty());
    assert!(env_.logs.join("hello/0.log").exists());
    assert_eq!(
        std::fs::read_dir(env_.daemon.root().join("containers"))
            .unwrap()
            .count(),
        0
    );
}

#[tokio::test]
async fn memory_limits_and_stops_interrupt_only_their_own_container() {
    let mut env_ = PodEnv::start(&["wasm-probe"]).await;
    let mut limited = env_.container("wasm-probe", "limited", &["grow"]);
    limited.linux = Some(LinuxContainerConfig {
        resources: Some(LinuxContainerResources {
            memory_limit_in_bytes: 16 << 20,
            ..Default::default()
        }),
        ..Default::default()
    });
    let id = env_.run(limited).await;
    let status = env_.exited(&id).await;
    assert_eq!(
        (status.exit_code, status.reason.as_str()),
        (137, "OOMKilled")
    );
    assert!(
        status.message.contains("memory limit of 16777216 bytes"),
        "{}",
        status.message
    );
    let limit = status
        .resources
        .clone()
        .unwrap()
        .linux
        .unwrap()
        .memory_limit_in_bytes;
    assert_eq!(limit, 16 << 20, "ContainerStatus reports the limit");
    let id = env_
        .run(env_.container("wasm-probe", "unlimited", &["grow"]))
        .await;
    assert_eq!(env_.exited(&id).await.reason, "Completed");

    let first = env_
        .run(env_.container("wasm-probe", "loop1", &["loop"]))
        .await;
    let second = env_
        .run(env_.container("wasm-probe", "loop2", &["loop"]))
        .await;
    // Output reaches the log while the guest runs, not at its exit.
    for name in ["loop1", "loop2"] {
        let logs = env_.logs.join(name).join("0.log");
        wait_for_log(&logs).await;
    }
    let started = std::time::Instant::now();
    env_.stop(&first, 1).await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    let status = env_.status(&first).await;
    assert_eq!(status.state, ContainerState::ContainerExited as i32);
    assert_eq!((status.exit_code, status.reason.as_str()), (137, "Error"));
    assert_eq!(
        env_.status(&second).await.state,
        ContainerState::ContainerRunning as i32,
        "stopping one store does not interrupt another"
    );
    // Stop twice, and an unknown id, are success; timeout 0 stops at once.
    for id in [first.clone(), "0".repeat(64), second.clone()] {
        env_.stop(&id, 0).await;
    }
    assert_eq!(env_.status(&second).await.exit_code, 137);

    // A guest waiting in a host call (a sleep) has the call cancelled.
    let sleepy = env_
        .run(env_.container("wasm-probe", "sleepy", &["sleepy"]))
        .await;
    let logs = env_.logs.join("sleepy/0.log");
    wait_for_log(&logs).await;
    let started = std::time::Instant::now();
    env_.stop(&sleepy, 0).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let status = env_.status(&sleepy).await;
    assert_eq!(
        (status.exit_code, status.message.as_str()),
        (137, "stopped by StopContainer")
    );
    assert!(log_lines(&logs).len() < 20, "it did not run to its end");
}

#[tokio::test]
async fn mounts_readonly_components_and_reopened_logs() {
    let mut env_ = PodEnv::start(&["wasm-probe", "wasm-probe-component"]).await;
    let shared = tempfile::tempdir().unwrap();
    let mount = |readonly: bool| Mount {
        host_path: shared.path().display().to_string(),
        container_path: "/data".into(),
        readonly,
        ..Default::default()
    };
    let mut writer = env_.container("wasm-probe", "writer", &["write"]);
    writer.mounts = vec![mount(false)];
    let id = env_.run(writer).await;
    assert_eq!(env_.exited(&id).await.exit_code, 0);
    assert_eq!(
        std::fs::read_to_string(shared.path().join("out.txt")).unwrap(),
        "written by wasm\n"
    );
    std::fs::remove_file(shared.path().join("out.txt")).unwrap();
    let mut reader = env_.container("wasm-probe", "readonly", &["write"]);
    reader.mounts = vec![mount(true)];
    let id = env_.run(reader).await;
    let status = env_.exited(&id).await;
    assert!(status.exit_code > 10, "the write was refused: {status:?}");
    assert!(!shared.path().join("out.txt").exists());

    // The same program as a component, through wasi:cli/run.
    let id = env_
        .run(env_.container("wasm-probe-component", "component", &["echo", "x"]))
        .await;
    assert_eq!(env_.exited(&id).await.reason, "Completed");
    let texts: Vec<String> = env_
        .log("component")
        .into_iter()
        .map(|(_, _, t)| t)
        .collect();
    assert_eq!(texts[..3], ["probe-component.wasm", "echo", "x"]);
    let info = env_.info(&id).await;
    assert_eq!(info["launch"]["binary"], "component");
    let id = env_
        .run(env_.container("wasm-probe-component", "component-fail", &["fail"]))
        .await;
    assert_eq!(
        env_.exited(&id).await.exit_code,
        1,
        "a p2 command reports only ok/err"
    );

    // ReopenContainerLog: kubelet renames the file, then asks for a new one.
    let id = env_
        .run(env_.container("wasm-probe", "sleepy", &["sleepy"]))
        .await;
    let logs = env_.logs.join("sleepy/0.log");
    wait_for_log(&logs).await;
    std::fs::rename(&logs, env_.logs.join("sleepy/0.log.1")).unwrap();
    env_.client
        .reopen_container_log(ReopenContainerLogRequest {
            container_id: id.clone(),
        })
        .await
        .unwrap();
    assert_eq!(env_.exited(&id).await.exit_code, 7);
    assert!(
        !log_lines(&logs).is_empty(),
        "lines after the reopen go to the new file"
    );
    let err = env_
        .client
        .reopen_container_log(ReopenContainerLogRequest { container_id: id })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn the_backend_is_chosen_by_handler_annotation_media_type_and_magic() {
    let images = ["busybox", "wasm-entrypoint", "wasm-platform", "wasm-module"];
    let mut env_ = PodEnv::start(&images).await;
    let selected = async |env_: &mut PodEnv, pod: &str, image: &str, name: &str| {
        let config = env_.container(image, name, &[]);
        let id = env_.create_in(pod, config).await.unwrap();
        env_.start_container(&id).await;
        assert_eq!(env_.exited(&id).await.reason, "Completed");
        assert_eq!(env_.log(name), vec![line("stdout", "F", "hello from wasm")]);
        env_.info(&id).await["selectedBy"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let pod = env_.pod.clone();
    assert_eq!(
        selected(&mut env_, &pod, "wasm-module", "media").await,
        "the image's media types or platform are wasm"
    );
    assert_eq!(
        selected(&mut env_, &pod, "wasm-platform", "platform").await,
        "the image's media types or platform are wasm"
    );
    assert_eq!(
        selected(&mut env_, &pod, "wasm-entrypoint", "magic").await,
        "the image's entrypoint file"
    );

    // A Linux image without wasm runs as a Linux container.
    let id = env_
        .create(env_.container("busybox", "linux", &[]))
        .await
        .unwrap();
    let info = env_.info(&id).await;
    assert_eq!(info["backend"], "linux", "{info}");
    assert_eq!(
        info["selectedBy"],
        "no rule chose wasm and the image's entrypoint is not wasm"
    );

    // Annotations: the container's, then the pod's.
    let mut compat = env_.container("wasm-entrypoint", "smart", &[]);
    compat
        .annotations
        .insert("module.wasm.image/variant".into(), "compat-smart".into());
    let id = env_.create(compat).await.unwrap();
    assert_eq!(
        env_.info(&id).await["selectedBy"],
        "annotation module.wasm.image/variant=compat-smart"
    );
    let mut forced = env_.container("busybox", "forced", &[]);
    forced
        .annotations
        .insert("run.oci.handler".into(), "wasm".into());
    let err = env_.create(forced).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message()
            .contains("annotation run.oci.handler=wasm selects wasm"),
        "{err:?}"
    );

    // The handler wins over everything.
    let logs = env_.logs.clone();
    let mut client = env_.client.clone();
    let wasm_pod = new_pod(
        &mut client,
        "wasm-handler",
        "wasmtime",
        &logs,
        HashMap::new(),
    )
    .await;
    let err = env_
        .create_in(&wasm_pod, env_.container("busybox", "b", &[]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("runtime handler is of kind wasm"),
        "{err:?}"
    );
    let linux_pod = new_pod(&mut client, "linux-handler", "youki", &logs, HashMap::new()).await;
    let err = env_
        .create_in(&linux_pod, env_.container("wasm-module", "w", &[]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("runtime handler is of kind linux"),
        "{err:?}"
    );
    let annotated = new_pod(
        &mut client,
        "annotated",
        "",
        &logs,
        [(
            "module.wasm.image/variant".to_string(),
            "compat".to_string(),
        )]
        .into(),
    )
    .await;
    let err = env_
        .create_in(&annotated, env_.container("busybox", "c", &[]))
        .await
        .unwrap_err();
    assert!(
        err.message().contains("variant=compat selects wasm"),
        "{err:?}"
    );
    let records = std::fs::read_dir(env_.daemon.root().join("containers"))
        .unwrap()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().ends_with(".exit.json"))
        .count();
    assert_eq!(
        records, 5,
        "four wasm containers and the Linux one; the failed creates left nothing"
    );
}

#[tokio::test]
async fn bad_input_gets_clear_errors_and_leaves_nothing() {
    let images = [
        "wasm-probe",
        "wasm-bad-nostart",
        "wasm-bad-import",
        "wasm-bad-component",
    ];
    let mut env_ = PodEnv::start(&images).await;
    for (image, want) in [
        ("wasm-bad-nostart", "no `_start`"),
        ("wasm-bad-import", "env::missing"),
        ("wasm-bad-component", "wasi:cli/run"),
    ] {
        let err = env_
            .create(env_.container(image, image, &[]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{image}: {err:?}");
        assert!(err.message().contains(want), "{image}: {err:?}");
    }
    let missing = ContainerConfig {
        image: Some(ImageSpec {
            image: "127.0.0.1:1/none:latest".into(),
            ..Default::default()
        }),
        ..env_.container("wasm-probe", "missing-image", &[])
    };
    assert_eq!(
        env_.create(missing).await.unwrap_err().code(),
        Code::NotFound
    );
    let mut bad_mount = env_.container("wasm-probe", "bad-mount", &[]);
    bad_mount.mounts = vec![Mount {
        host_path: "/nonexistent/crishim-e2e".into(),
        container_path: "/data".into(),
        ..Default::default()
    }];
    let err = env_.create(bad_mount).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("/nonexistent/crishim-e2e"));
    let mut escaping = env_.container("wasm-probe", "escaping", &[]);
    escaping.log_path = "../../escape.log".into();
    assert_eq!(
        env_.create(escaping).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    assert_eq!(
        std::fs::read_dir(env_.daemon.root().join("containers"))
            .map(|d| d.count())
            .unwrap_or(0),
        0,
        "no failed create left a record"
    );

    let id = env_
        .run(env_.container("wasm-probe", "looping", &["loop"]))
        .await;
    let dup = env_
        .create(env_.container("wasm-probe", "looping", &[]))
        .await
        .unwrap_err();
    assert_eq!(dup.code(), Code::AlreadyExists);
    let again = env_.start_error(&id).await;
    assert_eq!(again.code(), Code::FailedPrecondition);
    let exec = env_
        .client
        .exec_sync(ExecSyncRequest {
            container_id: id.clone(),
            cmd: vec!["ls".into()],
            timeout: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(exec.code(), Code::Unimplemented);
    assert!(exec.message().contains("wasm"));
    for _ in 0..2 {
        env_.remove(&id).await;
    }
    let gone = env_.status_error(&id).await;
    assert_eq!(gone.code(), Code::NotFound);
    let gone = env_
        .client
        .start_container(StartContainerRequest { container_id: id })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
}

#[tokio::test]
async fn a_wasm_container_outlives_a_daemon_kill_and_its_exit_is_recorded() {
    let mut env_ = PodEnv::start(&["wasm-probe"]).await;
    let id = env_
        .run(env_.container("wasm-probe", "sleepy", &["sleepy"]))
        .await;
    let logs = env_.logs.join("sleepy/0.log");
    wait_for_log(&logs).await;
    let started = env_.status(&id).await.started_at;
    env_.kill_daemon_while_logging(&logs, Duration::from_millis(400))
        .await;
    let status = env_.exited(&id).await;
    assert_eq!((status.exit_code, status.reason.as_str()), (7, "Error"));
    assert_eq!(
        status.started_at, started,
        "the start time survives the restart (the monitor knows it)"
    );
    assert_eq!(log_lines(&logs).len(), 20);
    let listed = env_
        .client
        .list_containers(ListContainersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .containers;
    assert_eq!(listed.len(), 1, "nothing duplicated");
}

#[tokio::test]
async fn a_platform_image_gives_the_guest_its_files_at_the_root() {
    let mut env_ = PodEnv::start(&["wasm-probe-platform"]).await;
    let id = env_
        .run(env_.container("wasm-probe-platform", "rooted", &["write"]))
        .await;
    let status = env_.exited(&id).await;
    assert_eq!(status.exit_code, 0, "{status:?}");
    let bundle = PathBuf::from(env_.info(&id).await["bundle"].as_str().unwrap());
    let rootfs = bundle.join("rootfs");
    assert!(is_mounted(&rootfs), "the image's overlay is mounted");
    assert_eq!(
        std::fs::read_to_string(rootfs.join("etc/greeting")).unwrap(),
        "hello from the image\n"
    );
    assert_eq!(
        std::fs::read_to_string(bundle.join("upper/out.txt")).unwrap(),
        "written by wasm\n",
        "the guest wrote into its own layer"
    );
    assert_eq!(
        env_.info(&id).await["launch"]["argv"],
        serde_json::json!(["/probe.wasm", "write"])
    );

    let mut readonly = env_.container("wasm-probe-platform", "readonly-root", &["write"]);
    readonly.linux = Some(LinuxContainerConfig {
        security_context: Some(LinuxContainerSecurityContext {
            readonly_rootfs: true,
            ..Default::default()
        }),
        ..Default::default()
    });
    let ro = env_.run(readonly).await;
    assert!(
        env_.exited(&ro).await.exit_code > 10,
        "a readonly root refuses the write"
    );

    for container_id in [id, ro] {
        env_.client
            .remove_container(RemoveContainerRequest { container_id })
            .await
            .unwrap();
    }
    assert!(!is_mounted(&rootfs));
    assert!(!bundle.exists(), "the bundle is gone with the container");
}

#[tokio::test]
async fn a_component_listens_on_tcp_in_its_pods_network_namespace() {
    const GREETING: &str = "hello from a wasm socket\n";
    let mut env_ = PodEnv::start(&["wasm-listener"]).await;
    let pin = env_
        .daemon
        .layout()
        .namespace_pin(&env_.pod, crishim::store::layout::NamespaceKind::Net);
    assert_ne!(
        ns_inode(&pin),
        ns_inode(std::path::Path::new("/proc/self/ns/net")),
        "the pod has a network namespace of its own"
    );
    let net = format!("--net={}", pin.display());
    // Whether a socket listens on port 8080 (0x1F90) in the pod's namespace: its /proc/net/tcp,
    // read from inside it.
    let listening = || {
        let out = std::process::Command::new("nsenter")
            .args([net.as_str(), "cat", "/proc/net/tcp"])
            .output()
            .expect("nsenter (util-linux)");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).lines().any(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            fields.len() > 3 && fields[1].ends_with(":1F90") && fields[3] == "0A"
        })
    };
    assert!(
        !listening(),
        "nothing listens on 8080 before the guest runs"
    );

    let id = env_
        .run(env_.container("wasm-listener", "listener", &[]))
        .await;
    let up = eventually(Duration::from_secs(10), async || listening()).await;
    assert!(
        up,
        "the guest listens on 8080 in the pod: {:?} {:?}\n{}",
        env_.status(&id).await,
        env_.log("listener"),
        env_.monitor_log()
    );
    // The listener is up, and lives in the pod's namespace only.
    let from_host = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect("127.0.0.1:8080"),
    )
    .await;
    assert!(
        !matches!(from_host, Ok(Ok(_))),
        "port 8080 is not reachable from the host's network namespace"
    );

    // A client in the pod's namespace gets the greeting (retried while the guest starts).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let received = loop {
        let nc = tokio::process::Command::new("nsenter")
            .args([
                net.as_str(),
                "busybox",
                "nc",
                "-w",
                "2",
                "127.0.0.1",
                "8080",
            ])
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let text = match tokio::time::timeout(Duration::from_secs(5), nc).await {
            Ok(Ok(out)) => String::from_utf8_lossy(&out.stdout).into_owned(),
            Ok(Err(e)) => panic!("nsenter busybox nc: {e}"),
            Err(_) => String::new(),
        };
        if !text.is_empty() || std::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(received, GREETING, "{:?}", env_.log("listener"));

    let status = env_.exited(&id).await;
    assert_eq!(
        (status.exit_code, status.reason.as_str()),
        (0, "Completed"),
        "{status:?} {:?}",
        env_.log("listener")
    );
    assert!(env_.log("listener").is_empty(), "no failure on stderr");
    assert!(!listening(), "the guest's sockets closed with it");
}

/// The next `count` events of `stream`, each within 10 s.
async fn next_events(
    stream: &mut tonic::Streaming<ContainerEventResponse>,
    count: usize,
) -> Vec<ContainerEventResponse> {
    let mut events = Vec::new();
    for _ in 0..count {
        let event = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .unwrap_or_else(|_| panic!("no event after {events:?}"))
            .unwrap()
            .expect("the event stream goes on");
        events.push(event);
    }
    events
}

fn kinds(events: &[ContainerEventResponse]) -> Vec<(String, ContainerEventType)> {
    events
        .iter()
        .map(|e| {
            let kind = ContainerEventType::try_from(e.container_event_type).unwrap();
            (e.container_id.clone(), kind)
        })
        .collect()
}

#[tokio::test]
async fn events_follow_a_container_to_its_exit_without_status_reads_and_its_pod_to_the_end() {
    use ContainerEventType::*;
    let mut env_ = PodEnv::start(&["wasm-probe"]).await;
    let mut stream = env_
        .client
        .get_container_events(GetEventsRequest {})
        .await
        .unwrap()
        .into_inner();
    let id = env_
        .create(env_.container("wasm-probe", "hello", &[]))
        .await
        .unwrap();
    env_.start_container(&id).await;
    // No status is read: the exit comes from the monitor's report.
    let events = next_events(&mut stream, 3).await;
    assert_eq!(
        kinds(&events),
        vec![
            (id.clone(), ContainerCreatedEvent),
            (id.clone(), ContainerStartedEvent),
            (id.clone(), ContainerStoppedEvent)
        ]
    );
    let stopped = &events[2];
    let pod = stopped.pod_sandbox_status.as_ref().unwrap();
    assert_eq!(pod.id, env_.pod);
    assert_eq!(pod.metadata.as_ref().unwrap().name, "wasm");
    let container = &stopped.containers_statuses[0];
    assert_eq!(
        (
            container.id.as_str(),
            container.state,
            container.exit_code,
            container.reason.as_str()
        ),
        (
            id.as_str(),
            ContainerState::ContainerExited as i32,
            0,
            "Completed"
        )
    );
    assert!(stopped.created_at >= container.finished_at);

    env_.remove(&id).await;
    let pod_id = env_.pod.clone();
    stop_pod(&mut env_.client, &pod_id).await;
    stop_pod(&mut env_.client, &pod_id).await;
    remove_pod(&mut env_.client, &pod_id).await;
    let events = next_events(&mut stream, 3).await;
    assert_eq!(
        kinds(&events),
        vec![
            (id.clone(), ContainerDeletedEvent),
            (pod_id.clone(), ContainerStoppedEvent),
            (pod_id.clone(), ContainerDeletedEvent)
        ],
        "one STOPPED for two stops"
    );
    assert!(events[0].containers_statuses.is_empty());
    let deleted = events[2].pod_sandbox_status.as_ref().unwrap();
    assert_eq!(
        (deleted.id.as_str(), deleted.state),
        (pod_id.as_str(), PodSandboxState::SandboxNotready as i32),
        "the DELETED event carries the pod as it was before its removal"
    );

    let other = run_pod(&mut env_.client, pod_config("other", &[])).await;
    remove_pod(&mut env_.client, &other[..12]).await;
    let events = next_events(&mut stream, 4).await;
    assert_eq!(
        kinds(&events),
        vec![
            (other.clone(), ContainerCreatedEvent),
            (other.clone(), ContainerStartedEvent),
            (other.clone(), ContainerStoppedEvent),
            (other.clone(), ContainerDeletedEvent)
        ],
        "a ready pod removed by an id prefix: stopped, then deleted, named in full"
    );
}
