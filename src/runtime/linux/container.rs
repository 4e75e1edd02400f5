//! A Linux container as its pod monitor holds it: created by a `crishim helper` process, its
//! init a child of the monitor (a subreaper) once the helper exits, its output pipes read into
//! the CRI log, its exit reaped through a pidfd and recorded with the reason (OOMKilled from
//! the container's memory cgroup).

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::logs::CriLog;
use crate::monitor::containers::ContainerError;
use crate::monitor::orphans::Orphans;
use crate::os::process::Pidfd;
use crate::runtime::linux::helper::{CONTAINER_STDERR_FD, CONTAINER_STDOUT_FD};
use crate::runtime::linux::launch::{CreateOutcome, ExecOutcome, LinuxLaunch};
use crate::runtime::linux::stdio::{self, OutputPipes};
use crate::runtime::wasm::launch::ExitRecord;

/// An exec started by `helper exec --stream`: its output pipes, and the helper that waits for
/// the command, reports its exit code, and kills it on SIGTERM (when its client goes away).
pub struct StreamingExec {
    helper: std::process::Child,
    answers: BufReader<std::process::ChildStdout>,
    helper_pidfd: Arc<Pidfd>,
    pipes: OutputPipes,
    orphans: Arc<Orphans>,
}

impl StreamingExec {
    /// The read ends of the exec's stdout and stderr.
    pub fn pipes(&self) -> &OutputPipes {
        &self.pipes
    }

    /// The helper, which exits once the exec has.
    pub fn helper(&self) -> &Pidfd {
        &self.helper_pidfd
    }

    /// Kills the command: SIGTERM to the helper, which kills it while it knows its pid is
    /// still the command's (nothing once the helper has been reaped).
    pub fn killer(&self) -> impl Fn() + Send + 'static {
        let helper = self.helper_pidfd.clone();
        move || {
            let _ = helper.signal(libc::SIGTERM);
        }
    }

    /// Waits for the helper: the exec's exit code, or why it could not run.
    pub fn finish(mut self) -> Result<i32, String> {
        let answer = read_answer(&mut self.answers);
        let status = self.helper.wait();
        self.orphans.release(self.helper.id() as i32);
        match answer {
            Ok(ExecOutcome::Exited { exit_code, .. }) => Ok(exit_code),
            Ok(ExecOutcome::Failed { message }) => Err(message),
            other => Err(format!("the exec helper answered {other:?} ({status:?})")),
        }
    }
}

/// The helper's next answer line.
fn read_answer(answers: &mut impl BufRead) -> Result<ExecOutcome, String> {
    let mut line = String::new();
    answers
        .read_line(&mut line)
        .map_err(|e| format!("read the exec helper's answer: {e}"))?;
    serde_json::from_str(line.trim()).map_err(|e| format!("{line:?}: {e}"))
}

/// Kills and reaps a helper whose exec cannot go on.
fn abandon(mut helper: std::process::Child, orphans: &Orphans) {
    let _ = helper.kill();
    let _ = helper.wait();
    orphans.release(helper.id() as i32);
}

/// A created Linux container: its init waits for [`LinuxContainer::start`].
pub struct LinuxContainer {
    launch: LinuxLaunch,
    init: Pidfd,
    init_pid: i32,
    orphans: Arc<Orphans>,
    /// When [`Self::start`] was called (Unix nanoseconds), for the exit record; 0 until then.
    started_at: AtomicI64,
}

impl LinuxContainer {
    /// Runs `exe helper create` for `launch` and waits for it; returns the container and the
    /// read ends of its output pipes. `stdin` is the read end of its stdin pipe, if it has one.
    pub fn create(
        exe: &Path,
        launch: LinuxLaunch,
        stdin: Option<OwnedFd>,
        orphans: Arc<Orphans>,
    ) -> Result<(LinuxContainer, OutputPipes), ContainerError> {
        let host = |what: &str, e: std::io::Error| {
            ContainerError::Host(format!("container {}: {what}: {e}", launch.container_id))
        };
        std::fs::create_dir_all(&launch.state_root)
            .map_err(|e| host(&format!("create {}", launch.state_root.display()), e))?;
        let (out_r, out_w) = stdio::pipe().map_err(|e| host("create pipes", e))?;
        let (err_r, err_w) = stdio::pipe().map_err(|e| host("create pipes", e))?;
        let mut command = Command::new(exe);
        command
            .arg("helper")
            .arg("create")
            .arg("--state-root")
            .arg(&launch.state_root)
            .arg("--bundle")
            .arg(&launch.bundle)
            .arg("--id")
            .arg(&launch.container_id)
            .arg(format!("--stdin={}", stdin.is_some()))
            .stdin(stdin.map_or_else(Stdio::null, Stdio::from))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        pass_fds(&mut command, [out_w.as_raw_fd(), err_w.as_raw_fd()]);
        let mut child = orphans
            .spawn(&mut command)
            .map_err(|e| host(&format!("start {} helper create", exe.display()), e))?;
        drop((out_w, err_w));
        let mut line = String::new();
        let read = child
            .stdout
            .take()
            .map(|out| BufReader::new(out).read_line(&mut line));
        // Claimed before the helper is waited for: once it exits the init is the monitor's
        // child, and the orphan reaper must leave it to the container's own thread.
        let outcome = serde_json::from_str::<CreateOutcome>(&line);
        if let Ok(CreateOutcome::Created { pid }) = &outcome {
            orphans.claim(*pid);
        }
        let _ = child.wait();
        orphans.release(child.id() as i32);
        if let Some(Err(e)) = read {
            return Err(host("read the helper's answer", e));
        }
        let pid = match outcome {
            Ok(CreateOutcome::Created { pid }) => pid,
            Ok(CreateOutcome::Failed { message }) => return Err(create_failure(message)),
            Err(e) => {
                return Err(ContainerError::Host(format!(
                    "container {}: the helper answered {line:?}: {e}",
                    launch.container_id
                )));
            }
        };
        // The init is our child now (the helper exited; we are a subreaper) and only its own
        // thread reaps it, so the pid still names it even if it already exited.
        let init = Pidfd::open(pid).map_err(|e| host(&format!("pidfd of init {pid}"), e))?;
        let pipes = OutputPipes {
            stdout: out_r,
            stderr: err_r,
        };
        let container = LinuxContainer {
            launch,
            init,
            init_pid: pid,
            orphans,
            started_at: AtomicI64::new(0),
        };
        Ok((container, pipes))
    }

    /// The container's id.
    pub fn id(&self) -> &str {
        &self.launch.container_id
    }

    /// Lets the init exec the container's process (libcontainer's notify socket), and marks
    /// the container running in libcontainer's state (exec needs it). Done in place: no fork,
    /// and no chdir (libcontainer's own start changes the process's cwd). `started_at` goes
    /// into its exit record.
    pub fn start(&self, started_at: i64) -> Result<(), ContainerError> {
        self.started_at.store(started_at, Ordering::SeqCst);
        let dir = self.launch.state_root.join(&self.launch.container_id);
        let socket = dir.join(libcontainer::notify_socket::NOTIFY_FILE);
        let notified = crate::monitor::protocol::with_short_path(&socket, |p| {
            std::os::unix::net::UnixStream::connect(p)
        })
        .and_then(|mut stream| stream.write_all(b"start container"));
        if let Err(e) = notified {
            return Err(ContainerError::Host(format!(
                "container {}: notify {}: {e}",
                self.id(),
                socket.display()
            )));
        }
        let marked = libcontainer::container::Container::load(dir)
            .map_err(|e| format!("load state: {e}"))
            .and_then(|mut state| {
                state
                    .set_status(libcontainer::container::ContainerStatus::Running)
                    .save()
                    .map(drop)
                    .map_err(|e| format!("save state: {e}"))
            });
        match marked {
            // A process that ends at once (`true`) can be reaped by its own thread while
            // libcontainer reads its /proc entry: it was started, and there is nothing left
            // to exec into.
            Err(_) if self.init.wait_exit(std::time::Duration::ZERO) => Ok(()),
            Err(e) => Err(ContainerError::Host(format!(
                "container {}: {e}",
                self.id()
            ))),
            Ok(()) => Ok(()),
        }
    }

    /// Runs `exe helper exec` for `argv` in this container and returns what it reports; the
    /// helper kills the command after `timeout` (zero: no limit).
    pub fn exec(
        &self,
        exe: &Path,
        argv: Vec<String>,
        timeout: std::time::Duration,
    ) -> Result<ExecOutcome, ContainerError> {
        let mut command = self.helper_exec(exe);
        command
            .arg("--timeout-ms")
            .arg(timeout.as_millis().to_string())
            .arg("--")
            .args(argv)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let output = self.orphans.spawn(&mut command).and_then(|child| {
            let pid = child.id() as i32;
            let output = child.wait_with_output();
            self.orphans.release(pid);
            output
        });
        let output = output.map_err(|e| {
            ContainerError::Host(format!(
                "container {}: run {} helper exec: {e}",
                self.id(),
                exe.display()
            ))
        })?;
        let line = String::from_utf8_lossy(&output.stdout);
        serde_json::from_str(line.trim()).map_err(|e| {
            ContainerError::Host(format!(
                "container {}: the exec helper answered {line:?} ({}): {e}",
                self.id(),
                output.status
            ))
        })
    }

    /// Starts `exe helper exec --stream` for `argv` in this container: its output comes on the
    /// returned exec's pipes as it is written. `stdin` is the read end of the exec's stdin.
    pub fn exec_streaming(
        &self,
        exe: &Path,
        argv: Vec<String>,
        stdin: Option<OwnedFd>,
    ) -> Result<StreamingExec, ContainerError> {
        let host = |what: &str, e: std::io::Error| {
            ContainerError::Host(format!("container {}: {what}: {e}", self.id()))
        };
        let (out_r, out_w) = stdio::pipe().map_err(|e| host("create pipes", e))?;
        let (err_r, err_w) = stdio::pipe().map_err(|e| host("create pipes", e))?;
        let mut command = self.helper_exec(exe);
        command.arg("--stream");
        if stdin.is_some() {
            command.arg("--stdin");
        }
        command
            .arg("--")
            .args(argv)
            .stdin(stdin.map_or_else(Stdio::null, Stdio::from))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        pass_fds(&mut command, [out_w.as_raw_fd(), err_w.as_raw_fd()]);
        let mut helper = self
            .orphans
            .spawn(&mut command)
            .map_err(|e| host(&format!("start {} helper exec", exe.display()), e))?;
        drop((out_w, err_w));
        let Some(stdout) = helper.stdout.take() else {
            abandon(helper, &self.orphans);
            return Err(ContainerError::Host(format!(
                "container {}: the exec helper has no stdout",
                self.id()
            )));
        };
        let mut answers = BufReader::new(stdout);
        // The helper says when the command runs, or why it does not.
        match read_answer(&mut answers) {
            Ok(ExecOutcome::Started) => {}
            Ok(ExecOutcome::Failed { message }) => {
                abandon(helper, &self.orphans);
                return Err(ContainerError::Invalid(message));
            }
            other => {
                abandon(helper, &self.orphans);
                return Err(ContainerError::Host(format!(
                    "container {}: the exec helper answered {other:?}",
                    self.id()
                )));
            }
        }
        let helper_pidfd = match Pidfd::open(helper.id() as i32) {
            Ok(pidfd) => Arc::new(pidfd),
            Err(e) => {
                abandon(helper, &self.orphans);
                return Err(host("pidfd of the exec helper", e));
            }
        };
        Ok(StreamingExec {
            helper,
            answers,
            helper_pidfd,
            pipes: OutputPipes {
                stdout: out_r,
                stderr: err_r,
            },
            orphans: self.orphans.clone(),
        })
    }

    /// `exe helper exec` for this container, to be given its options and command.
    fn helper_exec(&self, exe: &Path) -> Command {
        let mut command = Command::new(exe);
        command
            .arg("helper")
            .arg("exec")
            .arg("--state-root")
            .arg(&self.launch.state_root)
            .arg("--id")
            .arg(&self.launch.container_id);
        command
    }

    /// Sends `signal` to the container's init (nothing once it has exited).
    pub fn signal(&self, signal: i32) {
        let _ = self.init.signal(signal);
    }

    /// The signal StopContainer sends first.
    pub fn stop_signal(&self) -> i32 {
        self.launch.stop_signal
    }

    /// Body of the container's own thread: writes its output into `log` until it exits, reaps
    /// it, and records its exit.
    pub fn watch(&self, pipes: &OutputPipes, log: &std::sync::Mutex<CriLog>) {
        let mut failed_write = false;
        stdio::pump(pipes, Some(&self.init), None, &mut |stream, bytes| {
            let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = log.write(stream, bytes)
                && !failed_write
            {
                failed_write = true;
                eprintln!("container {}: log write failed: {e}", self.id());
            }
        });
        {
            let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
            let _ = log.flush_partial();
            log.end_attachments();
        }
        let exit_code = reap(&self.init).unwrap_or(255);
        self.orphans.release(self.init_pid);
        let oom = oom_killed(&self.launch.cgroup);
        let exit = ExitRecord {
            started_at: self.started_at.load(Ordering::SeqCst),
            exit_code,
            finished_at: crate::sandbox::now_nanos(),
            reason: match (oom, exit_code) {
                (true, _) => "OOMKilled",
                (false, 0) => "Completed",
                _ => "Error",
            }
            .into(),
            message: String::new(),
        };
        if let Err(e) = exit.save(&self.launch.exit_file) {
            eprintln!("container {}: cannot record its exit: {e}", self.id());
        }
    }

    /// Removes libcontainer's state and the container's cgroup, killing whatever is left in
    /// it. The init must have been reaped (see [`Self::watch`]).
    pub fn delete(&self) -> Result<(), ContainerError> {
        delete(&self.launch).map_err(ContainerError::Host)
    }
}

/// Kills whatever is left in a container's cgroup, then removes the cgroup and libcontainer's
/// state; nothing to do when the state is gone. No fork: safe in the daemon and the monitor
/// (the daemon uses it for containers whose monitor died).
pub fn delete(launch: &LinuxLaunch) -> Result<(), String> {
    let dir = launch.state_root.join(&launch.container_id);
    if !dir.exists() {
        return Ok(());
    }
    let mut state = libcontainer::container::Container::load(dir)
        .map_err(|e| format!("container {}: load state: {e}", launch.container_id))?;
    state
        .delete(true)
        .map_err(|e| format!("container {}: delete: {e}", launch.container_id))
}

/// The helper's failure, as the CRI reports it: a missing executable is the container's own
/// mistake (InvalidArgument); anything else is the host's.
fn create_failure(message: String) -> ContainerError {
    let lower = message.to_ascii_lowercase();
    if lower.contains("not found")
        || lower.contains("no such file")
        || lower.contains("permission denied")
    {
        ContainerError::Invalid(message)
    } else {
        ContainerError::Host(message)
    }
}

/// Places `fds` on 3, 4, ... in the child, not close-on-exec there (they stay so here).
fn pass_fds(command: &mut Command, fds: [i32; 2]) {
    let targets = [CONTAINER_STDOUT_FD, CONTAINER_STDERR_FD];
    // SAFETY: the closure runs between fork and exec and calls only fcntl and dup2, which are
    // async-signal-safe. Copies above 10 first, so no target fd overwrites a source.
    unsafe {
        command.pre_exec(move || {
            let mut high = [0; 2];
            for (slot, fd) in high.iter_mut().zip(fds) {
                *slot = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10);
                if *slot < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (fd, target) in high.into_iter().zip(targets) {
                if libc::dup2(fd, target) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// Waits for the exited process behind `pidfd` and returns its exit code (128 + signal).
fn reap(pidfd: &Pidfd) -> Option<i32> {
    // SAFETY: siginfo_t is plain data; zero is a valid value.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: waitid on a pidfd with a valid siginfo buffer.
        let rc = unsafe {
            libc::waitid(
                libc::P_PIDFD,
                pidfd.as_raw_fd() as libc::id_t,
                &mut info,
                libc::WEXITED,
            )
        };
        if rc == 0 {
            break;
        }
        if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return None;
        }
    }
    // SAFETY: waitid filled a child-exit siginfo, whose si_code and si_status are valid.
    let (code, status) = unsafe { (info.si_code, info.si_status()) };
    Some(if code == libc::CLD_EXITED {
        status
    } else {
        128 + status
    })
}

/// True when the kernel's OOM killer killed a process of the cgroup `path` (cgroup v1's
/// memory.oom_control or v2's memory.events, whichever the host has).
fn oom_killed(path: &str) -> bool {
    let relative = path.trim_start_matches('/');
    let candidates: [PathBuf; 3] = [
        Path::new("/sys/fs/cgroup/memory")
            .join(relative)
            .join("memory.oom_control"),
        Path::new("/sys/fs/cgroup")
            .join(relative)
            .join("memory.events"),
        Path::new("/sys/fs/cgroup/unified")
            .join(relative)
            .join("memory.events"),
    ];
    candidates
        .iter()
        .filter_map(|file| std::fs::read_to_string(file).ok())
        .any(|text| oom_kill_count(&text) > 0)
}

/// The `oom_kill N` counter of a memory.oom_control or memory.events file.
fn oom_kill_count(text: &str) -> u64 {
    text.lines()
        .filter_map(|line| line.strip_prefix("oom_kill "))
        .filter_map(|n| n.trim().parse::<u64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oom_kill_counters_parse_from_v1_and_v2_files() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";
        let v2 = "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(oom_kill_count(v1), 2);
        assert_eq!(oom_kill_count(v2), 1);
        assert_eq!(oom_kill_count("oom_kill_disable 0\n"), 0);
    }

    #[test]
    fn a_missing_executable_is_the_container_s_mistake() {
        assert!(matches!(
            create_failure("exec: \"nope\": executable file not found in $PATH".into()),
            ContainerError::Invalid(_)
        ));
        assert!(matches!(
            create_failure("failed to create cgroup".into()),
            ContainerError::Host(_)
        ));
    }
}
