//! Attach and Exec: checks the request against the container and resolves what the streaming
//! server needs (the pod monitor that serves the session), for a one-time URL.

use crate::container::ContainerManager;
use crate::error::{Error, Result};
use crate::store::container::{ContainerBackend, ContainerPhase};
use crate::streaming::channels::Wanted;
use crate::streaming::session::{MonitorTarget, Session};

impl ContainerManager {
    /// An attach session to a created or running container (wasm or Linux).
    pub fn attach_session(&self, id: &str, wanted: Wanted) -> Result<Session> {
        check_streams("Attach", wanted)?;
        let entry = self.entry(id)?;
        let record = self.refresh(&entry)?;
        if !matches!(
            record.phase,
            ContainerPhase::Created | ContainerPhase::Running
        ) {
            return Err(Error::FailedPrecondition(format!(
                "container {} is not running: there is nothing to attach to",
                record.id
            )));
        }
        Ok(Session::Attach {
            target: MonitorTarget {
                socket: self.layout.monitor_socket(&record.pod_id),
                container_id: record.id,
            },
            wanted,
        })
    }

    /// An exec session in a running Linux container.
    pub fn exec_session(&self, id: &str, argv: Vec<String>, wanted: Wanted) -> Result<Session> {
        check_streams("Exec", wanted)?;
        if argv.is_empty() {
            return Err(Error::InvalidArgument("Exec: cmd is required".into()));
        }
        let entry = self.entry(id)?;
        let record = self.refresh(&entry)?;
        if let ContainerBackend::Wasm { .. } = &record.backend {
            return Err(Error::Unimplemented(
                "Exec: exec into a wasm container is not supported yet (a wasm container has \
                 no processes to run a command beside it)"
                    .into(),
            ));
        }
        if record.phase != ContainerPhase::Running {
            return Err(Error::FailedPrecondition(format!(
                "container {} is not running",
                record.id
            )));
        }
        Ok(Session::Exec {
            target: MonitorTarget {
                socket: self.layout.monitor_socket(&record.pod_id),
                container_id: record.id,
            },
            argv,
            wanted,
        })
    }
}

/// A session must connect at least one stream, and terminals are not supported yet.
fn check_streams(rpc: &str, wanted: Wanted) -> Result<()> {
    if wanted.tty {
        return Err(Error::InvalidArgument(format!(
            "{rpc}: tty is not supported: crishim containers have no terminal"
        )));
    }
    if !(wanted.stdin || wanted.stdout || wanted.stderr) {
        return Err(Error::InvalidArgument(format!(
            "{rpc}: one of stdin, stdout and stderr must be true"
        )));
    }
    Ok(())
}
