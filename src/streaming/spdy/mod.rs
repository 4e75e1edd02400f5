//! SPDY/3.1, as Kubernetes streaming clients speak it after an HTTP/1.1 `Upgrade: SPDY/3.1`
//! handshake: client-go's remote-command executor and port-forwarder, built on moby/spdystream.
//!
//! The client opens every stream (odd ids) and names its role in a `streamtype` header; the
//! server answers each with a SYN_REPLY and then moves bytes as DATA frames. This module gets
//! the already upgraded connection and fills in the [`channels`](super::channels) types.
//!
//! spdystream implements no flow control (it never sends WINDOW_UPDATE and ignores those it
//! gets), so the server sends without waiting for window; it still acknowledges what it
//! receives, for clients that do count windows.

mod frame;
mod headers;
mod port_forward;
mod remote_command;
mod session;
#[cfg(test)]
mod test_client;

use std::io;

pub use port_forward::accept_port_forward;
pub use remote_command::accept_remote_command;

/// The remote-command protocols this server speaks, most preferred first. Over SPDY, v5
/// (offered first by client-go 1.30 on) is v4: its one addition, the close signal, is a
/// WebSocket message; SPDY closes a stream with FIN.
const REMOTE_COMMAND_PROTOCOLS: [&str; 5] = [
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];

/// Picks the remote-command protocol from the client's X-Stream-Protocol-Version values
/// (preference: v5, v4, v3, v2, then `channel.k8s.io`); None if none is offered.
///
/// A value may also list several protocols separated by commas.
pub fn choose_remote_command_protocol(offered: &[&str]) -> Option<&'static str> {
    let offers = || {
        offered
            .iter()
            .flat_map(|value| value.split(','))
            .map(str::trim)
    };
    REMOTE_COMMAND_PROTOCOLS
        .into_iter()
        .find(|protocol| offers().any(|offer| offer == *protocol))
}

/// Why a SPDY session ended early.
#[derive(Debug, thiserror::Error)]
enum SpdyError {
    /// Reading or writing the connection failed.
    #[error("connection: {0}")]
    Io(#[from] io::Error),
    /// The peer sent something SPDY/3.1 does not allow.
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
    /// A header block did not (de)compress.
    #[error("header block compression: {0}")]
    Compression(String),
}

impl From<SpdyError> for io::Error {
    fn from(error: SpdyError) -> Self {
        match error {
            SpdyError::Io(error) => error,
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefers_the_newest_remote_command_protocol() {
        let offered = ["channel.k8s.io", "v2.channel.k8s.io", "v4.channel.k8s.io"];
        assert_eq!(
            choose_remote_command_protocol(&offered),
            Some("v4.channel.k8s.io")
        );
        assert_eq!(
            choose_remote_command_protocol(&["channel.k8s.io, v3.channel.k8s.io"]),
            Some("v3.channel.k8s.io")
        );
        assert_eq!(
            choose_remote_command_protocol(&["channel.k8s.io"]),
            Some("channel.k8s.io")
        );
    }

    #[test]
    fn offers_nothing_for_unknown_protocols() {
        assert_eq!(choose_remote_command_protocol(&[]), None);
        assert_eq!(
            choose_remote_command_protocol(&["v6.channel.k8s.io", "portforward.k8s.io"]),
            None
        );
        assert_eq!(
            choose_remote_command_protocol(&["v5.channel.k8s.io", "v4.channel.k8s.io"]),
            Some("v5.channel.k8s.io")
        );
    }
}
