//! The part of a SPDY session both Kubernetes protocols share: the stream table, answering
//! streams, routing client DATA into channels (holding frames back while a channel is full),
//! writing what the server's sources produce, pings, window updates and the orderly close.
//!
//! A driver loop alternates [`Session::next_input`] (cancel-safe, so it can sit in a
//! `select!` with the driver's own events) and [`Session::handle`] (which writes, so it must
//! run to completion).

use std::collections::HashMap;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{FutureExt, Stream, StreamExt, stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};
use tokio::sync::mpsc::error::{SendError, TrySendError};
use tokio::sync::mpsc::{self, OwnedPermit};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::StreamMap;
use tokio_stream::wrappers::ReceiverStream;

use super::SpdyError;
use super::frame::{Frame, FrameReader, FrameWriter, GOAWAY_OK, RST_CANCEL, RST_PROTOCOL_ERROR};
use super::headers::Headers;

/// Frames read ahead of the driver.
const READ_AHEAD: usize = 16;
/// Received bytes acknowledged with one WINDOW_UPDATE (half the 64 KiB initial window).
const WINDOW_UPDATE_THRESHOLD: u32 = 32 * 1024;
/// How long a closed session waits for the client to close its side before dropping it.
const LINGER: Duration = Duration::from_secs(5);

/// What a server-side source yields: bytes for the stream, then its end.
#[derive(Debug)]
pub(super) enum Chunk {
    Data(Bytes),
    End,
}

/// Bytes the server sends on one stream.
pub(super) type Source = Pin<Box<dyn Stream<Item = Chunk> + Send>>;

/// A source of everything sent on `receiver` until all its senders are gone.
pub(super) fn channel_source(receiver: mpsc::Receiver<Bytes>) -> Source {
    Box::pin(
        ReceiverStream::new(receiver)
            .map(Chunk::Data)
            .chain(stream::iter([Chunk::End])),
    )
}

/// A source of at most one message: what is sent on `receiver`, if anything.
pub(super) fn message_source(receiver: oneshot::Receiver<String>) -> Source {
    let message = receiver.map(|message| message.ok().map(|text| Chunk::Data(text.into())));
    Box::pin(
        stream::once(message)
            .filter_map(std::future::ready)
            .chain(stream::iter([Chunk::End])),
    )
}

/// Something the session has to act on; see [`Session::next_input`].
pub(super) enum Input {
    Frame(Option<Result<Frame, SpdyError>>),
    Room(Result<OwnedPermit<Bytes>, SendError<()>>),
    Source(u32, Chunk),
}

/// What the driver has to decide or learn about.
#[derive(Debug)]
pub(super) enum Event {
    /// The client opened a stream: answer it with [`Session::accept`] or [`Session::refuse`].
    Opened { stream_id: u32, headers: Headers },
    /// The source attached to this stream ended.
    SourceEnded(u32),
    /// The client closed the connection.
    ClientGone,
}

/// Client DATA waiting for room in its channel; no more frames are read meanwhile.
struct Pending {
    stream_id: u32,
    data: Bytes,
    to: mpsc::Sender<Bytes>,
}

#[derive(PartialEq, Eq)]
enum Local {
    Unanswered,
    Open,
    Closed,
}

struct StreamState {
    /// Where client DATA goes; None discards it.
    inbound: Option<mpsc::Sender<Bytes>>,
    remote_open: bool,
    local: Local,
    unacknowledged: u32,
}

/// One SPDY connection, server side.
pub(super) struct Session<IO> {
    writer: FrameWriter<WriteHalf<IO>>,
    frames: mpsc::Receiver<Result<Frame, SpdyError>>,
    reader: JoinHandle<()>,
    streams: HashMap<u32, StreamState>,
    sources: StreamMap<u32, Source>,
    pending: Option<Pending>,
    last_stream_id: u32,
    unacknowledged: u32,
}

impl<IO> Session<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    /// Starts reading frames from `io` in a task of its own.
    pub(super) fn start(io: IO) -> Result<Self, SpdyError> {
        let (read, write) = tokio::io::split(io);
        let (frames_tx, frames) = mpsc::channel(READ_AHEAD);
        Ok(Self {
            writer: FrameWriter::new(write)?,
            frames,
            reader: tokio::spawn(read_frames(FrameReader::new(read), frames_tx)),
            streams: HashMap::new(),
            sources: StreamMap::new(),
            pending: None,
            last_stream_id: 0,
            unacknowledged: 0,
        })
    }

    /// Waits for a frame, room for held-back client data, or bytes from a source. Cancel-safe.
    pub(super) async fn next_input(&mut self) -> Input {
        tokio::select! {
            room = room_for(&self.pending), if self.pending.is_some() => Input::Room(room),
            frame = self.frames.recv(), if self.pending.is_none() => Input::Frame(frame),
            Some((stream_id, chunk)) = self.sources.next() => Input::Source(stream_id, chunk),
        }
    }

    /// Acts on an input; an error ends the session.
    pub(super) async fn handle(&mut self, input: Input) -> Result<Option<Event>, SpdyError> {
        match input {
            Input::Frame(None) => Ok(Some(Event::ClientGone)),
            Input::Frame(Some(frame)) => self.on_frame(frame?).await,
            Input::Room(room) => {
                self.deliver_pending(room).await?;
                Ok(None)
            }
            Input::Source(stream_id, Chunk::Data(data)) => {
                self.send_data(stream_id, data).await?;
                Ok(None)
            }
            Input::Source(stream_id, Chunk::End) => Ok(Some(Event::SourceEnded(stream_id))),
        }
    }

    /// Answers an opened stream; client DATA on it goes to `inbound` (None discards it).
    pub(super) async fn accept(
        &mut self,
        stream_id: u32,
        inbound: Option<mpsc::Sender<Bytes>>,
    ) -> Result<(), SpdyError> {
        let Some(state) = self.streams.get_mut(&stream_id) else {
            return Ok(());
        };
        state.local = Local::Open;
        if state.remote_open {
            state.inbound = inbound;
        }
        let reply = Frame::SynReply {
            stream_id,
            fin: false,
            headers: Headers::new(),
        };
        self.writer.send([reply]).await
    }

    /// Turns down an opened stream.
    pub(super) async fn refuse(&mut self, stream_id: u32) -> Result<(), SpdyError> {
        self.streams.remove(&stream_id);
        self.reset(stream_id, RST_CANCEL).await
    }

    /// Sends what `source` yields on an accepted stream, as it comes.
    pub(super) fn attach(&mut self, stream_id: u32, source: Source) {
        if self.is_open(stream_id) {
            self.sources.insert(stream_id, source);
        }
    }

    /// Sends `data` on an accepted stream, unless the server's half is closed.
    pub(super) async fn send_data(&mut self, stream_id: u32, data: Bytes) -> Result<(), SpdyError> {
        if !self.is_open(stream_id) {
            return Ok(());
        }
        self.writer.send(Frame::data(stream_id, data)).await
    }

    /// Closes the server's half of a stream (an empty DATA frame with FIN).
    pub(super) async fn finish(&mut self, stream_id: u32) -> Result<(), SpdyError> {
        self.sources.remove(&stream_id);
        if !self.is_open(stream_id) {
            return Ok(());
        }
        self.close_local(stream_id);
        self.writer.send([Frame::fin(stream_id)]).await
    }

    /// Sends what the sources hold right now, and detaches them.
    pub(super) async fn drain_sources(&mut self) -> Result<(), SpdyError> {
        let stream_ids: Vec<u32> = self.sources.keys().copied().collect();
        for stream_id in stream_ids {
            let Some(mut source) = self.sources.remove(&stream_id) else {
                continue;
            };
            // Unconstrained: tokio's task budget could make a ready channel look empty.
            let mut ready = || tokio::task::unconstrained(source.next()).now_or_never();
            while let Some(Some(Chunk::Data(data))) = ready() {
                self.send_data(stream_id, data).await?;
            }
        }
        Ok(())
    }

    /// Ends the session: closes every open server half, sends GOAWAY, ends the write
    /// direction, and waits a little for the client to close the connection.
    pub(super) async fn close(mut self) -> Result<(), SpdyError> {
        let open: Vec<u32> = self
            .streams
            .iter()
            .filter(|(_, state)| state.local == Local::Open)
            .map(|(stream_id, _)| *stream_id)
            .collect();
        let go_away = Frame::GoAway {
            last_good_stream_id: self.last_stream_id,
            status: GOAWAY_OK,
        };
        let frames = open.into_iter().map(Frame::fin).chain([go_away]);
        self.writer.send(frames).await?;
        self.writer.shutdown().await?;
        let client_closed = async { while self.frames.recv().await.is_some() {} };
        // Dropping the connection with unread data would reset it, maybe before the client
        // read the end of the session.
        let _ = tokio::time::timeout(LINGER, client_closed).await;
        Ok(())
    }

    fn is_open(&self, stream_id: u32) -> bool {
        self.streams
            .get(&stream_id)
            .is_some_and(|state| state.local == Local::Open)
    }

    async fn on_frame(&mut self, frame: Frame) -> Result<Option<Event>, SpdyError> {
        match frame {
            Frame::SynStream {
                stream_id,
                fin,
                headers,
            } => self.on_syn_stream(stream_id, fin, headers).await,
            Frame::Data {
                stream_id,
                fin,
                data,
            } => {
                self.on_data(stream_id, fin, data).await?;
                Ok(None)
            }
            Frame::Headers {
                stream_id,
                fin: true,
                ..
            } => {
                self.close_remote(stream_id);
                Ok(None)
            }
            Frame::RstStream { stream_id, .. } => {
                self.on_reset(stream_id);
                Ok(None)
            }
            // Client pings have odd ids; an even one would answer a ping of ours.
            Frame::Ping { id } if id & 1 == 1 => {
                self.writer.send([Frame::Ping { id }]).await?;
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    async fn on_syn_stream(
        &mut self,
        stream_id: u32,
        fin: bool,
        headers: Headers,
    ) -> Result<Option<Event>, SpdyError> {
        // Client streams have odd ids, each larger than the last.
        if stream_id & 1 == 0 || stream_id <= self.last_stream_id {
            self.reset(stream_id, RST_PROTOCOL_ERROR).await?;
            return Ok(None);
        }
        self.last_stream_id = stream_id;
        let state = StreamState {
            inbound: None,
            remote_open: !fin,
            local: Local::Unanswered,
            unacknowledged: 0,
        };
        self.streams.insert(stream_id, state);
        Ok(Some(Event::Opened { stream_id, headers }))
    }

    async fn on_data(&mut self, stream_id: u32, fin: bool, data: Bytes) -> Result<(), SpdyError> {
        let length = data.len();
        if length > 0 {
            let inbound = self
                .streams
                .get(&stream_id)
                .and_then(|s| s.inbound.as_ref());
            match inbound.map(|to| to.try_send(data)) {
                Some(Err(TrySendError::Full(data))) => self.hold(stream_id, data),
                // Delivered, or nobody reads this stream: either way consumed.
                _ => self.acknowledge(stream_id, length).await?,
            }
        }
        if fin {
            self.close_remote(stream_id);
        }
        Ok(())
    }

    /// Keeps client data whose channel is full until there is room.
    fn hold(&mut self, stream_id: u32, data: Bytes) {
        if let Some(to) = self.streams.get(&stream_id).and_then(|s| s.inbound.clone()) {
            self.pending = Some(Pending {
                stream_id,
                data,
                to,
            });
        }
    }

    /// The client dropped a stream: its channels end, in both directions.
    fn on_reset(&mut self, stream_id: u32) {
        self.sources.remove(&stream_id);
        if self
            .pending
            .as_ref()
            .is_some_and(|pending| pending.stream_id == stream_id)
        {
            self.pending = None;
        }
        self.streams.remove(&stream_id);
    }

    async fn deliver_pending(
        &mut self,
        room: Result<OwnedPermit<Bytes>, SendError<()>>,
    ) -> Result<(), SpdyError> {
        let Some(pending) = self.pending.take() else {
            return Ok(());
        };
        let length = pending.data.len();
        if let Ok(permit) = room {
            permit.send(pending.data);
        }
        self.acknowledge(pending.stream_id, length).await
    }

    /// Counts `length` bytes the client sent as consumed, and tells the client so once enough
    /// added up, for the stream and for the session.
    async fn acknowledge(&mut self, stream_id: u32, length: usize) -> Result<(), SpdyError> {
        let length = u32::try_from(length).unwrap_or(u32::MAX);
        let mut updates = Vec::new();
        self.unacknowledged = self.unacknowledged.saturating_add(length);
        if self.unacknowledged >= WINDOW_UPDATE_THRESHOLD {
            updates.push(window_update(0, std::mem::take(&mut self.unacknowledged)));
        }
        if let Some(state) = self.streams.get_mut(&stream_id).filter(|s| s.remote_open) {
            state.unacknowledged = state.unacknowledged.saturating_add(length);
            if state.unacknowledged >= WINDOW_UPDATE_THRESHOLD {
                updates.push(window_update(
                    stream_id,
                    std::mem::take(&mut state.unacknowledged),
                ));
            }
        }
        if updates.is_empty() {
            return Ok(());
        }
        self.writer.send(updates).await
    }

    async fn reset(&mut self, stream_id: u32, status: u32) -> Result<(), SpdyError> {
        self.writer
            .send([Frame::RstStream { stream_id, status }])
            .await
    }

    /// The client sends no more on this stream: its channel ends.
    fn close_remote(&mut self, stream_id: u32) {
        if let Some(state) = self.streams.get_mut(&stream_id) {
            state.remote_open = false;
            state.inbound = None;
        }
        self.forget_if_closed(stream_id);
    }

    fn close_local(&mut self, stream_id: u32) {
        if let Some(state) = self.streams.get_mut(&stream_id) {
            state.local = Local::Closed;
        }
        self.forget_if_closed(stream_id);
    }

    fn forget_if_closed(&mut self, stream_id: u32) {
        if self
            .streams
            .get(&stream_id)
            .is_some_and(|state| !state.remote_open && state.local == Local::Closed)
        {
            self.streams.remove(&stream_id);
        }
    }
}

impl<IO> Drop for Session<IO> {
    fn drop(&mut self) {
        // The reader task holds the read half, and with it the connection.
        self.reader.abort();
    }
}

async fn read_frames<R: AsyncRead + Unpin>(
    mut reader: FrameReader<ReadHalf<R>>,
    frames: mpsc::Sender<Result<Frame, SpdyError>>,
) {
    loop {
        match reader.next().await {
            Ok(Some(frame)) => {
                if frames.send(Ok(frame)).await.is_err() {
                    return;
                }
            }
            Ok(None) => return,
            Err(error) => {
                let _ = frames.send(Err(error)).await;
                return;
            }
        }
    }
}

async fn room_for(pending: &Option<Pending>) -> Result<OwnedPermit<Bytes>, SendError<()>> {
    match pending {
        Some(pending) => pending.to.clone().reserve_owned().await,
        None => std::future::pending().await,
    }
}

fn window_update(stream_id: u32, delta: u32) -> Frame {
    Frame::WindowUpdate { stream_id, delta }
}
