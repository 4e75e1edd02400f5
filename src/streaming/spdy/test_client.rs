//! The client side of a session, for tests: frames encoded and decoded by this module's own
//! codec, with the client's compression contexts.

use std::time::Duration;

use bytes::Bytes;
use tokio::io::{DuplexStream, ReadHalf, WriteHalf};

use super::frame::{Frame, FrameReader, FrameWriter};
use super::headers::Headers;

/// How long a test waits for the server's next frame.
const PATIENCE: Duration = Duration::from_secs(5);

/// One end of a `tokio::io::duplex` speaking SPDY as client-go does.
pub(super) struct TestClient {
    reader: FrameReader<ReadHalf<DuplexStream>>,
    writer: FrameWriter<WriteHalf<DuplexStream>>,
}

impl TestClient {
    pub(super) fn new(io: DuplexStream) -> Self {
        let (read, write) = tokio::io::split(io);
        Self {
            reader: FrameReader::new(read),
            writer: FrameWriter::new(write).unwrap(),
        }
    }

    pub(super) async fn send(&mut self, frames: impl IntoIterator<Item = Frame>) {
        self.writer.send(frames).await.unwrap();
    }

    /// Opens a stream without waiting for the reply.
    pub(super) async fn open(&mut self, stream_id: u32, headers: &[(&str, &str)]) {
        let headers: Headers = headers
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        let syn = Frame::SynStream {
            stream_id,
            fin: false,
            headers,
        };
        self.send([syn]).await;
    }

    /// Opens a stream and checks the server accepts it.
    pub(super) async fn open_accepted(&mut self, stream_id: u32, headers: &[(&str, &str)]) {
        self.open(stream_id, headers).await;
        let reply = Frame::SynReply {
            stream_id,
            fin: false,
            headers: Headers::new(),
        };
        assert_eq!(self.next().await, Some(reply));
    }

    /// Sends `data` on a stream, ending the client's half if `fin`.
    pub(super) async fn write(&mut self, stream_id: u32, data: &'static [u8], fin: bool) {
        let data = Bytes::from_static(data);
        self.send([Frame::Data {
            stream_id,
            fin,
            data,
        }])
        .await;
    }

    /// The server's next frame; None once it closed the connection.
    pub(super) async fn next(&mut self) -> Option<Frame> {
        tokio::time::timeout(PATIENCE, self.reader.next())
            .await
            .expect("the server sends a frame in time")
            .unwrap()
    }

    /// The server's next frame other than a WINDOW_UPDATE.
    pub(super) async fn next_but_window_updates(&mut self) -> Option<Frame> {
        loop {
            match self.next().await {
                Some(Frame::WindowUpdate { .. }) => {}
                other => return other,
            }
        }
    }
}
