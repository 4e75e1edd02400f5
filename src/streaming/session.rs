//! What a one-time streaming URL lets its client do, resolved when the RPC is answered (so the
//! HTTP side needs no container lookups), and the cache of pending URLs.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::streaming::channels::Wanted;

/// A container the pod's monitor serves a session for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorTarget {
    /// Container id.
    pub container_id: String,
    /// The pod monitor's control socket.
    pub socket: PathBuf,
}

/// A pending session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Session {
    /// Attach to a container's stdio.
    Attach {
        /// The container.
        target: MonitorTarget,
        /// What the client connects.
        wanted: Wanted,
    },
    /// Run a command in a Linux container.
    Exec {
        /// The container.
        target: MonitorTarget,
        /// The command.
        argv: Vec<String>,
        /// What the client connects.
        wanted: Wanted,
    },
    /// Forward connections to ports in a pod's network namespace.
    PortForward {
        /// The pod id (for logs).
        pod_id: String,
        /// The pod's pinned network namespace; None for a pod on the host's network.
        netns: Option<PathBuf>,
        /// The ports the request named (WebSocket clients get these channels; SPDY clients
        /// name a port per stream).
        ports: Vec<u16>,
    },
}

impl Session {
    /// The URL path segment of this kind of session.
    pub fn kind(&self) -> &'static str {
        match self {
            Session::Attach { .. } => "attach",
            Session::Exec { .. } => "exec",
            Session::PortForward { .. } => "portforward",
        }
    }
}

/// How long a URL stays valid, as kubelet's streaming server keeps its tokens.
pub const TOKEN_TTL: Duration = Duration::from_secs(60);
/// Most URLs pending at once; more is a client leaking them.
const MAX_PENDING: usize = 1000;

/// The sessions whose URL was handed out and not used yet. Each token is used once.
#[derive(Default)]
pub struct PendingSessions {
    pending: Mutex<HashMap<String, (Session, Instant)>>,
}

impl PendingSessions {
    /// Keeps `session` under a new random token and returns the token.
    pub fn insert(&self, session: Session) -> Result<String> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes)
            .map_err(|e| Error::Internal(format!("random streaming token: {e}")))?;
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        pending.retain(|_, (_, expires)| *expires > now);
        if pending.len() >= MAX_PENDING {
            return Err(Error::Unavailable(format!(
                "{MAX_PENDING} streaming sessions are waiting for their client already"
            )));
        }
        pending.insert(token.clone(), (session, now + TOKEN_TTL));
        Ok(token)
    }

    /// Takes the session of `token` if it is of `kind` and has not expired.
    pub fn take(&self, kind: &str, token: &str) -> Option<Session> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        match pending.get(token) {
            Some((session, expires)) if session.kind() == kind && *expires > Instant::now() => {
                pending.remove(token).map(|(session, _)| session)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_used_once_and_for_its_own_kind() {
        let sessions = PendingSessions::default();
        let forward = Session::PortForward {
            pod_id: "p".into(),
            netns: None,
            ports: vec![80],
        };
        let token = sessions.insert(forward.clone()).unwrap();
        assert_eq!(token.len(), 32);
        assert_eq!(sessions.take("attach", &token), None);
        assert_eq!(sessions.take("portforward", &token), Some(forward));
        assert_eq!(sessions.take("portforward", &token), None);
        assert_eq!(sessions.take("portforward", "nope"), None);
    }
}
