//! Exec and attach over SPDY (the `channel.k8s.io` protocols): the client opens an error
//! stream and one stream per standard stream it wants (plus a resize stream with a TTY from v3
//! on); the server answers each, and once the set is complete the runner's channels are live.
//! At the end the error stream carries the status: JSON from v4 on, before v4 a failure's
//! message as plain text and nothing for success.

use std::io;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};

use super::SpdyError;
use super::headers::{Headers, header_value};
use super::session::{Event, Session, channel_source};
use crate::streaming::channels::{Channels, Outcome, Wanted, status_json};

/// Chunks buffered between the session and the runner, each way.
const CHUNK_QUEUE: usize = 32;

/// Serves a remote-command (exec/attach) session over an upgraded connection: waits (at most `timeout`) for
/// the streams `wanted` implies to be created by the client, then returns the Channels; a task it spawns drives the
/// connection until the runner sends the outcome (see channels.rs contract) or the client goes away.
pub async fn accept_remote_command<IO>(
    io: IO,
    protocol: &'static str,
    wanted: Wanted,
    timeout: Duration,
) -> io::Result<Channels>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let version = Version::of(protocol);
    let mut session = Session::start(io)?;
    let (error_stream, opened) =
        tokio::time::timeout(timeout, gather(&mut session, Plan::new(version, wanted)))
            .await
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    "timed out waiting for the client to create streams",
                )
            })??;
    let (outcome, outcome_rx) = oneshot::channel();
    let channels = Channels {
        stdin: opened.stdin,
        stdout: opened.stdout,
        stderr: opened.stderr,
        outcome,
    };
    tokio::spawn(drive(session, version, error_stream, outcome_rx));
    Ok(channels)
}

/// The protocol versions, which differ in the streams they open and the status they expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V2,
    V3,
    V4,
}

impl Version {
    /// The version a negotiated protocol names; kubelet falls back to v1 without one.
    fn of(protocol: &str) -> Self {
        match protocol {
            "v5.channel.k8s.io" | "v4.channel.k8s.io" => Self::V4,
            "v3.channel.k8s.io" => Self::V3,
            "v2.channel.k8s.io" => Self::V2,
            _ => Self::V1,
        }
    }

    /// Whether a TTY session opens a resize stream (v3 on).
    fn has_resize_stream(self) -> bool {
        matches!(self, Self::V3 | Self::V4)
    }

    /// What the error stream carries at the end, if anything.
    fn status(self, outcome: &Outcome) -> Option<Vec<u8>> {
        match self {
            Self::V4 => Some(status_json(outcome)),
            _ => failure_message(outcome),
        }
    }
}

/// A failure's status message, the text kubelet writes before v4; None for success.
fn failure_message(outcome: &Outcome) -> Option<Vec<u8>> {
    let status: serde_json::Value = serde_json::from_slice(&status_json(outcome)).ok()?;
    if status["status"] == "Success" {
        return None;
    }
    status["message"]
        .as_str()
        .map(|message| message.as_bytes().to_vec())
}

/// The streams the client has to open before the session starts (the error stream always).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Plan {
    stdin: bool,
    stdout: bool,
    stderr: bool,
    resize: bool,
}

impl Plan {
    fn new(version: Version, wanted: Wanted) -> Self {
        Self {
            stdin: wanted.stdin,
            stdout: wanted.stdout,
            stderr: wanted.stderr && !wanted.tty,
            resize: wanted.tty && version.has_resize_stream(),
        }
    }
}

/// The stream roles a `streamtype` header names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Error,
    Stdin,
    Stdout,
    Stderr,
    Resize,
}

impl Role {
    fn of(headers: &Headers) -> Option<Self> {
        match header_value(headers, "streamtype")? {
            "error" => Some(Self::Error),
            "stdin" => Some(Self::Stdin),
            "stdout" => Some(Self::Stdout),
            "stderr" => Some(Self::Stderr),
            "resize" => Some(Self::Resize),
            _ => None,
        }
    }
}

/// The streams opened so far, as the runner's ends of their channels.
#[derive(Default)]
struct Opened {
    error: Option<u32>,
    stdin: Option<mpsc::Receiver<Bytes>>,
    stdout: Option<mpsc::Sender<Bytes>>,
    stderr: Option<mpsc::Sender<Bytes>>,
    resize: bool,
}

impl Opened {
    /// The error stream, once every stream of `plan` is open.
    fn ready(&self, plan: Plan) -> Option<u32> {
        let complete = (!plan.stdin || self.stdin.is_some())
            && (!plan.stdout || self.stdout.is_some())
            && (!plan.stderr || self.stderr.is_some())
            && (!plan.resize || self.resize);
        self.error.filter(|_| complete)
    }

    /// Answers a new stream and, when the plan wants it, connects it to a channel. Streams
    /// of other or repeated roles are answered too (as kubelet does) and their data dropped.
    async fn add<IO>(
        &mut self,
        session: &mut Session<IO>,
        plan: Plan,
        stream_id: u32,
        headers: &Headers,
    ) -> Result<(), SpdyError>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        match Role::of(headers) {
            Some(Role::Error) if self.error.is_none() => {
                self.error = Some(stream_id);
                session.accept(stream_id, None).await
            }
            Some(Role::Stdin) if plan.stdin && self.stdin.is_none() => {
                let (to_runner, from_client) = mpsc::channel(CHUNK_QUEUE);
                self.stdin = Some(from_client);
                session.accept(stream_id, Some(to_runner)).await
            }
            Some(Role::Stdout) if plan.stdout && self.stdout.is_none() => {
                session.accept(stream_id, None).await?;
                self.stdout = Some(output(session, stream_id));
                Ok(())
            }
            Some(Role::Stderr) if plan.stderr && self.stderr.is_none() => {
                session.accept(stream_id, None).await?;
                self.stderr = Some(output(session, stream_id));
                Ok(())
            }
            role => {
                // Resize events are read and dropped until TTYs are supported.
                self.resize |= role == Some(Role::Resize);
                session.accept(stream_id, None).await
            }
        }
    }
}

/// A channel whose chunks the session sends on `stream_id`.
fn output<IO>(session: &mut Session<IO>, stream_id: u32) -> mpsc::Sender<Bytes>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (to_client, from_runner) = mpsc::channel(CHUNK_QUEUE);
    session.attach(stream_id, channel_source(from_runner));
    to_client
}

/// Answers the client's streams until those of `plan` are open; returns the error stream too.
async fn gather<IO>(session: &mut Session<IO>, plan: Plan) -> Result<(u32, Opened), SpdyError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut opened = Opened::default();
    loop {
        if let Some(error_stream) = opened.ready(plan) {
            return Ok((error_stream, opened));
        }
        let input = session.next_input().await;
        match session.handle(input).await? {
            Some(Event::Opened { stream_id, headers }) => {
                opened.add(session, plan, stream_id, &headers).await?;
            }
            Some(Event::ClientGone) => {
                return Err(SpdyError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the client closed the connection before creating its streams",
                )));
            }
            Some(Event::SourceEnded(_)) | None => {}
        }
    }
}

/// Runs the session until the runner reports the outcome (then ends it in order) or the
/// client goes away.
async fn drive<IO>(
    mut session: Session<IO>,
    version: Version,
    error_stream: u32,
    mut outcome: oneshot::Receiver<Outcome>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ended = match serve(&mut session, &mut outcome).await {
        Ok(Some(outcome)) => finish(session, version, error_stream, &outcome).await,
        Ok(None) => {
            tracing::debug!("exec/attach client went away");
            Ok(())
        }
        Err(error) => Err(error),
    };
    if let Err(error) = ended {
        tracing::debug!(%error, "exec/attach SPDY session failed");
    }
}

/// Moves bytes until the outcome arrives (Some) or the client goes away (None).
async fn serve<IO>(
    session: &mut Session<IO>,
    outcome: &mut oneshot::Receiver<Outcome>,
) -> Result<Option<Outcome>, SpdyError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    loop {
        let input = tokio::select! {
            biased;
            outcome = &mut *outcome => {
                let lost = || Outcome::Failure("the session ended without an outcome".into());
                return Ok(Some(outcome.unwrap_or_else(|_| lost())));
            }
            input = session.next_input() => input,
        };
        match session.handle(input).await? {
            // A stream opened late has no role any more; answer it so the client does not wait.
            Some(Event::Opened { stream_id, .. }) => session.accept(stream_id, None).await?,
            Some(Event::ClientGone) => return Ok(None),
            // Standard streams are closed at the end, after the status.
            Some(Event::SourceEnded(_)) | None => {}
        }
    }
}

/// Sends the output still queued, the status, and closes every stream and the connection.
async fn finish<IO>(
    mut session: Session<IO>,
    version: Version,
    error_stream: u32,
    outcome: &Outcome,
) -> Result<(), SpdyError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    session.drain_sources().await?;
    if let Some(status) = version.status(outcome) {
        session.send_data(error_stream, status.into()).await?;
    }
    session.close().await
}

#[cfg(test)]
mod tests {
    use super::super::frame::Frame;
    use super::super::test_client::TestClient;
    use super::*;

    const PATIENCE: Duration = Duration::from_secs(5);

    fn data_frame(stream_id: u32, data: &[u8]) -> Frame {
        Frame::Data {
            stream_id,
            fin: false,
            data: Bytes::copy_from_slice(data),
        }
    }

    /// Starts a v4 session where the client opens error (1), stdin (3) and stdout (5).
    async fn exec_session() -> (TestClient, Channels) {
        let (server_io, client_io) = tokio::io::duplex(256 * 1024);
        let mut client = TestClient::new(client_io);
        let server = tokio::spawn(accept_remote_command(
            server_io,
            "v4.channel.k8s.io",
            Wanted::new(true, true, false, false),
            PATIENCE,
        ));
        client.open_accepted(1, &[("streamtype", "error")]).await;
        client.open_accepted(3, &[("streamtype", "stdin")]).await;
        client.open_accepted(5, &[("streamtype", "stdout")]).await;
        (client, server.await.unwrap().unwrap())
    }

    /// Reads frames up to the GOAWAY: the data frames in order, and the streams FIN'd.
    async fn rest_of_session(client: &mut TestClient) -> (Vec<Frame>, Vec<u32>) {
        let (mut data, mut finished) = (Vec::new(), Vec::new());
        loop {
            match client.next_but_window_updates().await.unwrap() {
                Frame::GoAway { status, .. } => {
                    assert_eq!(status, 0);
                    return (data, finished);
                }
                Frame::Data {
                    stream_id,
                    fin: true,
                    data: empty,
                } if empty.is_empty() => finished.push(stream_id),
                frame @ Frame::Data { .. } => {
                    assert!(finished.is_empty(), "data after a FIN: {frame:?}");
                    data.push(frame);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn exec_session_moves_stdin_stdout_and_the_exit_status() {
        let (mut client, mut channels) = exec_session().await;
        client.write(3, b"hello", true).await;
        let mut stdin = channels.stdin.take().unwrap();
        assert_eq!(stdin.recv().await.unwrap(), "hello");
        assert_eq!(stdin.recv().await, None);

        let stdout = channels.stdout.take().unwrap();
        stdout.send(Bytes::from_static(b"out")).await.unwrap();
        drop(stdout);
        channels.outcome.send(Outcome::ExitCode(3)).unwrap();

        let (data, mut finished) = rest_of_session(&mut client).await;
        let status = status_json(&Outcome::ExitCode(3));
        assert_eq!(data, [data_frame(5, b"out"), data_frame(1, &status)]);
        finished.sort_unstable();
        assert_eq!(finished, [1, 3, 5]);
        assert_eq!(client.next().await, None);
    }

    #[tokio::test]
    async fn output_is_split_into_bounded_frames() {
        let (mut client, mut channels) = exec_session().await;
        let stdout = channels.stdout.take().unwrap();
        stdout.send(Bytes::from(vec![b'x'; 70_000])).await.unwrap();
        drop(stdout);
        channels.outcome.send(Outcome::Success).unwrap();
        let (data, _) = rest_of_session(&mut client).await;
        let lengths: Vec<usize> = data
            .iter()
            .map(|frame| match frame {
                Frame::Data { data, .. } => data.len(),
                _ => 0,
            })
            .collect();
        let success = status_json(&Outcome::Success).len();
        assert_eq!(lengths, [32 * 1024, 32 * 1024, 70_000 - 64 * 1024, success]);
    }

    #[tokio::test]
    async fn streams_arrive_in_any_order_and_pings_are_echoed() {
        let (server_io, client_io) = tokio::io::duplex(64 * 1024);
        let mut client = TestClient::new(client_io);
        let server = tokio::spawn(accept_remote_command(
            server_io,
            "v3.channel.k8s.io",
            Wanted::new(false, true, true, true),
            PATIENCE,
        ));
        client.open_accepted(1, &[("streamtype", "resize")]).await;
        client.send([Frame::Ping { id: 1 }]).await;
        assert_eq!(client.next().await, Some(Frame::Ping { id: 1 }));
        client.open_accepted(3, &[("streamtype", "stdout")]).await;
        client
            .write(1, b"{\"Width\":80,\"Height\":24}", false)
            .await;
        client.open_accepted(5, &[("streamtype", "error")]).await;
        // With a TTY there is no stderr stream to wait for.
        let channels = server.await.unwrap().unwrap();
        assert!(channels.stdin.is_none() && channels.stderr.is_none());
        channels.outcome.send(Outcome::ExitCode(2)).unwrap();
        let (data, _) = rest_of_session(&mut client).await;
        let message = b"command terminated with non-zero exit code: exit status 2";
        assert_eq!(data, [data_frame(5, message)]);
    }

    #[test]
    fn before_v4_success_leaves_the_error_stream_empty() {
        assert_eq!(Version::V2.status(&Outcome::Success), None);
        assert_eq!(
            Version::V1.status(&Outcome::Failure("no such container".into())),
            Some(b"no such container".to_vec())
        );
        assert_eq!(
            Version::V4.status(&Outcome::Success),
            Some(status_json(&Outcome::Success))
        );
    }

    #[test]
    fn plans_follow_kubelets_expected_streams() {
        let tty = Wanted::new(true, true, true, true);
        let expect = |stderr, resize| Plan {
            stdin: true,
            stdout: true,
            stderr,
            resize,
        };
        assert_eq!(Plan::new(Version::V4, tty), expect(false, true));
        assert_eq!(Plan::new(Version::V3, tty), expect(false, true));
        assert_eq!(Plan::new(Version::V2, tty), expect(false, false));
        assert_eq!(Plan::new(Version::V1, tty), expect(false, false));
        let no_tty = Wanted::new(true, true, true, false);
        assert_eq!(Plan::new(Version::V4, no_tty), expect(true, false));
        assert_eq!(Version::of(""), Version::V1);
    }

    #[tokio::test]
    async fn missing_streams_time_out() {
        let (server_io, client_io) = tokio::io::duplex(64 * 1024);
        let mut client = TestClient::new(client_io);
        let server = tokio::spawn(accept_remote_command(
            server_io,
            "v4.channel.k8s.io",
            Wanted::new(true, false, false, false),
            Duration::from_millis(200),
        ));
        client.open_accepted(1, &[("streamtype", "error")]).await;
        let error = server.await.unwrap().err().unwrap();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn a_client_that_goes_away_ends_stdin_and_stdout() {
        let (client, mut channels) = exec_session().await;
        drop(client);
        let mut stdin = channels.stdin.take().unwrap();
        assert_eq!(
            tokio::time::timeout(PATIENCE, stdin.recv()).await.unwrap(),
            None
        );
        let stdout = channels.stdout.take().unwrap();
        let refused = async { while stdout.send(Bytes::from_static(b"x")).await.is_ok() {} };
        tokio::time::timeout(PATIENCE, refused).await.unwrap();
        assert!(channels.outcome.send(Outcome::Success).is_err());
    }

    #[tokio::test]
    async fn stdin_beyond_the_queue_waits_and_is_acknowledged() {
        let (mut client, mut channels) = exec_session().await;
        let chunk = [b'i'; 4096];
        for _ in 0..CHUNK_QUEUE * 2 {
            client.send([data_frame(3, &chunk)]).await;
        }
        client.write(3, b"", true).await;
        let mut stdin = channels.stdin.take().unwrap();
        let mut received = 0;
        while let Some(bytes) = stdin.recv().await {
            received += bytes.len();
        }
        assert_eq!(received, chunk.len() * CHUNK_QUEUE * 2);
        let mut updates = Vec::new();
        while updates.len() < 2 {
            if let Some(Frame::WindowUpdate { stream_id, delta }) = client.next().await {
                updates.push((stream_id, delta));
            }
        }
        assert_eq!(updates, [(0, 32 * 1024), (3, 32 * 1024)]);
    }
}
