//! The daemon's side of monitors: start one for a new pod, check a recovered one is still
//! ours, stop one. Behind [`MonitorControl`] so the sandbox logic is testable with a fake.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::{Error, IoContext, Result};
use crate::monitor::protocol::{self, ReadyLine, Request, Response};
use crate::os::process::{Pidfd, start_time};
use crate::store::sandbox::{MonitorProcess, PodNamespaces};

/// Everything needed to start a pod's monitor.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorSpec {
    /// The pod sandbox id.
    pub pod_id: String,
    /// The control socket the monitor will serve.
    pub socket: PathBuf,
    /// The monitor's own diagnostic log.
    pub log: PathBuf,
    /// Hostname for the pod's UTS namespace.
    pub hostname: Option<String>,
    /// Namespaced sysctls to set in the pod's namespaces (`net.core.somaxconn`, value).
    pub sysctls: Vec<(String, String)>,
    /// The namespaces to create.
    pub namespaces: PodNamespaces,
}

/// Starting, checking and stopping monitors.
pub trait MonitorControl: Send + Sync {
    /// Starts a monitor and waits until it is ready.
    fn launch(&self, spec: &MonitorSpec) -> Result<MonitorProcess>;
    /// True when `process` still runs and answers on `socket` as the monitor of `pod_id`.
    fn is_alive(&self, pod_id: &str, socket: &Path, process: &MonitorProcess) -> bool;
    /// The monitor answering on `socket` as the monitor of `pod_id`, if one does (used to find
    /// a monitor whose pid was never checkpointed because the daemon died while starting it).
    fn find(&self, pod_id: &str, socket: &Path) -> Option<MonitorProcess>;
    /// Asks the monitor to shut down, kills it when it does not in time; Ok once it is gone.
    fn shutdown(&self, socket: &Path, process: &MonitorProcess) -> Result<()>;
}

/// Monitors as real processes: `<exe> monitor ...`.
#[derive(Debug)]
pub struct ProcessMonitors {
    exe: PathBuf,
    start_timeout: Duration,
    stop_timeout: Duration,
}

impl ProcessMonitors {
    /// Monitors run from `exe` (the daemon's own binary).
    pub fn new(exe: PathBuf, start_timeout: Duration, stop_timeout: Duration) -> Self {
        ProcessMonitors {
            exe,
            start_timeout,
            stop_timeout,
        }
    }

    fn command(&self, spec: &MonitorSpec) -> Command {
        let mut command = Command::new(&self.exe);
        command
            .arg("monitor")
            .arg("--pod-id")
            .arg(&spec.pod_id)
            .arg("--socket")
            .arg(&spec.socket);
        if let Some(hostname) = &spec.hostname {
            command.arg("--hostname").arg(hostname);
        }
        for (key, value) in &spec.sysctls {
            command.arg("--sysctl").arg(format!("{key}={value}"));
        }
        let ns = spec.namespaces;
        for (wanted, flag) in [
            (ns.net, "--net"),
            (ns.ipc, "--ipc"),
            (ns.uts, "--uts"),
            (ns.pid, "--pid"),
        ] {
            if wanted {
                command.arg(flag);
            }
        }
        command
    }

    fn wait_ready(&self, child: &mut Child, pod_id: &str) -> Result<i32> {
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| Error::Internal("monitor stdout was not captured".into()))?;
        let line = read_line_within(stdout, self.start_timeout).map_err(|e| {
            Error::DeadlineExceeded(format!("monitor of pod {pod_id} did not report ready: {e}"))
        })?;
        match serde_json::from_str::<ReadyLine>(&line) {
            Ok(ReadyLine::Ready { pid }) => Ok(pid),
            Ok(ReadyLine::Failed { message }) => Err(Error::Internal(format!(
                "monitor of pod {pod_id} failed to start: {message}"
            ))),
            Err(e) => Err(Error::Internal(format!(
                "monitor of pod {pod_id} wrote a bad ready line {line:?}: {e}"
            ))),
        }
    }
}

/// Reaps what is left of a killed monitor's process group: a monitor that forked into a new
/// pid namespace leaves its child to us (we are a subreaper). Gives up after a second.
fn reap_group(pgid: i32) {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        match waitpid(
            nix::unistd::Pid::from_raw(-pgid),
            Some(WaitPidFlag::WNOHANG),
        ) {
            Ok(WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(5)),
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

/// Reads one line from a pipe, giving up after `timeout`.
fn read_line_within(
    mut pipe: std::process::ChildStdout,
    timeout: Duration,
) -> std::io::Result<String> {
    let deadline = Instant::now() + timeout;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 256];
    while !buf.contains(&b'\n') {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut pfd = libc::pollfd {
            fd: pipe.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if rc == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {timeout:?}"),
            ));
        }
        let n = pipe.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "it exited without a word (see monitor.log)",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(String::from_utf8_lossy(&buf)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string())
}

impl MonitorControl for ProcessMonitors {
    fn launch(&self, spec: &MonitorSpec) -> Result<MonitorProcess> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log)
            .with_path("open monitor log", &spec.log)?;
        let mut child = self
            .command(spec)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .with_path("start monitor", &self.exe)?;
        let child_pid = child.id() as i32;
        let pid = match self.wait_ready(&mut child, &spec.pod_id) {
            Ok(pid) => pid,
            Err(e) => {
                // The monitor leads its own process group (setsid): kill it and anything it forked.
                // SAFETY: plain kill(2) of a process group and of a pid we started.
                unsafe {
                    libc::kill(-child_pid, libc::SIGKILL);
                    libc::kill(child_pid, libc::SIGKILL);
                }
                let _ = child.wait();
                reap_group(child_pid);
                return Err(e);
            }
        };
        if pid != child_pid {
            // The monitor forked into a new pid namespace; reap the parent that exited.
            let _ = child.wait();
        }
        let start_time = start_time(pid).ok_or_else(|| {
            Error::Internal(format!(
                "monitor of pod {} (pid {pid}) exited right after starting",
                spec.pod_id
            ))
        })?;
        Ok(MonitorProcess { pid, start_time })
    }

    fn is_alive(&self, pod_id: &str, socket: &Path, process: &MonitorProcess) -> bool {
        if start_time(process.pid) != Some(process.start_time) {
            return false;
        }
        matches!(
            protocol::call(socket, &Request::Ping, Duration::from_secs(2)),
            Ok(Response::Pong { pod_id: answered, pid }) if answered == pod_id && pid == process.pid
        )
    }

    fn find(&self, pod_id: &str, socket: &Path) -> Option<MonitorProcess> {
        match protocol::call(socket, &Request::Ping, Duration::from_secs(2)) {
            Ok(Response::Pong {
                pod_id: answered,
                pid,
            }) if answered == pod_id => Some(MonitorProcess {
                pid,
                start_time: start_time(pid)?,
            }),
            _ => None,
        }
    }

    fn shutdown(&self, socket: &Path, process: &MonitorProcess) -> Result<()> {
        let Ok(pidfd) = Pidfd::open(process.pid) else {
            return Ok(());
        };
        // Checked after opening the pidfd, so the fd cannot name a later process with this pid.
        if start_time(process.pid) != Some(process.start_time) {
            pidfd.reap();
            return Ok(());
        }
        if let Err(e) = protocol::call(socket, &Request::Shutdown, Duration::from_secs(2)) {
            tracing::warn!(pid = process.pid, error = %e, "monitor did not take the shutdown request; killing it");
        }
        if !pidfd.wait_exit(self.stop_timeout) {
            tracing::warn!(
                pid = process.pid,
                "monitor still running after {:?}; killing it",
                self.stop_timeout
            );
            let _ = pidfd.signal(libc::SIGKILL);
            if !pidfd.wait_exit(Duration::from_secs(5)) {
                return Err(Error::Internal(format!(
                    "monitor pid {} survived SIGKILL for 5s",
                    process.pid
                )));
            }
        }
        pidfd.reap();
        Ok(())
    }
}

/// A fake for unit tests: "launches" monitors with made-up pids and remembers which run.
#[derive(Debug, Default)]
pub struct FakeMonitors {
    /// Pods whose monitor runs now, with the spec it was launched with.
    pub running: Mutex<Vec<(MonitorSpec, MonitorProcess)>>,
    /// When set, launch fails with this message.
    pub fail_launch: Option<String>,
}

impl FakeMonitors {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(MonitorSpec, MonitorProcess)>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Pretends the monitor of `pod_id` died.
    pub fn kill(&self, pod_id: &str) {
        self.lock().retain(|(spec, _)| spec.pod_id != pod_id);
    }

    /// Pod ids whose monitor runs.
    pub fn running_pods(&self) -> Vec<String> {
        self.lock()
            .iter()
            .map(|(spec, _)| spec.pod_id.clone())
            .collect()
    }
}

impl MonitorControl for FakeMonitors {
    fn launch(&self, spec: &MonitorSpec) -> Result<MonitorProcess> {
        if let Some(message) = &self.fail_launch {
            return Err(Error::Internal(message.clone()));
        }
        let mut running = self.lock();
        let process = MonitorProcess {
            pid: 1000 + running.len() as i32,
            start_time: 7,
        };
        running.push((spec.clone(), process));
        Ok(process)
    }

    fn is_alive(&self, pod_id: &str, _socket: &Path, process: &MonitorProcess) -> bool {
        self.lock()
            .iter()
            .any(|(spec, p)| spec.pod_id == pod_id && p == process)
    }

    fn find(&self, pod_id: &str, _socket: &Path) -> Option<MonitorProcess> {
        self.lock()
            .iter()
            .find(|(spec, _)| spec.pod_id == pod_id)
            .map(|(_, p)| *p)
    }

    fn shutdown(&self, _socket: &Path, process: &MonitorProcess) -> Result<()> {
        self.lock().retain(|(_, p)| p != process);
        Ok(())
    }
}
