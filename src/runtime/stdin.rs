//! A container's stdin, when its config asks for one (`stdin`, `stdin_once`): a pipe whose
//! read end is the container's stdin and whose write end the monitor keeps for attach sessions.

use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// What CreateContainer asked for the container's stdin.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StdinMode {
    /// The container gets a stdin that attach sessions write to (else it reads nothing).
    pub open: bool,
    /// The stdin closes (the container reads EOF) when the first attach session ends.
    pub once: bool,
}

/// The write end of a container's stdin pipe, fed by attach sessions.
pub struct StdinPipe {
    writer: Mutex<Option<File>>,
    once: bool,
}

impl StdinPipe {
    /// A new pipe for `mode` (which must be open): the pipe and the read end the container
    /// reads (the caller hands it on and keeps no copy, so the container's exit is EPIPE here).
    pub fn new(mode: StdinMode) -> std::io::Result<(StdinPipe, OwnedFd)> {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let pipe = StdinPipe {
            writer: Mutex::new(Some(File::from(write))),
            once: mode.once,
        };
        Ok((pipe, read))
    }

    /// Passes `data` on to the container; blocks while the pipe is full.
    pub fn write(&self, data: &[u8]) -> std::io::Result<()> {
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        match writer.as_mut() {
            Some(file) => file.write_all(data),
            None => Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the container's stdin is closed",
            )),
        }
    }

    /// An attach session's stdin ended (the client closed it, or went away): with
    /// `stdin_once` the container reads EOF now; otherwise the next session goes on.
    pub fn session_ended(&self) {
        if self.once {
            self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn once_closes_at_the_end_of_the_first_session() {
        let mode = StdinMode {
            open: true,
            once: true,
        };
        let (pipe, read) = StdinPipe::new(mode).unwrap();
        pipe.write(b"hello").unwrap();
        pipe.session_ended();
        assert!(pipe.write(b"more").is_err());
        let mut text = String::new();
        File::from(read).read_to_string(&mut text).unwrap();
        assert_eq!(text, "hello");
    }

    #[test]
    fn without_once_the_stdin_stays_open_for_the_next_session() {
        let mode = StdinMode {
            open: true,
            once: false,
        };
        let (pipe, read) = StdinPipe::new(mode).unwrap();
        pipe.session_ended();
        pipe.write(b"second session").unwrap();
        drop(pipe);
        let mut text = String::new();
        File::from(read).read_to_string(&mut text).unwrap();
        assert_eq!(text, "second session");
    }
}
