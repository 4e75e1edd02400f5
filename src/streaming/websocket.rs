//! The WebSocket transport (RFC 6455) of the streaming server, server side: the handshake
//! pieces the HTTP layer needs, and the sessions that run over the upgraded connection.
//!
//! Kubernetes multiplexes streams over one WebSocket by channel: the first byte of every message
//! names the channel, the rest is the data. The base64 variants send text messages whose first
//! character is the channel as an ASCII digit and whose rest is base64. Exec and attach use
//! channels 0 stdin, 1 stdout, 2 stderr, 3 error (the final status), 4 resize; `v5` adds the
//! client's half-close, a message `[255, channel]`. Port-forward uses a data channel `2i` and an
//! error channel `2i + 1` for the i-th requested port, each opened by the port number (two bytes,
//! little-endian), as kubelet does.

use std::io;
use std::ops::ControlFlow;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::{Buf, Bytes, BytesMut};
use futures_util::stream::{self, BoxStream, SelectAll, StreamExt};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, WriteHalf};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::channels::{Channels, ForwardStream, Outcome, Wanted, status_json};

/// The GUID RFC 6455 appends to the client's key to derive the accept value.
const HANDSHAKE_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Remote command, version 5: v4 plus the client's half-close signal.
const V5: &str = "v5.channel.k8s.io";
/// Remote command (and port-forward) version 4: binary channels, status JSON on channel 3.
const V4: &str = "v4.channel.k8s.io";
/// Version 4 in base64 text messages.
const V4_BASE64: &str = "v4.base64.channel.k8s.io";
/// The unversioned protocol: binary channels, only a failure's message on channel 3.
const V1: &str = "channel.k8s.io";
/// The unversioned protocol in base64 text messages.
const V1_BASE64: &str = "base64.channel.k8s.io";

/// The exec/attach subprotocols served, most preferred first.
const REMOTE_COMMAND_PROTOCOLS: [&str; 5] = [V5, V4, V4_BASE64, V1, V1_BASE64];
/// The port-forward subprotocols kubelet's WebSocket port-forward serves, most preferred first.
const PORT_FORWARD_PROTOCOLS: [&str; 2] = [V4, V4_BASE64];

/// The exec/attach channels.
const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
/// Channels 0 to 4: stdin, stdout, stderr, error and resize (whose messages are ignored).
const REMOTE_COMMAND_CHANNELS: usize = 5;
/// The `v5` channel byte of a half-close: the next byte names the channel the client closed.
const STREAM_CLOSE: u8 = 255;

/// The largest message (or frame) accepted from a client; larger ones end the session
/// (kubectl writes 32 KiB chunks; each channel queues a few messages).
const MAX_MESSAGE: usize = 1 << 20;
/// How much to read from the connection at a time.
const READ_CHUNK: usize = 16 << 10;
/// Chunks buffered between the connection and the runner, per stream.
const STREAM_CAPACITY: usize = 16;
/// How long the end of a session waits for the client to answer its close frame. The client
/// first reads everything written before it, which a slow reader may take minutes to do, and
/// closing before its answer could reset the connection and lose that output.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Close status: the session ended normally.
const NORMAL_CLOSURE: u16 = 1000;
/// Close status: the client broke the WebSocket or channel protocol.
const PROTOCOL_ERROR: u16 = 1002;
/// Close status: a message that is not what its type says (bad UTF-8 or base64).
const INVALID_DATA: u16 = 1007;
/// Close status: a request the server refuses (more ports than channels).
const POLICY_VIOLATION: u16 = 1008;
/// Close status: a message larger than [`MAX_MESSAGE`].
const MESSAGE_TOO_BIG: u16 = 1009;

/// The Sec-WebSocket-Accept value for a client's Sec-WebSocket-Key (RFC 6455).
///
/// The HTTP layer answers the upgrade with it to prove it understood the handshake.
pub fn accept_key(client_key: &str) -> String {
    let mut digest = Sha1::new();
    digest.update(client_key.trim().as_bytes());
    digest.update(HANDSHAKE_GUID.as_bytes());
    BASE64.encode(digest.finalize())
}

/// Picks the remote-command subprotocol from the client's Sec-WebSocket-Protocol list
/// (preference v5.channel.k8s.io, v4.channel.k8s.io, v4.base64.channel.k8s.io, then the
/// unversioned channel.k8s.io and base64.channel.k8s.io); None if none fits.
///
/// A client that offers no subprotocol at all gets None here; kubelet serves it the
/// unversioned protocol without naming one, which passing `""` to [`accept_remote_command`] does.
pub fn choose_remote_command_protocol(offered: &[&str]) -> Option<&'static str> {
    choose(&REMOTE_COMMAND_PROTOCOLS, offered)
}

/// Picks the port-forward subprotocol (v4.channel.k8s.io, then v4.base64.channel.k8s.io, the
/// ones kubelet's WebSocket port-forward serves); None if none fits.
pub fn choose_port_forward_protocol(offered: &[&str]) -> Option<&'static str> {
    choose(&PORT_FORWARD_PROTOCOLS, offered)
}

/// The first of `supported` the client offered.
fn choose(supported: &[&'static str], offered: &[&str]) -> Option<&'static str> {
    supported
        .iter()
        .copied()
        .find(|protocol| offered.iter().any(|offer| offer.trim() == *protocol))
}

/// Serves an exec/attach session over the upgraded connection and returns its Channels at once; a
/// spawned task drives the connection until the runner sends the outcome (see the [`Channels`]
/// contract) or the client goes away.
///
/// `protocol` is the negotiated subprotocol; any other name, `""` included, gets the unversioned
/// `channel.k8s.io` behaviour, as kubelet gives a client that named none. Call it inside a Tokio
/// runtime.
pub fn accept_remote_command<IO>(io: IO, protocol: &'static str, wanted: Wanted) -> Channels
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let profile = remote_command_profile(protocol);
    let (stdin_route, stdin) = optional_stream(wanted.stdin);
    let (stdout, stdout_rx) = optional_stream(wanted.stdout);
    let (stderr, stderr_rx) = optional_stream(wanted.stderr);
    let (outcome, outcome_rx) = oneshot::channel();
    let mut routes = vec![None; REMOTE_COMMAND_CHANNELS];
    routes[usize::from(STDIN)] = stdin_route;
    let conn = Conn::open(io, profile.codec, routes, profile.close_signal);
    let outputs = Outputs {
        stdout: stdout_rx,
        stderr: stderr_rx,
        outcome: outcome_rx,
    };
    tokio::spawn(serve_remote_command(
        conn,
        outputs,
        first_channel(wanted),
        profile.status,
    ));
    Channels {
        stdin,
        stdout,
        stderr,
        outcome,
    }
}

/// Serves a port-forward session for the given ports (from the `ports` query parameter): one
/// ForwardStream per port, in the order of `ports`; the session ends once every stream's
/// `to_client` and `error` are gone (or the client goes away).
///
/// More ports than the protocol has channels for (128, or 40 in base64) end the connection with
/// a policy-violation close and no streams. Call it inside a Tokio runtime.
pub fn accept_port_forward<IO>(
    io: IO,
    protocol: &'static str,
    ports: &[u16],
) -> mpsc::Receiver<ForwardStream>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let codec = port_forward_codec(protocol);
    let (streams_tx, streams) = mpsc::channel(ports.len().max(1));
    if ports.len() > codec.max_ports() {
        let conn = Conn::open(io, codec, Vec::new(), false);
        tokio::spawn(conn.close_and_wait(POLICY_VIOLATION));
        return streams;
    }
    let mut routes = Vec::with_capacity(ports.len() * 2);
    let mut outputs = SelectAll::new();
    let mut prefixes = Vec::with_capacity(ports.len());
    for (data_channel, &port) in (0..=u8::MAX).step_by(2).zip(ports) {
        let (stream, route, output) = open_port(data_channel, port);
        routes.extend([Some(route), None]);
        outputs.push(output);
        prefixes.push((data_channel, port));
        // The channel holds one slot per port and nothing has been taken yet.
        let _ = streams_tx.try_send(stream);
    }
    let conn = Conn::open(io, codec, routes, false);
    tokio::spawn(serve_port_forward(conn, prefixes, outputs));
    streams
}

/// How a remote-command subprotocol encodes messages and its final status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Profile {
    codec: Codec,
    /// The client may half-close a channel (`v5`).
    close_signal: bool,
    status: StatusStyle,
}

/// The profile of a negotiated remote-command subprotocol.
fn remote_command_profile(protocol: &str) -> Profile {
    let (codec, close_signal, status) = match protocol {
        V5 => (Codec::Binary, true, StatusStyle::Json),
        V4 => (Codec::Binary, false, StatusStyle::Json),
        V4_BASE64 => (Codec::Base64, false, StatusStyle::Json),
        V1_BASE64 => (Codec::Base64, false, StatusStyle::Message),
        _ => (Codec::Binary, false, StatusStyle::Message),
    };
    Profile {
        codec,
        close_signal,
        status,
    }
}

/// The codec of a negotiated port-forward subprotocol (binary unless base64 was chosen).
fn port_forward_codec(protocol: &str) -> Codec {
    if protocol == V4_BASE64 {
        Codec::Base64
    } else {
        Codec::Binary
    }
}

/// A runner-facing stream and the session's end of it, when the request asked for it.
fn optional_stream(wanted: bool) -> (Option<mpsc::Sender<Bytes>>, Option<mpsc::Receiver<Bytes>>) {
    if !wanted {
        return (None, None);
    }
    let (sender, receiver) = mpsc::channel(STREAM_CAPACITY);
    (Some(sender), Some(receiver))
}

/// The lowest channel the server writes: kubelet sends an empty message on it as soon as the
/// connection is open, to tell the client the session is up.
fn first_channel(wanted: Wanted) -> u8 {
    if wanted.stdout {
        STDOUT
    } else if wanted.stderr {
        STDERR
    } else {
        ERROR
    }
}

/// What the client gets on the error channel at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StatusStyle {
    /// The `metav1.Status` JSON, success included (v4 and v5).
    Json,
    /// Only a failure's message, as text (the unversioned protocols).
    Message,
}

impl StatusStyle {
    /// The error-channel payload for an outcome, if this style sends one.
    fn encode(self, outcome: &Outcome) -> Option<Vec<u8>> {
        let status = status_json(outcome);
        match self {
            Self::Json => Some(status),
            Self::Message => status_message(&status),
        }
    }
}

/// The `message` of a status JSON (none for a success).
fn status_message(status: &[u8]) -> Option<Vec<u8>> {
    let status: serde_json::Value = serde_json::from_slice(status).ok()?;
    Some(status.get("message")?.as_str()?.as_bytes().to_vec())
}

/// The session's ends of the runner's output streams.
struct Outputs {
    stdout: Option<mpsc::Receiver<Bytes>>,
    stderr: Option<mpsc::Receiver<Bytes>>,
    outcome: oneshot::Receiver<Outcome>,
}

/// Drives an exec/attach session: the opening message, the output, the status, the close.
async fn serve_remote_command<W>(
    mut conn: Conn<W>,
    mut outputs: Outputs,
    first: u8,
    status: StatusStyle,
) where
    W: AsyncWrite + Unpin,
{
    if conn.send(first, &[]).await.is_err() {
        return;
    }
    let Some(outcome) = pump_outputs(&mut conn, &mut outputs).await else {
        tracing::debug!("exec/attach client went away");
        return;
    };
    if let Some(status) = status.encode(&outcome) {
        if conn.send(ERROR, &status).await.is_err() {
            return;
        }
    }
    conn.close_and_wait(NORMAL_CLOSURE).await;
}

/// Writes stdout and stderr until the runner has sent its outcome and both streams have ended;
/// None if the connection ended first.
async fn pump_outputs<W>(conn: &mut Conn<W>, outputs: &mut Outputs) -> Option<Outcome>
where
    W: AsyncWrite + Unpin,
{
    let mut outcome = None;
    loop {
        if outcome.is_some() && outputs.stdout.is_none() && outputs.stderr.is_none() {
            return outcome;
        }
        tokio::select! {
            chunk = next_chunk(&mut outputs.stdout) => forward(conn, STDOUT, chunk).await?,
            chunk = next_chunk(&mut outputs.stderr) => forward(conn, STDERR, chunk).await?,
            result = &mut outputs.outcome, if outcome.is_none() => {
                conn.stop_routing();
                outcome = Some(result.unwrap_or_else(|_| {
                    Outcome::Failure("the session ended without an outcome".to_string())
                }));
            }
            event = conn.events.recv() => {
                if conn.on_event(event).await.is_break() {
                    return None;
                }
            }
        }
    }
}

/// The next chunk of an output stream; None once when it ends (the slot is emptied), and
/// pending for ever on an empty slot.
async fn next_chunk(slot: &mut Option<mpsc::Receiver<Bytes>>) -> Option<Bytes> {
    let Some(receiver) = slot else {
        return std::future::pending().await;
    };
    let chunk = receiver.recv().await;
    if chunk.is_none() {
        *slot = None;
    }
    chunk
}

/// Writes a chunk, if any, on a channel; None if the connection failed.
async fn forward<W>(conn: &mut Conn<W>, channel: u8, chunk: Option<Bytes>) -> Option<()>
where
    W: AsyncWrite + Unpin,
{
    match chunk {
        Some(chunk) => conn.send(channel, &chunk).await.ok(),
        None => Some(()),
    }
}

/// What the session writes for each port: `(channel, data)`.
type PortOutput = BoxStream<'static, (u8, Bytes)>;

/// One port's streams: the runner's end, the route for the client's data, and what to write.
fn open_port(data_channel: u8, port: u16) -> (ForwardStream, mpsc::Sender<Bytes>, PortOutput) {
    let (route, from_client) = mpsc::channel(STREAM_CAPACITY);
    let (to_client, to_client_rx) = mpsc::channel(STREAM_CAPACITY);
    let (error, error_rx) = oneshot::channel();
    let stream = ForwardStream {
        port,
        from_client,
        to_client,
        error,
    };
    (
        stream,
        route,
        port_output(data_channel, to_client_rx, error_rx),
    )
}

/// A port's data chunks and its error message, if the runner sends one, as they come; ends when
/// `to_client` and `error` are both gone.
fn port_output(
    data_channel: u8,
    data: mpsc::Receiver<Bytes>,
    error: oneshot::Receiver<String>,
) -> PortOutput {
    let data = stream::unfold(data, move |mut data| async move {
        let chunk = data.recv().await?;
        Some(((data_channel, chunk), data))
    });
    let error = stream::once(error).filter_map(move |message| async move {
        Some((data_channel | 1, Bytes::from(message.ok()?)))
    });
    stream::select(data, error).boxed()
}

/// Drives a port-forward session: the port prefixes, the data and errors, the close.
async fn serve_port_forward<W>(
    mut conn: Conn<W>,
    prefixes: Vec<(u8, u16)>,
    mut outputs: SelectAll<PortOutput>,
) where
    W: AsyncWrite + Unpin,
{
    for (data_channel, port) in prefixes {
        let prefix = port.to_le_bytes();
        if conn.send(data_channel, &prefix).await.is_err()
            || conn.send(data_channel | 1, &prefix).await.is_err()
        {
            return;
        }
    }
    loop {
        tokio::select! {
            item = outputs.next() => match item {
                Some((channel, data)) => {
                    if conn.send(channel, &data).await.is_err() {
                        return;
                    }
                }
                None => break,
            },
            event = conn.events.recv() => {
                if conn.on_event(event).await.is_break() {
                    return;
                }
            }
        }
    }
    conn.close_and_wait(NORMAL_CLOSURE).await;
}

/// How channel and data are put into a WebSocket message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codec {
    /// Binary messages: the channel byte, then the data.
    Binary,
    /// Text messages: the channel as `'0' + channel`, then the data in base64.
    Base64,
}

impl Codec {
    /// How many port-forward ports fit: each takes two channels, and the highest channel is 255,
    /// or 79 in base64, whose channel character `'0' + channel` must stay ASCII.
    fn max_ports(self) -> usize {
        match self {
            Self::Binary => 128,
            Self::Base64 => 40,
        }
    }

    /// The message carrying `data` on `channel`.
    fn encode(self, channel: u8, data: &[u8]) -> (Opcode, Vec<u8>) {
        match self {
            Self::Binary => {
                let mut message = Vec::with_capacity(data.len() + 1);
                message.push(channel);
                message.extend_from_slice(data);
                (Opcode::Binary, message)
            }
            Self::Base64 => {
                let mut message = vec![b'0'.wrapping_add(channel)];
                message.extend_from_slice(BASE64.encode(data).as_bytes());
                (Opcode::Text, message)
            }
        }
    }

    /// The channel and data of a client's message; None for an empty message.
    fn decode(self, message: Bytes) -> Result<Option<(u8, Bytes)>, ProtocolError> {
        let Some(&first) = message.first() else {
            return Ok(None);
        };
        let data = message.slice(1..);
        match self {
            Self::Binary => Ok(Some((first, data))),
            Self::Base64 => {
                let data = BASE64
                    .decode(&data)
                    .map_err(|_| ProtocolError::InvalidBase64)?;
                Ok(Some((first.wrapping_sub(b'0'), data.into())))
            }
        }
    }
}

/// What the read loop tells the session.
#[derive(Debug)]
enum Event {
    /// The client pinged; the session answers with a pong carrying the same data.
    Ping(Bytes),
    /// The connection must close with this close frame (status, or none): the answer to the
    /// client's close, or the failure of a client that broke the protocol. The read loop stops.
    Close(Option<u16>),
}

/// The server's side of one upgraded connection: it writes frames, and hears from the read
/// loop, which runs as its own task and routes the client's data to the runner.
struct Conn<W> {
    io: W,
    codec: Codec,
    events: mpsc::Receiver<Event>,
    /// Set at the end of a session: the read loop then drops the client's data.
    finishing: watch::Sender<bool>,
    reader: JoinHandle<()>,
}

impl<IO> Conn<WriteHalf<IO>>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    /// Splits the connection and starts its read loop; client data on channel `i` goes to
    /// `routes[i]` (dropped when absent).
    fn open(
        io: IO,
        codec: Codec,
        routes: Vec<Option<mpsc::Sender<Bytes>>>,
        close_signal: bool,
    ) -> Self {
        let (read, write) = tokio::io::split(io);
        let (events_tx, events) = mpsc::channel(8);
        let (finishing, finishing_rx) = watch::channel(false);
        let reader = Reader {
            io: read,
            buf: BytesMut::new(),
            assembler: Assembler::default(),
            codec,
            routes,
            close_signal,
            events: events_tx,
            finishing: finishing_rx,
        };
        Self {
            io: write,
            codec,
            events,
            finishing,
            reader: tokio::spawn(reader.run()),
        }
    }
}

impl<W> Conn<W>
where
    W: AsyncWrite + Unpin,
{
    /// Writes `data` as one message on `channel`.
    async fn send(&mut self, channel: u8, data: &[u8]) -> io::Result<()> {
        let (opcode, message) = self.codec.encode(channel, data);
        self.write_frame(opcode, &message).await
    }

    /// Writes one unfragmented frame and flushes it.
    async fn write_frame(&mut self, opcode: Opcode, payload: &[u8]) -> io::Result<()> {
        self.io.write_all(&encode_frame(opcode, payload)).await?;
        self.io.flush().await
    }

    /// Closes the client's input streams: anything the client still sends is dropped.
    fn stop_routing(&self) {
        self.finishing.send_replace(true);
    }

    /// Acts on what the read loop reported; Break when the session is over.
    async fn on_event(&mut self, event: Option<Event>) -> ControlFlow<()> {
        match event {
            Some(Event::Ping(payload)) => match self.write_frame(Opcode::Pong, &payload).await {
                Ok(()) => ControlFlow::Continue(()),
                Err(_) => ControlFlow::Break(()),
            },
            Some(Event::Close(status)) => {
                self.close_now(status).await;
                ControlFlow::Break(())
            }
            None => ControlFlow::Break(()),
        }
    }

    /// Sends a close frame and shuts the connection without waiting for an answer.
    async fn close_now(&mut self, status: Option<u16>) {
        let status = status.map(u16::to_be_bytes);
        let payload = status.as_ref().map_or(&[][..], |status| &status[..]);
        if self.write_frame(Opcode::Close, payload).await.is_ok() {
            let _ = self.io.shutdown().await;
        }
    }

    /// Ends the session: sends a close frame, waits (a while) for the client to answer it or
    /// go away, then shuts the connection.
    async fn close_and_wait(mut self, status: u16) {
        self.stop_routing();
        let closing = async {
            self.write_frame(Opcode::Close, &status.to_be_bytes())
                .await?;
            while self.events.recv().await.is_some() {}
            self.io.shutdown().await
        };
        if let Ok(Err(error)) = tokio::time::timeout(CLOSE_TIMEOUT, closing).await {
            tracing::debug!(%error, "closing a websocket session");
        }
    }
}

impl<W> Drop for Conn<W> {
    fn drop(&mut self) {
        // The read loop holds the other half of the connection and the client's streams.
        self.reader.abort();
    }
}

/// The read loop: reads the client's frames, routes its data, and reports the rest.
struct Reader<R> {
    io: R,
    buf: BytesMut,
    assembler: Assembler,
    codec: Codec,
    /// Where each channel's data goes; the senders are dropped when the client closes the
    /// channel, the session finishes or the loop ends.
    routes: Vec<Option<mpsc::Sender<Bytes>>>,
    close_signal: bool,
    events: mpsc::Sender<Event>,
    finishing: watch::Receiver<bool>,
}

/// Why the read loop stopped reading.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    /// The client broke the protocol; the session closes with an error status.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The connection failed or ended.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl<R> Reader<R>
where
    R: AsyncRead + Unpin,
{
    /// Reads until the client closes, breaks the protocol or goes away.
    async fn run(mut self) {
        let status = loop {
            match self.step().await {
                Ok(ControlFlow::Continue(())) => {}
                Ok(ControlFlow::Break(status)) => break status,
                Err(ReadError::Protocol(error)) => {
                    tracing::debug!(%error, "websocket client broke the protocol");
                    break Some(error.close_status());
                }
                Err(ReadError::Io(_)) => return,
            }
        };
        let _ = self.events.send(Event::Close(status)).await;
    }

    /// Handles one message; Break with the status to answer when the client closed.
    async fn step(&mut self) -> Result<ControlFlow<Option<u16>>, ReadError> {
        match self.next_message().await? {
            Message::Data(message) => self.route(message).await?,
            Message::Ping(payload) => {
                let _ = self.events.send(Event::Ping(payload)).await;
            }
            Message::Pong => {}
            Message::Close(status) => return Ok(ControlFlow::Break(status)),
        }
        Ok(ControlFlow::Continue(()))
    }

    /// The client's next message, from as many frames and reads as it takes.
    async fn next_message(&mut self) -> Result<Message, ReadError> {
        loop {
            while let Some(frame) = decode_frame(&mut self.buf, MAX_MESSAGE)? {
                if !frame.masked {
                    return Err(ProtocolError::Unmasked.into());
                }
                if let Some(message) = self.assembler.push(frame)? {
                    return Ok(message);
                }
            }
            self.buf.reserve(READ_CHUNK);
            if self.io.read_buf(&mut self.buf).await? == 0 {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
            }
        }
    }

    /// Sends a data message's payload where its channel goes, or applies a half-close.
    async fn route(&mut self, message: Bytes) -> Result<(), ProtocolError> {
        if self.close_signal && message.first() == Some(&STREAM_CLOSE) {
            return self.close_channel(&message);
        }
        if let Some((channel, data)) = self.codec.decode(message)? {
            self.deliver(usize::from(channel), data).await;
        }
        Ok(())
    }

    /// The `v5` half-close: `[255, channel]` ends that channel's input.
    fn close_channel(&mut self, message: &[u8]) -> Result<(), ProtocolError> {
        let [_, channel] = message else {
            return Err(ProtocolError::BadCloseSignal);
        };
        let route = self
            .routes
            .get_mut(usize::from(*channel))
            .ok_or(ProtocolError::BadCloseSignal)?;
        *route = None;
        Ok(())
    }

    /// Hands data to a channel's reader, waiting while it is full; drops it if nobody reads the
    /// channel, and everything once the session is finishing.
    async fn deliver(&mut self, channel: usize, data: Bytes) {
        if *self.finishing.borrow() {
            self.routes.clear();
        }
        let Some(Some(route)) = self.routes.get(channel) else {
            return;
        };
        if data.is_empty() {
            return;
        }
        let delivered = tokio::select! {
            sent = route.send(data) => sent.is_ok(),
            _ = self.finishing.wait_for(|finishing| *finishing) => false,
        };
        if !delivered {
            if let Some(route) = self.routes.get_mut(channel) {
                *route = None;
            }
        }
    }
}

/// A client's violation of RFC 6455 or of the channel protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum ProtocolError {
    /// An RSV bit is set, but no extension was negotiated.
    #[error("reserved bits set")]
    ReservedBits,
    /// An opcode RFC 6455 reserves.
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    /// A control frame that is fragmented or longer than 125 bytes.
    #[error("fragmented or long control frame")]
    BadControlFrame,
    /// A 64-bit length with its most significant bit set.
    #[error("invalid payload length")]
    BadLength,
    /// Clients must mask every frame.
    #[error("unmasked client frame")]
    Unmasked,
    /// A continuation frame outside a fragmented message.
    #[error("continuation frame without a message")]
    UnexpectedContinuation,
    /// A new data frame before the fragmented message ended.
    #[error("data frame inside a fragmented message")]
    UnfinishedMessage,
    /// A message over [`MAX_MESSAGE`].
    #[error("message over {MAX_MESSAGE} bytes")]
    TooBig,
    /// A close frame with one byte or an invalid status.
    #[error("invalid close frame")]
    BadClose,
    /// A text message or close reason that is not UTF-8.
    #[error("invalid UTF-8")]
    InvalidUtf8,
    /// A base64 protocol message that is not base64.
    #[error("invalid base64")]
    InvalidBase64,
    /// A `v5` half-close that is not `[255, channel]` with a known channel.
    #[error("malformed stream close signal")]
    BadCloseSignal,
}

impl ProtocolError {
    /// The close status that reports this error to the client.
    fn close_status(self) -> u16 {
        match self {
            Self::TooBig => MESSAGE_TOO_BIG,
            Self::InvalidUtf8 | Self::InvalidBase64 => INVALID_DATA,
            _ => PROTOCOL_ERROR,
        }
    }
}

/// A frame's opcode (RFC 6455 section 5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opcode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl Opcode {
    /// The opcode of a frame's low nibble.
    fn from_bits(bits: u8) -> Result<Self, ProtocolError> {
        match bits {
            0x0 => Ok(Self::Continuation),
            0x1 => Ok(Self::Text),
            0x2 => Ok(Self::Binary),
            0x8 => Ok(Self::Close),
            0x9 => Ok(Self::Ping),
            0xa => Ok(Self::Pong),
            other => Err(ProtocolError::ReservedOpcode(other)),
        }
    }

    /// The low nibble of the frame's first byte.
    fn bits(self) -> u8 {
        match self {
            Self::Continuation => 0x0,
            Self::Text => 0x1,
            Self::Binary => 0x2,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xa,
        }
    }

    /// Close, ping and pong: never fragmented, at most 125 bytes.
    fn is_control(self) -> bool {
        matches!(self, Self::Close | Self::Ping | Self::Pong)
    }
}

/// One decoded frame, payload unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Frame {
    fin: bool,
    opcode: Opcode,
    /// Whether the sender masked it (clients must, servers must not).
    masked: bool,
    payload: Bytes,
}

/// A frame as the server sends it: final, unmasked.
fn encode_frame(opcode: Opcode, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 10);
    frame.push(0x80 | opcode.bits());
    let len = payload.len();
    if len <= 125 {
        frame.push(len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        frame.push(126);
        frame.extend_from_slice(&len.to_be_bytes());
    } else {
        frame.push(127);
        frame.extend_from_slice(&(len as u64).to_be_bytes());
    }
    frame.extend_from_slice(payload);
    frame
}

/// The fixed part of a frame: everything before the payload.
struct Header {
    fin: bool,
    opcode: Opcode,
    mask: Option<[u8; 4]>,
    /// Bytes before the payload.
    len: usize,
    payload_len: usize,
}

/// Takes the first whole frame off `buf`; None while it is incomplete. Payloads over `max`
/// bytes are refused before they are read.
fn decode_frame(buf: &mut BytesMut, max: usize) -> Result<Option<Frame>, ProtocolError> {
    let Some(header) = decode_header(buf, max)? else {
        return Ok(None);
    };
    if buf.len() < header.len + header.payload_len {
        return Ok(None);
    }
    buf.advance(header.len);
    let mut payload = buf.split_to(header.payload_len);
    if let Some(mask) = header.mask {
        payload
            .iter_mut()
            .zip(mask.iter().cycle())
            .for_each(|(byte, key)| *byte ^= key);
    }
    Ok(Some(Frame {
        fin: header.fin,
        opcode: header.opcode,
        masked: header.mask.is_some(),
        payload: payload.freeze(),
    }))
}

/// Parses a frame header from the start of `buf`; None while it is incomplete.
fn decode_header(buf: &[u8], max: usize) -> Result<Option<Header>, ProtocolError> {
    let [first, second, rest @ ..] = buf else {
        return Ok(None);
    };
    if first & 0x70 != 0 {
        return Err(ProtocolError::ReservedBits);
    }
    let fin = first & 0x80 != 0;
    let opcode = Opcode::from_bits(first & 0x0f)?;
    let (payload_len, extended) = match second & 0x7f {
        126 => match rest.first_chunk::<2>() {
            Some(len) => (u64::from(u16::from_be_bytes(*len)), 2),
            None => return Ok(None),
        },
        127 => match rest.first_chunk::<8>() {
            Some(len) => (u64::from_be_bytes(*len), 8),
            None => return Ok(None),
        },
        len => (u64::from(len), 0),
    };
    if opcode.is_control() && (!fin || payload_len > 125) {
        return Err(ProtocolError::BadControlFrame);
    }
    if payload_len >> 63 != 0 {
        return Err(ProtocolError::BadLength);
    }
    let payload_len = usize::try_from(payload_len)
        .ok()
        .filter(|len| *len <= max)
        .ok_or(ProtocolError::TooBig)?;
    let mask = if second & 0x80 != 0 {
        match rest
            .get(extended..)
            .and_then(|rest| rest.first_chunk::<4>())
        {
            Some(mask) => Some(*mask),
            None => return Ok(None),
        }
    } else {
        None
    };
    Ok(Some(Header {
        fin,
        opcode,
        mask,
        len: 2 + extended + if mask.is_some() { 4 } else { 0 },
        payload_len,
    }))
}

/// A whole message, after reassembly of fragments.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Message {
    /// A text or binary message.
    Data(Bytes),
    /// A ping and its application data.
    Ping(Bytes),
    /// A pong (the server sends no pings, so its data does not matter).
    Pong,
    /// A close and its status, if it had one.
    Close(Option<u16>),
}

/// Reassembles fragmented messages; control frames pass through between fragments.
#[derive(Debug, Default)]
struct Assembler {
    /// The opcode and data so far of a message whose last fragment has not come yet.
    partial: Option<(Opcode, BytesMut)>,
}

impl Assembler {
    /// Takes a frame; returns the message it completes, if any.
    fn push(&mut self, frame: Frame) -> Result<Option<Message>, ProtocolError> {
        match frame.opcode {
            Opcode::Ping => Ok(Some(Message::Ping(frame.payload))),
            Opcode::Pong => Ok(Some(Message::Pong)),
            Opcode::Close => Ok(Some(Message::Close(decode_close(&frame.payload)?))),
            Opcode::Text | Opcode::Binary => self.start(frame),
            Opcode::Continuation => self.append(frame),
        }
    }

    /// The first (or only) frame of a data message.
    fn start(&mut self, frame: Frame) -> Result<Option<Message>, ProtocolError> {
        if self.partial.is_some() {
            return Err(ProtocolError::UnfinishedMessage);
        }
        if frame.fin {
            return complete(frame.opcode, frame.payload).map(Some);
        }
        self.partial = Some((frame.opcode, BytesMut::from(&frame.payload[..])));
        Ok(None)
    }

    /// A later fragment of a data message.
    fn append(&mut self, frame: Frame) -> Result<Option<Message>, ProtocolError> {
        let (opcode, mut data) = self
            .partial
            .take()
            .ok_or(ProtocolError::UnexpectedContinuation)?;
        if data.len() + frame.payload.len() > MAX_MESSAGE {
            return Err(ProtocolError::TooBig);
        }
        data.extend_from_slice(&frame.payload);
        if frame.fin {
            return complete(opcode, data.freeze()).map(Some);
        }
        self.partial = Some((opcode, data));
        Ok(None)
    }
}

/// A finished data message; text must be UTF-8.
fn complete(opcode: Opcode, payload: Bytes) -> Result<Message, ProtocolError> {
    if opcode == Opcode::Text && std::str::from_utf8(&payload).is_err() {
        return Err(ProtocolError::InvalidUtf8);
    }
    Ok(Message::Data(payload))
}

/// The status of a close frame: none, or two bytes and a UTF-8 reason.
fn decode_close(payload: &[u8]) -> Result<Option<u16>, ProtocolError> {
    let Some((status, reason)) = payload.split_first_chunk::<2>() else {
        return if payload.is_empty() {
            Ok(None)
        } else {
            Err(ProtocolError::BadClose)
        };
    };
    let status = u16::from_be_bytes(*status);
    if !matches!(status, 1000..=1003 | 1007..=1014 | 3000..=4999) {
        return Err(ProtocolError::BadClose);
    }
    std::str::from_utf8(reason).map_err(|_| ProtocolError::InvalidUtf8)?;
    Ok(Some(status))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::DuplexStream;

    /// The client's masking key in these tests.
    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// Masks a server-style frame as a client must send it.
    fn mask(mut frame: Vec<u8>) -> Vec<u8> {
        let header = match frame[1] & 0x7f {
            126 => 4,
            127 => 10,
            _ => 2,
        };
        frame[1] |= 0x80;
        let payload: Vec<u8> = frame[header..]
            .iter()
            .zip(KEY.iter().cycle())
            .map(|(byte, key)| byte ^ key)
            .collect();
        frame.truncate(header);
        frame.extend_from_slice(&KEY);
        frame.extend_from_slice(&payload);
        frame
    }

    /// A final, masked client frame.
    fn client_frame(opcode: Opcode, payload: &[u8]) -> Vec<u8> {
        mask(encode_frame(opcode, payload))
    }

    /// A masked client frame with the FIN bit as given.
    fn client_fragment(fin: bool, opcode: Opcode, payload: &[u8]) -> Vec<u8> {
        let mut frame = client_frame(opcode, payload);
        if !fin {
            frame[0] &= 0x7f;
        }
        frame
    }

    fn decode_all(bytes: &[u8]) -> Result<Option<Frame>, ProtocolError> {
        decode_frame(&mut BytesMut::from(bytes), MAX_MESSAGE)
    }

    /// The test client's view of the server: reads unmasked frames.
    struct Client {
        io: DuplexStream,
        buf: BytesMut,
        assembler: Assembler,
    }

    impl Client {
        fn new(io: DuplexStream) -> Self {
            Self {
                io,
                buf: BytesMut::new(),
                assembler: Assembler::default(),
            }
        }

        async fn send(&mut self, opcode: Opcode, payload: &[u8]) {
            self.io
                .write_all(&client_frame(opcode, payload))
                .await
                .unwrap();
        }

        async fn frame(&mut self) -> Frame {
            loop {
                if let Some(frame) = decode_frame(&mut self.buf, MAX_MESSAGE).unwrap() {
                    assert!(!frame.masked, "servers must not mask");
                    return frame;
                }
                let read = self.io.read_buf(&mut self.buf).await.unwrap();
                assert_ne!(read, 0, "the server closed the connection early");
            }
        }

        async fn message(&mut self) -> Message {
            loop {
                let frame = self.frame().await;
                if let Some(message) = self.assembler.push(frame).unwrap() {
                    return message;
                }
            }
        }

        async fn data(&mut self) -> Vec<u8> {
            match self.message().await {
                Message::Data(data) => data.to_vec(),
                other => panic!("expected data, got {other:?}"),
            }
        }

        /// Expects the server's close with this status, answers it and sees the connection end.
        async fn closed_with(&mut self, status: u16) {
            assert_eq!(self.message().await, Message::Close(Some(status)));
            self.send(Opcode::Close, &status.to_be_bytes()).await;
            let mut rest = Vec::new();
            self.io.read_to_end(&mut rest).await.unwrap();
            assert!(rest.is_empty());
        }
    }

    #[test]
    fn accept_key_matches_rfc_6455_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn protocols_are_chosen_by_server_preference() {
        let offered = ["channel.k8s.io", "v4.channel.k8s.io", "v5.channel.k8s.io"];
        assert_eq!(choose_remote_command_protocol(&offered), Some(V5));
        assert_eq!(
            choose_remote_command_protocol(&["base64.channel.k8s.io", " channel.k8s.io"]),
            Some(V1)
        );
        assert_eq!(choose_remote_command_protocol(&["v3.channel.k8s.io"]), None);
        assert_eq!(choose_remote_command_protocol(&[]), None);
        assert_eq!(
            choose_port_forward_protocol(&["v4.base64.channel.k8s.io", "v4.channel.k8s.io"]),
            Some(V4)
        );
        assert_eq!(choose_port_forward_protocol(&["portforward.k8s.io"]), None);
    }

    #[test]
    fn frames_round_trip_with_7_16_and_64_bit_lengths() {
        for (len, header) in [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let unmasked = encode_frame(Opcode::Binary, &payload);
            assert_eq!(unmasked.len(), header + len, "length {len}");
            let masked = mask(unmasked.clone());
            assert_eq!(masked.len(), header + 4 + len);
            for (bytes, was_masked) in [(unmasked, false), (masked, true)] {
                let frame = decode_all(&bytes).unwrap().unwrap();
                assert!(frame.fin);
                assert_eq!(frame.opcode, Opcode::Binary);
                assert_eq!(frame.masked, was_masked);
                assert_eq!(frame.payload, payload);
            }
        }
    }

    #[test]
    fn decoder_waits_for_whole_frames_and_keeps_the_rest() {
        let mut bytes = client_frame(Opcode::Text, b"hello");
        bytes.extend_from_slice(&client_frame(Opcode::Ping, b"p"));
        for cut in 0..bytes.len() - 7 {
            assert_eq!(decode_all(&bytes[..cut]).unwrap(), None, "cut at {cut}");
        }
        let mut buf = BytesMut::from(&bytes[..]);
        let first = decode_frame(&mut buf, MAX_MESSAGE).unwrap().unwrap();
        assert_eq!(first.payload, &b"hello"[..]);
        let second = decode_frame(&mut buf, MAX_MESSAGE).unwrap().unwrap();
        assert_eq!(
            (second.opcode, &second.payload[..]),
            (Opcode::Ping, &b"p"[..])
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn fragments_are_reassembled_around_control_frames() {
        let mut assembler = Assembler::default();
        let frames = [
            client_fragment(false, Opcode::Binary, b"\x01ab"),
            client_frame(Opcode::Ping, b"hb"),
            client_fragment(false, Opcode::Continuation, b"cd"),
            client_fragment(true, Opcode::Continuation, b"ef"),
        ];
        let messages: Vec<Option<Message>> = frames
            .iter()
            .map(|bytes| assembler.push(decode_all(bytes).unwrap().unwrap()).unwrap())
            .collect();
        assert_eq!(
            messages,
            [
                None,
                Some(Message::Ping(Bytes::from_static(b"hb"))),
                None,
                Some(Message::Data(Bytes::from_static(b"\x01abcdef"))),
            ]
        );
    }

    #[test]
    fn fragment_order_violations_are_refused() {
        let mut assembler = Assembler::default();
        let continuation = decode_all(&client_frame(Opcode::Continuation, b"x"))
            .unwrap()
            .unwrap();
        assert_eq!(
            assembler.push(continuation),
            Err(ProtocolError::UnexpectedContinuation)
        );
        let first = decode_all(&client_fragment(false, Opcode::Text, b"a"))
            .unwrap()
            .unwrap();
        assert_eq!(assembler.push(first.clone()), Ok(None));
        assert_eq!(assembler.push(first), Err(ProtocolError::UnfinishedMessage));
    }

    #[test]
    fn malformed_frames_are_refused() {
        let mut reserved = client_frame(Opcode::Binary, b"x");
        reserved[0] |= 0x40;
        assert_eq!(decode_all(&reserved), Err(ProtocolError::ReservedBits));
        assert_eq!(
            decode_all(&[0x83, 0x80, 0, 0, 0, 0]),
            Err(ProtocolError::ReservedOpcode(3))
        );
        let fragmented_ping = client_fragment(false, Opcode::Ping, b"");
        assert_eq!(
            decode_all(&fragmented_ping),
            Err(ProtocolError::BadControlFrame)
        );
        let long_ping = client_frame(Opcode::Ping, &[0; 126]);
        assert_eq!(decode_all(&long_ping), Err(ProtocolError::BadControlFrame));
        let mut huge = vec![0x82, 0xff];
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(decode_all(&huge), Err(ProtocolError::BadLength));
        let mut too_big = vec![0x82, 0xff];
        too_big.extend_from_slice(&(MAX_MESSAGE as u64 + 1).to_be_bytes());
        assert_eq!(decode_all(&too_big), Err(ProtocolError::TooBig));
        assert_eq!(decode_close(&[3]), Err(ProtocolError::BadClose));
        assert_eq!(
            decode_close(&1005u16.to_be_bytes()),
            Err(ProtocolError::BadClose)
        );
        assert_eq!(decode_close(b"\x03\xe8ok"), Ok(Some(1000)));
    }

    #[test]
    fn channels_encode_in_binary_and_base64() {
        assert_eq!(
            Codec::Binary.encode(1, b"hi"),
            (Opcode::Binary, b"\x01hi".to_vec())
        );
        assert_eq!(
            Codec::Base64.encode(1, b"hi"),
            (Opcode::Text, b"1aGk=".to_vec())
        );
        assert_eq!(
            Codec::Base64.decode(Bytes::from_static(b"0aGk=")),
            Ok(Some((0, Bytes::from_static(b"hi"))))
        );
        assert_eq!(
            Codec::Base64.decode(Bytes::from_static(b"0!!")),
            Err(ProtocolError::InvalidBase64)
        );
        assert_eq!(Codec::Binary.decode(Bytes::new()), Ok(None));
    }

    #[test]
    fn unversioned_status_is_the_failure_message_only() {
        assert_eq!(StatusStyle::Message.encode(&Outcome::Success), None);
        assert_eq!(
            StatusStyle::Message.encode(&Outcome::Failure("boom".into())),
            Some(b"boom".to_vec())
        );
        let json = StatusStyle::Json.encode(&Outcome::Success).unwrap();
        assert_eq!(json, status_json(&Outcome::Success));
    }

    #[tokio::test]
    async fn v5_exec_session_carries_stdin_close_stdout_and_status() {
        let (server, client) = tokio::io::duplex(64 << 10);
        let wanted = Wanted {
            stdin: true,
            stdout: true,
            stderr: false,
            tty: false,
        };
        let channels = accept_remote_command(server, V5, wanted);
        assert!(channels.stderr.is_none());
        let mut client = Client::new(client);
        assert_eq!(client.data().await, [STDOUT], "the opening message");

        client.send(Opcode::Binary, b"\x00hello ").await;
        client.send(Opcode::Binary, b"\x04{\"Width\":80}").await;
        client.send(Opcode::Binary, b"\x00world").await;
        client.send(Opcode::Binary, &[STREAM_CLOSE, STDIN]).await;

        let mut stdin = channels.stdin.unwrap();
        let mut input = Vec::new();
        while let Some(chunk) = stdin.recv().await {
            input.extend_from_slice(&chunk);
        }
        assert_eq!(input, b"hello world");
        let stdout = channels.stdout.unwrap();
        stdout.send(Bytes::from_static(b"out")).await.unwrap();
        drop(stdout);
        channels.outcome.send(Outcome::ExitCode(3)).unwrap();

        assert_eq!(client.data().await, b"\x01out");
        let status = client.data().await;
        assert_eq!(status[0], ERROR);
        assert_eq!(status[1..], status_json(&Outcome::ExitCode(3)));
        client.closed_with(NORMAL_CLOSURE).await;
    }

    #[tokio::test]
    async fn pings_are_answered_and_a_client_close_ends_the_session() {
        let (server, client) = tokio::io::duplex(64 << 10);
        let wanted = Wanted {
            stdin: true,
            stdout: false,
            stderr: true,
            tty: false,
        };
        let mut channels = accept_remote_command(server, V4, wanted);
        let mut client = Client::new(client);
        assert_eq!(client.data().await, [STDERR], "the opening message");

        client.send(Opcode::Ping, b"beat").await;
        let pong = client.frame().await;
        assert_eq!(
            (pong.opcode, &pong.payload[..]),
            (Opcode::Pong, &b"beat"[..])
        );

        client.send(Opcode::Close, &1001u16.to_be_bytes()).await;
        assert_eq!(client.message().await, Message::Close(Some(1001)));
        assert_eq!(channels.stdin.as_mut().unwrap().recv().await, None);
        let stderr = channels.stderr.unwrap();
        stderr.closed().await;
        assert!(stderr.send(Bytes::from_static(b"late")).await.is_err());
    }

    #[tokio::test]
    async fn unmasked_client_frames_end_the_session_with_a_protocol_error() {
        let (server, client) = tokio::io::duplex(64 << 10);
        let _channels = accept_remote_command(server, V5, Wanted::default());
        let mut client = Client::new(client);
        assert_eq!(client.data().await, [ERROR], "the opening message");
        client
            .io
            .write_all(&encode_frame(Opcode::Binary, b"\x00x"))
            .await
            .unwrap();
        assert_eq!(client.message().await, Message::Close(Some(PROTOCOL_ERROR)));
    }

    #[tokio::test]
    async fn base64_session_uses_text_digits_and_the_status_json() {
        let (server, client) = tokio::io::duplex(64 << 10);
        let wanted = Wanted {
            stdout: true,
            ..Wanted::default()
        };
        let channels = accept_remote_command(server, V4_BASE64, wanted);
        let mut client = Client::new(client);
        assert_eq!(client.data().await, b"1");
        let stdout = channels.stdout.unwrap();
        stdout.send(Bytes::from_static(b"hi")).await.unwrap();
        drop(stdout);
        channels.outcome.send(Outcome::Success).unwrap();
        assert_eq!(client.data().await, b"1aGk=");
        let status = client.data().await;
        assert_eq!(status[0], b'3');
        let json = BASE64.decode(&status[1..]).unwrap();
        assert_eq!(json, status_json(&Outcome::Success));
        client.closed_with(NORMAL_CLOSURE).await;
    }

    #[tokio::test]
    async fn port_forward_pairs_channels_per_port() {
        let (server, client) = tokio::io::duplex(64 << 10);
        let mut streams = accept_port_forward(server, V4, &[8080, 9090]);
        let mut client = Client::new(client);
        for (channel, port) in [(0u8, 8080u16), (1, 8080), (2, 9090), (3, 9090)] {
            let mut expected = vec![channel];
            expected.extend_from_slice(&port.to_le_bytes());
            assert_eq!(
                client.data().await,
                expected,
                "the prefix of channel {channel}"
            );
        }

        let mut first = streams.recv().await.unwrap();
        let mut second = streams.recv().await.unwrap();
        assert!(streams.recv().await.is_none());
        assert_eq!((first.port, second.port), (8080, 9090));

        client.send(Opcode::Binary, b"\x00GET /").await;
        client.send(Opcode::Binary, b"\x02PING").await;
        assert_eq!(first.from_client.recv().await.unwrap(), &b"GET /"[..]);
        assert_eq!(second.from_client.recv().await.unwrap(), &b"PING"[..]);

        first
            .to_client
            .send(Bytes::from_static(b"200 OK"))
            .await
            .unwrap();
        assert_eq!(client.data().await, b"\x00200 OK");
        drop(first);
        second.error.send("connection refused".into()).unwrap();
        assert_eq!(client.data().await, b"\x03connection refused");
        drop(second.to_client);
        client.closed_with(NORMAL_CLOSURE).await;
        assert_eq!(second.from_client.recv().await, None);
    }

    #[tokio::test]
    async fn port_forward_refuses_more_ports_than_channels() {
        let (server, client) = tokio::io::duplex(64 << 10);
        let ports: Vec<u16> = (1..=41).collect();
        let mut streams = accept_port_forward(server, V4_BASE64, &ports);
        assert!(streams.recv().await.is_none());
        Client::new(client).closed_with(POLICY_VIOLATION).await;
    }
}
