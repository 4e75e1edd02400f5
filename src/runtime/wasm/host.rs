//! Running wasm containers inside a pod's monitor: one engine (pooling allocator, epoch
//! interruption) per monitor, artifacts loaded from their precompiled files, `InstancePre`s
//! shared by containers of the same artifact, one Store per container with its own memory
//! limit and its own epoch deadline, so stopping one container never interrupts another.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use wasmtime::component::ResourceTable;
use wasmtime::{
    Engine, InstanceAllocationStrategy, Linker, Module, PoolingAllocationConfig, ResourceLimiter,
    Store, UpdateDeadline,
};
use wasmtime_wasi::cli::AsyncStdinStream;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::logs::{CriLog, LogStream};
use crate::runtime::wasm::binary::WasmBinary;
use crate::runtime::wasm::engine;
use crate::runtime::wasm::launch::{ExitRecord, WasmLaunch};
use crate::runtime::wasm::output::LogOutput;

/// Why a container could not be created.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// The artifact is not runnable here (missing export, unknown import, not wasm).
    #[error("{0}")]
    Invalid(String),
    /// The host failed (the engine, the file).
    #[error("{0}")]
    Host(String),
}

/// A module or component ready to instantiate.
#[derive(Clone)]
pub enum Prepared {
    /// A WASI p1 core module with a `_start`.
    Module(wasmtime::InstancePre<ModuleState>),
    /// A WASI p2 command component.
    Component(CommandPre<ComponentState>),
}

/// Store data of a core module.
pub struct ModuleState {
    wasi: WasiP1Ctx,
    limits: MemoryLimit,
}

/// Store data of a component.
pub struct ComponentState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: MemoryLimit,
}

impl WasiView for ComponentState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Refuses memory growth past the container's limit, and remembers that it did.
struct MemoryLimit {
    limit: Option<u64>,
    exceeded: Arc<Mutex<Option<String>>>,
}

impl ResourceLimiter for MemoryLimit {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        match self.limit {
            Some(limit) if desired as u64 > limit => {
                let message = format!(
                    "memory limit of {limit} bytes exceeded: the guest tried to grow its memory \
                     from {current} to {desired} bytes"
                );
                *self.exceeded.lock().unwrap_or_else(|e| e.into_inner()) = Some(message.clone());
                Err(wasmtime::format_err!(message))
            }
            _ => Ok(true),
        }
    }

    fn table_growing(&mut self, _: usize, _: usize, _: Option<usize>) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

/// The wasm side of one monitor.
pub struct WasmHost {
    engine: Engine,
    module_linker: Linker<ModuleState>,
    component_linker: wasmtime::component::Linker<ComponentState>,
    prepared: Mutex<HashMap<PathBuf, Prepared>>,
}

/// Exit code of a trapped guest (as `wasmtime run` reports one: 128 + SIGABRT).
const TRAP_EXIT: i32 = 134;
/// Exit code of a guest stopped by StopContainer or over its memory limit (128 + SIGKILL).
const KILLED_EXIT: i32 = 137;

impl WasmHost {
    /// The engine and the WASI linkers; done once per monitor, at its first wasm container.
    pub fn new() -> Result<WasmHost, PrepareError> {
        let mut config = engine::config();
        let mut pool = PoolingAllocationConfig::default();
        pool.total_core_instances(256)
            .total_component_instances(256)
            .total_memories(256)
            .total_tables(256)
            .total_stacks(256);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let host = |e: wasmtime::Error| PrepareError::Host(format!("{e:#}"));
        let engine = Engine::new(&config).map_err(host)?;
        let mut module_linker = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut module_linker, |s: &mut ModuleState| {
            &mut s.wasi
        })
        .map_err(host)?;
        let mut component_linker = wasmtime::component::Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut component_linker).map_err(host)?;
        Ok(WasmHost {
            engine,
            module_linker,
            component_linker,
            prepared: Mutex::new(HashMap::new()),
        })
    }

    /// Loads (once per artifact) and checks what `launch` runs: a module must export a
    /// `_start` function and a component `wasi:cli/run`, and every import must be one the
    /// host provides.
    pub fn prepare(&self, launch: &WasmLaunch) -> Result<Prepared, PrepareError> {
        let mut cache = self.prepared.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(prepared) = cache.get(&launch.artifact) {
            return Ok(prepared.clone());
        }
        let invalid = |e: wasmtime::Error| PrepareError::Invalid(format!("{e:#}"));
        if !launch.artifact.is_file() {
            return Err(PrepareError::Host(format!(
                "precompiled artifact {} is missing",
                launch.artifact.display()
            )));
        }
        // SAFETY: the file was written by our own precompiler with this engine's settings,
        // in a directory only root writes, and is not modified while in use.
        let prepared = match launch.binary {
            WasmBinary::Module => {
                let module = unsafe { Module::deserialize_file(&self.engine, &launch.artifact) }
                    .map_err(|e| {
                        PrepareError::Host(format!("load {}: {e:#}", launch.artifact.display()))
                    })?;
                match module.get_export("_start") {
                    Some(wasmtime::ExternType::Func(_)) => {}
                    _ => {
                        return Err(PrepareError::Invalid(
                            "the module has no `_start` function to run (not a WASI command)"
                                .into(),
                        ));
                    }
                }
                Prepared::Module(
                    self.module_linker
                        .instantiate_pre(&module)
                        .map_err(invalid)?,
                )
            }
            WasmBinary::Component => {
                let component = unsafe {
                    wasmtime::component::Component::deserialize_file(&self.engine, &launch.artifact)
                }
                .map_err(|e| {
                    PrepareError::Host(format!("load {}: {e:#}", launch.artifact.display()))
                })?;
                let pre = self
                    .component_linker
                    .instantiate_pre(&component)
                    .map_err(invalid)?;
                Prepared::Component(CommandPre::new(pre).map_err(|e| {
                    PrepareError::Invalid(format!(
                        "the component does not export `wasi:cli/run`: {e:#}"
                    ))
                })?)
            }
        };
        cache.insert(launch.artifact.clone(), prepared.clone());
        Ok(prepared)
    }

    /// Interrupts the Stores whose stop flag is set (only those: the others continue).
    pub fn interrupt(&self) {
        self.engine.increment_epoch();
    }

    /// Runs a prepared container to its end on the calling thread and says how it ended.
    /// [`StopSignal::stop`] ends it: a guest computing traps at its next epoch check, one
    /// waiting in a host call has that call cancelled. `stdin` is the read end of its stdin
    /// pipe (none: the guest reads EOF).
    pub fn run(
        &self,
        prepared: &Prepared,
        launch: &WasmLaunch,
        log: Arc<Mutex<CriLog>>,
        stop: Arc<StopSignal>,
        stdin: Option<OwnedFd>,
    ) -> ExitRecord {
        let exceeded = Arc::new(Mutex::new(None));
        let limits = MemoryLimit {
            limit: launch.memory_limit,
            exceeded: exceeded.clone(),
        };
        let outcome = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Err(e) => Err(wasmtime::format_err!(
                "start the container's async runtime: {e}"
            )),
            Ok(runtime) => runtime.block_on(async {
                tokio::select! {
                    // A stop already asked for wins before the guest runs at all.
                    biased;
                    () = stop.notify.notified() => {
                        Err(wasmtime::format_err!("stopped by StopContainer"))
                    }
                    outcome = self.execute(prepared, launch, &log, stdin, limits, &stop) => outcome,
                }
            }),
        };
        let _ = log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .flush_partial();
        let exceeded = exceeded.lock().unwrap_or_else(|e| e.into_inner()).take();
        ending(outcome, exceeded, stop.flag.load(Ordering::SeqCst))
    }

    async fn execute(
        &self,
        prepared: &Prepared,
        launch: &WasmLaunch,
        log: &Arc<Mutex<CriLog>>,
        stdin: Option<OwnedFd>,
        limits: MemoryLimit,
        stop: &Arc<StopSignal>,
    ) -> wasmtime::Result<()> {
        let mut builder = self
            .wasi(launch, log)
            .map_err(|m| wasmtime::format_err!(m))?;
        if let Some(stdin) = stdin {
            // Read on the container's own runtime: a guest waiting for input blocks only itself.
            let pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(stdin)
                .map_err(|e| wasmtime::format_err!("open the container's stdin pipe: {e}"))?;
            builder.stdin(AsyncStdinStream::new(pipe));
        }
        match prepared {
            Prepared::Module(pre) => {
                let state = ModuleState {
                    wasi: builder.build_p1(),
                    limits,
                };
                let mut store = Store::new(&self.engine, state);
                store.limiter(|s| &mut s.limits);
                watch_stop(&mut store, stop.clone());
                let instance = pre.instantiate_async(&mut store).await?;
                instance
                    .get_typed_func::<(), ()>(&mut store, "_start")?
                    .call_async(&mut store, ())
                    .await
            }
            Prepared::Component(pre) => {
                let state = ComponentState {
                    wasi: builder.build(),
                    table: ResourceTable::new(),
                    limits,
                };
                let mut store = Store::new(&self.engine, state);
                store.limiter(|s| &mut s.limits);
                watch_stop(&mut store, stop.clone());
                let command = pre.instantiate_async(&mut store).await?;
                command
                    .wasi_cli_run()
                    .call_run(&mut store)
                    .await?
                    .map_err(|()| wasmtime::Error::new(I32Exit(1)))
            }
        }
    }

    fn wasi(
        &self,
        launch: &WasmLaunch,
        log: &Arc<Mutex<CriLog>>,
    ) -> Result<WasiCtxBuilder, String> {
        let mut builder = WasiCtxBuilder::new();
        builder
            .args(&launch.argv)
            .envs(&launch.env)
            .stdout(LogOutput::new(log.clone(), LogStream::Stdout))
            .stderr(LogOutput::new(log.clone(), LogStream::Stderr))
            // The pod's network namespace is the guest's: any address there, TCP and UDP (both
            // are off unless allowed), and name lookups.
            .inherit_network()
            .allow_tcp(true)
            .allow_udp(true)
            .allow_ip_name_lookup(true);
        for preopen in &launch.preopens {
            let perms = if preopen.readonly {
                FsPerms::ReadOnly
            } else {
                FsPerms::ReadWrite
            };
            builder
                .preopened_dir(&preopen.host, &preopen.guest, perms)
                .map_err(|e| {
                    format!(
                        "preopen {} at {}: {e:#}",
                        preopen.host.display(),
                        preopen.guest
                    )
                })?;
        }
        Ok(builder)
    }
}

/// Tells one running container to stop.
#[derive(Default)]
pub struct StopSignal {
    flag: AtomicBool,
    notify: tokio::sync::Notify,
}

impl StopSignal {
    /// Asks the container to stop; [`WasmHost::interrupt`] must follow for a guest that is
    /// computing to notice.
    pub fn stop(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.notify.notify_one();
    }
}

/// Each Store checks its own flag at every epoch tick: set, it traps; otherwise it goes on.
/// A stop that came before the Store existed (its epoch tick already spent) makes the
/// deadline the current epoch, so the guest traps at its first check.
fn watch_stop<T>(store: &mut Store<T>, stop: Arc<StopSignal>) {
    store.set_epoch_deadline(1);
    // After setting the deadline: a stop from now on ticks the epoch past it.
    if stop.flag.load(Ordering::SeqCst) {
        store.set_epoch_deadline(0);
    }
    store.epoch_deadline_callback(move |_| {
        if stop.flag.load(Ordering::SeqCst) {
            Err(wasmtime::format_err!("stopped by StopContainer"))
        } else {
            Ok(UpdateDeadline::Continue(1))
        }
    });
}

/// The exit record of a run's outcome (the start time is the monitor's to fill in).
fn ending(outcome: wasmtime::Result<()>, exceeded: Option<String>, stopped: bool) -> ExitRecord {
    let record = |exit_code: i32, reason: &str, message: String| ExitRecord {
        exit_code,
        finished_at: crate::sandbox::now_nanos(),
        reason: reason.to_string(),
        message,
        ..ExitRecord::default()
    };
    match outcome {
        Ok(()) => record(0, "Completed", String::new()),
        Err(e) => {
            if let Some(exit) = e.downcast_ref::<I32Exit>() {
                let reason = if exit.0 == 0 { "Completed" } else { "Error" };
                return record(exit.0, reason, String::new());
            }
            if let Some(message) = exceeded {
                return record(KILLED_EXIT, "OOMKilled", message);
            }
            if stopped {
                return record(KILLED_EXIT, "Error", "stopped by StopContainer".into());
            }
            let mut message = format!("wasm trap: {e:#}");
            // The guest's names are in the backtrace: cut on a character boundary.
            let mut end = message.len().min(4096);
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            record(TRAP_EXIT, "Error", message)
        }
    }
}
