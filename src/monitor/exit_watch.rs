//! Both sides of `WatchExits`. The monitor tells the connections that asked (the daemon's),
//! one line per container id, whenever a container of the pod has ended and its exit is on
//! disk. The daemon learns exits as they happen instead of when it next reads a status; those
//! that happened before it asked it reads from the exit files once the monitor has accepted.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::AsyncBufReadExt;

use crate::monitor::protocol::{Request, Response, open_session};

/// How long the monitor may take to accept a WatchExits request.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// A watcher that does not take a line within this long is dropped (the daemon reconnects
/// and reads the exits it missed from their files), so no container's thread waits on it
/// longer.
const WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// The connections following the pod's exits.
#[derive(Default)]
pub struct ExitWatchers {
    streams: Mutex<Vec<UnixStream>>,
}

impl ExitWatchers {
    /// Adds `stream`: it is told of every end from now on.
    pub fn add(&self, stream: UnixStream) -> std::io::Result<()> {
        stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
        self.streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(stream);
        Ok(())
    }

    /// Tells every watcher that container `id` has ended; drops those that cannot be told.
    pub fn ended(&self, id: &str) {
        let line = format!("{id}\n");
        self.streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|stream| {
                let mut writer: &UnixStream = stream;
                writer.write_all(line.as_bytes()).is_ok()
            });
    }
}

/// The daemon's side: asks the monitor on `socket` to report exits, calls `on_watching` once
/// it has accepted (exits before that are for the caller to read from their files), and hands
/// each reported container id to `on_exit`, until the monitor closes the connection.
pub async fn follow(
    socket: PathBuf,
    on_watching: impl FnOnce(),
    mut on_exit: impl FnMut(String),
) -> std::io::Result<()> {
    let (answer, stream) = tokio::task::spawn_blocking(move || {
        open_session(&socket, &Request::WatchExits, ANSWER_TIMEOUT)
    })
    .await
    .map_err(std::io::Error::other)??;
    if answer != Response::Done {
        return Err(std::io::Error::other(format!(
            "the monitor does not report exits: {answer:?}"
        )));
    }
    stream.set_nonblocking(true)?;
    let stream = tokio::net::UnixStream::from_std(stream)?;
    on_watching();
    // Lines are ids (65 bytes): a small buffer, as there is one of these per pod.
    let mut lines = tokio::io::BufReader::with_capacity(512, stream).lines();
    while let Some(id) = lines.next_line().await? {
        on_exit(id);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};

    #[test]
    fn a_watcher_hears_each_end_and_a_gone_one_is_dropped() {
        let watchers = ExitWatchers::default();
        let (ours, theirs) = UnixStream::pair().unwrap();
        watchers.ended("before");
        watchers.add(ours).unwrap();
        watchers.ended("new");
        let mut lines = BufReader::new(theirs).lines();
        assert_eq!(lines.next().unwrap().unwrap(), "new");
        drop(lines);
        watchers.ended("after");
        assert!(
            watchers.streams.lock().unwrap().is_empty(),
            "a watcher that went away is dropped"
        );
    }
}
