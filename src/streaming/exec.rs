//! An exec session on the daemon side: the pod's monitor runs the command in the container
//! (through the helper) and streams its output and then its exit code; the client's stdin goes
//! the other way.

use crate::monitor::protocol::Request;
use crate::streaming::attach::relay;
use crate::streaming::channels::{Channels, Wanted};
use crate::streaming::session::MonitorTarget;

/// Runs an exec session to its end; a non-zero exit code is reported on the error stream.
pub async fn run(target: MonitorTarget, argv: Vec<String>, wanted: Wanted, channels: Channels) {
    let request = Request::Exec {
        container_id: target.container_id.clone(),
        argv,
        stdin: wanted.stdin,
    };
    relay(&target, request, channels).await;
}
