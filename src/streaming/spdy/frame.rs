//! SPDY/3.1 frames: their wire layout, and reading and writing them on a connection half.
//!
//! Control frames start with the control bit, version 3 and a type; data frames with a stream
//! id. Both then carry 8 bits of flags and a 24-bit payload length.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::SpdyError;
use super::headers::{HeaderCompressor, HeaderDecompressor, Headers};

/// The protocol version in every control frame.
const VERSION: u16 = 3;
const CONTROL_BIT: u32 = 0x8000_0000;
const STREAM_ID_MASK: u32 = 0x7fff_ffff;
const LENGTH_MASK: u32 = 0x00ff_ffff;
/// Ends the sender's half of a stream (FLAG_FIN, the same bit for control and data frames).
const FLAG_FIN: u8 = 0x01;
/// The largest frame accepted from a client: kubectl writes 32 KiB chunks, and each stream
/// queues a few frames, so this bounds what one session can make the daemon hold.
const MAX_INCOMING_PAYLOAD: u32 = 1 << 20;

const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;
const WINDOW_UPDATE: u16 = 9;

/// RST_STREAM status: the stream broke the protocol (e.g. a stream id out of order).
pub(super) const RST_PROTOCOL_ERROR: u32 = 1;
/// RST_STREAM status: the stream is not wanted.
pub(super) const RST_CANCEL: u32 = 5;
/// GOAWAY status: a normal end of the session.
pub(super) const GOAWAY_OK: u32 = 0;

/// The largest payload put in one DATA frame we send.
pub(super) const MAX_DATA_PAYLOAD: usize = 32 * 1024;

/// One frame, as far as this server uses it (SETTINGS and unknown control frames are skipped
/// when read and never sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Frame {
    /// Opens a stream; `fin` means the opener sends nothing on it.
    SynStream {
        stream_id: u32,
        fin: bool,
        headers: Headers,
    },
    /// Accepts a stream.
    SynReply {
        stream_id: u32,
        fin: bool,
        headers: Headers,
    },
    /// Ends a stream abnormally, both halves.
    RstStream { stream_id: u32, status: u32 },
    /// A round trip probe; the receiver echoes the sender's pings.
    Ping { id: u32 },
    /// The sender opens no more streams and will close the connection.
    GoAway {
        last_good_stream_id: u32,
        status: u32,
    },
    /// More headers for a stream.
    Headers {
        stream_id: u32,
        fin: bool,
        headers: Headers,
    },
    /// The receiver may send `delta` more bytes on the stream (0: the whole session).
    WindowUpdate { stream_id: u32, delta: u32 },
    /// Stream bytes; `fin` ends the sender's half.
    Data {
        stream_id: u32,
        fin: bool,
        data: Bytes,
    },
}

impl Frame {
    /// The DATA frames that carry `data` on a stream, none larger than [`MAX_DATA_PAYLOAD`].
    pub(super) fn data(stream_id: u32, mut data: Bytes) -> impl Iterator<Item = Frame> {
        std::iter::from_fn(move || {
            (!data.is_empty()).then(|| Frame::Data {
                stream_id,
                fin: false,
                data: data.split_to(data.len().min(MAX_DATA_PAYLOAD)),
            })
        })
    }

    /// The empty DATA frame that ends the sender's half of a stream.
    pub(super) fn fin(stream_id: u32) -> Frame {
        Frame::Data {
            stream_id,
            fin: true,
            data: Bytes::new(),
        }
    }
}

/// Writes frames on one half of a connection, compressing header blocks with the context of
/// this direction.
pub(super) struct FrameWriter<W> {
    io: W,
    headers: HeaderCompressor,
    buffer: BytesMut,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// A writer with a fresh compression context.
    pub(super) fn new(io: W) -> Result<Self, SpdyError> {
        Ok(Self {
            io,
            headers: HeaderCompressor::new()?,
            buffer: BytesMut::new(),
        })
    }

    /// Writes `frames` in order and flushes.
    pub(super) async fn send(
        &mut self,
        frames: impl IntoIterator<Item = Frame>,
    ) -> Result<(), SpdyError> {
        for frame in frames {
            encode(&frame, &mut self.headers, &mut self.buffer)?;
        }
        self.io.write_all(&self.buffer).await?;
        self.buffer.clear();
        self.io.flush().await?;
        Ok(())
    }

    /// Ends the write direction of the connection.
    pub(super) async fn shutdown(&mut self) -> Result<(), SpdyError> {
        Ok(self.io.shutdown().await?)
    }
}

/// Reads frames from one half of a connection, inflating header blocks with the context of
/// this direction.
pub(super) struct FrameReader<R> {
    io: R,
    headers: HeaderDecompressor,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader with a fresh decompression context.
    pub(super) fn new(io: R) -> Self {
        Self {
            io,
            headers: HeaderDecompressor::new(),
        }
    }

    /// The next frame this server handles, or None when the peer closed the connection.
    pub(super) async fn next(&mut self) -> Result<Option<Frame>, SpdyError> {
        loop {
            let mut head = [0u8; 8];
            match self.io.read_exact(&mut head).await {
                Ok(_) => {}
                Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
                Err(error) => return Err(error.into()),
            }
            let length = u32::from_be_bytes([0, head[5], head[6], head[7]]);
            if length > MAX_INCOMING_PAYLOAD {
                return Err(SpdyError::Malformed(
                    "a frame over 1 MiB (clients send 32 KiB chunks)",
                ));
            }
            let mut payload = vec![0; length as usize];
            self.io.read_exact(&mut payload).await?;
            if let Some(frame) = decode(head, payload.into(), &mut self.headers)? {
                return Ok(Some(frame));
            }
        }
    }
}

fn encode(
    frame: &Frame,
    compressor: &mut HeaderCompressor,
    out: &mut BytesMut,
) -> Result<(), SpdyError> {
    match frame {
        Frame::SynStream {
            stream_id,
            fin,
            headers,
        } => {
            let block = compressor.compress(headers)?;
            put_control_head(out, SYN_STREAM, fin_flag(*fin), 10 + block.len())?;
            out.put_u32(stream_id & STREAM_ID_MASK);
            out.put_u32(0); // associated-to stream
            out.put_u16(0); // priority and slot
            out.put_slice(&block);
        }
        Frame::SynReply {
            stream_id,
            fin,
            headers,
        } => put_header_frame(out, compressor, SYN_REPLY, *stream_id, *fin, headers)?,
        Frame::Headers {
            stream_id,
            fin,
            headers,
        } => put_header_frame(out, compressor, HEADERS, *stream_id, *fin, headers)?,
        Frame::RstStream { stream_id, status } => {
            put_control_head(out, RST_STREAM, 0, 8)?;
            out.put_u32(stream_id & STREAM_ID_MASK);
            out.put_u32(*status);
        }
        Frame::Ping { id } => {
            put_control_head(out, PING, 0, 4)?;
            out.put_u32(*id);
        }
        Frame::GoAway {
            last_good_stream_id,
            status,
        } => {
            put_control_head(out, GOAWAY, 0, 8)?;
            out.put_u32(last_good_stream_id & STREAM_ID_MASK);
            out.put_u32(*status);
        }
        Frame::WindowUpdate { stream_id, delta } => {
            put_control_head(out, WINDOW_UPDATE, 0, 8)?;
            out.put_u32(stream_id & STREAM_ID_MASK);
            out.put_u32(delta & STREAM_ID_MASK);
        }
        Frame::Data {
            stream_id,
            fin,
            data,
        } => {
            out.put_u32(stream_id & STREAM_ID_MASK);
            out.put_u32(flags_and_length(fin_flag(*fin), data.len())?);
            out.put_slice(data);
        }
    }
    Ok(())
}

fn put_header_frame(
    out: &mut BytesMut,
    compressor: &mut HeaderCompressor,
    kind: u16,
    stream_id: u32,
    fin: bool,
    headers: &Headers,
) -> Result<(), SpdyError> {
    let block = compressor.compress(headers)?;
    put_control_head(out, kind, fin_flag(fin), 4 + block.len())?;
    out.put_u32(stream_id & STREAM_ID_MASK);
    out.put_slice(&block);
    Ok(())
}

fn put_control_head(
    out: &mut BytesMut,
    kind: u16,
    flags: u8,
    length: usize,
) -> Result<(), SpdyError> {
    out.put_u32(CONTROL_BIT | u32::from(VERSION) << 16 | u32::from(kind));
    out.put_u32(flags_and_length(flags, length)?);
    Ok(())
}

fn flags_and_length(flags: u8, length: usize) -> Result<u32, SpdyError> {
    match u32::try_from(length) {
        Ok(length) if length <= LENGTH_MASK => Ok(u32::from(flags) << 24 | length),
        _ => Err(SpdyError::Malformed("frame too long")),
    }
}

fn fin_flag(fin: bool) -> u8 {
    if fin { FLAG_FIN } else { 0 }
}

/// Parses a frame from its 8-byte head and its payload; None for frames this server skips.
fn decode(
    head: [u8; 8],
    payload: Bytes,
    headers: &mut HeaderDecompressor,
) -> Result<Option<Frame>, SpdyError> {
    let first = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    let fin = head[4] & FLAG_FIN != 0;
    if first & CONTROL_BIT == 0 {
        let stream_id = nonzero_stream(first)?;
        return Ok(Some(Frame::Data {
            stream_id,
            fin,
            data: payload,
        }));
    }
    if (first >> 16) & 0x7fff != u32::from(VERSION) {
        return Err(SpdyError::Malformed("not SPDY version 3"));
    }
    let kind = (first & 0xffff) as u16;
    decode_control(kind, fin, payload, headers)
}

fn decode_control(
    kind: u16,
    fin: bool,
    mut payload: Bytes,
    headers: &mut HeaderDecompressor,
) -> Result<Option<Frame>, SpdyError> {
    let frame = match kind {
        SYN_STREAM => {
            let stream_id = nonzero_stream(take_u32(&mut payload, 10)?)?;
            payload.advance(6); // associated-to stream, priority and slot
            Frame::SynStream {
                stream_id,
                fin,
                headers: headers.decompress(&payload)?,
            }
        }
        SYN_REPLY | HEADERS => {
            let stream_id = nonzero_stream(take_u32(&mut payload, 4)?)?;
            let headers = headers.decompress(&payload)?;
            if kind == SYN_REPLY {
                Frame::SynReply {
                    stream_id,
                    fin,
                    headers,
                }
            } else {
                Frame::Headers {
                    stream_id,
                    fin,
                    headers,
                }
            }
        }
        RST_STREAM => {
            let (stream_id, status) = take_pair(&mut payload)?;
            Frame::RstStream {
                stream_id: nonzero_stream(stream_id)?,
                status,
            }
        }
        PING => Frame::Ping {
            id: take_u32(&mut payload, 4)?,
        },
        GOAWAY => {
            let (last_good_stream_id, status) = take_pair(&mut payload)?;
            Frame::GoAway {
                last_good_stream_id: last_good_stream_id & STREAM_ID_MASK,
                status,
            }
        }
        WINDOW_UPDATE => {
            let (stream_id, delta) = take_pair(&mut payload)?;
            Frame::WindowUpdate {
                stream_id: stream_id & STREAM_ID_MASK,
                delta: delta & STREAM_ID_MASK,
            }
        }
        // SETTINGS, and types later drafts added: nothing this server acts on.
        _ => return Ok(None),
    };
    Ok(Some(frame))
}

/// Reads a u32 from a payload that must hold at least `minimum` bytes.
fn take_u32(payload: &mut Bytes, minimum: usize) -> Result<u32, SpdyError> {
    if payload.len() < minimum.max(4) {
        return Err(SpdyError::Malformed("control frame too short"));
    }
    Ok(payload.get_u32())
}

/// Reads the two u32 of an 8-byte control frame payload.
fn take_pair(payload: &mut Bytes) -> Result<(u32, u32), SpdyError> {
    if payload.len() != 8 {
        return Err(SpdyError::Malformed("control frame of the wrong length"));
    }
    Ok((payload.get_u32(), payload.get_u32()))
}

fn nonzero_stream(word: u32) -> Result<u32, SpdyError> {
    match word & STREAM_ID_MASK {
        0 => Err(SpdyError::Malformed("stream id 0")),
        stream_id => Ok(stream_id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn round_trip(frames: Vec<Frame>) -> Vec<Frame> {
        let mut wire = Vec::new();
        let mut writer = FrameWriter::new(&mut wire).unwrap();
        writer.send(frames).await.unwrap();
        let mut reader = FrameReader::new(wire.as_slice());
        let mut read = Vec::new();
        while let Some(frame) = reader.next().await.unwrap() {
            read.push(frame);
        }
        read
    }

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    #[tokio::test]
    async fn every_frame_round_trips() {
        let frames = vec![
            Frame::SynStream {
                stream_id: 1,
                fin: false,
                headers: headers(&[("streamtype", "error")]),
            },
            Frame::SynReply {
                stream_id: 1,
                fin: false,
                headers: Headers::new(),
            },
            Frame::Headers {
                stream_id: 3,
                fin: true,
                headers: headers(&[("x", "y")]),
            },
            Frame::RstStream {
                stream_id: 5,
                status: RST_CANCEL,
            },
            Frame::Ping { id: 7 },
            Frame::GoAway {
                last_good_stream_id: 9,
                status: GOAWAY_OK,
            },
            Frame::WindowUpdate {
                stream_id: 0,
                delta: 65536,
            },
            Frame::Data {
                stream_id: 11,
                fin: false,
                data: Bytes::from_static(b"hello"),
            },
            Frame::fin(11),
        ];
        assert_eq!(round_trip(frames.clone()).await, frames);
    }

    #[test]
    fn wire_layout_matches_spdy3() {
        let mut out = BytesMut::new();
        let mut compressor = HeaderCompressor::new().unwrap();
        encode(&Frame::Ping { id: 1 }, &mut compressor, &mut out).unwrap();
        assert_eq!(out[..], [0x80, 0x03, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 1]);
        out.clear();
        let data = Frame::Data {
            stream_id: 3,
            fin: true,
            data: Bytes::from_static(b"ab"),
        };
        encode(&data, &mut compressor, &mut out).unwrap();
        assert_eq!(out[..], [0, 0, 0, 3, 0x01, 0, 0, 2, b'a', b'b']);
    }

    #[test]
    fn large_data_is_split() {
        let data = Bytes::from(vec![7u8; MAX_DATA_PAYLOAD * 2 + 1]);
        let lengths: Vec<usize> = Frame::data(1, data)
            .map(|frame| match frame {
                Frame::Data { data, fin, .. } if !fin => data.len(),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(lengths, [MAX_DATA_PAYLOAD, MAX_DATA_PAYLOAD, 1]);
        assert_eq!(Frame::data(1, Bytes::new()).count(), 0);
    }

    #[tokio::test]
    async fn settings_and_unknown_types_are_skipped() {
        let settings = [
            0x80, 0x03, 0x00, 0x04, 0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 7, 0, 1, 0, 0,
        ];
        let unknown = [0x80, 0x03, 0x00, 0x0a, 0, 0, 0, 0];
        let ping = [0x80, 0x03, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 1];
        let wire = [&settings[..], &unknown, &ping].concat();
        let mut reader = FrameReader::new(wire.as_slice());
        assert_eq!(reader.next().await.unwrap(), Some(Frame::Ping { id: 1 }));
        assert_eq!(reader.next().await.unwrap(), None);
    }

    #[tokio::test]
    async fn malformed_frames_are_errors() {
        let cases: [&[u8]; 4] = [
            &[0x80, 0x02, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 1], // version 2
            &[0x80, 0x03, 0x00, 0x03, 0, 0, 0, 4, 0, 0, 0, 1], // short RST_STREAM
            &[0, 0, 0, 0, 0, 0, 0, 0],                         // data on stream 0
            &[0x80, 0x03, 0x00, 0x02, 0, 0, 0, 6, 0, 0, 0, 1, 0x78, 0x01], // bad header block
        ];
        for wire in cases {
            assert!(FrameReader::new(wire).next().await.is_err(), "{wire:?}");
        }
        let truncated: &[u8] = &[0x80, 0x03, 0x00, 0x06, 0, 0, 0, 4, 0];
        assert!(FrameReader::new(truncated).next().await.is_err());
    }
}
