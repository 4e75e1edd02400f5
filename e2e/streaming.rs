//! End-to-end tests of Exec, Attach and PortForward: the real daemon answers a one-time URL,
//! and an independent client (`hack/streamclient`, built on the SPDY library kubectl uses and
//! on gorilla/websocket) runs the session over SPDY/3.1 and over WebSocket.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::containers::*;
use common::streamclient::run_client;
use common::*;
use cri_proto::*;
use tonic::Code;

const TRANSPORTS: [&str; 2] = ["spdy", "websocket"];

/// The stream client's arguments for a `kind` session on `url` over `transport`.
fn client_args<'a>(
    kind: &'a str,
    url: &'a str,
    transport: &'a str,
    flags: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![kind, "--url", url, "--transport", transport];
    args.extend_from_slice(flags);
    args
}

/// `sh -c script` in the busybox image.
fn shell(env_: &PodEnv, name: &str, script: &str) -> ContainerConfig {
    let mut config = env_.container("busybox", name, &[]);
    config.command = vec!["sh".into(), "-c".into(), script.into()];
    config
}

fn with_stdin(mut config: ContainerConfig, once: bool) -> ContainerConfig {
    config.stdin = true;
    config.stdin_once = once;
    config
}

/// Attach with stdin (or not) and with stdout and stderr (or not).
async fn attach_url(
    env_: &mut PodEnv,
    id: &str,
    stdin: bool,
    output: bool,
) -> Result<String, tonic::Status> {
    env_.client
        .attach(AttachRequest {
            container_id: id.into(),
            stdin,
            tty: false,
            stdout: output,
            stderr: output,
        })
        .await
        .map(|r| r.into_inner().url)
}

/// Exec with stdin, stdout and stderr, or with stdout only.
async fn exec_url(
    env_: &mut PodEnv,
    id: &str,
    cmd: &[&str],
    all_streams: bool,
) -> Result<String, tonic::Status> {
    env_.client
        .exec(ExecRequest {
            container_id: id.into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            tty: false,
            stdin: all_streams,
            stdout: true,
            stderr: all_streams,
        })
        .await
        .map(|r| r.into_inner().url)
}

async fn port_forward_url(env_: &mut PodEnv, port: i32) -> String {
    env_.client
        .port_forward(PortForwardRequest {
            pod_sandbox_id: env_.pod.clone(),
            port: vec![port],
        })
        .await
        .unwrap()
        .into_inner()
        .url
}

#[tokio::test]
async fn attach_gives_a_wasm_container_its_stdin_and_streams_its_output() {
    let mut env_ = PodEnv::start(&["wasm-probe", "wasm-probe-component"]).await;
    // A p1 module over both transports, and the same program as a p2 component.
    let runs = [
        ("wasm-probe", "spdy"),
        ("wasm-probe", "websocket"),
        ("wasm-probe-component", "spdy"),
    ];
    for (i, (image, transport)) in runs.into_iter().enumerate() {
        let name = format!("cat-{i}");
        let config = with_stdin(env_.container(image, &name, &["cat"]), true);
        let id = env_.create(config).await.unwrap();
        let url = attach_url(&mut env_, &id, true, true).await.unwrap();
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        env_.start_container(&id).await;
        let args = client_args(
            "attach",
            &url,
            transport,
            &["--stdin", "--stdout", "--stderr"],
        );
        let run = run_client(&args, b"line one\nline two\n").await;
        assert_eq!(
            (run.code, run.stdout.as_str()),
            (0, "line one\nline two\nstdin closed\n"),
            "{image} over {transport}: {run:?}\n{}",
            env_.monitor_log()
        );
        let status = env_.exited(&id).await;
        assert_eq!((status.exit_code, status.reason.as_str()), (0, "Completed"));
        assert_eq!(
            env_.log(&name),
            vec![
                line("stdout", "F", "line one"),
                line("stdout", "F", "line two"),
                line("stdout", "F", "stdin closed"),
            ],
            "the log has what the attach saw"
        );
        // A used URL is gone.
        let again = run_client(&args, b"").await;
        assert_eq!(again.code, 126, "{again:?}");
        assert!(again.stderr.contains("404"), "{again:?}");
    }

    // A container without stdin reads EOF at once; an exited one cannot be attached to.
    let id = env_
        .run(env_.container("wasm-probe", "no-stdin", &["cat"]))
        .await;
    env_.exited(&id).await;
    assert_eq!(
        env_.log("no-stdin"),
        vec![line("stdout", "F", "stdin closed")]
    );
    let refused = attach_url(&mut env_, &id, true, true).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
}

#[tokio::test]
async fn exec_and_attach_in_a_linux_container_over_spdy_and_websocket() {
    let mut env_ = PodEnv::start(&["busybox"]).await;
    let reader = with_stdin(
        shell(
            &env_,
            "reader",
            "while read l; do echo \"got $l\"; done; echo done >&2",
        ),
        false,
    );
    let reader = env_.run(reader).await;
    let sleeper = env_.run(shell(&env_, "sleeper", "sleep 600")).await;
    for transport in TRANSPORTS {
        let url = exec_url(
            &mut env_,
            &sleeper,
            &["sh", "-c", "cat; echo to-stderr >&2; exit 3"],
            true,
        )
        .await
        .unwrap();
        let args = client_args(
            "exec",
            &url,
            transport,
            &["--stdin", "--stdout", "--stderr"],
        );
        let run = run_client(&args, b"typed into exec\n").await;
        assert_eq!(
            (run.code, run.stdout.as_str()),
            (3, "typed into exec\n"),
            "{transport}: {run:?}\n{}",
            env_.monitor_log()
        );
        assert!(run.stderr.contains("to-stderr"), "{transport}: {run:?}");

        let url = exec_url(&mut env_, &sleeper, &["id", "-u"], false)
            .await
            .unwrap();
        let args = client_args("exec", &url, transport, &["--stdout"]);
        let run = run_client(&args, b"").await;
        assert_eq!((run.code, run.stdout.as_str()), (0, "0\n"), "{run:?}");

        // Attach sessions come and go (the client detaches by going away: its timeout); without
        // stdin_once the container's stdin stays open.
        let url = attach_url(&mut env_, &reader, true, false).await.unwrap();
        let args = client_args("attach", &url, transport, &["--stdin", "--timeout", "3s"]);
        let run = run_client(&args, format!("{transport}\n").as_bytes()).await;
        assert_eq!(run.code, 124, "{transport}: the session lasts: {run:?}");
        let expected = line("stdout", "F", &format!("got {transport}"));
        let logged = eventually(Duration::from_secs(10), async || {
            env_.log("reader").contains(&expected)
        })
        .await;
        assert!(logged, "{transport}: {:?}", env_.log("reader"));
    }
    assert_eq!(
        env_.status(&reader).await.state,
        ContainerState::ContainerRunning as i32,
        "two attach sessions ended, the stdin stays open"
    );

    // A client that goes away takes its command with it.
    let url = exec_url(&mut env_, &sleeper, &["sleep", "500"], false)
        .await
        .unwrap();
    let args = client_args("exec", &url, "spdy", &["--stdout", "--timeout", "2s"]);
    let run = run_client(&args, b"").await;
    assert_eq!(run.code, 124, "the client gave up: {run:?}");
    let mut ps = String::new();
    let gone = eventually(Duration::from_secs(10), async || {
        let out = env_
            .client
            .exec_sync(ExecSyncRequest {
                container_id: sleeper.clone(),
                cmd: vec!["ps".into()],
                timeout: 5,
            })
            .await
            .unwrap()
            .into_inner();
        ps = String::from_utf8_lossy(&out.stdout).into_owned();
        !ps.contains("sleep 500")
    })
    .await;
    assert!(gone, "the exec was killed with its session: {ps}");

    let missing = exec_url(&mut env_, &sleeper, &[], true).await.unwrap_err();
    assert_eq!(missing.code(), Code::InvalidArgument, "{missing:?}");
    let tty = env_
        .client
        .attach(AttachRequest {
            container_id: reader.clone(),
            stdin: true,
            tty: true,
            stdout: true,
            stderr: false,
        })
        .await
        .unwrap_err();
    assert_eq!(tty.code(), Code::InvalidArgument, "{tty:?}");
    env_.stop(&sleeper, 0).await;
    let stopped = exec_url(&mut env_, &sleeper, &["true"], true)
        .await
        .unwrap_err();
    assert_eq!(stopped.code(), Code::FailedPrecondition, "{stopped:?}");
    env_.stop(&reader, 0).await;
}

#[tokio::test]
async fn exec_into_a_wasm_container_is_a_clear_error() {
    let mut env_ = PodEnv::start(&["wasm-probe"]).await;
    let id = env_
        .run(env_.container("wasm-probe", "idle", &["idle"]))
        .await;
    let refused = exec_url(&mut env_, &id, &["sh"], true).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unimplemented, "{refused:?}");
    assert!(refused.message().contains("wasm"), "{refused:?}");
    env_.stop(&id, 0).await;
}

#[tokio::test]
async fn port_forward_reaches_a_port_in_the_pods_network_namespace() {
    let mut env_ = PodEnv::start(&["busybox"]).await;
    // A server on the pod's loopback: each connection gets one line answered, then closed (a
    // WebSocket client cannot half-close, so the server ends each connection).
    let server = "printf '#!/bin/sh\\nread l\\necho \"got $l\"\\n' >/tmp/reply && chmod +x /tmp/reply \
                  && exec nc -ll -p 8080 -e /tmp/reply";
    let id = env_.run(shell(&env_, "reply", server)).await;
    for transport in TRANSPORTS {
        let mut last = None;
        // Retried while nc starts listening.
        for _ in 0..50 {
            let url = port_forward_url(&mut env_, 8080).await;
            let args = client_args(
                "portforward",
                &url,
                transport,
                &["--port", "8080", "--send", "ping\n", "--timeout", "5s"],
            );
            let run = run_client(&args, b"").await;
            if run.code == 0 && run.stdout == "got ping\n" {
                last = None;
                break;
            }
            last = Some(run);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            last.is_none(),
            "{transport}: {last:?}\n{}",
            env_.monitor_log()
        );
    }
    // Nothing listens on 8081: the error stream says so.
    let url = port_forward_url(&mut env_, 8081).await;
    let args = client_args(
        "portforward",
        &url,
        "spdy",
        &["--port", "8081", "--send", "x"],
    );
    let run = run_client(&args, b"").await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("8081"), "{run:?}");
    // The port is the pod's, not the host's.
    let from_host = tokio::net::TcpStream::connect("127.0.0.1:8080").await;
    assert!(from_host.is_err(), "8080 is not open on the host");
    env_.stop(&id, 0).await;
}
