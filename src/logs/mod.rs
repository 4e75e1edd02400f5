//! The CRI container log file, as kubelet reads it: one line per chunk,
//! `<RFC3339Nano> <stdout|stderr> <F|P> <text>`. Full lines get F; a line longer than 16 KiB is
//! split into P chunks ended by an F one; text without a newline is held until its newline, the
//! 16 KiB limit, or [`CriLog::flush_partial`] (at exit), which writes it as P.
//!
//! Attach sessions get a copy of the raw output as it is written ([`CriLog::attach`]), until
//! the container ends ([`CriLog::end_attachments`]).

mod timestamp;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender};

pub use timestamp::rfc3339_nano;

use crate::error::{IoContext, Result};

/// Longest message in one log line, as kubelet and containerd split them.
pub const MAX_LINE: usize = 16 * 1024;

/// Which output a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    /// The container's stdout.
    Stdout,
    /// The container's stderr.
    Stderr,
}

impl LogStream {
    fn name(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }
}

/// One container's log file, with a pending partial line per stream.
pub struct CriLog {
    path: PathBuf,
    file: Option<File>,
    pending: [Vec<u8>; 2],
    attachments: Vec<SyncSender<(LogStream, Vec<u8>)>>,
    ended: bool,
}

/// Chunks an attach session may fall behind by before it is cut off (the container never
/// waits for a slow reader).
const ATTACH_BACKLOG: usize = 1024;

impl CriLog {
    /// Opens (creating, appending) the log at `path`; None discards output, as a container
    /// without a log path has none.
    pub fn open(path: Option<&Path>) -> Result<CriLog> {
        let file = path.map(open_append).transpose()?;
        Ok(CriLog {
            path: path.map(Path::to_path_buf).unwrap_or_default(),
            file,
            pending: [Vec::new(), Vec::new()],
            attachments: Vec::new(),
            ended: false,
        })
    }

    /// A copy of everything written from now on, until the container ends (the receiver then
    /// disconnects) or the session falls [`ATTACH_BACKLOG`] chunks behind. None once ended.
    pub fn attach(&mut self) -> Option<Receiver<(LogStream, Vec<u8>)>> {
        if self.ended {
            return None;
        }
        let (sender, receiver) = std::sync::mpsc::sync_channel(ATTACH_BACKLOG);
        self.attachments.push(sender);
        Some(receiver)
    }

    /// The container ended: attach sessions get nothing more, and no new one starts.
    pub fn end_attachments(&mut self) {
        self.ended = true;
        self.attachments.clear();
    }

    /// Closes the file and opens the same path again (kubelet renamed the old one away).
    pub fn reopen(&mut self) -> Result<()> {
        if self.file.is_some() {
            self.file = Some(open_append(&self.path)?);
        }
        Ok(())
    }

    /// Appends what a stream produced: complete lines now, the rest when it is complete.
    pub fn write(&mut self, stream: LogStream, mut data: &[u8]) -> Result<()> {
        if !self.attachments.is_empty() {
            self.attachments
                .retain(|session| session.try_send((stream, data.to_vec())).is_ok());
        }
        let mut out = Vec::new();
        let pending = &mut self.pending[stream as usize];
        while !data.is_empty() {
            let room = MAX_LINE - pending.len();
            match data.iter().take(room).position(|b| *b == b'\n') {
                Some(end) => {
                    pending.extend_from_slice(&data[..end]);
                    push_line(&mut out, stream, 'F', pending);
                    pending.clear();
                    data = &data[end + 1..];
                }
                None if data.len() >= room => {
                    pending.extend_from_slice(&data[..room]);
                    push_line(&mut out, stream, 'P', pending);
                    pending.clear();
                    data = &data[room..];
                }
                None => {
                    pending.extend_from_slice(data);
                    data = &[];
                }
            }
        }
        self.append(&out)
    }

    /// Writes out held partial lines as P chunks (the stream ended without a newline).
    pub fn flush_partial(&mut self) -> Result<()> {
        let mut out = Vec::new();
        for stream in [LogStream::Stdout, LogStream::Stderr] {
            let pending = &mut self.pending[stream as usize];
            if !pending.is_empty() {
                push_line(&mut out, stream, 'P', pending);
                pending.clear();
            }
        }
        self.append(&out)
    }

    fn append(&mut self, bytes: &[u8]) -> Result<()> {
        match &mut self.file {
            Some(file) if !bytes.is_empty() => {
                file.write_all(bytes).with_path("write log", &self.path)
            }
            _ => Ok(()),
        }
    }
}

fn push_line(out: &mut Vec<u8>, stream: LogStream, tag: char, message: &[u8]) {
    let head = format!(
        "{} {} {tag} ",
        rfc3339_nano(std::time::SystemTime::now()),
        stream.name()
    );
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(message);
    out.push(b'\n');
}

fn open_append(path: &Path) -> Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_path("create log dir", dir)?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_path("open log", path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(path: &Path) -> Vec<(String, String, String)> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| {
                let mut parts = l.splitn(4, ' ');
                let time = parts.next().unwrap();
                assert!(time.ends_with('Z') && time.len() == 30, "{time}");
                (
                    parts.next().unwrap().to_string(),
                    parts.next().unwrap().to_string(),
                    parts.next().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    fn line(stream: &str, tag: &str, text: &str) -> (String, String, String) {
        (stream.into(), tag.into(), text.into())
    }

    #[test]
    fn full_lines_partial_chunks_and_long_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c/0.log");
        let mut log = CriLog::open(Some(&path)).unwrap();
        log.write(LogStream::Stdout, b"hello\nwor").unwrap();
        log.write(LogStream::Stderr, b"oops\n").unwrap();
        log.write(LogStream::Stdout, b"ld\n\n").unwrap();
        let long = vec![b'x'; MAX_LINE + 10];
        log.write(LogStream::Stdout, &long).unwrap();
        log.write(LogStream::Stdout, b"\nno newline").unwrap();
        log.flush_partial().unwrap();
        let x = |n| "x".repeat(n);
        assert_eq!(
            lines(&path),
            vec![
                line("stdout", "F", "hello"),
                line("stderr", "F", "oops"),
                line("stdout", "F", "world"),
                line("stdout", "F", ""),
                line("stdout", "P", &x(MAX_LINE)),
                line("stdout", "F", &x(10)),
                line("stdout", "P", "no newline"),
            ]
        );
    }

    #[test]
    fn reopen_starts_a_new_file_at_the_same_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut log = CriLog::open(Some(&path)).unwrap();
        log.write(LogStream::Stdout, b"before\n").unwrap();
        std::fs::rename(&path, dir.path().join("0.log.1")).unwrap();
        log.reopen().unwrap();
        log.write(LogStream::Stdout, b"after\n").unwrap();
        assert_eq!(lines(&path), vec![line("stdout", "F", "after")]);
        assert_eq!(
            lines(&dir.path().join("0.log.1")),
            vec![line("stdout", "F", "before")]
        );
        let mut none = CriLog::open(None).unwrap();
        let attached = none.attach().unwrap();
        none.write(LogStream::Stderr, b"seen by attach").unwrap();
        none.end_attachments();
        assert!(none.attach().is_none());
        assert_eq!(
            attached.iter().collect::<Vec<_>>(),
            vec![(LogStream::Stderr, b"seen by attach".to_vec())]
        );
        none.write(LogStream::Stdout, b"dropped\n").unwrap();
        none.reopen().unwrap();
    }
}
