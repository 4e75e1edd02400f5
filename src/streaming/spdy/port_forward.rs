//! Port forwarding over SPDY (`portforward.k8s.io`): for each local connection the client
//! opens an error stream and a data stream, both naming the pod `port` and a `requestid`; the
//! server pairs them by request id, bytes on the data stream go to the port, and a failure is
//! written as text on the error stream. A pair left incomplete gets an error and is closed.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::SpdyError;
use super::headers::{Headers, header_value};
use super::session::{Event, Session, channel_source, message_source};
use crate::streaming::channels::ForwardStream;

/// How long the second stream of a pair may take (kubelet's stream creation timeout).
const PAIR_TIMEOUT: Duration = Duration::from_secs(30);
/// Pairs handed over but not yet taken by the receiver.
const FORWARD_QUEUE: usize = 8;
/// Chunks buffered between the session and the forwarder, each way.
const CHUNK_QUEUE: usize = 32;

/// Serves a port-forward session (protocol portforward.k8s.io): each pair of streams the client opens
/// (data + error with the same requestID header) becomes a ForwardStream; the receiver ends when the connection does.
pub fn accept_port_forward<IO>(io: IO) -> mpsc::Receiver<ForwardStream>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (forwards, receiver) = mpsc::channel(FORWARD_QUEUE);
    tokio::spawn(async move {
        if let Err(error) = serve(io, forwards).await {
            tracing::debug!(%error, "port-forward SPDY session failed");
        }
    });
    receiver
}

async fn serve<IO>(io: IO, forwards: mpsc::Sender<ForwardStream>) -> Result<(), SpdyError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut session = Session::start(io)?;
    let mut pairs = Pairs::default();
    loop {
        let input = tokio::select! {
            input = session.next_input() => input,
            () = until(pairs.next_deadline()) => {
                pairs.expire(&mut session).await?;
                continue;
            }
        };
        match session.handle(input).await? {
            Some(Event::Opened { stream_id, headers }) => {
                let Some(forward) = pairs.add(&mut session, stream_id, &headers).await? else {
                    continue;
                };
                if forwards.send(forward).await.is_err() {
                    return session.close().await;
                }
            }
            Some(Event::SourceEnded(stream_id)) => session.finish(stream_id).await?,
            Some(Event::ClientGone) => return Ok(()),
            None => {}
        }
    }
}

async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// What a stream of a pair is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Data,
    Error,
}

/// A stream's place in a pair, from its headers.
#[derive(Debug, PartialEq, Eq)]
struct PairStream {
    kind: Kind,
    port: u16,
    request_id: String,
}

impl PairStream {
    /// None for a stream kubelet would reject: no valid `port` or `streamtype`.
    fn of(stream_id: u32, headers: &Headers) -> Option<Self> {
        let port = header_value(headers, "port")?
            .parse()
            .ok()
            .filter(|port| *port > 0)?;
        let kind = match header_value(headers, "streamtype")? {
            "data" => Kind::Data,
            "error" => Kind::Error,
            _ => return None,
        };
        let request_id = match header_value(headers, "requestid") {
            Some(request_id) if !request_id.is_empty() => request_id.to_string(),
            // Clients older than request ids open error then data with consecutive ids.
            _ => match kind {
                Kind::Error => i64::from(stream_id),
                Kind::Data => i64::from(stream_id) - 2,
            }
            .to_string(),
        };
        Some(Self {
            kind,
            port,
            request_id,
        })
    }
}

/// The data stream of a pair: its port, and what the client sends on it.
struct DataStream {
    stream_id: u32,
    port: u16,
    from_client: mpsc::Receiver<Bytes>,
}

/// A pair still missing a stream.
struct HalfPair {
    deadline: Instant,
    error: Option<u32>,
    data: Option<DataStream>,
}

/// The pairs waiting for their second stream, by request id.
#[derive(Default)]
struct Pairs {
    waiting: HashMap<String, HalfPair>,
}

impl Pairs {
    /// Answers a new stream and returns the forward it completes, if any.
    async fn add<IO>(
        &mut self,
        session: &mut Session<IO>,
        stream_id: u32,
        headers: &Headers,
    ) -> Result<Option<ForwardStream>, SpdyError>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Some(stream) = PairStream::of(stream_id, headers) else {
            session.refuse(stream_id).await?;
            return Ok(None);
        };
        let pair = self
            .waiting
            .entry(stream.request_id.clone())
            .or_insert_with(|| HalfPair {
                deadline: Instant::now() + PAIR_TIMEOUT,
                error: None,
                data: None,
            });
        match stream.kind {
            Kind::Error if pair.error.is_none() => {
                pair.error = Some(stream_id);
                session.accept(stream_id, None).await?;
            }
            Kind::Data if pair.data.is_none() => {
                let (to_forwarder, from_client) = mpsc::channel(CHUNK_QUEUE);
                pair.data = Some(DataStream {
                    stream_id,
                    port: stream.port,
                    from_client,
                });
                session.accept(stream_id, Some(to_forwarder)).await?;
            }
            // A second stream of the same kind for one request.
            _ => session.refuse(stream_id).await?,
        }
        Ok(self.take_complete(&stream.request_id, session))
    }

    /// Connects a pair that has both streams to a new forward.
    fn take_complete<IO>(
        &mut self,
        request_id: &str,
        session: &mut Session<IO>,
    ) -> Option<ForwardStream>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let pair = self.waiting.get(request_id)?;
        if pair.error.is_none() || pair.data.is_none() {
            return None;
        }
        let HalfPair {
            error: Some(error_stream),
            data: Some(data),
            ..
        } = self.waiting.remove(request_id)?
        else {
            return None;
        };
        let (to_client, from_forwarder) = mpsc::channel(CHUNK_QUEUE);
        let (error, error_message) = oneshot::channel();
        session.attach(data.stream_id, channel_source(from_forwarder));
        session.attach(error_stream, message_source(error_message));
        Some(ForwardStream {
            port: data.port,
            from_client: data.from_client,
            to_client,
            error,
        })
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.waiting.values().map(|pair| pair.deadline).min()
    }

    /// Reports and closes the pairs whose second stream did not come in time.
    async fn expire<IO>(&mut self, session: &mut Session<IO>) -> Result<(), SpdyError>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let now = Instant::now();
        let expired: Vec<String> = self
            .waiting
            .iter()
            .filter(|(_, pair)| pair.deadline <= now)
            .map(|(request_id, _)| request_id.clone())
            .collect();
        for request_id in expired {
            let Some(pair) = self.waiting.remove(&request_id) else {
                continue;
            };
            if let Some(error_stream) = pair.error {
                let message = format!("timed out waiting for the streams of request {request_id}");
                session.send_data(error_stream, message.into()).await?;
                session.finish(error_stream).await?;
            }
            if let Some(data) = pair.data {
                session.finish(data.stream_id).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::frame::{Frame, RST_CANCEL};
    use super::super::test_client::TestClient;
    use super::*;

    fn pair_headers<'a>(kind: &'a str, port: &'a str, request: &'a str) -> [(&'a str, &'a str); 3] {
        [("streamtype", kind), ("port", port), ("requestid", request)]
    }

    async fn next_forward(forwards: &mut mpsc::Receiver<ForwardStream>) -> ForwardStream {
        tokio::time::timeout(Duration::from_secs(5), forwards.recv())
            .await
            .unwrap()
            .unwrap()
    }

    #[tokio::test]
    async fn streams_pair_by_request_id_and_carry_bytes_both_ways() {
        let (server_io, client_io) = tokio::io::duplex(64 * 1024);
        let mut client = TestClient::new(client_io);
        let mut forwards = accept_port_forward(server_io);

        client
            .open_accepted(1, &pair_headers("error", "8080", "0"))
            .await;
        client
            .open_accepted(3, &pair_headers("error", "9090", "1"))
            .await;
        client
            .open_accepted(5, &pair_headers("data", "9090", "1"))
            .await;
        let mut second = next_forward(&mut forwards).await;
        assert_eq!(second.port, 9090);
        client
            .open_accepted(7, &pair_headers("data", "8080", "0"))
            .await;
        let mut first = next_forward(&mut forwards).await;
        assert_eq!(first.port, 8080);

        client.write(7, b"to 8080", true).await;
        client.write(5, b"to 9090", false).await;
        assert_eq!(first.from_client.recv().await.unwrap(), "to 8080");
        assert_eq!(first.from_client.recv().await, None);
        assert_eq!(second.from_client.recv().await.unwrap(), "to 9090");

        second
            .to_client
            .send(Bytes::from_static(b"from 9090"))
            .await
            .unwrap();
        let reply = Frame::Data {
            stream_id: 5,
            fin: false,
            data: Bytes::from_static(b"from 9090"),
        };
        assert_eq!(client.next().await, Some(reply));

        // A failure goes on the pair's error stream, then both streams end.
        first.error.send("connection refused".into()).unwrap();
        drop(first.to_client);
        let mut frames = [
            client.next().await.unwrap(),
            client.next().await.unwrap(),
            client.next().await.unwrap(),
        ];
        frames.sort_by_key(|frame| !matches!(frame, Frame::Data { data, .. } if !data.is_empty()));
        let message = Frame::Data {
            stream_id: 1,
            fin: false,
            data: Bytes::from_static(b"connection refused"),
        };
        assert_eq!(frames[0], message);
        assert!(frames[1..].contains(&Frame::fin(1)));
        assert!(frames[1..].contains(&Frame::fin(7)));

        // The other pair is untouched; the receiver ends with the connection.
        assert!(!second.to_client.is_closed());
        drop(client);
        assert_eq!(second.from_client.recv().await, None);
        assert!(forwards.recv().await.is_none());
    }

    #[tokio::test]
    async fn streams_without_a_port_are_refused() {
        let (server_io, client_io) = tokio::io::duplex(64 * 1024);
        let mut client = TestClient::new(client_io);
        let _forwards = accept_port_forward(server_io);
        client
            .open(1, &[("streamtype", "data"), ("requestid", "0")])
            .await;
        let refused = Frame::RstStream {
            stream_id: 1,
            status: RST_CANCEL,
        };
        assert_eq!(client.next().await, Some(refused));
    }

    #[test]
    fn old_clients_pair_by_consecutive_stream_ids() {
        let headers = |kind: &str| {
            vec![
                ("streamtype".to_string(), kind.to_string()),
                ("port".to_string(), "80".to_string()),
            ]
        };
        let error = PairStream::of(5, &headers("error")).unwrap();
        let data = PairStream::of(7, &headers("data")).unwrap();
        assert_eq!(error.request_id, data.request_id);
        assert_eq!(PairStream::of(1, &headers("stdin")), None);
    }
}
