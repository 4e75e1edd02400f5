//! Sending container requests to a pod's monitor, with its answers turned into crishim errors.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use tokio::net::UnixStream;

use crate::error::{Error, Result};
use crate::monitor::protocol::{
    RefusalCode, Request, Response, connect_async, read_answer_async, write_request_async,
};

/// A monitor's answer on its way.
pub type Answer<'a> = Pin<Box<dyn Future<Output = Result<Response>> + Send + 'a>>;

/// Talks to pod monitors; the real one over their control sockets. Asynchronous: a request
/// holds no thread while the monitor works, which spares each short container's RPCs a trip
/// to a blocking thread and back.
pub trait MonitorClient: Send + Sync {
    /// Sends `request` to the monitor on `socket` and waits up to `timeout` for its answer.
    fn send<'a>(&'a self, socket: &'a Path, request: &'a Request, timeout: Duration) -> Answer<'a>;

    /// Drops what is kept for the monitor on `socket` (its pod is stopping).
    fn forget(&self, _socket: &Path) {}
}

/// The real client. A connection on which the monitor answered in place
/// ([`Request::answered_in_place`]) is kept for the next such request to that monitor: a new
/// connection per request cost about 40 µs more per round trip here (a socket, connect,
/// accept and two closes, and the monitor woken twice, by the connection and then by the
/// request).
#[derive(Default)]
pub struct SocketMonitorClient {
    idle: Mutex<HashMap<PathBuf, Vec<UnixStream>>>,
}

/// How many idle connections are kept per monitor (one per request in flight).
const IDLE_PER_MONITOR: usize = 4;
/// How many monitors keep idle connections; one more drops another's.
const MONITORS_WITH_IDLE: usize = 64;

impl SocketMonitorClient {
    async fn exchange(&self, socket: &Path, request: &Request) -> std::io::Result<Response> {
        let reusable = request.answered_in_place();
        while let Some(mut stream) = reusable.then(|| self.take_idle(socket)).flatten() {
            match write_request_async(&mut stream, request).await {
                // The monitor closed it (it ended, or it closes every connection as earlier
                // crishims did): the request did not reach it.
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::BrokenPipe
                            | ErrorKind::ConnectionReset
                            | ErrorKind::NotConnected
                    ) => {}
                Err(e) => return Err(e),
                Ok(()) => match read_answer_async(&mut stream).await {
                    // Closed without a word: a monitor that closes every connection did so
                    // before it read this request (a monitor that ended is not there for a
                    // new connection either).
                    Err(e)
                        if matches!(
                            e.kind(),
                            ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset
                        ) => {}
                    Err(e) => return Err(e),
                    Ok(answer) => {
                        self.keep_idle(socket, stream);
                        return Ok(answer);
                    }
                },
            }
        }
        let mut stream = connect_async(socket).await?;
        write_request_async(&mut stream, request).await?;
        let answer = read_answer_async(&mut stream).await?;
        if reusable {
            self.keep_idle(socket, stream);
        }
        Ok(answer)
    }

    fn take_idle(&self, socket: &Path) -> Option<UnixStream> {
        self.lock_idle().get_mut(socket)?.pop()
    }

    fn keep_idle(&self, socket: &Path, stream: UnixStream) {
        let mut idle = self.lock_idle();
        if !idle.contains_key(socket)
            && idle.len() >= MONITORS_WITH_IDLE
            && let Some(other) = idle.keys().next().cloned()
        {
            idle.remove(&other);
        }
        let kept = idle.entry(socket.to_path_buf()).or_default();
        if kept.len() < IDLE_PER_MONITOR {
            kept.push(stream);
        }
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Vec<UnixStream>>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl MonitorClient for SocketMonitorClient {
    fn send<'a>(&'a self, socket: &'a Path, request: &'a Request, timeout: Duration) -> Answer<'a> {
        Box::pin(async move {
            // A connection cut short by the timeout is dropped with the exchange: a late answer
            // on it would be taken for the next request's.
            let answered = tokio::time::timeout(timeout, self.exchange(socket, request))
                .await
                .unwrap_or_else(|_| {
                    Err(std::io::Error::new(
                        ErrorKind::TimedOut,
                        format!("no answer within {timeout:?}"),
                    ))
                });
            answered.map_err(|e| {
                Error::Unavailable(format!(
                    "the pod's monitor at {} did not answer: {e}",
                    socket.display()
                ))
            })
        })
    }

    fn forget(&self, socket: &Path) {
        self.lock_idle().remove(socket);
    }
}

/// A monitor's answer as a result.
pub fn outcome(response: Response) -> Result<()> {
    match response {
        Response::Done
        | Response::Started { .. }
        | Response::Pong { .. }
        | Response::Exec { .. }
        | Response::Containers { .. } => Ok(()),
        Response::Failed { message } => Err(Error::Internal(message)),
        Response::Refused { code, message } => Err(match code {
            RefusalCode::Invalid => Error::InvalidArgument(message),
            RefusalCode::State => Error::FailedPrecondition(message),
            RefusalCode::Unknown => Error::NotFound(message),
        }),
    }
}

/// A hook run on each request a fake monitor accepts.
pub type RequestHook = Box<dyn Fn(&Request) + Send>;

/// Records requests and answers them with a scripted outcome; for unit tests.
#[derive(Default)]
pub struct FakeMonitorClient {
    requests: Mutex<Vec<Request>>,
    /// When set, every request fails with this error, made anew each time.
    pub fail_with: Mutex<Option<fn() -> Error>>,
    /// Called with each request before it is answered (e.g. to write an exit file on a
    /// stop, or to end a container just before the answer says it is gone).
    pub on_request: Mutex<Option<RequestHook>>,
    /// What ListContainers answers: the ids.
    pub held: Mutex<Vec<String>>,
    /// What ListContainers answers: those started, with when.
    pub held_started: Mutex<BTreeMap<String, i64>>,
}

impl FakeMonitorClient {
    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The scripted answer to `request`, recorded first.
    fn answer(&self, request: &Request) -> Result<Response> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(request.clone());
        if let Some(hook) = &*self.on_request.lock().unwrap_or_else(|e| e.into_inner()) {
            hook(request);
        }
        if let Some(fail) = *self.fail_with.lock().unwrap_or_else(|e| e.into_inner()) {
            return Err(fail());
        }
        match request {
            Request::ListContainers => Ok(Response::Containers {
                ids: self.held.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                started: self
                    .held_started
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone(),
            }),
            Request::StartContainer { .. } => Ok(Response::Started {
                started_at: crate::sandbox::now_nanos(),
            }),
            _ => Ok(Response::Done),
        }
    }
}

impl MonitorClient for FakeMonitorClient {
    fn send<'a>(
        &'a self,
        _socket: &'a Path,
        request: &'a Request,
        _timeout: Duration,
    ) -> Answer<'a> {
        Box::pin(std::future::ready(self.answer(request)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A monitor on `socket` that answers every request line with a pong; with `closing`, it
    /// closes each connection that long after one answer, as earlier crishims did at once.
    /// Counts the connections it accepts.
    fn fake_monitor(socket: &Path, closing: Option<Duration>) -> Arc<AtomicUsize> {
        let listener = crate::monitor::protocol::with_short_path(socket, |p| {
            std::os::unix::net::UnixListener::bind(p)
        })
        .unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counted = accepted.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let stream = stream.unwrap();
                counted.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let mut lines = BufReader::new(&stream);
                    let mut line = String::new();
                    while lines.read_line(&mut line).is_ok_and(|n| n > 0) {
                        line.clear();
                        let pong = b"{\"result\":\"pong\",\"pod_id\":\"p\",\"pid\":1}\n";
                        if (&stream).write_all(pong).is_err() {
                            return;
                        }
                        if let Some(after) = closing {
                            std::thread::sleep(after);
                            return;
                        }
                    }
                });
            }
        });
        accepted
    }

    fn deep_socket(dir: &Path) -> PathBuf {
        let deep = dir.join("d".repeat(120));
        std::fs::create_dir(&deep).unwrap();
        deep.join("monitor.sock")
    }

    const WAIT: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn requests_answered_in_place_reuse_one_connection_over_a_long_socket_path() {
        let dir = tempfile::tempdir().unwrap();
        let socket = deep_socket(dir.path());
        let accepted = fake_monitor(&socket, None);
        let client = SocketMonitorClient::default();
        for _ in 0..3 {
            let pong = client.send(&socket, &Request::Ping, WAIT).await.unwrap();
            assert!(matches!(pong, Response::Pong { pid: 1, .. }));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        let stop = Request::StopContainer {
            container_id: "c".into(),
            timeout_ms: 0,
        };
        client.send(&socket, &stop, WAIT).await.unwrap();
        client.send(&socket, &stop, WAIT).await.unwrap();
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            3,
            "a request a thread answers gets a connection of its own"
        );
        client.forget(&socket);
        client.send(&socket, &Request::Ping, WAIT).await.unwrap();
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            4,
            "nothing kept after forget"
        );
    }

    #[tokio::test]
    async fn a_connection_the_monitor_closed_is_replaced_without_losing_the_request() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("monitor.sock");
        let closing = Duration::from_millis(50);
        let accepted = fake_monitor(&socket, Some(closing));
        let client = SocketMonitorClient::default();
        let ping = || client.send(&socket, &Request::Ping, WAIT);
        assert!(matches!(ping().await, Ok(Response::Pong { .. })));
        // Still open: the request is written, and the connection closes unanswered.
        assert!(matches!(ping().await, Ok(Response::Pong { .. })));
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        // Closed by now: the write fails.
        tokio::time::sleep(closing * 2).await;
        assert!(matches!(ping().await, Ok(Response::Pong { .. })));
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_silent_monitor_is_unavailable_after_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("monitor.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let client = SocketMonitorClient::default();
        let silence = client
            .send(&socket, &Request::Ping, Duration::from_millis(100))
            .await;
        assert!(
            matches!(&silence, Err(Error::Unavailable(m)) if m.contains("no answer within")),
            "{silence:?}"
        );
        std::fs::remove_file(&socket).unwrap();
        let gone = client.send(&socket, &Request::Ping, WAIT).await;
        assert!(matches!(gone, Err(Error::Unavailable(_))), "{gone:?}");
    }
}
