//! Attach and exec sessions in the monitor. Output goes to the daemon in frames: an attach
//! copies what the container's log writer sees, an exec pumps its own pipes and ends with its
//! exit code. Stdin frames from the daemon go into the container's (or exec's) stdin.

use std::fs::File;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use crate::logs::LogStream;
use crate::monitor::frames::{self, FrameKind};
use crate::runtime::linux::container::StreamingExec;
use crate::runtime::linux::stdio;
use crate::runtime::stdin::StdinPipe;

/// How often an attach's output side looks whether the daemon has gone.
const CLOSED_CHECK: Duration = Duration::from_millis(250);
/// How long a write to the daemon may block before the session is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves an attach session on `stream` until the container ends or the daemon closes the
/// connection. `stdin` is the container's stdin pipe when the client sends stdin.
pub fn serve_attach(
    stream: UnixStream,
    output: Receiver<(LogStream, Vec<u8>)>,
    stdin: Option<Arc<StdinPipe>>,
) {
    let daemon_gone = Arc::new(AtomicBool::new(false));
    let gone = daemon_gone.clone();
    let fed = feed_stdin_on_thread(&stream, move |reader| {
        match stdin {
            Some(pipe) => feed_stdin(reader, &mut ContainerStdin(pipe)),
            None => feed_stdin(reader, &mut NoStdin),
        }
        gone.store(true, Ordering::SeqCst);
    });
    if fed.is_ok() && stream.set_write_timeout(Some(WRITE_TIMEOUT)).is_ok() {
        copy_attached_output(&stream, &output, &daemon_gone);
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// Serves an exec session on `stream`: the exec's output as it comes, then its exit code.
/// `stdin` is the write end of its stdin when the client sends stdin. The daemon closing the
/// connection (its client went away) kills the command, as containerd ends an exec whose
/// stream is gone.
pub fn serve_exec(stream: UnixStream, exec: StreamingExec, stdin: Option<File>) {
    let kill = exec.killer();
    let fed = feed_stdin_on_thread(&stream, move |reader| {
        match stdin {
            Some(stdin) => feed_stdin(reader, &mut ExecStdin(Some(stdin))),
            None => feed_stdin(reader, &mut NoStdin),
        }
        kill();
    });
    if fed.is_err() {
        exec.killer()();
    }
    // No write timeout: a slow client slows the command down through the pipes, as with
    // kubelet; a failed write means the daemon is gone, and nothing more is written.
    let mut writer = &stream;
    let mut connected = true;
    stdio::pump(
        exec.pipes(),
        Some(exec.helper()),
        None,
        &mut |which, chunk| {
            if connected {
                connected = writer.write_all(&output_frame(which, chunk)).is_ok();
            }
        },
    );
    let frame = match exec.finish() {
        Ok(code) => frames::encode(FrameKind::Exit, &code.to_be_bytes()),
        Err(message) => {
            let mut frame = frames::encode(FrameKind::Stderr, message.as_bytes());
            frame.extend(frames::encode(FrameKind::Exit, &EXEC_FAILED.to_be_bytes()));
            frame
        }
    };
    if connected {
        let _ = writer.write_all(&frame);
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// The exit code of an exec that could not run (as runc reports a command it cannot start).
const EXEC_FAILED: i32 = 126;

fn output_frame(which: LogStream, chunk: &[u8]) -> Vec<u8> {
    let kind = match which {
        LogStream::Stdout => FrameKind::Stdout,
        LogStream::Stderr => FrameKind::Stderr,
    };
    frames::encode(kind, chunk)
}

/// Runs `feed` on a thread of its own with a reading clone of `stream`.
fn feed_stdin_on_thread(
    stream: &UnixStream,
    feed: impl FnOnce(UnixStream) + Send + 'static,
) -> std::io::Result<()> {
    let reader = stream.try_clone()?;
    reader.set_read_timeout(None)?;
    std::thread::Builder::new()
        .name("session-stdin".into())
        .spawn(move || feed(reader))
        .map(drop)
}

/// Where a session's stdin goes.
trait StdinSink {
    /// Passes bytes on; an error means nothing more can be taken.
    fn write(&mut self, data: &[u8]) -> std::io::Result<()>;
    /// The client's stdin ended.
    fn end(&mut self);
}

/// A container's stdin pipe: its end is the session's (with `stdin_once` the container reads
/// EOF).
struct ContainerStdin(Arc<StdinPipe>);

impl StdinSink for ContainerStdin {
    fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.0.write(data)
    }

    fn end(&mut self) {
        self.0.session_ended();
    }
}

/// An exec's stdin: closing it at the end is the command's EOF.
struct ExecStdin(Option<File>);

impl StdinSink for ExecStdin {
    fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        match &mut self.0 {
            Some(file) => file.write_all(data),
            None => Err(std::io::ErrorKind::BrokenPipe.into()),
        }
    }

    fn end(&mut self) {
        self.0 = None;
    }
}

/// A session without stdin: frames are read (to see the connection end) and dropped.
struct NoStdin;

impl StdinSink for NoStdin {
    fn write(&mut self, _: &[u8]) -> std::io::Result<()> {
        Ok(())
    }

    fn end(&mut self) {}
}

/// Passes stdin frames to `sink` until the connection ends; the sink hears of the end of the
/// client's stdin (an end frame, or the connection closing) once.
fn feed_stdin(mut reader: UnixStream, sink: &mut dyn StdinSink) {
    let mut ended = false;
    let mut writable = true;
    while let Ok(Some((kind, payload))) = frames::read(&mut reader) {
        match kind {
            // A container that stopped reading loses what follows; the session goes on.
            FrameKind::Stdin if writable && !ended => writable = sink.write(&payload).is_ok(),
            FrameKind::StdinEnd if !ended => {
                sink.end();
                ended = true;
            }
            _ => {}
        }
    }
    if !ended {
        sink.end();
    }
}

fn copy_attached_output(
    mut stream: &UnixStream,
    output: &Receiver<(LogStream, Vec<u8>)>,
    daemon_gone: &AtomicBool,
) {
    loop {
        match output.recv_timeout(CLOSED_CHECK) {
            Ok((which, chunk)) => {
                if stream.write_all(&output_frame(which, &chunk)).is_err() {
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
    use std::io::Read;

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
            std::thread::spawn(move || serve_attach(monitor_end, output, Some(Arc::new(pipe))));
        daemon_end
            .write_all(&frames::encode(FrameKind::Stdin, b"typed"))
            .unwrap();
        daemon_end
            .write_all(&frames::encode(FrameKind::StdinEnd, b""))
            .unwrap();
        let mut typed = String::new();
        File::from(read_end).read_to_string(&mut typed).unwrap();
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
