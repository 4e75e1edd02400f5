//! An attach session on the daemon side: the pod's monitor streams the container's output in
//! frames, which go to the client's stdout and stderr; the client's stdin goes the other way.
//! The session ends when the container does (the monitor closes), or the client goes away.

use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::mpsc;

use crate::monitor::frames::{self, FrameKind};
use crate::monitor::protocol::{Request, Response, open_session};
use crate::streaming::channels::{Channels, Outcome, Wanted};
use crate::streaming::session::MonitorTarget;

/// How long the monitor may take to accept a session.
const MONITOR_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs an attach session to its end and reports how it ended on the error stream.
pub async fn run(target: MonitorTarget, wanted: Wanted, channels: Channels) {
    let request = Request::Attach {
        container_id: target.container_id.clone(),
        stdin: wanted.stdin,
    };
    relay(&target, request, channels).await;
}

/// Opens a session on the monitor with `request` and relays it until the monitor closes it
/// or the client goes away. Used by attach and exec alike; an exec's session ends with its
/// exit code, and one that ends without it failed.
pub async fn relay(target: &MonitorTarget, request: Request, channels: Channels) {
    let ends_with_exit_code = matches!(request, Request::Exec { .. });
    let Channels {
        stdin,
        stdout,
        stderr,
        mut outcome,
    } = channels;
    let stream = match connect(target, request).await {
        Ok(stream) => stream,
        Err(message) => {
            drop((stdout, stderr));
            let _ = outcome.send(Outcome::Failure(message));
            return;
        }
    };
    let (mut from_monitor, to_monitor) = stream.into_split();
    let feeding = tokio::spawn(feed_stdin(stdin, to_monitor));
    let ended = tokio::select! {
        ended = copy_output(&mut from_monitor, stdout, stderr) => ended,
        () = outcome.closed() => Ok(None),
    };
    feeding.abort();
    let result = match ended {
        Ok(Some(code)) if code != 0 => Outcome::ExitCode(code),
        Ok(None) if ends_with_exit_code => {
            Outcome::Failure("the pod's monitor ended the exec without its exit code".into())
        }
        Ok(_) => Outcome::Success,
        Err(e) => Outcome::Failure(format!("the pod's monitor: {e}")),
    };
    let _ = outcome.send(result);
}

async fn connect(target: &MonitorTarget, request: Request) -> Result<UnixStream, String> {
    let socket = target.socket.clone();
    let opened =
        tokio::task::spawn_blocking(move || open_session(&socket, &request, MONITOR_TIMEOUT))
            .await
            .map_err(|e| format!("the session task failed: {e}"))?;
    let (response, stream) = opened.map_err(|e| {
        format!(
            "the pod's monitor at {} did not answer: {e}",
            target.socket.display()
        )
    })?;
    match response {
        Response::Done => {}
        Response::Failed { message } | Response::Refused { message, .. } => return Err(message),
        other => return Err(format!("the pod's monitor answered {other:?}")),
    }
    stream
        .set_nonblocking(true)
        .and_then(|()| UnixStream::from_std(stream))
        .map_err(|e| format!("use the monitor connection: {e}"))
}

/// Passes the client's stdin on, then its end. Holds the connection's write half until the
/// session is over (the task is aborted then): the monitor takes its closing as the daemon
/// leaving.
async fn feed_stdin(stdin: Option<mpsc::Receiver<Bytes>>, mut to_monitor: OwnedWriteHalf) {
    if let Some(mut stdin) = stdin {
        forward_stdin(&mut stdin, &mut to_monitor).await;
    }
    std::future::pending::<()>().await;
}

async fn forward_stdin(stdin: &mut mpsc::Receiver<Bytes>, to_monitor: &mut OwnedWriteHalf) {
    while let Some(chunk) = stdin.recv().await {
        for piece in chunk.chunks(frames::MAX_PAYLOAD) {
            let frame = frames::encode(FrameKind::Stdin, piece);
            if to_monitor.write_all(&frame).await.is_err() {
                return;
            }
        }
    }
    let _ = to_monitor
        .write_all(&frames::encode(FrameKind::StdinEnd, &[]))
        .await;
}

/// Copies output frames to the client until the monitor closes the connection; an exec's
/// exit code frame is returned.
async fn copy_output(
    from_monitor: &mut (impl AsyncRead + Unpin),
    stdout: Option<mpsc::Sender<Bytes>>,
    stderr: Option<mpsc::Sender<Bytes>>,
) -> std::io::Result<Option<i32>> {
    let mut exit = None;
    while let Some((kind, payload)) = read_frame(from_monitor).await? {
        let to = match kind {
            FrameKind::Stdout => stdout.as_ref(),
            FrameKind::Stderr => stderr.as_ref(),
            FrameKind::Exit => {
                exit = frames::exit_code(&payload);
                continue;
            }
            FrameKind::Stdin | FrameKind::StdinEnd => None,
        };
        if let Some(to) = to
            && to.send(Bytes::from(payload)).await.is_err()
        {
            break;
        }
    }
    Ok(exit)
}

async fn read_frame(
    reader: &mut (impl AsyncRead + Unpin),
) -> std::io::Result<Option<(FrameKind, Vec<u8>)>> {
    let mut header = [0; frames::HEADER_LEN];
    match reader.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let (kind, len) = frames::decode_header(header)?;
    let mut payload = vec![0; len];
    reader.read_exact(&mut payload).await?;
    Ok(Some((kind, payload)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use tokio::sync::oneshot;

    /// A monitor that answers one session request with `done`, then sends `frames`, then
    /// closes; it returns the request line it got and the stdin frames the daemon sent.
    fn fake_monitor(
        socket: &std::path::Path,
        frames_out: Vec<u8>,
    ) -> std::thread::JoinHandle<(String, Vec<u8>)> {
        let listener = std::os::unix::net::UnixListener::bind(socket).unwrap();
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            reader.read_line(&mut request).unwrap();
            let mut writer = &stream;
            writer.write_all(b"{\"result\":\"done\"}\n").unwrap();
            let mut stdin = Vec::new();
            if let Some((FrameKind::Stdin, data)) = frames::read(&mut reader).unwrap() {
                stdin = data;
            }
            writer.write_all(&frames_out).unwrap();
            (request, stdin)
        })
    }

    fn channels() -> (
        Channels,
        mpsc::Sender<Bytes>,
        mpsc::Receiver<Bytes>,
        oneshot::Receiver<Outcome>,
    ) {
        let (stdin_tx, stdin) = mpsc::channel(4);
        let (stdout, stdout_rx) = mpsc::channel(4);
        let (outcome, outcome_rx) = oneshot::channel();
        let channels = Channels {
            stdin: Some(stdin),
            stdout: Some(stdout),
            stderr: None,
            outcome,
        };
        (channels, stdin_tx, stdout_rx, outcome_rx)
    }

    #[tokio::test]
    async fn an_exec_session_relays_stdin_output_and_its_exit_code() {
        let dir = tempfile::tempdir().unwrap();
        let target = MonitorTarget {
            container_id: "c1".into(),
            socket: dir.path().join("m.sock"),
        };
        let mut out = frames::encode(FrameKind::Stdout, b"hello");
        out.extend(frames::encode(FrameKind::Stderr, b"not asked for"));
        out.extend(frames::encode(FrameKind::Exit, &3i32.to_be_bytes()));
        let monitor = fake_monitor(&target.socket, out);
        let (channels, stdin, mut stdout, outcome) = channels();
        stdin.send(Bytes::from_static(b"typed")).await.unwrap();
        let request = Request::Exec {
            container_id: "c1".into(),
            argv: vec!["cat".into()],
            stdin: true,
        };
        relay(&target, request, channels).await;
        assert_eq!(stdout.recv().await.unwrap(), Bytes::from_static(b"hello"));
        assert_eq!(stdout.recv().await, None);
        assert_eq!(outcome.await.unwrap(), Outcome::ExitCode(3));
        let (request, typed) = monitor.join().unwrap();
        assert!(request.contains("\"op\":\"exec\""), "{request}");
        assert_eq!(typed, b"typed");
    }

    #[tokio::test]
    async fn an_exec_cut_short_fails_and_an_attach_ends_in_success() {
        let dir = tempfile::tempdir().unwrap();
        for (request, expected) in [
            (
                Request::Exec {
                    container_id: "c".into(),
                    argv: vec!["true".into()],
                    stdin: true,
                },
                Outcome::Failure("the pod's monitor ended the exec without its exit code".into()),
            ),
            (
                Request::Attach {
                    container_id: "c".into(),
                    stdin: true,
                },
                Outcome::Success,
            ),
        ] {
            let target = MonitorTarget {
                container_id: "c".into(),
                socket: dir
                    .path()
                    .join(format!("{}.sock", expected == Outcome::Success)),
            };
            let monitor = fake_monitor(&target.socket, Vec::new());
            let (channels, stdin, _stdout, outcome) = channels();
            stdin.send(Bytes::from_static(b"x")).await.unwrap();
            relay(&target, request, channels).await;
            assert_eq!(outcome.await.unwrap(), expected);
            monitor.join().unwrap();
        }
        let gone = MonitorTarget {
            container_id: "c".into(),
            socket: dir.path().join("nobody.sock"),
        };
        let (channels, _stdin, _stdout, outcome) = channels();
        let attach = Request::Attach {
            container_id: "c".into(),
            stdin: false,
        };
        relay(&gone, attach, channels).await;
        assert!(
            matches!(outcome.await.unwrap(), Outcome::Failure(m) if m.contains("did not answer"))
        );
    }
}
