//! Threads for wasm containers. A thread whose container has ended waits a moment for the
//! next one (a few per monitor), so a start in a busy pod usually hands its container to a
//! waiting thread: from the start to the container's thread running took about 70 µs with a
//! new thread here, 30 µs with a waiting one (a short container's whole run is about 1 ms).
//! None waits for long: a pod whose containers have ended keeps no thread beyond its
//! monitor's own.

use std::sync::mpsc::{self, RecvTimeoutError, SendError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a thread runs: one container, start to end.
pub type Job = Box<dyn FnOnce() + Send>;

/// How many ended threads a monitor keeps waiting.
const SPARE: usize = 2;

/// How long an ended thread waits for another container before it ends too.
const WAIT: Duration = Duration::from_secs(2);

/// The threads waiting for a container.
pub struct SpareThreads {
    waiting: Mutex<Waiting>,
    wait: Duration,
}

/// The waiting threads' job senders, each with its number, and the next number.
#[derive(Default)]
struct Waiting {
    threads: Vec<(u64, Sender<Job>)>,
    next: u64,
}

impl Default for SpareThreads {
    fn default() -> Self {
        SpareThreads::waiting_for(WAIT)
    }
}

impl SpareThreads {
    /// Threads that wait up to `wait` for another container.
    fn waiting_for(wait: Duration) -> Self {
        SpareThreads {
            waiting: Mutex::default(),
            wait,
        }
    }

    /// Runs `job` on a waiting thread, or on a new one; named `name` either way.
    pub fn run(self: &Arc<Self>, name: &str, job: Job) -> std::io::Result<()> {
        let mut job = job;
        while let Some(thread) = self.lock().threads.pop() {
            match thread.1.send(rename(name.to_string(), job)) {
                Ok(()) => return Ok(()),
                // That thread ended meanwhile: try the next one.
                Err(SendError(back)) => job = back,
            }
        }
        let threads = self.clone();
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || threads.serve(job))
            .map(|_| ())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `first`, then the jobs it is given while it waits: it waits while fewer than
    /// [`SPARE`] others do, and for no longer than `self.wait` each time.
    fn serve(&self, first: Job) {
        let mut job = first;
        loop {
            job();
            let (sender, receiver) = mpsc::channel();
            let number = {
                let mut waiting = self.lock();
                if waiting.threads.len() >= SPARE {
                    return;
                }
                let number = waiting.next;
                waiting.next += 1;
                waiting.threads.push((number, sender));
                number
            };
            job = match receiver.recv_timeout(self.wait) {
                Ok(next) => next,
                Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => {
                    let mut waiting = self.lock();
                    let before = waiting.threads.len();
                    waiting.threads.retain(|(n, _)| *n != number);
                    if waiting.threads.len() < before {
                        return;
                    }
                    drop(waiting);
                    // Taken just now: its job is on the way.
                    match receiver.recv() {
                        Ok(next) => next,
                        Err(_) => return,
                    }
                }
            };
        }
    }
}

/// `job`, run under the thread name `name` (a waiting thread still bears its last one's).
fn rename(name: String, job: Job) -> Job {
    Box::new(move || {
        let _ = nix::sys::prctl::set_name(&std::ffi::CString::new(name).unwrap_or_default());
        job()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::Receiver;
    use std::time::Duration;

    /// Runs a job that reports its thread's id and name, and waits for the report.
    fn run_reporting(threads: &Arc<SpareThreads>, name: &str) -> (std::thread::ThreadId, String) {
        let (sender, receiver) = mpsc::channel();
        threads
            .run(
                name,
                Box::new(move || {
                    let name = std::fs::read_to_string("/proc/thread-self/comm").unwrap();
                    sender
                        .send((std::thread::current().id(), name.trim().to_string()))
                        .unwrap();
                }),
            )
            .unwrap();
        receiver.recv_timeout(Duration::from_secs(10)).unwrap()
    }

    /// Waits until `count` threads wait for a job.
    fn wait_for_waiting(threads: &SpareThreads, count: usize) {
        for _ in 0..1000 {
            if threads.lock().threads.len() == count {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("{count} threads never waited");
    }

    #[test]
    fn a_thread_whose_job_ended_runs_the_next_one_under_its_name() {
        let threads = Arc::new(SpareThreads::default());
        let (first, first_name) = run_reporting(&threads, "wasm-first");
        assert_eq!(first_name, "wasm-first");
        wait_for_waiting(&threads, 1);
        let (second, second_name) = run_reporting(&threads, "wasm-second");
        assert_eq!(second, first, "the waiting thread took it");
        assert_eq!(second_name, "wasm-second");
    }

    #[test]
    fn no_more_than_spare_threads_wait() {
        let threads = Arc::new(SpareThreads::default());
        let (release, gate): (Sender<()>, Receiver<()>) = mpsc::channel();
        let gate = Arc::new(Mutex::new(gate));
        for i in 0..SPARE + 2 {
            let gate = gate.clone();
            threads
                .run(
                    &format!("wasm-{i}"),
                    Box::new(move || {
                        let _ = gate.lock().unwrap().recv();
                    }),
                )
                .unwrap();
        }
        for _ in 0..SPARE + 2 {
            release.send(()).unwrap();
        }
        wait_for_waiting(&threads, SPARE);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(threads.lock().threads.len(), SPARE);
    }

    #[test]
    fn a_thread_waits_only_so_long() {
        let threads = Arc::new(SpareThreads::waiting_for(Duration::from_millis(100)));
        let (first, _) = run_reporting(&threads, "wasm-once");
        wait_for_waiting(&threads, 1);
        wait_for_waiting(&threads, 0);
        let (later, name) = run_reporting(&threads, "wasm-later");
        assert_ne!(
            later, first,
            "the waiting thread has ended: a new one runs it"
        );
        assert_eq!(name, "wasm-later");
    }
}
