//! The streaming server's HTTP side: one request per connection, on a one-time URL
//! (`/attach/<token>`, `/exec/<token>`, `/portforward/<token>`), upgraded to SPDY/3.1 or
//! WebSocket as the client asks, then handed to the session that the token stands for.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

use crate::error::{Error, IoContext, Result};
use crate::streaming::portforward::{NamespaceDialer, PodDialer};
use crate::streaming::session::{PendingSessions, Session};
use crate::streaming::{attach, exec, portforward, spdy, websocket};

/// How long a client may take to send its request head, and to open its streams.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest request head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Most connections that may be waiting to send their request head at once (each is cheap,
/// but a local process must not be able to hold every fd of the daemon).
const MAX_PENDING_HEADS: usize = 64;

/// The streaming server: where its URLs point, and the sessions waiting for their client.
pub struct StreamingServer {
    address: SocketAddr,
    sessions: PendingSessions,
    dialer: Arc<dyn PodDialer>,
    pending_heads: Arc<Semaphore>,
}

impl StreamingServer {
    /// Binds `address` (`127.0.0.1:0` by default: loopback, a free port, as containerd does;
    /// kubelet on the same node is the only client).
    pub fn bind(address: &str) -> Result<(Arc<StreamingServer>, std::net::TcpListener)> {
        let listener = std::net::TcpListener::bind(address)
            .map_err(|e| Error::io(format!("bind the streaming server on {address}"), e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io("make the streaming socket non-blocking", e))?;
        let address = listener
            .local_addr()
            .map_err(|e| Error::io("read the streaming server's address", e))?;
        let server = StreamingServer {
            address,
            sessions: PendingSessions::default(),
            dialer: Arc::new(NamespaceDialer),
            pending_heads: Arc::new(Semaphore::new(MAX_PENDING_HEADS)),
        };
        Ok((Arc::new(server), listener))
    }

    /// The one-time URL a client uses for `session` (valid for a minute).
    pub fn url(&self, session: Session) -> Result<String> {
        let kind = session.kind();
        let token = self.sessions.insert(session)?;
        Ok(format!("http://{}/{kind}/{token}", self.address))
    }

    /// Accepts connections until the runtime ends; each is served on a task of its own.
    pub async fn serve(self: Arc<Self>, listener: std::net::TcpListener) {
        let listener = match TcpListener::from_std(listener) {
            Ok(listener) => listener,
            Err(e) => {
                tracing::error!(error = %e, "cannot serve streaming connections");
                return;
            }
        };
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    let Ok(waiting) = self.pending_heads.clone().try_acquire_owned() else {
                        tracing::warn!(%peer, "too many streaming connections without a request; closing one");
                        continue;
                    };
                    let server = self.clone();
                    tokio::spawn(async move {
                        if let Err(e) = server.handle(stream, waiting).await {
                            tracing::warn!(%peer, error = %e, "streaming request failed");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a streaming connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    async fn handle(&self, stream: TcpStream, waiting: OwnedSemaphorePermit) -> Result<()> {
        let _ = stream.set_nodelay(true);
        let mut io = BufReader::new(stream);
        let head = match tokio::time::timeout(CLIENT_TIMEOUT, read_head(&mut io)).await {
            Ok(head) => head?,
            Err(_) => return Err(Error::DeadlineExceeded("no request head in time".into())),
        };
        drop(waiting);
        let session = head
            .token()
            .and_then(|(kind, token)| self.sessions.take(kind, token));
        let Some(session) = session else {
            return reply(&mut io, "404 Not Found", "unknown or expired streaming URL").await;
        };
        let span = tracing::info_span!("stream", kind = session.kind());
        self.run(io, head, session).instrument(span).await
    }

    async fn run(&self, io: BufReader<TcpStream>, head: Head, session: Session) -> Result<()> {
        let upgrade = head.upgrade();
        match session {
            Session::Attach { target, wanted } => {
                let Some(channels) = remote_command(io, &head, upgrade, wanted).await? else {
                    return Ok(());
                };
                attach::run(target, wanted, channels).await;
            }
            Session::Exec {
                target,
                argv,
                wanted,
            } => {
                let Some(channels) = remote_command(io, &head, upgrade, wanted).await? else {
                    return Ok(());
                };
                exec::run(target, argv, wanted, channels).await;
            }
            Session::PortForward {
                pod_id,
                netns,
                ports,
            } => {
                let Some(forwards) = port_forward(io, &head, upgrade, ports).await? else {
                    return Ok(());
                };
                portforward::run(&pod_id, netns, self.dialer.clone(), forwards).await;
            }
        }
        Ok(())
    }
}

/// What the client upgrades to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Upgrade {
    Spdy,
    WebSocket,
    None,
}

/// A request head: the path and the headers (names lowercased).
#[derive(Debug, Default)]
struct Head {
    path: String,
    query: String,
    headers: Vec<(String, String)>,
}

impl Head {
    /// `(kind, token)` from `/kind/token`.
    fn token(&self) -> Option<(&str, &str)> {
        let mut parts = self.path.trim_start_matches('/').splitn(2, '/');
        Some((parts.next()?, parts.next()?)).filter(|(_, token)| !token.contains('/'))
    }

    /// Every value of header `name`, comma-separated lists split.
    fn values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect()
    }

    fn upgrade(&self) -> Upgrade {
        let wants = |protocol: &str| {
            self.values("upgrade")
                .iter()
                .any(|v| v.eq_ignore_ascii_case(protocol))
        };
        if wants("SPDY/3.1") {
            Upgrade::Spdy
        } else if wants("websocket") {
            Upgrade::WebSocket
        } else {
            Upgrade::None
        }
    }

    /// The `ports` query parameter (port-forward over WebSocket).
    fn ports(&self) -> std::result::Result<Vec<u16>, String> {
        self.query
            .split('&')
            .filter_map(|pair| pair.strip_prefix("ports="))
            .flat_map(|list| list.split(','))
            .map(|p| p.parse().map_err(|_| format!("bad port {p:?}")))
            .collect()
    }
}

/// Upgrades an exec or attach request; None when it was answered with an error instead.
async fn remote_command(
    mut io: BufReader<TcpStream>,
    head: &Head,
    upgrade: Upgrade,
    wanted: crate::streaming::channels::Wanted,
) -> Result<Option<crate::streaming::channels::Channels>> {
    match upgrade {
        Upgrade::Spdy => {
            let offered = head.values("x-stream-protocol-version");
            // A client that names no protocol gets the first one, as kubelet answers it.
            let fallback = Some(FIRST_REMOTE_COMMAND_PROTOCOL);
            let choose = spdy::choose_remote_command_protocol;
            let Some(protocol) = negotiate(&mut io, &offered, fallback, choose).await? else {
                return Ok(None);
            };
            switch_to_spdy(&mut io, protocol).await?;
            let channels = spdy::accept_remote_command(io, protocol, wanted, CLIENT_TIMEOUT)
                .await
                .context(|| "open the SPDY streams".into())?;
            Ok(Some(channels))
        }
        Upgrade::WebSocket => {
            let offered = head.values("sec-websocket-protocol");
            let choose = websocket::choose_remote_command_protocol;
            let Some(protocol) = negotiate(&mut io, &offered, UNVERSIONED, choose).await? else {
                return Ok(None);
            };
            if !switch_to_websocket(&mut io, head, protocol).await? {
                return Ok(None);
            }
            Ok(Some(websocket::accept_remote_command(io, protocol, wanted)))
        }
        Upgrade::None => {
            reply(&mut io, "400 Bad Request", NOT_AN_UPGRADE).await?;
            Ok(None)
        }
    }
}

/// Upgrades a port-forward request; None when it was answered with an error instead.
async fn port_forward(
    mut io: BufReader<TcpStream>,
    head: &Head,
    upgrade: Upgrade,
    requested: Vec<u16>,
) -> Result<Option<tokio::sync::mpsc::Receiver<crate::streaming::channels::ForwardStream>>> {
    match upgrade {
        Upgrade::Spdy => {
            let offered = head.values("x-stream-protocol-version");
            let choose = |offered: &[&str]| {
                offered
                    .contains(&PORT_FORWARD_SPDY)
                    .then_some(PORT_FORWARD_SPDY)
            };
            if negotiate(&mut io, &offered, None, choose).await?.is_none() {
                return Ok(None);
            }
            switch_to_spdy(&mut io, PORT_FORWARD_SPDY).await?;
            Ok(Some(spdy::accept_port_forward(io)))
        }
        Upgrade::WebSocket => {
            let offered = head.values("sec-websocket-protocol");
            // The request's ports, as kubelet's server takes them; else the URL's.
            let ports = match head.ports() {
                _ if !requested.is_empty() => requested,
                Ok(ports) if !ports.is_empty() => ports,
                Ok(_) => {
                    let message = "no ports: name them in the request or the ports query";
                    reply(&mut io, "400 Bad Request", message).await?;
                    return Ok(None);
                }
                Err(message) => {
                    reply(&mut io, "400 Bad Request", &message).await?;
                    return Ok(None);
                }
            };
            let choose = websocket::choose_port_forward_protocol;
            let Some(protocol) = negotiate(&mut io, &offered, UNVERSIONED, choose).await? else {
                return Ok(None);
            };
            if !switch_to_websocket(&mut io, head, protocol).await? {
                return Ok(None);
            }
            Ok(Some(websocket::accept_port_forward(io, protocol, &ports)))
        }
        Upgrade::None => {
            reply(&mut io, "400 Bad Request", NOT_AN_UPGRADE).await?;
            Ok(None)
        }
    }
}

/// The answer to a request that upgrades to neither protocol.
const NOT_AN_UPGRADE: &str = "upgrade to SPDY/3.1 or websocket to use this URL";

/// What a WebSocket client that offers no subprotocol gets: kubelet's unversioned framing.
const UNVERSIONED: Option<&str> = Some("");

/// The protocol to speak: `fallback` when the client offers none, else `choose`'s pick of
/// `offered`; None when nothing fits, and then the request is answered 403.
async fn negotiate(
    io: &mut BufReader<TcpStream>,
    offered: &[&str],
    fallback: Option<&'static str>,
    choose: impl Fn(&[&str]) -> Option<&'static str>,
) -> Result<Option<&'static str>> {
    let chosen = match offered.is_empty() {
        true => fallback,
        false => choose(offered),
    };
    if chosen.is_none() {
        let message = format!("no common protocol in {offered:?}");
        reply(io, "403 Forbidden", &message).await?;
    }
    Ok(chosen)
}

/// The oldest remote-command protocol, which kubelet assumes when a SPDY client names none.
const FIRST_REMOTE_COMMAND_PROTOCOL: &str = "channel.k8s.io";

/// The SPDY port-forward protocol kubelet speaks.
const PORT_FORWARD_SPDY: &str = "portforward.k8s.io";

async fn switch_to_spdy(io: &mut BufReader<TcpStream>, protocol: &str) -> Result<()> {
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\
         X-Stream-Protocol-Version: {protocol}\r\n\r\n"
    );
    write_all(io, response.as_bytes()).await
}

/// Answers the WebSocket handshake; false when the request lacks its key (answered 400).
async fn switch_to_websocket(
    io: &mut BufReader<TcpStream>,
    head: &Head,
    protocol: &str,
) -> Result<bool> {
    let Some(key) = head.values("sec-websocket-key").first().copied() else {
        reply(io, "400 Bad Request", "Sec-WebSocket-Key is missing").await?;
        return Ok(false);
    };
    let named = match protocol {
        "" => String::new(),
        protocol => format!("Sec-WebSocket-Protocol: {protocol}\r\n"),
    };
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Accept: {}\r\n{named}\r\n",
        websocket::accept_key(key)
    );
    write_all(io, response.as_bytes()).await?;
    Ok(true)
}

/// A plain-text error answer; the connection closes after it.
async fn reply(io: &mut BufReader<TcpStream>, status: &str, message: &str) -> Result<()> {
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{message}",
        message.len()
    );
    write_all(io, response.as_bytes()).await
}

async fn write_all(io: &mut BufReader<TcpStream>, bytes: &[u8]) -> Result<()> {
    let stream = io.get_mut();
    stream
        .write_all(bytes)
        .await
        .context(|| "write to the streaming client".into())?;
    stream
        .flush()
        .await
        .context(|| "write to the streaming client".into())
}

/// Reads the request line and headers; what follows stays buffered in `io`.
async fn read_head(io: &mut BufReader<TcpStream>) -> Result<Head> {
    let mut head = Head::default();
    let mut total = 0;
    let mut first = true;
    loop {
        let mut line = String::new();
        let room = (MAX_HEAD - total) as u64;
        let read = (&mut *io)
            .take(room + 1)
            .read_line(&mut line)
            .await
            .context(|| "read the streaming request".into())?;
        total += read;
        if read == 0 || total > MAX_HEAD {
            return Err(Error::InvalidArgument(
                "streaming request head is cut short or too long".into(),
            ));
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if first {
            first = false;
            let target = line.split(' ').nth(1).unwrap_or_default();
            let (path, query) = target.split_once('?').unwrap_or((target, ""));
            head.path = path.to_string();
            head.query = query.to_string();
        } else if line.is_empty() {
            return Ok(head);
        } else if let Some((name, value)) = line.split_once(':') {
            head.headers
                .push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(target: &str, headers: &[(&str, &str)]) -> Head {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        Head {
            path: path.into(),
            query: query.into(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn reads_tokens_upgrades_protocol_lists_and_ports() {
        let spdy = head(
            "/exec/abc",
            &[
                ("Upgrade", "SPDY/3.1"),
                ("X-Stream-Protocol-Version", "v4.channel.k8s.io"),
                (
                    "X-Stream-Protocol-Version",
                    "v3.channel.k8s.io, channel.k8s.io",
                ),
            ],
        );
        assert_eq!(spdy.token(), Some(("exec", "abc")));
        assert_eq!(spdy.upgrade(), Upgrade::Spdy);
        assert_eq!(
            spdy.values("x-stream-protocol-version"),
            vec!["v4.channel.k8s.io", "v3.channel.k8s.io", "channel.k8s.io"]
        );
        let ws = head("/portforward/t?ports=80,8080", &[("upgrade", "WebSocket")]);
        assert_eq!(ws.upgrade(), Upgrade::WebSocket);
        assert_eq!(ws.ports(), Ok(vec![80, 8080]));
        assert!(head("/portforward/t?ports=http", &[]).ports().is_err());
        assert_eq!(head("/exec/a/b", &[]).token(), None);
        assert_eq!(head("/exec", &[]).upgrade(), Upgrade::None);
        assert_eq!(head("/exec", &[]).token(), None);
    }
}
