//! Exec, Attach and PortForward: each checks its request and answers a one-time URL on the
//! streaming server, where the client's session runs.

use cri_proto::{
    AttachRequest, AttachResponse, ExecRequest, ExecResponse, PortForwardRequest,
    PortForwardResponse,
};

use super::{RuntimeApi, blocking};
use crate::error::Result;
use crate::streaming::channels::Wanted;

impl RuntimeApi {
    #[tracing::instrument(name = "Exec", skip_all, fields(container_id = %request.container_id))]
    pub(super) async fn exec_rpc(&self, request: ExecRequest) -> Result<ExecResponse> {
        let wanted = Wanted::new(request.stdin, request.stdout, request.stderr, request.tty);
        let containers = self.daemon.containers.clone();
        let session =
            blocking(move || containers.exec_session(&request.container_id, request.cmd, wanted))
                .await?;
        Ok(ExecResponse {
            url: self.daemon.streaming.url(session)?,
        })
    }

    #[tracing::instrument(name = "Attach", skip_all, fields(container_id = %request.container_id))]
    pub(super) async fn attach_rpc(&self, request: AttachRequest) -> Result<AttachResponse> {
        let wanted = Wanted::new(request.stdin, request.stdout, request.stderr, request.tty);
        let containers = self.daemon.containers.clone();
        let session =
            blocking(move || containers.attach_session(&request.container_id, wanted)).await?;
        Ok(AttachResponse {
            url: self.daemon.streaming.url(session)?,
        })
    }

    #[tracing::instrument(name = "PortForward", skip_all, fields(pod_id = %request.pod_sandbox_id))]
    pub(super) async fn port_forward_rpc(
        &self,
        request: PortForwardRequest,
    ) -> Result<PortForwardResponse> {
        let session = self
            .daemon
            .sandboxes
            .port_forward_session(&request.pod_sandbox_id, &request.port)?;
        Ok(PortForwardResponse {
            url: self.daemon.streaming.url(session)?,
        })
    }
}
