//! The framing of an attach session on a monitor connection, after the monitor's `done` line:
//! each frame is a kind byte, a 4-byte big-endian length and that many bytes. The monitor
//! sends output (and an exec's exit code); the daemon sends stdin and its end. Either side closing the connection ends
//! the session.

use std::io::{ErrorKind, Read};

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// Container stdout (monitor to daemon).
    Stdout = 1,
    /// Container stderr (monitor to daemon).
    Stderr = 2,
    /// Bytes for the container's stdin (daemon to monitor).
    Stdin = 3,
    /// The client closed its stdin (daemon to monitor; empty).
    StdinEnd = 4,
    /// An exec's exit code, 4 bytes big-endian, just before the monitor closes (monitor to
    /// daemon).
    Exit = 5,
}

/// Size of a frame header.
pub const HEADER_LEN: usize = 5;
/// Largest frame payload accepted (output chunks and stdin reads are far smaller).
pub const MAX_PAYLOAD: usize = 1 << 20;

/// A frame's bytes.
pub fn encode(kind: FrameKind, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(HEADER_LEN + payload.len());
    frame.push(kind as u8);
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// The kind and payload length a header announces; an unknown kind or an oversized payload
/// is InvalidData.
pub fn decode_header(header: [u8; HEADER_LEN]) -> std::io::Result<(FrameKind, usize)> {
    let kind = match header[0] {
        1 => FrameKind::Stdout,
        2 => FrameKind::Stderr,
        3 => FrameKind::Stdin,
        4 => FrameKind::StdinEnd,
        5 => FrameKind::Exit,
        other => {
            return Err(std::io::Error::new(
                ErrorKind::InvalidData,
                format!("unknown attach frame kind {other}"),
            ));
        }
    };
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    if len > MAX_PAYLOAD {
        return Err(std::io::Error::new(
            ErrorKind::InvalidData,
            format!("attach frame of {len} bytes is over the {MAX_PAYLOAD} limit"),
        ));
    }
    Ok((kind, len))
}

/// The exit code an Exit frame carries.
pub fn exit_code(payload: &[u8]) -> Option<i32> {
    Some(i32::from_be_bytes(payload.try_into().ok()?))
}

/// Reads one frame; None when the peer closed the connection between frames.
pub fn read(reader: &mut impl Read) -> std::io::Result<Option<(FrameKind, Vec<u8>)>> {
    let mut header = [0; HEADER_LEN];
    match reader.read_exact(&mut header) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let (kind, len) = decode_header(header)?;
    let mut payload = vec![0; len];
    reader.read_exact(&mut payload)?;
    Ok(Some((kind, payload)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_bad_headers_are_refused() {
        let mut wire = encode(FrameKind::Stdout, b"hello");
        wire.extend(encode(FrameKind::StdinEnd, b""));
        wire.extend(encode(FrameKind::Exit, &3i32.to_be_bytes()));
        let mut reader = wire.as_slice();
        assert_eq!(
            read(&mut reader).unwrap(),
            Some((FrameKind::Stdout, b"hello".to_vec()))
        );
        assert_eq!(
            read(&mut reader).unwrap(),
            Some((FrameKind::StdinEnd, Vec::new()))
        );
        let (kind, code) = read(&mut reader).unwrap().unwrap();
        assert_eq!((kind, exit_code(&code)), (FrameKind::Exit, Some(3)));
        assert_eq!(read(&mut reader).unwrap(), None);
        assert_eq!(exit_code(b"x"), None);
        assert!(decode_header([9, 0, 0, 0, 0]).is_err());
        assert!(decode_header([1, 0xff, 0xff, 0xff, 0xff]).is_err());
    }
}
