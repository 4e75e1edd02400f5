//! Running one CNI plugin: the spec's environment, the config on stdin, the result (or a CNI
//! error object) on stdout, bounded by a timeout.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::error::{Error, Result};
use crate::os::process::Pidfd;

/// The CNI operation (`CNI_COMMAND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CniCommand {
    /// Attach the container to the network.
    Add,
    /// Detach it; must succeed when already detached.
    Del,
    /// Verify the attachment is as ADD left it.
    Check,
}

impl CniCommand {
    /// The `CNI_COMMAND` value.
    pub fn as_str(self) -> &'static str {
        match self {
            CniCommand::Add => "ADD",
            CniCommand::Del => "DEL",
            CniCommand::Check => "CHECK",
        }
    }
}

/// One plugin call.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// The plugin binary's name (its `type`).
    pub plugin: String,
    /// The operation.
    pub command: CniCommand,
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS`: the pinned netns, or empty once it is gone (DEL only).
    pub netns: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `CNI_ARGS`.
    pub args: String,
    /// The network config for this plugin, written to its stdin.
    pub config: Value,
}

/// Runs CNI plugins; the host version execs them, the fake records calls.
pub trait PluginExec: Send + Sync {
    /// Runs the plugin and returns its stdout on success, or an error carrying the plugin's
    /// own error text.
    fn exec(&self, invocation: &Invocation) -> Result<Vec<u8>>;
}

/// Execs plugin binaries found in the configured bin dirs.
pub struct HostPluginExec {
    bin_dirs: Vec<PathBuf>,
    timeout: Duration,
}

impl HostPluginExec {
    /// Plugins are looked up in `bin_dirs` in order and killed after `timeout`.
    pub fn new(bin_dirs: Vec<PathBuf>, timeout: Duration) -> Self {
        HostPluginExec { bin_dirs, timeout }
    }

    fn find(&self, plugin: &str) -> Result<PathBuf> {
        self.bin_dirs
            .iter()
            .map(|dir| dir.join(plugin))
            .find(|path| is_executable(path))
            .ok_or_else(|| {
                let dirs: Vec<String> = self
                    .bin_dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect();
                Error::FailedPrecondition(format!(
                    "CNI plugin {plugin:?} not found in {}",
                    dirs.join(", ")
                ))
            })
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

impl PluginExec for HostPluginExec {
    fn exec(&self, invocation: &Invocation) -> Result<Vec<u8>> {
        let binary = self.find(&invocation.plugin)?;
        let cni_path = std::env::join_paths(&self.bin_dirs)
            .map_err(|e| Error::InvalidArgument(format!("CNI bin dirs: {e}")))?;
        let what = format!(
            "CNI plugin {} {}",
            invocation.plugin,
            invocation.command.as_str()
        );
        let mut child = Command::new(&binary)
            .env("CNI_COMMAND", invocation.command.as_str())
            .env("CNI_CONTAINERID", &invocation.container_id)
            .env("CNI_NETNS", &invocation.netns)
            .env("CNI_IFNAME", &invocation.ifname)
            .env("CNI_ARGS", &invocation.args)
            .env("CNI_PATH", cni_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own group, so that a timeout also stops what it started (iptables...).
            .process_group(0)
            .spawn()
            .map_err(|e| Error::io_path("run CNI plugin", &binary, e))?;
        let pid = child.id() as i32;
        let pidfd = match Pidfd::open(pid) {
            Ok(pidfd) => pidfd,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::io(format!("watch {what}"), e));
            }
        };
        // Every pipe is served by a thread of its own, so a plugin that does not read its input
        // (or writes much) cannot block the daemon past the deadline.
        let deadline = Instant::now() + self.timeout;
        let stdin = invocation.config.to_string().into_bytes();
        if let Some(mut input) = child.stdin.take() {
            // A plugin that exits without reading its input is judged by its exit status.
            std::thread::spawn(move || {
                let _ = input.write_all(&stdin);
            });
        }
        let stdout = child.stdout.take().map(read_in_background);
        let stderr = child.stderr.take().map(read_in_background);
        let exited = pidfd.wait_exit(self.timeout);
        if !exited {
            // SAFETY: kill(2) on the process group we created for this plugin.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
        let status = child
            .wait()
            .map_err(|e| Error::io(format!("wait for {what}"), e))?;
        // Output ends at EOF; something the plugin left running with its pipes open must not
        // hold us: what arrived by the deadline (and a second's grace) is what counts.
        let grace = deadline.max(Instant::now()) + Duration::from_secs(1);
        let stdout = stdout.map(|r| collect(r, grace)).unwrap_or_default();
        let stderr = stderr.map(|r| collect(r, grace)).unwrap_or_default();
        if !exited {
            return Err(Error::DeadlineExceeded(format!(
                "{what} did not finish within {} ms and was killed",
                self.timeout.as_millis()
            )));
        }
        if status.success() {
            Ok(stdout)
        } else {
            Err(plugin_failure(&what, &status.to_string(), &stdout, &stderr))
        }
    }
}

type Reader = std::sync::mpsc::Receiver<Vec<u8>>;

fn read_in_background(mut pipe: impl Read + Send + 'static) -> Reader {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = pipe.read_to_end(&mut out);
        let _ = sender.send(out);
    });
    receiver
}

/// What a reader got by `deadline` (nothing if its pipe is still open then).
fn collect(reader: Reader, deadline: Instant) -> Vec<u8> {
    reader
        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        .unwrap_or_default()
}

/// The plugin's error: its CNI error object (`code`, `msg`, `details`) when it wrote one,
/// else its stderr.
pub fn plugin_failure(what: &str, status: &str, stdout: &[u8], stderr: &[u8]) -> Error {
    let object: Option<Value> = serde_json::from_slice(stdout).ok();
    let text = match object
        .as_ref()
        .and_then(|o| o.get("msg"))
        .and_then(Value::as_str)
    {
        Some(msg) => {
            let code = object
                .as_ref()
                .and_then(|o| o.get("code"))
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let details = object
                .as_ref()
                .and_then(|o| o.get("details"))
                .and_then(Value::as_str)
                .filter(|d| !d.is_empty())
                .map(|d| format!(": {d}"))
                .unwrap_or_default();
            format!("{msg}{details} (CNI error code {code})")
        }
        None => {
            let stderr = String::from_utf8_lossy(stderr);
            let stdout = String::from_utf8_lossy(stdout);
            let text = if stderr.trim().is_empty() {
                stdout.trim().to_string()
            } else {
                stderr.trim().to_string()
            };
            if text.is_empty() {
                "no error output".to_string()
            } else {
                text
            }
        }
    };
    Error::Internal(format!("{what} failed ({status}): {text}"))
}

/// Records invocations and answers from a script of results; for unit tests.
#[derive(Default)]
pub struct FakePluginExec {
    calls: Mutex<Vec<Invocation>>,
    responses: Mutex<Vec<(String, CniCommand, Result<Value>)>>,
}

impl FakePluginExec {
    /// The plugin `plugin` answers `command` with `response` (the latest setting wins); a call
    /// without a scripted answer gets `{}`.
    pub fn respond(&self, plugin: &str, command: CniCommand, response: Result<Value>) {
        self.responses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((plugin.to_string(), command, response));
    }

    /// Every invocation so far, in order.
    pub fn calls(&self) -> Vec<Invocation> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl PluginExec for FakePluginExec {
    fn exec(&self, invocation: &Invocation) -> Result<Vec<u8>> {
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(invocation.clone());
        let responses = self.responses.lock().unwrap_or_else(|e| e.into_inner());
        let answer = responses
            .iter()
            .rev()
            .find(|(p, c, _)| *p == invocation.plugin && *c == invocation.command)
            .map(|(_, _, r)| r);
        match answer {
            Some(Ok(value)) => Ok(value.to_string().into_bytes()),
            Some(Err(e)) => Err(Error::Internal(e.to_string())),
            None => Ok(b"{}".to_vec()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_errors_carry_the_cni_error_object() {
        let err = plugin_failure(
            "CNI plugin bridge ADD",
            "exit status: 1",
            br#"{"cniVersion":"1.0.0","code":11,"msg":"failed to allocate","details":"range full"}"#,
            b"",
        )
        .to_string();
        assert!(
            err.contains("failed to allocate: range full (CNI error code 11)"),
            "{err}"
        );
        let err = plugin_failure("p ADD", "exit status: 2", b"", b"boom\n").to_string();
        assert!(err.ends_with("boom"), "{err}");
    }

    #[test]
    fn missing_plugins_name_the_dirs() {
        let exec = HostPluginExec::new(
            vec!["/nonexistent/a".into(), "/nonexistent/b".into()],
            Duration::from_secs(1),
        );
        let err = exec.find("bridge").unwrap_err().to_string();
        assert!(
            err.contains("\"bridge\"") && err.contains("/nonexistent/b"),
            "{err}"
        );
    }
}
