//! A port-forward session: each connection the client opens goes to a TCP port on the pod's
//! loopback, inside the pod's network namespace, bytes both ways until either side closes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::streaming::channels::ForwardStream;

/// How long connecting to a pod port may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens TCP connections to a pod's ports (an OS side effect: it enters the pod's network
/// namespace).
pub trait PodDialer: Send + Sync {
    /// Connects to `port` on the loopback of network namespace `netns` (None: the host's).
    fn dial(&self, netns: Option<&Path>, port: u16) -> std::io::Result<std::net::TcpStream>;
}

/// The real dialer: a short-lived thread joins the pod's network namespace and connects (the
/// socket stays in that namespace; the thread's change dies with it).
pub struct NamespaceDialer;

impl PodDialer for NamespaceDialer {
    fn dial(&self, netns: Option<&Path>, port: u16) -> std::io::Result<std::net::TcpStream> {
        let netns = netns.map(Path::to_path_buf);
        std::thread::Builder::new()
            .name("port-forward".into())
            .spawn(move || {
                if let Some(netns) = netns {
                    let file = std::fs::File::open(&netns)?;
                    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(
                        |e| std::io::Error::other(format!("enter {}: {e}", netns.display())),
                    )?;
                }
                loopback_connect(port)
            })?
            .join()
            .map_err(|_| std::io::Error::other("the port-forward thread failed"))?
    }
}

/// Connects to `port` on 127.0.0.1, else on ::1 (where kubelet's port-forward looks).
fn loopback_connect(port: u16) -> std::io::Result<std::net::TcpStream> {
    let v4 = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    std::net::TcpStream::connect_timeout(&v4, CONNECT_TIMEOUT).or_else(|first| {
        let v6 = std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port));
        std::net::TcpStream::connect_timeout(&v6, CONNECT_TIMEOUT).map_err(|_| first)
    })
}

/// Serves every connection the client opens in the session until it ends.
pub async fn run(
    pod_id: &str,
    netns: Option<PathBuf>,
    dialer: Arc<dyn PodDialer>,
    mut forwards: mpsc::Receiver<ForwardStream>,
) {
    while let Some(forward) = forwards.recv().await {
        tracing::debug!(pod_id, port = forward.port, "port-forward connection");
        tokio::spawn(forward_one(dialer.clone(), netns.clone(), forward));
    }
}

async fn forward_one(dialer: Arc<dyn PodDialer>, netns: Option<PathBuf>, forward: ForwardStream) {
    let ForwardStream {
        port,
        mut from_client,
        to_client,
        error,
    } = forward;
    let dialed = tokio::task::spawn_blocking(move || dialer.dial(netns.as_deref(), port)).await;
    let stream = match dialed {
        Ok(Ok(stream)) => stream
            .set_nonblocking(true)
            .and_then(|()| TcpStream::from_std(stream)),
        Ok(Err(e)) => Err(e),
        Err(e) => Err(std::io::Error::other(e.to_string())),
    };
    let stream = match stream {
        Ok(stream) => stream,
        Err(e) => {
            let _ = error.send(format!("cannot connect to port {port} in the pod: {e}"));
            return;
        }
    };
    let (mut from_pod, mut to_pod) = stream.into_split();
    // The client's bytes go in on a task of their own; the connection is over when the pod
    // side closes, as containerd ends it (a WebSocket client cannot half-close at all).
    let upstream = tokio::spawn(async move {
        while let Some(chunk) = from_client.recv().await {
            if to_pod.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to_pod.shutdown().await;
    });
    let downstream = async {
        let mut buf = vec![0; 32 * 1024];
        loop {
            match from_pod.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if to_client
                        .send(Bytes::copy_from_slice(&buf[..n]))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    };
    // A session that ends (the client went away) ends its connections, even idle ones.
    tokio::select! {
        () = downstream => {}
        () = to_client.closed() => {}
    }
    upstream.abort();
    drop((to_client, error));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Connects to a listener on the host's loopback whatever the namespace.
    struct LoopbackDialer;

    impl PodDialer for LoopbackDialer {
        fn dial(&self, _: Option<&Path>, port: u16) -> std::io::Result<std::net::TcpStream> {
            loopback_connect(port)
        }
    }

    #[tokio::test]
    async fn forwards_bytes_both_ways_and_reports_a_refused_port() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let echo = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            conn.read_to_end(&mut got).await.unwrap();
            conn.write_all(&[b"echo: ".as_slice(), &got].concat())
                .await
                .unwrap();
        });
        let (forwards_tx, forwards) = mpsc::channel(4);
        let session = tokio::spawn(run("pod", None, Arc::new(LoopbackDialer), forwards));

        let (client_tx, from_client) = mpsc::channel(4);
        let (to_client, mut client_rx) = mpsc::channel(4);
        let (error, mut error_rx) = tokio::sync::oneshot::channel();
        let forward = ForwardStream {
            port,
            from_client,
            to_client,
            error,
        };
        forwards_tx.send(forward).await.unwrap();
        client_tx.send(Bytes::from_static(b"ping")).await.unwrap();
        drop(client_tx);
        let mut received = Vec::new();
        while let Some(chunk) = client_rx.recv().await {
            received.extend_from_slice(&chunk);
        }
        assert_eq!(received, b"echo: ping");
        assert!(error_rx.try_recv().is_err(), "no error for a good port");
        echo.await.unwrap();

        let closed_port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let (_client_tx, from_client) = mpsc::channel(1);
        let (to_client, _client_rx) = mpsc::channel(1);
        let (error, error_rx) = tokio::sync::oneshot::channel();
        let forward = ForwardStream {
            port: closed_port,
            from_client,
            to_client,
            error,
        };
        forwards_tx.send(forward).await.unwrap();
        let message = error_rx.await.unwrap();
        assert!(
            message.contains(&format!("port {closed_port}")),
            "{message}"
        );
        drop(forwards_tx);
        session.await.unwrap();
    }
}
