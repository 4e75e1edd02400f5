//! The streams of one exec or attach session (and of a port-forward), whatever the wire
//! protocol (SPDY/3.1 or WebSocket) carries them. The protocol modules fill these in; the code
//! that runs the exec or attach only sees channels.

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

/// What the CRI request asked to connect (the options of ExecRequest / AttachRequest).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Wanted {
    /// The client sends stdin.
    pub stdin: bool,
    /// The client reads stdout.
    pub stdout: bool,
    /// The client reads stderr (never with a TTY).
    pub stderr: bool,
    /// A terminal: a resize stream, no stderr.
    pub tty: bool,
}

impl Wanted {
    /// The streams of an Exec or Attach request, in the order the CRI messages list them.
    pub fn new(stdin: bool, stdout: bool, stderr: bool, tty: bool) -> Self {
        Wanted {
            stdin,
            stdout,
            stderr,
            tty,
        }
    }
}

/// How the session ended, written on the error stream as a Kubernetes `metav1.Status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The command exited 0, or the attach ended.
    Success,
    /// The command exited with this non-zero code.
    ExitCode(i32),
    /// The session failed for another reason.
    Failure(String),
}

/// The session's streams, for the code that runs the exec or attach.
///
/// The runner drops `stdout` and `stderr` (or lets them go out of scope) and then sends the
/// outcome on `outcome`; the protocol writes every chunk those channels still hold, then the
/// status on the error stream, then closes every stream and the connection. A client that goes
/// away closes `stdin`, and sends on `stdout`/`stderr` fail from then on.
pub struct Channels {
    /// The client's stdin, when asked for; it ends (recv gives None) when the client closes it.
    pub stdin: Option<mpsc::Receiver<Bytes>>,
    /// To the client's stdout, when asked for.
    pub stdout: Option<mpsc::Sender<Bytes>>,
    /// To the client's stderr, when asked for.
    pub stderr: Option<mpsc::Sender<Bytes>>,
    /// Ends the session.
    pub outcome: oneshot::Sender<Outcome>,
}

/// One port-forward connection the client opened: bytes both ways to one port in the pod.
pub struct ForwardStream {
    /// The pod port.
    pub port: u16,
    /// From the client; ends when the client closes its side.
    pub from_client: mpsc::Receiver<Bytes>,
    /// To the client; dropping it closes the data stream.
    pub to_client: mpsc::Sender<Bytes>,
    /// Reports a failure (e.g. nothing listens on the port) on the pair's error stream.
    pub error: oneshot::Sender<String>,
}

/// The `metav1.Status` JSON kubelet's clients expect on the error stream (v4 protocols).
pub fn status_json(outcome: &Outcome) -> Vec<u8> {
    let value = match outcome {
        Outcome::Success => serde_json::json!({"metadata": {}, "status": "Success"}),
        Outcome::ExitCode(code) => serde_json::json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("command terminated with non-zero exit code: exit status {code}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        Outcome::Failure(message) => serde_json::json!({
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": "InternalError",
        }),
    };
    value.to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_the_exit_code_as_client_go_reads_it() {
        let success: serde_json::Value =
            serde_json::from_slice(&status_json(&Outcome::Success)).unwrap();
        assert_eq!(success["status"], "Success");
        let failed: serde_json::Value =
            serde_json::from_slice(&status_json(&Outcome::ExitCode(3))).unwrap();
        assert_eq!(failed["reason"], "NonZeroExitCode");
        assert_eq!(failed["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(failed["details"]["causes"][0]["message"], "3");
    }
}
