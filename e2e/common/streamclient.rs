//! The Go streaming client (`hack/streamclient`), an independent exec/attach/port-forward
//! client built on the SPDY library kubectl uses and on gorilla/websocket: the e2e tests drive
//! the streaming server with it, as kubelet's clients would.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

/// The client, built once per test binary (into cargo's test tmp dir).
pub fn streamclient() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
            let out = dir.join(format!("streamclient-{}", std::process::id()));
            let script =
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("hack/streamclient/build.sh");
            let built = std::process::Command::new("bash")
                .arg(&script)
                .arg(&out)
                .output()
                .unwrap_or_else(|e| panic!("run {}: {e}", script.display()));
            assert!(
                built.status.success(),
                "building the Go stream client failed (install its packages with \
                 `sudo hack/setup.sh`): {}",
                String::from_utf8_lossy(&built.stderr)
            );
            out
        })
        .clone()
}

/// What a client run printed, and its exit code.
#[derive(Debug)]
pub struct ClientRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the client with `args`, `input` on its stdin (then closed), for at most 30 s (the
/// client's own `--timeout` is 20 s unless `args` set one).
pub async fn run_client(args: &[&str], input: &[u8]) -> ClientRun {
    let timeout: &[&str] = match args.contains(&"--timeout") {
        true => &[],
        false => &["--timeout", "20s"],
    };
    let mut child = tokio::process::Command::new(streamclient())
        .args(args)
        .args(timeout)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the stream client");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).await.unwrap();
    drop(stdin);
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("the stream client ends within 30 s")
        .unwrap();
    ClientRun {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
