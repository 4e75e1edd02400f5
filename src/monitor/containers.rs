//! The containers a monitor runs. Wasm containers run on threads of the monitor itself; Linux
//! containers are processes (children of the monitor) with a thread each that writes their log
//! and reaps them. Each records its own exit to disk (atomically) when it ends. A wasm
//! container is forgotten then: nothing of it is left to remove, so RemoveContainer need not
//! come here for it.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use crate::logs::{CriLog, LogStream};
use crate::monitor::exit_watch::ExitWatchers;
use crate::monitor::orphans::Orphans;
use crate::monitor::spare_threads::SpareThreads;
use crate::runtime::linux::container::{LinuxContainer, StreamingExec};
use crate::runtime::linux::launch::{ExecOutcome, LinuxLaunch};
use crate::runtime::stdin::{StdinMode, StdinPipe};
use crate::runtime::wasm::host::{PrepareError, Prepared, StopSignal, WasmHost};
use crate::runtime::wasm::launch::{ExitRecord, WasmLaunch};

/// Why a container operation failed, as the daemon maps it to a gRPC status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerError {
    /// What the container asks for cannot run (InvalidArgument).
    Invalid(String),
    /// The container is not in a state that allows it (FailedPrecondition).
    State(String),
    /// The monitor has no such container (NotFound).
    Unknown(String),
    /// Something on the host failed (Internal).
    Host(String),
}

/// Set once by the container's thread when it has ended and its exit is on disk; the pod's
/// exit watchers are told then.
struct Ended {
    done: Mutex<bool>,
    signal: Condvar,
    container_id: String,
    watchers: Arc<ExitWatchers>,
}

impl Ended {
    fn new(container_id: &str, watchers: Arc<ExitWatchers>) -> Arc<Ended> {
        Arc::new(Ended {
            done: Mutex::new(false),
            signal: Condvar::new(),
            container_id: container_id.to_string(),
            watchers,
        })
    }

    fn set(&self) {
        *self.done.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.signal.notify_all();
        self.watchers.ended(&self.container_id);
    }

    /// True when ended within `timeout`.
    fn wait(&self, timeout: Duration) -> bool {
        let done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        let (done, _) = self
            .signal
            .wait_timeout_while(done, timeout, |done| !*done)
            .unwrap_or_else(|e| e.into_inner());
        *done
    }
}

enum Phase {
    Created,
    /// Started at these Unix nanoseconds.
    Running(i64),
}

/// What runs the container.
enum Body {
    /// A wasm instance, run on a thread of its own at start.
    Wasm {
        launch: Box<WasmLaunch>,
        prepared: Prepared,
        stop: Arc<StopSignal>,
        /// The read end of its stdin pipe, until the instance takes it at start.
        stdin: Option<OwnedFd>,
    },
    /// A Linux container process, watched by a thread of its own from creation.
    Linux(Arc<LinuxContainer>),
}

struct Slot {
    body: Body,
    /// The write end of the container's stdin, when it has one.
    stdin: Option<Arc<StdinPipe>>,
    log: Arc<Mutex<CriLog>>,
    ended: Arc<Ended>,
    phase: Phase,
}

/// The monitor's container table.
#[derive(Default)]
pub struct PodContainers {
    wasm: OnceLock<Result<Arc<WasmHost>, String>>,
    orphans: Arc<Orphans>,
    slots: Arc<Mutex<HashMap<String, Slot>>>,
    exit_watchers: Arc<ExitWatchers>,
    wasm_threads: Arc<SpareThreads>,
}

/// How long a container's thread may take from writing its exit to being done.
const EXIT_RECORDING_GRACE: Duration = Duration::from_secs(2);

/// How long a stopped container may take to notice its interruption.
const INTERRUPT_GRACE: Duration = Duration::from_secs(10);

impl PodContainers {
    fn wasm(&self) -> Result<Arc<WasmHost>, ContainerError> {
        self.wasm
            .get_or_init(|| WasmHost::new().map(Arc::new).map_err(|e| e.to_string()))
            .clone()
            .map_err(ContainerError::Host)
    }

    /// Loads and checks a wasm container and opens its log; it runs on [`Self::start`].
    pub fn create_wasm(&self, launch: WasmLaunch) -> Result<(), ContainerError> {
        let host = self.wasm()?;
        let prepared = host.prepare(&launch).map_err(|e| match e {
            PrepareError::Invalid(m) => ContainerError::Invalid(m),
            PrepareError::Host(m) => ContainerError::Host(m),
        })?;
        let log = CriLog::open(launch.log_path.as_deref())
            .map_err(|e| ContainerError::Host(e.to_string()))?;
        let id = launch.container_id.clone();
        let (stdin, stdin_reader) = stdin_pipe(&id, launch.stdin)?;
        self.insert(
            &id,
            Slot {
                body: Body::Wasm {
                    launch: Box::new(launch),
                    prepared,
                    stop: Arc::new(StopSignal::default()),
                    stdin: stdin_reader,
                },
                stdin,
                log: Arc::new(Mutex::new(log)),
                ended: Ended::new(&id, self.exit_watchers.clone()),
                phase: Phase::Created,
            },
        )
    }

    /// Creates a Linux container through the helper and starts the thread that writes its
    /// log and records its exit; it runs its process on [`Self::start`].
    pub fn create_linux(&self, launch: LinuxLaunch) -> Result<(), ContainerError> {
        let id = launch.container_id.clone();
        if self.lock().contains_key(&id) {
            return Err(exists(&id));
        }
        let log = CriLog::open(launch.log_path.as_deref())
            .map_err(|e| ContainerError::Host(e.to_string()))?;
        let (stdin, stdin_reader) = stdin_pipe(&id, launch.stdin)?;
        let (container, pipes) = LinuxContainer::create(
            Path::new(SELF_EXE),
            launch,
            stdin_reader,
            self.orphans.clone(),
        )?;
        let container = Arc::new(container);
        let log = Arc::new(Mutex::new(log));
        let ended = Ended::new(&id, self.exit_watchers.clone());
        let watched = (container.clone(), log.clone(), ended.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("linux-{}", id.chars().take(12).collect::<String>()))
            .spawn(move || {
                let (container, log, ended) = watched;
                container.watch(&pipes, &log);
                ended.set();
            });
        if let Err(e) = spawned {
            container.signal(libc::SIGKILL);
            return Err(ContainerError::Host(format!(
                "start a thread for {id}: {e}"
            )));
        }
        self.insert(
            &id,
            Slot {
                body: Body::Linux(container),
                stdin,
                log,
                ended,
                phase: Phase::Created,
            },
        )
    }

    fn insert(&self, id: &str, slot: Slot) -> Result<(), ContainerError> {
        let mut slots = self.lock();
        if slots.contains_key(id) {
            return Err(exists(id));
        }
        slots.insert(id.to_string(), slot);
        Ok(())
    }

    /// Starts a created container on a thread of its own; returns when (Unix nanoseconds),
    /// taken before the start so that a quick container's finish never precedes it.
    pub fn start(&self, id: &str) -> Result<i64, ContainerError> {
        let mut slots = self.lock();
        let slot = slots.get_mut(id).ok_or_else(|| unknown(id))?;
        if !matches!(slot.phase, Phase::Created) {
            return Err(ContainerError::State(format!(
                "container {id} was started already"
            )));
        }
        let started_at = crate::sandbox::now_nanos();
        match &mut slot.body {
            Body::Linux(container) => {
                if slot.ended.wait(Duration::ZERO) {
                    return Err(ContainerError::State(format!(
                        "container {id} exited before it was started"
                    )));
                }
                container.start(started_at)?;
            }
            Body::Wasm {
                launch,
                prepared,
                stop,
                stdin,
            } => {
                let run = WasmRun {
                    started_at,
                    prepared: prepared.clone(),
                    launch: launch.as_ref().clone(),
                    log: slot.log.clone(),
                    stop: stop.clone(),
                    stdin: stdin.take(),
                };
                self.start_wasm(run, slot.ended.clone())?
            }
        }
        slot.phase = Phase::Running(started_at);
        Ok(started_at)
    }

    /// Runs the instance on a thread of its own (a waiting one if there is one).
    fn start_wasm(&self, run: WasmRun, ended: Arc<Ended>) -> Result<(), ContainerError> {
        let host = self.wasm()?;
        let slots = self.slots.clone();
        let id = run.launch.container_id.clone();
        let name = format!("wasm-{}", id.chars().take(12).collect::<String>());
        self.wasm_threads
            .run(
                &name,
                Box::new(move || run_to_exit(&host, run, &ended, &slots)),
            )
            .map_err(|e| ContainerError::Host(format!("start a thread for {id}: {e}")))
    }

    /// Waits up to `timeout` for the container to end, then interrupts it. A container that
    /// is not running is stopped already.
    pub fn stop(&self, id: &str, timeout: Duration) -> Result<(), ContainerError> {
        let (interrupt, ended) = {
            let slots = self.lock();
            let slot = slots.get(id).ok_or_else(|| unknown(id))?;
            if !matches!(slot.phase, Phase::Running(_)) {
                return Ok(());
            }
            let interrupt = match &slot.body {
                Body::Wasm { stop, .. } => Interrupt::Wasm(stop.clone()),
                Body::Linux(container) => {
                    container.signal(container.stop_signal());
                    Interrupt::Linux(container.clone())
                }
            };
            (interrupt, slot.ended.clone())
        };
        if ended.wait(timeout) {
            return Ok(());
        }
        match interrupt {
            Interrupt::Wasm(stop) => {
                stop.stop();
                self.wasm()?.interrupt();
            }
            Interrupt::Linux(container) => container.signal(libc::SIGKILL),
        }
        if ended.wait(INTERRUPT_GRACE) {
            Ok(())
        } else {
            Err(ContainerError::Host(format!(
                "container {id} did not stop within {} s of its interruption (it is blocked in a host call)",
                INTERRUPT_GRACE.as_secs()
            )))
        }
    }

    /// Forgets a container that is not running (a running one must be stopped first): a
    /// created Linux container is killed, and its state and cgroup deleted. An unknown one is
    /// Unknown, which the daemon takes as forgotten already.
    pub fn remove(&self, id: &str) -> Result<(), ContainerError> {
        let (linux, ended, started) = {
            let slots = self.lock();
            let slot = slots.get(id).ok_or_else(|| unknown(id))?;
            let linux = match &slot.body {
                Body::Linux(container) => Some(container.clone()),
                Body::Wasm { .. } => None,
            };
            (
                linux,
                slot.ended.clone(),
                matches!(slot.phase, Phase::Running(_)),
            )
        };
        // The daemon removes a started container once its exit is on disk, which its thread
        // writes just before it is done: give that thread a moment.
        if started && !ended.wait(EXIT_RECORDING_GRACE) {
            return Err(ContainerError::State(format!("container {id} is running")));
        }
        if let Some(container) = linux {
            container.signal(libc::SIGKILL);
            if !ended.wait(INTERRUPT_GRACE) {
                return Err(ContainerError::Host(format!(
                    "container {id} did not exit within {} s of SIGKILL",
                    INTERRUPT_GRACE.as_secs()
                )));
            }
            container.delete()?;
        }
        self.lock().remove(id);
        Ok(())
    }

    /// Whether [`Self::remove`] of `id` has nothing to wait for: a wasm container that was
    /// never started (one that ran is forgotten when it ends).
    pub fn removes_at_once(&self, id: &str) -> bool {
        self.lock().get(id).is_some_and(|slot| {
            matches!(slot.body, Body::Wasm { .. }) && matches!(slot.phase, Phase::Created)
        })
    }

    /// Runs `argv` in a running Linux container through the helper; `timeout` zero means none.
    pub fn exec(
        &self,
        id: &str,
        argv: Vec<String>,
        timeout: Duration,
    ) -> Result<ExecOutcome, ContainerError> {
        let container = self.running_linux(id)?;
        container.exec(Path::new(SELF_EXE), argv, timeout)
    }

    /// A running Linux container, to exec in.
    fn running_linux(&self, id: &str) -> Result<Arc<LinuxContainer>, ContainerError> {
        let slots = self.lock();
        let slot = slots.get(id).ok_or_else(|| unknown(id))?;
        if !matches!(slot.phase, Phase::Running(_)) || slot.ended.wait(Duration::ZERO) {
            return Err(ContainerError::State(format!(
                "container {id} is not running"
            )));
        }
        match &slot.body {
            Body::Linux(container) => Ok(container.clone()),
            Body::Wasm { .. } => Err(ContainerError::Invalid(format!(
                "container {id} is a wasm container: it has no processes to exec beside it"
            ))),
        }
    }

    /// A new attach session on a created or running container: a copy of its output from now
    /// on, and its stdin pipe when `stdin` is asked for and the container has one.
    pub fn attach(&self, id: &str, stdin: bool) -> Result<AttachSession, ContainerError> {
        let slots = self.lock();
        let slot = slots.get(id).ok_or_else(|| unknown(id))?;
        let output = slot.log.lock().unwrap_or_else(|e| e.into_inner()).attach();
        let output =
            output.ok_or_else(|| ContainerError::State(format!("container {id} has exited")))?;
        let stdin = slot.stdin.clone().filter(|_| stdin);
        Ok((output, stdin))
    }

    /// Starts `argv` in a running Linux container for an exec session: the exec, and the write
    /// end of its stdin when `stdin` is asked for.
    pub fn exec_streaming(
        &self,
        id: &str,
        argv: Vec<String>,
        stdin: bool,
    ) -> Result<(StreamingExec, Option<File>), ContainerError> {
        let container = self.running_linux(id)?;
        let (reader, writer) = match stdin {
            true => {
                let (reader, writer) =
                    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| {
                        ContainerError::Host(format!("container {id}: exec stdin pipe: {e}"))
                    })?;
                (Some(reader), Some(File::from(writer)))
            }
            false => (None, None),
        };
        let exec = container.exec_streaming(Path::new(SELF_EXE), argv, reader)?;
        Ok((exec, writer))
    }

    /// Reopens a running container's log file at its path.
    pub fn reopen_log(&self, id: &str) -> Result<(), ContainerError> {
        let slots = self.lock();
        let slot = slots.get(id).ok_or_else(|| unknown(id))?;
        if !matches!(slot.phase, Phase::Running(_)) || slot.ended.wait(Duration::ZERO) {
            return Err(ContainerError::State(format!(
                "container {id} is not running"
            )));
        }
        let result = slot.log.lock().unwrap_or_else(|e| e.into_inner()).reopen();
        result.map_err(|e| ContainerError::Host(e.to_string()))
    }

    /// Interrupts every running container and waits for their exits to be recorded; Linux
    /// containers are then deleted (their cgroups must not outlive the pod).
    pub fn stop_all(&self) {
        let ids: Vec<String> = self.lock().keys().cloned().collect();
        for id in ids {
            if let Err(e) = self.stop(&id, Duration::ZERO) {
                eprintln!("stopping {id}: {e:?}");
            }
            match self.remove(&id) {
                // A wasm container that ran is forgotten when it ends.
                Ok(()) | Err(ContainerError::Unknown(_)) => {}
                Err(e) => eprintln!("removing {id}: {e:?}"),
            }
        }
    }

    /// The ids of every container held.
    pub fn ids(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// Has `stream` told of every container's end from now on (the daemon reads the exit
    /// files of those that ended before).
    pub fn watch_exits(&self, stream: UnixStream) -> std::io::Result<()> {
        self.exit_watchers.add(stream)
    }

    /// The containers that were started, with when.
    pub fn started(&self) -> BTreeMap<String, i64> {
        self.lock()
            .iter()
            .filter_map(|(id, slot)| match slot.phase {
                Phase::Running(started_at) => Some((id.clone(), started_at)),
                Phase::Created => None,
            })
            .collect()
    }

    /// The monitor's children that others wait for, and the orphans it must reap.
    pub fn orphans(&self) -> Arc<Orphans> {
        self.orphans.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What an attach session gets: the container's output and, when it sends stdin, its pipe.
pub type AttachSession = (Receiver<(LogStream, Vec<u8>)>, Option<Arc<StdinPipe>>);

/// What a wasm container's thread runs.
struct WasmRun {
    started_at: i64,
    prepared: Prepared,
    launch: WasmLaunch,
    log: Arc<Mutex<CriLog>>,
    stop: Arc<StopSignal>,
    stdin: Option<OwnedFd>,
}

/// Runs a wasm container to its end, records its exit, forgets it (from `slots`) and then
/// tells the pod's exit watchers (through `ended`).
fn run_to_exit(host: &WasmHost, run: WasmRun, ended: &Ended, slots: &Mutex<HashMap<String, Slot>>) {
    let WasmRun {
        started_at,
        prepared,
        launch,
        log,
        stop,
        stdin,
    } = run;
    let run =
        std::panic::AssertUnwindSafe(|| host.run(&prepared, &launch, log.clone(), stop, stdin));
    let mut exit = std::panic::catch_unwind(run).unwrap_or_else(|_| ExitRecord {
        exit_code: 255,
        finished_at: crate::sandbox::now_nanos(),
        reason: "Error".into(),
        message: "crishim: the container's thread failed (a bug in the monitor)".into(),
        ..ExitRecord::default()
    });
    exit.started_at = started_at;
    log.lock()
        .unwrap_or_else(|e| e.into_inner())
        .end_attachments();
    if let Err(e) = exit.save(&launch.exit_file) {
        eprintln!(
            "container {}: cannot record its exit: {e}",
            launch.container_id
        );
    }
    slots
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&launch.container_id);
    ended.set();
}

/// The container's stdin pipe and the read end for it, when `mode` asks for one.
fn stdin_pipe(
    id: &str,
    mode: StdinMode,
) -> Result<(Option<Arc<StdinPipe>>, Option<OwnedFd>), ContainerError> {
    if !mode.open {
        return Ok((None, None));
    }
    let (pipe, reader) = StdinPipe::new(mode)
        .map_err(|e| ContainerError::Host(format!("container {id}: create its stdin pipe: {e}")))?;
    Ok((Some(Arc::new(pipe)), Some(reader)))
}

/// How a running container is interrupted once its grace period is over.
enum Interrupt {
    Wasm(Arc<StopSignal>),
    Linux(Arc<LinuxContainer>),
}

/// The monitor's own binary, which also holds the helper (and stays runnable if the file on
/// disk is replaced).
const SELF_EXE: &str = "/proc/self/exe";

fn exists(id: &str) -> ContainerError {
    ContainerError::State(format!("container {id} exists already"))
}

fn unknown(id: &str) -> ContainerError {
    ContainerError::Unknown(format!("the pod's monitor has no container {id}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::wasm::binary::WasmBinary;
    use crate::runtime::wasm::engine;
    use crate::store::checkpoint;

    const PROBE: &str = include_str!("../../hack/testimages/wat/probe.wat");

    fn launch(dir: &std::path::Path, id: &str, wat: &str, args: &[&str]) -> WasmLaunch {
        let artifact = dir.join(format!("{id}.cwasm"));
        let bytes = wat::parse_str(wat).unwrap();
        let (_, compiled) = engine::precompile(&engine::new_engine().unwrap(), id, &bytes).unwrap();
        std::fs::write(&artifact, compiled).unwrap();
        WasmLaunch {
            container_id: id.into(),
            artifact,
            binary: WasmBinary::Module,
            argv: std::iter::once("probe.wasm")
                .chain(args.iter().copied())
                .map(String::from)
                .collect(),
            env: Vec::new(),
            preopens: Vec::new(),
            memory_limit: Some(1 << 20),
            log_path: Some(dir.join(format!("{id}.log"))),
            exit_file: dir.join(format!("{id}.exit.json")),
            stdin: StdinMode::default(),
        }
    }

    /// Waits for a container to end, as a stop does; one that has ended and is forgotten
    /// already is fine.
    fn wait_for_end(containers: &PodContainers, id: &str) {
        match containers.stop(id, Duration::from_secs(10)) {
            Ok(()) | Err(ContainerError::Unknown(_)) => {}
            Err(e) => panic!("stopping {id}: {e:?}"),
        }
    }

    fn exit_of(launch: &WasmLaunch) -> ExitRecord {
        checkpoint::read(&launch.exit_file).unwrap()
    }

    #[test]
    fn attach_feeds_stdin_and_gets_the_output() {
        let dir = tempfile::tempdir().unwrap();
        let containers = PodContainers::default();
        let mut cat = launch(dir.path(), "cat", PROBE, &["cat"]);
        cat.stdin = StdinMode {
            open: true,
            once: true,
        };
        containers.create_wasm(cat.clone()).unwrap();
        let (output, stdin) = containers.attach("cat", true).unwrap();
        containers.start("cat").unwrap();
        let stdin = stdin.expect("the container has a stdin");
        stdin.write(b"typed\n").unwrap();
        stdin.session_ended();
        wait_for_end(&containers, "cat");
        assert_eq!(exit_of(&cat).exit_code, 0);
        let seen: Vec<u8> = output.iter().flat_map(|(_, chunk)| chunk).collect();
        assert_eq!(String::from_utf8_lossy(&seen), "typed\nstdin closed\n");
        let log = std::fs::read_to_string(cat.log_path.as_ref().unwrap()).unwrap();
        assert!(log.contains(" stdout F typed\n"), "{log}");
        assert!(
            matches!(
                containers.attach("cat", false),
                Err(ContainerError::Unknown(_))
            ),
            "an ended wasm container is forgotten"
        );

        let closed = launch(dir.path(), "closed", PROBE, &["cat"]);
        containers.create_wasm(closed.clone()).unwrap();
        let (_, stdin) = containers.attach("closed", true).unwrap();
        assert!(stdin.is_none(), "a container without stdin gives none");
        containers.start("closed").unwrap();
        wait_for_end(&containers, "closed");
        let log = std::fs::read_to_string(closed.log_path.as_ref().unwrap()).unwrap();
        assert!(log.ends_with(" stdout F stdin closed\n"), "{log}");
    }

    #[test]
    fn runs_stops_and_refuses_what_cannot_run() {
        let dir = tempfile::tempdir().unwrap();
        let containers = PodContainers::default();
        let no_start = launch(dir.path(), "bad", "(module)", &[]);
        assert!(matches!(
            containers.create_wasm(no_start),
            Err(ContainerError::Invalid(m)) if m.contains("_start")
        ));
        assert!(matches!(
            containers.start("bad"),
            Err(ContainerError::Unknown(_))
        ));

        let (watcher, watched) = UnixStream::pair().unwrap();
        containers.watch_exits(watcher).unwrap();
        let mut exits = std::io::BufRead::lines(std::io::BufReader::new(watched));
        let hello = launch(dir.path(), "hello", PROBE, &[]);
        containers.create_wasm(hello.clone()).unwrap();
        assert!(matches!(
            containers.create_wasm(hello.clone()),
            Err(ContainerError::State(_))
        ));
        let started_at = containers.start("hello").unwrap();
        wait_for_end(&containers, "hello");
        assert_eq!(
            exits.next().unwrap().unwrap(),
            "hello",
            "the watcher is told"
        );
        let exit = exit_of(&hello);
        assert_eq!((exit.exit_code, exit.started_at), (0, started_at));
        assert!(exit.finished_at >= started_at);
        assert!(
            containers.ids().is_empty(),
            "a wasm container is forgotten when it ends"
        );
        let log = std::fs::read_to_string(hello.log_path.as_ref().unwrap()).unwrap();
        assert!(log.ends_with(" stdout F hello from wasm\n"), "{log}");

        let grow = launch(dir.path(), "grow", PROBE, &["grow"]);
        containers.create_wasm(grow.clone()).unwrap();
        containers.start("grow").unwrap();
        wait_for_end(&containers, "grow");
        assert_eq!(exit_of(&grow).reason, "OOMKilled");

        let looping = launch(dir.path(), "loop", PROBE, &["loop"]);
        containers.create_wasm(looping.clone()).unwrap();
        assert!(containers.removes_at_once("loop"), "never started");
        containers.start("loop").unwrap();
        assert!(!containers.removes_at_once("loop"), "running");
        assert!(matches!(
            containers.remove("loop"),
            Err(ContainerError::State(_))
        ));
        assert_eq!(
            containers.started().keys().collect::<Vec<_>>(),
            ["loop"],
            "started and not ended"
        );
        containers.stop("loop", Duration::ZERO).unwrap();
        let exit = exit_of(&looping);
        assert_eq!(
            (exit.exit_code, exit.message.as_str()),
            (137, "stopped by StopContainer")
        );
        assert!(
            matches!(containers.remove("loop"), Err(ContainerError::Unknown(_))),
            "forgotten when it ended"
        );
    }
}
