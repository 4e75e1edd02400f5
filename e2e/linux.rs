//! End-to-end tests of Linux containers: the real daemon, pod monitors, the libcontainer
//! helper, busybox images pulled from a registry on 127.0.0.1, CRI log files read as kubelet
//! reads them, and a `kill -9` of the daemon with containers running.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::containers::*;
use common::*;
use cri_proto::*;
use tonic::Code;

/// `sh -c script` in the busybox image.
fn shell(env_: &PodEnv, name: &str, script: &str) -> ContainerConfig {
    let mut config = env_.container("busybox", name, &[]);
    config.command = vec!["sh".into(), "-c".into(), script.into()];
    config
}

fn security(config: &mut ContainerConfig) -> &mut LinuxContainerSecurityContext {
    config
        .linux
        .get_or_insert_with(Default::default)
        .security_context
        .get_or_insert_with(Default::default)
}

fn texts(lines: &[(String, String, String)], stream: &str) -> Vec<String> {
    lines
        .iter()
        .filter(|(s, _, _)| s == stream)
        .map(|(_, _, t)| t.clone())
        .collect()
}

async fn exec(
    env_: &mut PodEnv,
    id: &str,
    cmd: &[&str],
    timeout: i64,
) -> Result<ExecSyncResponse, tonic::Status> {
    env_.client
        .exec_sync(ExecSyncRequest {
            container_id: id.into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout,
        })
        .await
        .map(|r| r.into_inner())
}

async fn stdout_of(env_: &mut PodEnv, id: &str, cmd: &[&str]) -> String {
    let out = exec(env_, id, cmd, 10).await.unwrap();
    assert_eq!(out.exit_code, 0, "{cmd:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test]
async fn a_container_runs_with_args_env_workdir_logs_and_exit_codes() {
    let mut env_ = PodEnv::start(&["busybox"]).await;
    let mut config = shell(
        &env_,
        "talk",
        "echo \"$GREETING from $(pwd)\"; echo oops >&2; printf partial; exit 3",
    );
    config.envs = env(&[("GREETING", "hello")]);
    config.working_dir = "/tmp".into();
    let id = env_.run(config).await;
    let status = env_.exited(&id).await;
    assert_eq!((status.exit_code, status.reason.as_str()), (3, "Error"));
    assert!(status.started_at > 0 && status.finished_at >= status.started_at);
    let manifest = env_.registry.field("busybox", "manifest");
    assert!(
        status
            .image_ref
            .ends_with(&format!("/test/busybox@{manifest}")),
        "{status:?}"
    );
    let lines = env_.log("talk");
    assert!(
        lines.contains(&line("stdout", "F", "hello from /tmp")),
        "{lines:?}"
    );
    assert!(lines.contains(&line("stderr", "F", "oops")), "{lines:?}");
    assert!(lines.contains(&line("stdout", "P", "partial")), "{lines:?}");

    // The CRI args replace the image's Cmd ([sh]) whole: `-c` is then the program, which
    // the image does not have.
    let e = env_
        .create(env_.container("busybox", "args", &["-c", "echo $0 $1", "a"]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("'-c' not found"), "{e:?}");

    let mut config = shell(&env_, "done", "true");
    config.command = vec!["true".into()];
    let id = env_.run(config).await;
    let status = env_.exited(&id).await;
    assert_eq!((status.exit_code, status.reason.as_str()), (0, "Completed"));
    let info = env_.info(&id).await;
    assert_eq!(info["backend"], "linux", "{info}");
}

#[tokio::test]
async fn containers_that_end_at_once_start_cleanly_four_at_a_time() {
    let mut env_ = PodEnv::start(&["busybox"]).await;
    let mut runs = tokio::task::JoinSet::new();
    for worker in 0..4 {
        let mut client = env_.client.clone();
        let pod = env_.pod.clone();
        let configs: Vec<ContainerConfig> = (0..6)
            .map(|i| {
                let name = format!("quick-{worker}-{i}");
                let mut config = env_.container("busybox", &name, &[]);
                config.command = vec!["true".into()];
                config
            })
            .collect();
        runs.spawn(async move {
            let mut ids = Vec::new();
            for config in configs {
                let request = CreateContainerRequest {
                    pod_sandbox_id: pod.clone(),
                    config: Some(config),
                    sandbox_config: None,
                };
                let id = client.create_container(request).await.unwrap();
                let id = id.into_inner().container_id;
                let start = StartContainerRequest {
                    container_id: id.clone(),
                };
                // A process that ends at once can be reaped while its start is recorded (seen
                // once in 200 under load): the start still succeeds.
                if let Err(e) = client.start_container(start).await {
                    panic!("StartContainer of `true`: {e:?}");
                }
                ids.push(id);
            }
            ids
        });
    }
    let ids: Vec<String> = runs.join_all().await.concat();
    assert_eq!(ids.len(), 24);
    for id in ids {
        let status = env_.exited(&id).await;
        assert_eq!((status.exit_code, status.reason.as_str()), (0, "Completed"));
    }
}

#[tokio::test]
async fn stop_sends_the_signal_then_kills_after_the_timeout() {
    let mut env_ = PodEnv::start(&["busybox"]).await;
    let polite = env_
        .run(shell(
            &env_,
            "polite",
            "trap 'echo got TERM; exit 0' TERM; echo ready; while true; do sleep 0.1; done",
        ))
        .await;
    let stubborn = env_
        .run(shell(
            &env_,
            "stubborn",
            "trap '' TERM; echo ready; sleep 1000",
        ))
        .await;
    let logs = env_.logs.clone();
    for name in ["polite", "stubborn"] {
        let path = logs.join(name).join("0.log");
        wait_for_log(&path).await;
    }
    env_.stop(&polite, 10).await;
    let status = env_.status(&polite).await;
    assert_eq!(status.exit_code, 0, "{status:?}");
    assert!(texts(&env_.log("polite"), "stdout").contains(&"got TERM".to_string()));

    let started = Instant::now();
    env_.stop(&stubborn, 1).await;
    assert!(started.elapsed() >= Duration::from_millis(900));
    let status = env_.status(&stubborn).await;
    assert_eq!((status.exit_code, status.reason.as_str()), (137, "Error"));

    // Stop of an exited container and of an unknown id are success.
    for id in [stubborn.as_str(), "no-such-container"] {
        env_.stop(id, 0).await;
    }
}

#[tokio::test]
async fn mounts_users_readonly_rootfs_and_capabilities_are_applied() {
    let mut env_ = PodEnv::start(&["busybox", "busybox-nonroot"]).await;
    let data = env_.daemon.dir.join("data");
    let readonly = env_.daemon.dir.join("readonly");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&readonly).unwrap();
    std::fs::write(readonly.join("in.txt"), "from the host\n").unwrap();
    let mut config = shell(
        &env_,
        "files",
        "echo written > /data/out.txt; cat /ro/in.txt; touch /ro/nope || echo ro-refused",
    );
    config.mounts = vec![
        Mount {
            container_path: "/data".into(),
            host_path: data.display().to_string(),
            ..Default::default()
        },
        Mount {
            container_path: "/ro".into(),
            host_path: readonly.display().to_string(),
            readonly: true,
            ..Default::default()
        },
    ];
    let id = env_.run(config).await;
    assert_eq!(env_.exited(&id).await.exit_code, 0);
    assert_eq!(
        std::fs::read_to_string(data.join("out.txt")).unwrap(),
        "written\n"
    );
    let out = texts(&env_.log("files"), "stdout");
    assert_eq!(out, ["from the host", "ro-refused"]);
    assert!(!readonly.join("nope").exists());

    let mut config = env_.container("busybox-nonroot", "nonroot", &[]);
    config.command = vec!["sh".into(), "-c".into(), "id -u; id -g; id -G".into()];
    let id = env_.run(config).await;
    assert_eq!(env_.exited(&id).await.exit_code, 0);
    assert_eq!(
        texts(&env_.log("nonroot"), "stdout"),
        ["1000", "1000", "1000 2000"]
    );
    let user = env_.status(&id).await.user.and_then(|u| u.linux).unwrap();
    assert_eq!(
        (user.uid, user.gid, user.supplemental_groups),
        (1000, 1000, vec![2000])
    );

    let mut config = shell(&env_, "runas", "id -u; id -g");
    security(&mut config).run_as_user = Some(Int64Value { value: 1234 });
    security(&mut config).run_as_group = Some(Int64Value { value: 4321 });
    let id = env_.run(config).await;
    assert_eq!(env_.exited(&id).await.exit_code, 0);
    assert_eq!(texts(&env_.log("runas"), "stdout"), ["1234", "4321"]);

    let mut config = shell(
        &env_,
        "rofs",
        "touch /newfile || echo rofs-refused; touch /tmp/x 2>&1",
    );
    security(&mut config).readonly_rootfs = true;
    let id = env_.run(config).await;
    env_.exited(&id).await;
    assert_eq!(texts(&env_.log("rofs"), "stdout")[0], "rofs-refused");

    let caps = "grep CapEff /proc/self/status";
    let mut config = shell(&env_, "nocaps", caps);
    security(&mut config).capabilities = Some(Capability {
        drop_capabilities: vec!["ALL".into()],
        ..Default::default()
    });
    let id = env_.run(config).await;
    env_.exited(&id).await;
    assert_eq!(
        texts(&env_.log("nocaps"), "stdout"),
        ["CapEff:\t0000000000000000"]
    );
    let mut config = shell(&env_, "netadmin", caps);
    security(&mut config).capabilities = Some(Capability {
        add_capabilities: vec!["NET_ADMIN".into()],
        ..Default::default()
    });
    let id = env_.run(config).await;
    env_.exited(&id).await;
    let line = &texts(&env_.log("netadmin"), "stdout")[0];
    let mask = u64::from_str_radix(line.trim_start_matches("CapEff:\t"), 16).unwrap();
    assert_ne!(mask & (1 << 12), 0, "CAP_NET_ADMIN (12) is in {line}");
    assert_eq!(mask & (1 << 21), 0, "CAP_SYS_ADMIN (21) is not in {line}");
}

#[tokio::test]
async fn a_container_over_its_memory_limit_is_oom_killed() {
    let mut env_ = PodEnv::start(&["busybox"]).await;
    let mut config = shell(&env_, "hog", "dd if=/dev/zero of=/dev/null bs=128M count=1");
    config.linux.get_or_insert_with(Default::default).resources = Some(LinuxContainerResources {
        memory_limit_in_bytes: 32 << 20,
        ..Default::default()
    });
    let id = env_.run(config).await;
    let status = env_.exited(&id).await;
    assert_eq!(
        (status.exit_code, status.reason.as_str()),
        (137, "OOMKilled"),
        "{status:?}"
    );
}

#[tokio::test]
async fn exec_sync_returns_output_exit_code_and_honours_the_timeout() {
    let mut env_ = PodEnv::start(&["busybox"]).await;
    let id = env_
        .run(shell(&env_, "host", "echo ready; sleep 1000"))
        .await;
    let out = exec(
        &mut env_,
        &id,
        &["sh", "-c", "echo out; echo err >&2; exit 4"],
        10,
    )
    .await
    .unwrap();
    assert_eq!(
        (out.stdout.as_slice(), out.stderr.as_slice(), out.exit_code),
        (&b"out\n"[..], &b"err\n"[..], 4)
    );
    let started = Instant::now();
    let late = exec(&mut env_, &id, &["sleep", "30"], 1).await.unwrap_err();
    assert_eq!(late.code(), Code::DeadlineExceeded, "{late:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let missing = exec(&mut env_, &id, &["no-such-tool"], 5).await;
    match missing {
        Ok(out) => assert_ne!(out.exit_code, 0, "{out:?}"),
        Err(e) => assert!(e.message().contains("no-such-tool"), "{e:?}"),
    }
    let env_vars = stdout_of(&mut env_, &id, &["sh", "-c", "echo $PATH"]).await;
    assert!(env_vars.contains("/bin"), "{env_vars}");
    env_.stop(&id, 0).await;
    let stopped = exec(&mut env_, &id, &["true"], 5).await.unwrap_err();
    assert_eq!(stopped.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn containers_of_a_pod_share_its_network_ipc_and_shm() {
    let mut env_ = PodEnv::start(&["busybox"]).await;
    let a = env_
        .run(shell(&env_, "a", "echo shared > /dev/shm/note; sleep 1000"))
        .await;
    let b = env_.run(shell(&env_, "b", "sleep 1000")).await;
    let pod_dir = env_.daemon.layout().pod_dir(&env_.pod);
    for kind in ["net", "ipc", "uts", "pid"] {
        let pin = ns_inode(&pod_dir.join("ns").join(kind));
        for id in [&a, &b] {
            let link = stdout_of(
                &mut env_,
                id,
                &["readlink", &format!("/proc/self/ns/{kind}")],
            )
            .await;
            assert_eq!(link, format!("{kind}:[{pin}]"), "{kind} of {id}");
        }
    }
    assert!(
        eventually(Duration::from_secs(10), async || exec(
            &mut env_,
            &b,
            &["cat", "/dev/shm/note"],
            5
        )
        .await
        .is_ok_and(|o| o.stdout == b"shared\n"))
        .await
    );
    // The pod (no namespace options: PID mode POD) shares its pid namespace: b sees a's
    // `sleep` beside its own.
    let ps = stdout_of(&mut env_, &b, &["ps", "-o", "args"]).await;
    assert_eq!(ps.lines().filter(|l| *l == "sleep 1000").count(), 2, "{ps}");
}

#[tokio::test]
async fn bad_input_gets_clear_errors_and_leaves_nothing() {
    let mut env_ = PodEnv::start(&["busybox"]).await;
    let mut missing_image = shell(&env_, "x", "true");
    missing_image.image = Some(ImageSpec {
        image: "127.0.0.1:1/nope:latest".into(),
        ..Default::default()
    });
    assert_eq!(
        env_.create(missing_image).await.unwrap_err().code(),
        Code::NotFound
    );

    for (key, why) in [
        ("vm.swappiness", "not namespaced"),
        ("net/../../etc/x", "not a sysctl"),
    ] {
        let mut pod = pod_config("bad-sysctl", &[]);
        pod.linux = Some(LinuxPodSandboxConfig {
            sysctls: [(key.to_string(), "1".to_string())].into(),
            ..Default::default()
        });
        let e = env_
            .client
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(pod),
                runtime_handler: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert!(e.message().contains(why), "{e:?}");
    }

    let mut bad_mount = shell(&env_, "x", "true");
    bad_mount.mounts = vec![Mount {
        container_path: "/data".into(),
        host_path: "/no/such/host/dir".into(),
        ..Default::default()
    }];
    let e = env_.create(bad_mount).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("/no/such/host/dir"), "{e:?}");

    let mut no_exe = shell(&env_, "noexe", "true");
    no_exe.command = vec!["foo".into()];
    // libcontainer checks the program before the init waits for StartContainer.
    let e = env_.create(no_exe).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("'foo' not found"), "{e:?}");

    let id = env_.run(shell(&env_, "dup", "sleep 1000")).await;
    let e = env_.create(shell(&env_, "dup", "true")).await.unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);
    let e = env_.start_error(&id).await;
    assert_eq!(e.code(), Code::FailedPrecondition);
    for _ in 0..2 {
        env_.remove(&id).await;
    }
    let e = env_.status_error(&id).await;
    assert_eq!(e.code(), Code::NotFound);
    // Nothing is left of the failed creates nor of the removed container: no record, no
    // bundle, no libcontainer state, no cgroup.
    let layout = env_.daemon.layout();
    for dir in [
        layout.containers_dir(),
        layout.pod_dir(&env_.pod).join("containers"),
        layout.linux_state_root(&env_.pod),
    ] {
        let left: Vec<_> = std::fs::read_dir(&dir)
            .map(|entries| entries.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{}: {left:?}", dir.display());
    }
    for mount in cgroup_mounts() {
        let dir = mount
            .join(TEST_CGROUP_PARENT.trim_start_matches('/'))
            .join(format!("crishim-{id}"));
        assert!(!dir.exists(), "{}", dir.display());
    }
}

#[tokio::test]
async fn containers_outlive_a_daemon_kill_and_exits_meanwhile_are_recorded() {
    let mut env_ = PodEnv::start(&["busybox"]).await;
    let ticker = env_
        .run(shell(
            &env_,
            "ticker",
            "while true; do echo tick; sleep 0.1; done",
        ))
        .await;
    let quitter = env_
        .run(shell(&env_, "quitter", "echo bye; sleep 1; exit 5"))
        .await;
    let ticks = env_.logs.join("ticker/0.log");
    wait_for_log(&ticks).await;
    let started = env_.status(&ticker).await.started_at;
    let quitter_started = env_.status(&quitter).await.started_at;
    env_.kill_daemon_while_logging(&ticks, Duration::from_millis(1500))
        .await;
    let status = env_.status(&ticker).await;
    assert_eq!(status.state, ContainerState::ContainerRunning as i32);
    assert_eq!(
        status.started_at, started,
        "the start time survives the restart (the monitor knows it)"
    );
    let status = env_.exited(&quitter).await;
    assert_eq!((status.exit_code, status.reason.as_str()), (5, "Error"));
    assert_eq!(status.started_at, quitter_started);
    let before = log_lines(&ticks).len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(log_lines(&ticks).len() > before, "its log still grows");
    let listed = env_
        .client
        .list_containers(ListContainersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .containers;
    assert_eq!(listed.len(), 2, "nothing duplicated");
    let out = exec(&mut env_, &ticker, &["echo", "still here"], 10)
        .await
        .unwrap();
    assert_eq!(out.stdout, b"still here\n");

    // The pod's stop ends its containers; its removal removes them and their cgroups.
    let pod = env_.pod.clone();
    stop_pod(&mut env_.client, &pod).await;
    assert_eq!(
        env_.status(&ticker).await.state,
        ContainerState::ContainerExited as i32
    );
    remove_pod(&mut env_.client, &pod).await;
    for id in [&ticker, &quitter] {
        for mount in cgroup_mounts() {
            let dir = mount
                .join(TEST_CGROUP_PARENT.trim_start_matches('/'))
                .join(format!("crishim-{id}"));
            assert!(!dir.exists(), "{}", dir.display());
        }
    }
    assert!(!Path::new(&env_.daemon.layout().pod_dir(&pod)).exists());
}

#[tokio::test]
async fn reopen_log_moves_output_to_a_new_file() {
    let mut env_ = PodEnv::start(&["busybox"]).await;
    let id = env_
        .run(shell(
            &env_,
            "rot",
            "while true; do echo line; sleep 0.05; done",
        ))
        .await;
    let path = env_.logs.join("rot/0.log");
    wait_for_log(&path).await;
    let rotated = env_.logs.join("rot/0.log.1");
    std::fs::rename(&path, &rotated).unwrap();
    env_.client
        .reopen_container_log(ReopenContainerLogRequest {
            container_id: id.clone(),
        })
        .await
        .unwrap();
    wait_for_log(&path).await;
    assert!(!log_lines(&rotated).is_empty());
}

#[tokio::test]
async fn a_wasm_container_and_a_linux_container_share_a_pod_and_a_mount() {
    let mut env_ = PodEnv::start(&["busybox", "wasm-probe"]).await;
    let shared = env_.daemon.dir.join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    let mount = Mount {
        container_path: "/shared".into(),
        host_path: shared.display().to_string(),
        ..Default::default()
    };
    let mut writer = env_.container("wasm-probe", "writer", &["write"]);
    writer.mounts = vec![mount.clone()];
    let wasm = env_.run(writer).await;
    assert_eq!(env_.exited(&wasm).await.exit_code, 0);
    let mut reader = shell(&env_, "reader", "cat /shared/out.txt");
    reader.mounts = vec![mount];
    let linux = env_.run(reader).await;
    assert_eq!(env_.exited(&linux).await.exit_code, 0);
    assert_eq!(texts(&env_.log("reader"), "stdout"), ["written by wasm"]);
    assert_eq!(env_.info(&wasm).await["backend"], "wasm");
    assert_eq!(env_.info(&linux).await["backend"], "linux");
}

#[tokio::test]
async fn a_kubelet_style_pod_gives_each_container_its_pid_namespace_and_live_limits() {
    let mut env_ = PodEnv::start(&["busybox", "wasm-probe"]).await;
    let mut config = with_namespaces(
        pod_config("kubelet-style", &[]),
        NamespaceMode::Pod,
        NamespaceMode::Container,
        NamespaceMode::Pod,
    );
    config.log_directory = env_.logs.display().to_string();
    config.linux.as_mut().unwrap().sysctls = [(
        "net.ipv4.ip_local_port_range".to_string(),
        "20000 30000".to_string(),
    )]
    .into();
    config.dns_config = Some(DnsConfig {
        servers: vec!["10.96.0.10".into()],
        searches: vec!["ns.svc.cluster.local".into()],
        options: vec!["ndots:5".into()],
    });
    let pod = env_
        .client
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .pod_sandbox_id;
    let mut sleeper = shell(&env_, "sleeper", "sleep 1000");
    sleeper.linux.get_or_insert_with(Default::default).resources = Some(LinuxContainerResources {
        memory_limit_in_bytes: 64 << 20,
        ..Default::default()
    });
    let id = env_.create_in(&pod, sleeper).await.unwrap();
    env_.start_container(&id).await;
    let init = stdout_of(&mut env_, &id, &["cat", "/proc/1/cmdline"]).await;
    assert!(
        init.starts_with("sleep"),
        "{init:?}: the container's own pid 1"
    );
    let limit = [
        "sh",
        "-c",
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max",
    ];
    assert_eq!(
        stdout_of(&mut env_, &id, &limit).await,
        (64u64 << 20).to_string()
    );

    let bigger = LinuxContainerResources {
        memory_limit_in_bytes: 128 << 20,
        ..Default::default()
    };
    env_.client
        .update_container_resources(UpdateContainerResourcesRequest {
            container_id: id.clone(),
            linux: Some(bigger),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        stdout_of(&mut env_, &id, &limit).await,
        (128u64 << 20).to_string()
    );
    let status = env_.status(&id).await;
    let reported = status.resources.and_then(|r| r.linux).unwrap();
    assert_eq!(reported.memory_limit_in_bytes, 128 << 20);

    let wasm = env_
        .run(env_.container("wasm-probe", "guest", &["idle"]))
        .await;
    let e = env_
        .client
        .update_container_resources(UpdateContainerResourcesRequest {
            container_id: wasm,
            linux: Some(LinuxContainerResources::default()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented, "{e:?}");
}

#[tokio::test]
async fn seccomp_profiles_and_privileged_containers() {
    let mut env_ = PodEnv::start(&["busybox"]).await;
    let script =
        "echo $(echo forked); unshare -U true 2>/dev/null && echo unshared || echo refused";
    let mut confined = shell(&env_, "confined", script);
    security(&mut confined).seccomp = Some(SecurityProfile {
        profile_type: security_profile::ProfileType::RuntimeDefault as i32,
        localhost_ref: String::new(),
    });
    let id = env_.run(confined).await;
    assert_eq!(env_.exited(&id).await.exit_code, 0);
    assert_eq!(
        texts(&env_.log("confined"), "stdout"),
        ["forked", "refused"]
    );

    let id = env_.run(shell(&env_, "unconfined", script)).await;
    assert_eq!(env_.exited(&id).await.exit_code, 0);
    assert_eq!(
        texts(&env_.log("unconfined"), "stdout"),
        ["forked", "unshared"]
    );

    let profile = env_.daemon.dir.join("deny-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let mut local = shell(&env_, "local", "mkdir /tmp/d && echo made || echo denied");
    security(&mut local).seccomp = Some(SecurityProfile {
        profile_type: security_profile::ProfileType::Localhost as i32,
        localhost_ref: profile.display().to_string(),
    });
    let id = env_.run(local).await;
    env_.exited(&id).await;
    assert_eq!(texts(&env_.log("local"), "stdout"), ["denied"]);

    let devices = "ls /dev";
    let mut privileged = shell(&env_, "privileged", devices);
    security(&mut privileged).privileged = true;
    let id = env_.run(privileged).await;
    env_.exited(&id).await;
    let id = env_.run(shell(&env_, "plain", devices)).await;
    env_.exited(&id).await;
    let host_only = std::fs::read_dir("/dev")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("loop") || n == "kmsg" || n == "mem")
        .expect("a loop device, kmsg or mem on the host");
    assert!(texts(&env_.log("privileged"), "stdout").contains(&host_only));
    assert!(!texts(&env_.log("plain"), "stdout").contains(&host_only));
}

#[tokio::test]
async fn orphans_in_a_shared_pid_namespace_are_reaped() {
    let mut env_ = PodEnv::start(&["busybox"]).await;
    // The subshell exits at once; its `sleep` is orphaned to the pod's pid 1 (the monitor).
    let id = env_
        .run(shell(
            &env_,
            "parent",
            "(sleep 2 &); echo started; sleep 1000",
        ))
        .await;
    let logs = env_.logs.join("parent/0.log");
    wait_for_log(&logs).await;
    let monitor = monitor_pid(&pod_status(&mut env_.client, &env_.pod).await);
    let children = || {
        std::fs::read_dir(format!("/proc/{monitor}/task"))
            .unwrap()
            .flatten()
            .flat_map(|t| {
                std::fs::read_to_string(t.path().join("children"))
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(String::from)
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    };
    let orphan = children().into_iter().find(|pid| {
        std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == b"sleep\x002\x00")
    });
    assert!(
        orphan.is_some(),
        "the orphaned sleep became the monitor's child"
    );
    let zombies = || {
        children()
            .iter()
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                    s.rsplit(')')
                        .next()
                        .unwrap_or("")
                        .trim_start()
                        .starts_with('Z')
                })
            })
            .count()
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        eventually(Duration::from_secs(10), async || zombies() == 0).await,
        "the orphaned sleep is reaped"
    );
    assert_eq!(
        env_.status(&id).await.state,
        ContainerState::ContainerRunning as i32
    );
}
