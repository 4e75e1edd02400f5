//! The containers a monitor runs. Wasm containers run on threads of the monitor itself; each
//! records its own exit to disk (atomically) when it ends.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use crate::logs::CriLog;
use crate::runtime::wasm::host::{PrepareError, Prepared, StopSignal, WasmHost};
use crate::runtime::wasm::launch::{ExitRecord, WasmLaunch};
use crate::store::checkpoint;

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

/// Set once by the container's thread when it has ended and its exit is on disk.
#[derive(Default)]
struct Ended {
    done: Mutex<bool>,
    signal: Condvar,
}

impl Ended {
    fn set(&self) {
        *self.done.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.signal.notify_all();
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
    Running,
}

struct Slot {
    launch: WasmLaunch,
    prepared: Prepared,
    log: Arc<Mutex<CriLog>>,
    stop: Arc<StopSignal>,
    ended: Arc<Ended>,
    phase: Phase,
}

/// The monitor's container table.
#[derive(Default)]
pub struct PodContainers {
    wasm: OnceLock<Result<Arc<WasmHost>, String>>,
    slots: Mutex<HashMap<String, Slot>>,
}

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
        let mut slots = self.lock();
        if slots.contains_key(&launch.container_id) {
            return Err(ContainerError::State(format!(
                "container {} exists already",
                launch.container_id
            )));
        }
        slots.insert(
            launch.container_id.clone(),
            Slot {
                launch,
                prepared,
                log: Arc::new(Mutex::new(log)),
                stop: Arc::new(StopSignal::default()),
                ended: Arc::new(Ended::default()),
                phase: Phase::Created,
            },
        );
        Ok(())
    }

    /// Starts a created container on a thread of its own.
    pub fn start(&self, id: &str) -> Result<(), ContainerError> {
        let host = self.wasm()?;
        let mut slots = self.lock();
        let slot = slots.get_mut(id).ok_or_else(|| unknown(id))?;
        if !matches!(slot.phase, Phase::Created) {
            return Err(ContainerError::State(format!(
                "container {id} was started already"
            )));
        }
        let (prepared, launch, log, stop, ended) = (
            slot.prepared.clone(),
            slot.launch.clone(),
            slot.log.clone(),
            slot.stop.clone(),
            slot.ended.clone(),
        );
        std::thread::Builder::new()
            .name(format!("wasm-{}", id.chars().take(12).collect::<String>()))
            .spawn(move || {
                let run = std::panic::AssertUnwindSafe(|| host.run(&prepared, &launch, log, stop));
                let exit = std::panic::catch_unwind(run).unwrap_or_else(|_| ExitRecord {
                    exit_code: 255,
                    finished_at: crate::sandbox::now_nanos(),
                    reason: "Error".into(),
                    message: "crishim: the container's thread failed (a bug in the monitor)".into(),
                });
                if let Err(e) = checkpoint::write(&launch.exit_file, &exit) {
                    eprintln!(
                        "container {}: cannot record its exit: {e}",
                        launch.container_id
                    );
                }
                ended.set();
            })
            .map_err(|e| ContainerError::Host(format!("start a thread for {id}: {e}")))?;
        slot.phase = Phase::Running;
        Ok(())
    }

    /// Waits up to `timeout` for the container to end, then interrupts it. A container that
    /// is not running is stopped already.
    pub fn stop(&self, id: &str, timeout: Duration) -> Result<(), ContainerError> {
        let (stop, ended) = {
            let slots = self.lock();
            let slot = slots.get(id).ok_or_else(|| unknown(id))?;
            if !matches!(slot.phase, Phase::Running) {
                return Ok(());
            }
            (slot.stop.clone(), slot.ended.clone())
        };
        if ended.wait(timeout) {
            return Ok(());
        }
        stop.stop();
        self.wasm()?.interrupt();
        if ended.wait(INTERRUPT_GRACE) {
            Ok(())
        } else {
            Err(ContainerError::Host(format!(
                "container {id} did not stop within {} s of its interruption (it is blocked in a host call)",
                INTERRUPT_GRACE.as_secs()
            )))
        }
    }

    /// Forgets a container that is not running (a running one must be stopped first); an
    /// unknown one is Unknown, which the daemon takes as forgotten already.
    pub fn remove(&self, id: &str) -> Result<(), ContainerError> {
        let mut slots = self.lock();
        let slot = slots.get(id).ok_or_else(|| unknown(id))?;
        if matches!(slot.phase, Phase::Running) && !slot.ended.wait(Duration::ZERO) {
            return Err(ContainerError::State(format!("container {id} is running")));
        }
        slots.remove(id);
        Ok(())
    }

    /// Reopens a running container's log file at its path.
    pub fn reopen_log(&self, id: &str) -> Result<(), ContainerError> {
        let slots = self.lock();
        let slot = slots.get(id).ok_or_else(|| unknown(id))?;
        if !matches!(slot.phase, Phase::Running) || slot.ended.wait(Duration::ZERO) {
            return Err(ContainerError::State(format!(
                "container {id} is not running"
            )));
        }
        let result = slot.log.lock().unwrap_or_else(|e| e.into_inner()).reopen();
        result.map_err(|e| ContainerError::Host(e.to_string()))
    }

    /// Interrupts every running container and waits for their exits to be recorded.
    pub fn stop_all(&self) {
        let ids: Vec<String> = self.lock().keys().cloned().collect();
        for id in ids {
            if let Err(e) = self.stop(&id, Duration::ZERO) {
                eprintln!("stopping {id}: {e:?}");
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn unknown(id: &str) -> ContainerError {
    ContainerError::Unknown(format!("the pod's monitor has no container {id}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::wasm::binary::WasmBinary;
    use crate::runtime::wasm::engine;

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
        }
    }

    fn exit_of(launch: &WasmLaunch) -> ExitRecord {
        checkpoint::read(&launch.exit_file).unwrap()
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

        let hello = launch(dir.path(), "hello", PROBE, &[]);
        containers.create_wasm(hello.clone()).unwrap();
        assert!(matches!(
            containers.create_wasm(hello.clone()),
            Err(ContainerError::State(_))
        ));
        containers.start("hello").unwrap();
        containers.stop("hello", Duration::from_secs(10)).unwrap();
        assert_eq!(exit_of(&hello).exit_code, 0);
        let log = std::fs::read_to_string(hello.log_path.as_ref().unwrap()).unwrap();
        assert!(log.ends_with(" stdout F hello from wasm\n"), "{log}");

        let grow = launch(dir.path(), "grow", PROBE, &["grow"]);
        containers.create_wasm(grow.clone()).unwrap();
        containers.start("grow").unwrap();
        containers.stop("grow", Duration::from_secs(10)).unwrap();
        assert_eq!(exit_of(&grow).reason, "OOMKilled");

        let looping = launch(dir.path(), "loop", PROBE, &["loop"]);
        containers.create_wasm(looping.clone()).unwrap();
        containers.start("loop").unwrap();
        assert!(matches!(
            containers.remove("loop"),
            Err(ContainerError::State(_))
        ));
        containers.stop("loop", Duration::ZERO).unwrap();
        let exit = exit_of(&looping);
        assert_eq!(
            (exit.exit_code, exit.message.as_str()),
            (137, "stopped by StopContainer")
        );
        containers.remove("loop").unwrap();
        assert!(matches!(
            containers.reopen_log("loop"),
            Err(ContainerError::Unknown(_))
        ));
    }
}
