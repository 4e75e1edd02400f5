//! An attach session in the monitor: the container's output, as its log writer sees it, goes
//! to the daemon in frames; stdin frames from the daemon go into the container's stdin pipe.

use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use crate::logs::LogStream;
use crate::monitor::frames::{self, FrameKind};
use crate::runtime::stdin::StdinPipe;

/// How often the output side looks whether the daemon has gone.
const CLOSED_CHECK: Duration = Duration::from_millis(250);
/// How long a write to the daemon may block before the session is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves an attach session on `stream` until the container ends or the daemon closes the
/// connection. `stdin` is the container's stdin pipe when the client sends stdin.
pub fn serve(
    stream: UnixStream,
    output: Receiver<(LogStream, Vec<u8>)>,
    stdin: Option<Arc<StdinPipe>>,
) {
    let daemon_gone = Arc::new(AtomicBool::new(false));
    let reader = stream
        .try_clone()
        .and_then(|s| s.set_read_timeout(None).map(|()| s));
    let Ok(reader) = reader else { return };
    let gone = daemon_gone.clone();
    let spawned = std::thread::Builder::new()
        .name("attach-stdin".into())
        .spawn(move || {
            feed_stdin(reader, stdin.as_deref());
            gone.store(true, Ordering::SeqCst);
        });
    if spawned.is_err() {
        return;
    }
    send_output(&stream, &output, &daemon_gone);
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// Passes stdin frames into the pipe until the connection ends; the pipe hears of the end of
/// the client's stdin (an end frame, or the connection closing) once.
fn feed_stdin(mut reader: UnixStream, stdin: Option<&StdinPipe>) {
    let mut open = true;
    while let Ok(Some((kind, payload))) = frames::read(&mut reader) {
        match (kind, stdin) {
            (FrameKind::Stdin, Some(pipe)) if open => {
                // A container that stopped reading loses what follows; the session goes on.
                open = pipe.write(&payload).is_ok();
            }
            (FrameKind::StdinEnd, Some(pipe)) if open => {
                pipe.session_ended();
                open = false;
            }
            _ => {}
        }
    }
    if let (true, Some(pipe)) = (open, stdin) {
        pipe.session_ended();
    }
}

fn send_output(
    mut stream: &UnixStream,
    output: &Receiver<(LogStream, Vec<u8>)>,
    daemon_gone: &AtomicBool,
) {
    use std::io::Write;
    if stream.set_write_timeout(Some(WRITE_TIMEOUT)).is_err() {
        return;
    }
    loop {
        match output.recv_timeout(CLOSED_CHECK) {
            Ok((which, chunk)) => {
                let kind = match which {
                    LogStream::Stdout => FrameKind::Stdout,
                    LogStream::Stderr => FrameKind::Stderr,
                };
                if stream.write_all(&frames::encode(kind, &chunk)).is_err() {
                    return;
                }
            }
            Err(RecvTimeoutError::Timeout) if !daemon_gone.load(Ordering::SeqCst) => {}
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::stdin::StdinMode;
    use std::io::{Read, Write};

    #[test]
    fn output_goes_out_in_frames_and_stdin_frames_reach_the_pipe() {
        let (monitor_end, mut daemon_end) = UnixStream::pair().unwrap();
        let (sender, output) = std::sync::mpsc::sync_channel(8);
        let mode = StdinMode {
            open: true,
            once: true,
        };
        let (pipe, read_end) = StdinPipe::new(mode).unwrap();
        let session =
            std::thread::spawn(move || serve(monitor_end, output, Some(Arc::new(pipe))));
        daemon_end
            .write_all(&frames::encode(FrameKind::Stdin, b"typed"))
            .unwrap();
        daemon_end
            .write_all(&frames::encode(FrameKind::StdinEnd, b""))
            .unwrap();
        let mut typed = String::new();
        std::fs::File::from(read_end)
            .read_to_string(&mut typed)
            .unwrap();
        assert_eq!(typed, "typed");
        sender.send((LogStream::Stderr, b"echo".to_vec())).unwrap();
        drop(sender);
        assert_eq!(
            frames::read(&mut daemon_end).unwrap(),
            Some((FrameKind::Stderr, b"echo".to_vec()))
        );
        assert_eq!(frames::read(&mut daemon_end).unwrap(), None);
        session.join().unwrap();
    }
}
