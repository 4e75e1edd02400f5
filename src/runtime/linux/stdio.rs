//! Reading a process's stdout and stderr pipes until it exits: the monitor writes them to the
//! CRI log as they come, the exec helper collects them. One poll loop, no thread per pipe.

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::logs::LogStream;
use crate::os::process::Pidfd;

/// How long output may keep coming after the process exited (a background child may still
/// hold the pipes open: it is not waited for).
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(200);

/// How the pump ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PumpEnd {
    /// The process exited (it is not reaped yet).
    Exited,
    /// `deadline` came first; the process still runs.
    DeadlineReached,
}

/// The two output pipes of a process, read ends.
pub struct OutputPipes {
    /// stdout's read end.
    pub stdout: OwnedFd,
    /// stderr's read end.
    pub stderr: OwnedFd,
}

/// Reads both pipes and hands every chunk to `sink` until the process behind `exit` has exited
/// and its output is drained (EOF on both, or a short quiet period), or until `deadline`.
pub fn pump(
    pipes: &OutputPipes,
    exit: Option<&Pidfd>,
    deadline: Option<Instant>,
    sink: &mut dyn FnMut(LogStream, &[u8]),
) -> PumpEnd {
    let mut open = [true, true];
    let mut exited_at: Option<Instant> = exit.is_none().then(Instant::now);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let now = Instant::now();
        if exited_at.is_some_and(|t| !open.iter().any(|o| *o) || now >= t + DRAIN_AFTER_EXIT) {
            return PumpEnd::Exited;
        }
        if exited_at.is_none() && deadline.is_some_and(|d| now >= d) {
            return PumpEnd::DeadlineReached;
        }
        let mut fds = vec![
            poll_entry(&pipes.stdout, open[0]),
            poll_entry(&pipes.stderr, open[1]),
        ];
        if let (Some(pidfd), None) = (exit, exited_at) {
            fds.push(libc::pollfd {
                fd: pidfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        let wake = match exited_at {
            Some(t) => Some(t + DRAIN_AFTER_EXIT),
            None => deadline,
        };
        let timeout = wake.map_or(-1, |w| {
            w.saturating_duration_since(now)
                .as_millis()
                .min(i32::MAX as u128) as i32
                + 1
        });
        // SAFETY: a valid array of pollfds whose fds outlive the call.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if rc < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return PumpEnd::Exited;
        }
        for (i, stream) in [LogStream::Stdout, LogStream::Stderr]
            .into_iter()
            .enumerate()
        {
            if fds[i].revents == 0 || !open[i] {
                continue;
            }
            let pipe = if i == 0 { &pipes.stdout } else { &pipes.stderr };
            match read_some(pipe, &mut buf) {
                Some(n) if n > 0 => sink(stream, &buf[..n]),
                _ => open[i] = false,
            }
        }
        if fds.get(2).is_some_and(|p| p.revents != 0) {
            exited_at = Some(Instant::now());
        }
    }
}

fn poll_entry(fd: &OwnedFd, open: bool) -> libc::pollfd {
    libc::pollfd {
        // A negative fd is skipped by poll.
        fd: if open { fd.as_raw_fd() } else { -1 },
        events: libc::POLLIN,
        revents: 0,
    }
}

/// One read; None on error, Some(0) at EOF.
fn read_some(fd: &OwnedFd, buf: &mut [u8]) -> Option<usize> {
    loop {
        match nix::unistd::read(fd, buf) {
            Ok(n) => return Some(n),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return None,
        }
    }
}

/// A pipe whose ends are both close-on-exec: (read, write).
pub fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::process::{Command, Stdio};

    fn run(script: &str, deadline: Option<Duration>) -> (PumpEnd, Vec<(LogStream, Vec<u8>)>) {
        let (out_r, out_w) = pipe().unwrap();
        let (err_r, err_w) = pipe().unwrap();
        let mut child = Command::new("sh")
            .args(["-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::from(out_w))
            .stderr(Stdio::from(err_w))
            .spawn()
            .unwrap();
        let pidfd = Pidfd::open(child.id() as i32).unwrap();
        let pipes = OutputPipes {
            stdout: out_r,
            stderr: err_r,
        };
        let mut chunks = Vec::new();
        let end = pump(
            &pipes,
            Some(&pidfd),
            deadline.map(|d| Instant::now() + d),
            &mut |s, b| chunks.push((s, b.to_vec())),
        );
        let _ = pidfd.signal(libc::SIGKILL);
        child.wait().unwrap();
        assert!(pidfd.as_fd().as_raw_fd() >= 0);
        (end, chunks)
    }

    fn joined(chunks: &[(LogStream, Vec<u8>)], stream: LogStream) -> String {
        chunks
            .iter()
            .filter(|(s, _)| *s == stream)
            .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
            .collect()
    }

    #[test]
    fn collects_both_streams_until_exit() {
        let (end, chunks) = run("echo out; echo err >&2; echo more", None);
        assert_eq!(end, PumpEnd::Exited);
        assert_eq!(joined(&chunks, LogStream::Stdout), "out\nmore\n");
        assert_eq!(joined(&chunks, LogStream::Stderr), "err\n");
    }

    #[test]
    fn a_background_child_holding_the_pipe_does_not_hold_the_pump() {
        let started = Instant::now();
        let (end, chunks) = run("sleep 3 & echo parent", None);
        assert_eq!(end, PumpEnd::Exited);
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(joined(&chunks, LogStream::Stdout), "parent\n");
    }

    #[test]
    fn stops_at_the_deadline() {
        let (end, _) = run("sleep 30", Some(Duration::from_millis(100)));
        assert_eq!(end, PumpEnd::DeadlineReached);
    }
}
