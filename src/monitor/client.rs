//! Sending container requests to a pod's monitor, with its answers turned into crishim errors.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::monitor::protocol::{RefusalCode, Request, Response, call_async};

/// A monitor's answer on its way.
pub type Answer<'a> = Pin<Box<dyn Future<Output = Result<Response>> + Send + 'a>>;

/// Talks to pod monitors; the real one over their control sockets. Asynchronous: a request
/// holds no thread while the monitor works, which spares each short container's RPCs a trip
/// to a blocking thread and back.
pub trait MonitorClient: Send + Sync {
    /// Sends `request` to the monitor on `socket` and waits up to `timeout` for its answer.
    fn send<'a>(&'a self, socket: &'a Path, request: &'a Request, timeout: Duration) -> Answer<'a>;
}

/// The real client.
pub struct SocketMonitorClient;

impl MonitorClient for SocketMonitorClient {
    fn send<'a>(&'a self, socket: &'a Path, request: &'a Request, timeout: Duration) -> Answer<'a> {
        Box::pin(async move {
            call_async(socket, request, timeout).await.map_err(|e| {
                Error::Unavailable(format!(
                    "the pod's monitor at {} did not answer: {e}",
                    socket.display()
                ))
            })
        })
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
