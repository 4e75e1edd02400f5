//! `crishim helper`: the short-lived, single-threaded process that calls libcontainer, so that
//! nothing ever forks the multi-threaded daemon or monitor (libcontainer does a lot between
//! clone and exec). `create` makes a container whose init waits for StartContainer and
//! reparents to the pod monitor when the helper exits; `exec` runs a command in a running
//! container and reports its output and exit code. Each prints one JSON line on stdout.

use std::io::Write;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;

use crate::runtime::linux::launch::{CreateOutcome, ExecOutcome};
use crate::runtime::linux::stdio::{self, OutputPipes, PumpEnd};

/// The fd on which `helper create` receives the container's stdout (write end).
pub const CONTAINER_STDOUT_FD: i32 = 3;
/// The fd on which `helper create` receives the container's stderr (write end).
pub const CONTAINER_STDERR_FD: i32 = 4;

/// Most output an exec returns per stream; the rest is dropped (kubelet's probes read little).
const EXEC_OUTPUT_LIMIT: usize = 16 << 20;

/// The helper's operations.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum HelperCommand {
    /// Create a container from an OCI bundle; its stdout and stderr are fds 3 and 4, and with
    /// `--stdin` its stdin is the helper's own.
    Create {
        /// libcontainer's state root.
        #[arg(long)]
        state_root: PathBuf,
        /// The OCI bundle.
        #[arg(long)]
        bundle: PathBuf,
        /// Container id.
        #[arg(long)]
        id: String,
        /// The container reads the helper's stdin (else /dev/null).
        #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
        stdin: bool,
    },
    /// Run a command in a running container, killing it after the timeout; its output is in
    /// the answer, or with `--stream` it goes to fds 3 and 4 as it comes.
    Exec {
        /// libcontainer's state root.
        #[arg(long)]
        state_root: PathBuf,
        /// Container id.
        #[arg(long)]
        id: String,
        /// Timeout in milliseconds; 0 means none.
        #[arg(long, default_value_t = 0)]
        timeout_ms: u64,
        /// The command's stdout and stderr are fds 3 and 4 (write ends), not collected.
        #[arg(long)]
        stream: bool,
        /// The command reads the helper's stdin (else /dev/null).
        #[arg(long)]
        stdin: bool,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        argv: Vec<String>,
    },
}

/// Runs a helper command; returns the process exit code (the outcome is on stdout).
pub fn run(command: HelperCommand) -> i32 {
    if let Err(message) = own_proc() {
        let failed = match command {
            HelperCommand::Create { .. } => {
                serde_json::to_string(&CreateOutcome::Failed { message })
            }
            HelperCommand::Exec { .. } => serde_json::to_string(&ExecOutcome::Failed { message }),
        };
        if let Ok(line) = failed {
            println!("{line}");
        }
        return 1;
    }
    let line = match command {
        HelperCommand::Create {
            state_root,
            bundle,
            id,
            stdin,
        } => serde_json::to_string(&create(state_root, bundle, id, stdin)),
        HelperCommand::Exec {
            state_root,
            id,
            timeout_ms,
            stream,
            stdin,
            argv,
        } => {
            let timeout = (timeout_ms > 0).then(|| Duration::from_millis(timeout_ms));
            let outcome = match stream {
                true => exec_streaming(state_root, id, argv, stdin),
                false => exec(state_root, id, argv, timeout),
            };
            serde_json::to_string(&outcome)
        }
    };
    let Ok(line) = line else { return 1 };
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
        return 1;
    }
    0
}

/// Gives the helper a /proc of its own pid namespace when the host's /proc is not (the pod's
/// monitor is pid 1 of a pid namespace the pod's containers share): libcontainer looks pids
/// of its namespace up in /proc. The mount namespace is private to the helper (and the
/// containers it creates, which pivot into their own root anyway).
fn own_proc() -> Result<(), String> {
    let seen = std::fs::read_link("/proc/self")
        .ok()
        .and_then(|p| p.to_str()?.parse::<u32>().ok());
    if seen == Some(std::process::id()) {
        return Ok(());
    }
    use nix::mount::{MsFlags, mount};
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| format!("unshare a mount namespace for the helper: {e}"))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .map_err(|e| format!("make the helper's mounts slaves: {e}"))?;
    mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|e| format!("mount the pod's /proc for the helper: {e}"))
}

fn create(state_root: PathBuf, bundle: PathBuf, id: String, stdin: bool) -> CreateOutcome {
    let failed = |message: String| CreateOutcome::Failed { message };
    // SAFETY: the monitor placed the container's output pipes on these fds for us, and
    // nothing else in this process owns them.
    let (stdout, stderr) = unsafe {
        (
            OwnedFd::from_raw_fd(CONTAINER_STDOUT_FD),
            OwnedFd::from_raw_fd(CONTAINER_STDERR_FD),
        )
    };
    let builder = match builder(&state_root, id) {
        Ok(b) => b,
        Err(message) => return failed(message),
    };
    let builder = match stdin {
        true => match std::io::stdin().as_fd().try_clone_to_owned() {
            Ok(fd) => builder.with_stdin(fd),
            Err(e) => return failed(format!("duplicate the helper's stdin: {e}")),
        },
        false => builder,
    };
    let built = builder
        .with_stdout(stdout)
        .with_stderr(stderr)
        .as_init(&bundle)
        .with_systemd(false)
        .with_detach(true)
        .build();
    match built {
        Ok(container) => match container.pid() {
            Some(pid) => CreateOutcome::Created { pid: pid.as_raw() },
            None => failed("libcontainer created the container but reported no pid".into()),
        },
        Err(e) => failed(describe(&e)),
    }
}

/// libcontainer's builder for container `id` under `state_root`, with /dev/null for stdin.
fn builder(state_root: &Path, id: String) -> Result<ContainerBuilder, String> {
    let stdin = std::fs::File::open("/dev/null").map_err(|e| format!("open /dev/null: {e}"))?;
    let builder = ContainerBuilder::new(id, SyscallType::Linux)
        .with_root_path(state_root)
        .map_err(|e| format!("state root {}: {e}", state_root.display()))?;
    Ok(builder.with_stdin(OwnedFd::from(stdin)))
}

/// libcontainer's error with its sources, which hold the useful part.
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn exec(
    state_root: PathBuf,
    id: String,
    argv: Vec<String>,
    timeout: Option<Duration>,
) -> ExecOutcome {
    let failed = |message: String| ExecOutcome::Failed { message };
    let process = match exec_process_file(&state_root, &id, argv) {
        Ok(p) => p,
        Err(message) => return failed(message),
    };
    let (Ok((out_r, out_w)), Ok((err_r, err_w))) = (stdio::pipe(), stdio::pipe()) else {
        return failed("cannot create the exec's output pipes".into());
    };
    let builder = match builder(&state_root, id) {
        Ok(b) => b,
        Err(message) => return failed(message),
    };
    let started = Instant::now();
    let pid = match start_exec(builder, out_w, err_w, &process) {
        Ok(pid) => pid,
        Err(message) => return failed(message),
    };
    let pidfd = match crate::os::process::Pidfd::open(pid) {
        Ok(p) => p,
        Err(e) => return failed(format!("pidfd of exec process {pid}: {e}")),
    };
    let pipes = OutputPipes {
        stdout: out_r,
        stderr: err_r,
    };
    let mut output = [Vec::new(), Vec::new()];
    let deadline = timeout.map(|t| started + t);
    let end = stdio::pump(&pipes, Some(&pidfd), deadline, &mut |stream, bytes| {
        let kept = &mut output[stream as usize];
        let room = EXEC_OUTPUT_LIMIT.saturating_sub(kept.len());
        kept.extend_from_slice(&bytes[..bytes.len().min(room)]);
    });
    let timed_out = end == PumpEnd::DeadlineReached;
    if timed_out {
        let _ = pidfd.signal(libc::SIGKILL);
    }
    let status = match wait_exit_code(pid) {
        Ok(code) => code,
        Err(message) => return failed(message),
    };
    let [stdout, stderr] = output;
    let b64 = base64::engine::general_purpose::STANDARD;
    ExecOutcome::Exited {
        exit_code: status,
        timed_out,
        stdout: b64.encode(stdout),
        stderr: b64.encode(stderr),
    }
}

/// Runs `argv` in the container with its stdout and stderr on the fds the monitor passed (3
/// and 4), and the helper's stdin when `stdin` is set; waits for it to exit.
fn exec_streaming(state_root: PathBuf, id: String, argv: Vec<String>, stdin: bool) -> ExecOutcome {
    let failed = |message: String| ExecOutcome::Failed { message };
    let process = match exec_process_file(&state_root, &id, argv) {
        Ok(p) => p,
        Err(message) => return failed(message),
    };
    // SAFETY: the monitor placed the exec's output pipes on these fds for us, and nothing
    // else in this process owns them.
    let (stdout, stderr) = unsafe {
        (
            OwnedFd::from_raw_fd(CONTAINER_STDOUT_FD),
            OwnedFd::from_raw_fd(CONTAINER_STDERR_FD),
        )
    };
    let mut builder = match builder(&state_root, id) {
        Ok(b) => b,
        Err(message) => return failed(message),
    };
    if stdin {
        match std::io::stdin().as_fd().try_clone_to_owned() {
            Ok(fd) => builder = builder.with_stdin(fd),
            Err(e) => return failed(format!("duplicate the helper's stdin: {e}")),
        }
    }
    let pid = match start_exec(builder, stdout, stderr, &process) {
        Ok(pid) => pid,
        Err(message) => return failed(message),
    };
    if let Err(message) = forward_sigterm_to(pid) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = wait_exit_code(pid);
        return failed(message);
    }
    if let Ok(line) = serde_json::to_string(&ExecOutcome::Started) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    }
    // Wait without reaping first: while the command is a zombie its pid cannot name another
    // process, so a SIGTERM until then kills only the command.
    let _ = nix::sys::wait::waitid(
        nix::sys::wait::Id::Pid(nix::unistd::Pid::from_raw(pid)),
        nix::sys::wait::WaitPidFlag::WEXITED | nix::sys::wait::WaitPidFlag::WNOWAIT,
    );
    EXEC_TO_KILL.store(0, Ordering::SeqCst);
    match wait_exit_code(pid) {
        Ok(exit_code) => ExecOutcome::Exited {
            exit_code,
            timed_out: false,
            stdout: String::new(),
            stderr: String::new(),
        },
        Err(message) => failed(message),
    }
}

/// The command a streaming exec's helper kills on SIGTERM (0: none).
static EXEC_TO_KILL: AtomicI32 = AtomicI32::new(0);

extern "C" fn kill_exec(_: libc::c_int) {
    let pid = EXEC_TO_KILL.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

/// Makes SIGTERM to the helper kill the command `pid` (the monitor ends an exec whose client
/// went away this way: the helper, its child, is the one that knows the command's pid is not
/// reused).
fn forward_sigterm_to(pid: i32) -> Result<(), String> {
    EXEC_TO_KILL.store(pid, Ordering::SeqCst);
    let action = nix::sys::signal::SigAction::new(
        nix::sys::signal::SigHandler::Handler(kill_exec),
        nix::sys::signal::SaFlags::SA_RESTART,
        nix::sys::signal::SigSet::empty(),
    );
    // SAFETY: the handler only reads an atomic and calls kill(2).
    unsafe { nix::sys::signal::sigaction(nix::sys::signal::Signal::SIGTERM, &action) }
        .map(drop)
        .map_err(|e| format!("install the exec's SIGTERM handler: {e}"))
}

/// Starts the exec described by `process` in the container, its output on `stdout` and
/// `stderr`: its host pid.
fn start_exec(
    builder: ContainerBuilder,
    stdout: OwnedFd,
    stderr: OwnedFd,
    process: &tempfile::NamedTempFile,
) -> Result<i32, String> {
    builder
        .with_stdout(stdout)
        .with_stderr(stderr)
        .as_tenant()
        .with_process(Some(process.path()))
        .with_detach(true)
        .build()
        .map(|pid| pid.as_raw())
        .map_err(|e| describe(&e))
}

/// Waits for exec process `pid`: its exit code, 128 + the signal that killed it.
fn wait_exit_code(pid: i32) -> Result<i32, String> {
    match nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None) {
        Ok(nix::sys::wait::WaitStatus::Exited(_, code)) => Ok(code),
        Ok(nix::sys::wait::WaitStatus::Signaled(_, signal, _)) => Ok(128 + signal as i32),
        Ok(other) => Err(format!("exec process {pid}: unexpected status {other:?}")),
        Err(e) => Err(format!("wait for exec process {pid}: {e}")),
    }
}

/// The container's own process (user, env, cwd, capabilities, no_new_privs) with the exec's
/// argv, written where libcontainer's tenant builder reads it.
fn exec_process_file(
    state_root: &std::path::Path,
    id: &str,
    argv: Vec<String>,
) -> Result<tempfile::NamedTempFile, String> {
    let container = libcontainer::container::Container::load(state_root.join(id))
        .map_err(|e| format!("container {id}: {}", describe(&e)))?;
    let config = container.bundle().join("config.json");
    let spec = oci_spec::runtime::Spec::load(&config)
        .map_err(|e| format!("read {}: {e}", config.display()))?;
    let mut process = spec
        .process()
        .clone()
        .ok_or_else(|| format!("{} has no process", config.display()))?;
    process.set_args(Some(argv));
    process.set_terminal(Some(false));
    let file = tempfile::Builder::new()
        .prefix("exec-")
        .suffix(".json")
        .tempfile_in(state_root)
        .map_err(|e| format!("create exec process file in {}: {e}", state_root.display()))?;
    serde_json::to_writer(file.as_file(), &process)
        .map_err(|e| format!("write {}: {e}", file.path().display()))?;
    Ok(file)
}
