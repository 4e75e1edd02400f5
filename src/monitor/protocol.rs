//! The monitor's control protocol on `<pod dir>/monitor.sock`: a JSON request line, then a
//! JSON response line; a connection whose request was answered in place
//! ([`Request::answered_in_place`]) takes the next request. And the ready line a new monitor
//! prints on stdout.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use crate::runtime::linux::launch::{ExecOutcome, LinuxLaunch};
use crate::runtime::wasm::launch::WasmLaunch;

/// A request to a monitor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Are you there, and which pod are you?
    Ping,
    /// Stop everything in the pod and exit.
    Shutdown,
    /// Which containers do you hold?
    ListContainers,
    /// Follow the pod's exits: after the `done` answer the connection carries one line per
    /// container that has ended (its exit on disk), its id; first those that ended already.
    WatchExits,
    /// Load and check a wasm container; it runs on StartContainer.
    CreateWasm {
        /// What to run.
        launch: WasmLaunch,
    },
    /// Create a Linux container (through the helper); it runs on StartContainer.
    CreateLinux {
        /// What to create.
        launch: LinuxLaunch,
    },
    /// Start a created container.
    StartContainer {
        /// Container id.
        container_id: String,
    },
    /// Give a container `timeout_ms` to end, then stop it.
    StopContainer {
        /// Container id.
        container_id: String,
        /// Grace period.
        timeout_ms: u64,
    },
    /// Forget a container that is not running.
    RemoveContainer {
        /// Container id.
        container_id: String,
    },
    /// Reopen a running container's log file.
    ReopenLog {
        /// Container id.
        container_id: String,
    },
    /// Attach to a created or running container: after the `done` answer the connection
    /// carries the session's frames (`monitor::frames`).
    Attach {
        /// Container id.
        container_id: String,
        /// The client sends stdin (ignored when the container has none).
        stdin: bool,
    },
    /// Run a command in a running Linux container for an exec session: after the `done`
    /// answer the connection carries the session's frames, the exit code last.
    Exec {
        /// Container id.
        container_id: String,
        /// The command.
        argv: Vec<String>,
        /// The client sends stdin.
        stdin: bool,
    },
    /// Run a command in a running Linux container (through the helper) and return its output.
    ExecSync {
        /// Container id.
        container_id: String,
        /// The command.
        argv: Vec<String>,
        /// Kill it after this long; 0 means no limit.
        timeout_ms: u64,
    },
}

/// A monitor's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    /// Answer to Ping.
    Pong {
        /// The pod this monitor serves.
        pod_id: String,
        /// The monitor's host pid.
        pid: i32,
    },
    /// The request was carried out.
    Done,
    /// Answer to StartContainer.
    Started {
        /// When the container was started, Unix nanoseconds.
        started_at: i64,
    },
    /// Answer to ListContainers.
    Containers {
        /// The ids of every container the monitor holds.
        ids: Vec<String>,
        /// When each of those that were started was started, Unix nanoseconds: the daemon
        /// does not checkpoint starts, and learns them here when it recovers.
        #[serde(default)]
        started: BTreeMap<String, i64>,
    },
    /// Answer to ExecSync.
    Exec {
        /// What the command did.
        outcome: ExecOutcome,
    },
    /// The request failed.
    Failed {
        /// Why.
        message: String,
    },
    /// The request cannot be carried out: bad input, or not in this state, or unknown.
    Refused {
        /// InvalidArgument, FailedPrecondition or NotFound.
        code: RefusalCode,
        /// Why.
        message: String,
    },
}

/// Why a monitor refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalCode {
    /// What the container asks for cannot run.
    Invalid,
    /// Not allowed in the container's state.
    State,
    /// No such container.
    Unknown,
}

/// The one line a starting monitor writes to stdout: ready with its host pid, or why not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ReadyLine {
    /// The monitor serves its control socket.
    Ready {
        /// Host pid of the monitor (after any fork into a new pid namespace).
        pid: i32,
    },
    /// Setting up failed; the monitor exits.
    Failed {
        /// Why.
        message: String,
    },
}

/// Unix socket paths are limited to 107 bytes. Runs `op` on `path`, or, when it is too long,
/// on `/proc/self/fd/N/<name>` through an fd of its directory, which is short whatever the
/// state dir is.
pub fn with_short_path<T>(
    path: &Path,
    op: impl FnOnce(&Path) -> std::io::Result<T>,
) -> std::io::Result<T> {
    let (short, _dir) = short_path(path)?;
    op(&short)
}

/// `path`, or its `/proc/self/fd/N/<name>` form when it is too long for a socket address,
/// with the directory fd that form needs open for as long as it is used.
fn short_path(path: &Path) -> std::io::Result<(PathBuf, Option<std::fs::File>)> {
    const MAX_SUN_PATH: usize = 100;
    if path.as_os_str().len() < MAX_SUN_PATH {
        return Ok((path.to_path_buf(), None));
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok((path.to_path_buf(), None));
    };
    let dir = std::fs::File::open(dir)?;
    let short = Path::new("/proc/self/fd")
        .join(std::os::fd::AsRawFd::as_raw_fd(&dir).to_string())
        .join(name);
    Ok((short, Some(dir)))
}

/// Connects to the monitor listening on `socket`, for async callers.
pub async fn connect_async(socket: &Path) -> std::io::Result<tokio::net::UnixStream> {
    let (short, _dir) = short_path(socket)?;
    tokio::net::UnixStream::connect(&short).await
}

/// Writes `request` on `stream`, for async callers.
pub async fn write_request_async(
    stream: &mut tokio::net::UnixStream,
    request: &Request,
) -> std::io::Result<()> {
    AsyncWriteExt::write_all(stream, &request_line(request)?).await
}

/// Reads the monitor's answer line from `stream`, for async callers. The monitor writes one
/// line per request, so nothing after it is read away.
pub async fn read_answer_async(stream: &mut tokio::net::UnixStream) -> std::io::Result<Response> {
    let mut answer = String::new();
    AsyncBufReadExt::read_line(&mut tokio::io::BufReader::new(stream), &mut answer).await?;
    parse_answer(&answer)
}

/// Sends one request to the monitor listening on `socket` and reads its response.
pub fn call(socket: &Path, request: &Request, timeout: Duration) -> std::io::Result<Response> {
    let mut stream = send(socket, request, timeout)?;
    let mut answer = String::new();
    BufReader::new(&mut stream).read_line(&mut answer)?;
    parse_answer(&answer)
}

/// Sends a request that opens a session (Attach) and reads the answer line byte by byte, so
/// that the frames after it stay in the returned stream.
pub fn open_session(
    socket: &Path,
    request: &Request,
    timeout: Duration,
) -> std::io::Result<(Response, UnixStream)> {
    let mut stream = send(socket, request, timeout)?;
    let mut answer = Vec::new();
    let mut byte = [0];
    while answer.len() < MAX_ANSWER && stream.read(&mut byte)? == 1 && byte[0] != b'\n' {
        answer.push(byte[0]);
    }
    let response = parse_answer(&String::from_utf8_lossy(&answer))?;
    stream.set_read_timeout(None)?;
    stream.set_write_timeout(None)?;
    Ok((response, stream))
}

impl Request {
    /// Whether the monitor answers this request at once on its main loop and then waits for
    /// the client's next request on the same connection, which the client may keep for it.
    /// Other requests get their connection to themselves: a thread answers and closes it.
    pub fn answered_in_place(&self) -> bool {
        matches!(
            self,
            Request::Ping
                | Request::ListContainers
                | Request::CreateWasm { .. }
                | Request::StartContainer { .. }
                | Request::ReopenLog { .. }
        )
    }
}

/// Longest answer line `open_session` reads.
const MAX_ANSWER: usize = 64 * 1024;

fn send(socket: &Path, request: &Request, timeout: Duration) -> std::io::Result<UnixStream> {
    let mut stream = with_short_path(socket, |p| UnixStream::connect(p))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(&request_line(request)?)?;
    Ok(stream)
}

fn request_line(request: &Request) -> std::io::Result<Vec<u8>> {
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    Ok(line)
}

fn parse_answer(answer: &str) -> std::io::Result<Response> {
    if answer.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "monitor closed the connection without answering",
        ));
    }
    Ok(serde_json::from_str(answer)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format_is_tagged_json() {
        assert_eq!(
            serde_json::to_string(&Request::Ping).unwrap(),
            r#"{"op":"ping"}"#
        );
        let pong = Response::Pong {
            pod_id: "a".into(),
            pid: 3,
        };
        assert_eq!(
            serde_json::to_string(&pong).unwrap(),
            r#"{"result":"pong","pod_id":"a","pid":3}"#
        );
        let ready: ReadyLine = serde_json::from_str(r#"{"status":"ready","pid":7}"#).unwrap();
        assert_eq!(ready, ReadyLine::Ready { pid: 7 });
    }
}
