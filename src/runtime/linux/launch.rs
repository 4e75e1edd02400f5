//! What the daemon tells a monitor to create a Linux container from, and what an exec asks
//! for and returns. Serialized over the monitor protocol and the helper's command line.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::runtime::stdin::StdinMode;

/// A Linux container, ready to create: its bundle holds `config.json` (the OCI spec) and its
/// root filesystem is mounted already.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinuxLaunch {
    /// Container id (also libcontainer's id).
    pub container_id: String,
    /// The OCI bundle (config.json).
    pub bundle: PathBuf,
    /// libcontainer's state root for the pod (holds `<id>/state.json` and the notify socket).
    pub state_root: PathBuf,
    /// The container's cgroup path (cgroupfs), read for OOM kills when it exits.
    pub cgroup: String,
    /// The signal StopContainer sends first.
    pub stop_signal: i32,
    /// The CRI log file; None: output is discarded.
    pub log_path: Option<PathBuf>,
    /// Where the monitor records the exit.
    pub exit_file: PathBuf,
    /// Whether the container has a stdin for attach sessions.
    #[serde(default)]
    pub stdin: StdinMode,
}

/// What the helper prints after `helper create`: the init's host pid, or why it failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum CreateOutcome {
    /// Created; the init process waits for StartContainer.
    Created {
        /// Host pid of the container's init.
        pid: i32,
    },
    /// libcontainer refused or failed.
    Failed {
        /// Why.
        message: String,
    },
}

/// What the helper prints after `helper exec`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ExecOutcome {
    /// The command ran (and exited, or was killed at the timeout).
    Exited {
        /// Exit code (128 + signal when killed).
        exit_code: i32,
        /// True when it was killed because the timeout expired.
        timed_out: bool,
        /// Its stdout, base64.
        stdout: String,
        /// Its stderr, base64.
        stderr: String,
    },
    /// It could not be started.
    Failed {
        /// Why.
        message: String,
    },
    /// A streaming exec's first line: the command runs (its end follows); SIGTERM to the
    /// helper kills it from now on.
    Started,
}

/// The signal number of an image's StopSignal (`SIGQUIT`, `QUIT`, `3`); None when unknown.
pub fn parse_signal(name: &str) -> Option<i32> {
    let name = name.trim();
    if let Ok(number) = name.parse::<i32>() {
        return (1..=64).contains(&number).then_some(number);
    }
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    let full = format!("SIG{bare}");
    full.parse::<nix::sys::signal::Signal>()
        .ok()
        .map(|s| s as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_by_name_and_number() {
        assert_eq!(parse_signal("SIGQUIT"), Some(libc::SIGQUIT));
        assert_eq!(parse_signal("quit"), Some(libc::SIGQUIT));
        assert_eq!(parse_signal("9"), Some(9));
        assert_eq!(parse_signal("SIGNOPE"), None);
        assert_eq!(parse_signal("99"), None);
    }
}
