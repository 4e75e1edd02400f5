//! CreateContainer, StartContainer, StopContainer, RemoveContainer, ContainerStatus,
//! ListContainers, ReopenContainerLog, UpdateContainerResources and ExecSync.

use cri_proto::{
    ContainerStatusRequest, ContainerStatusResponse, CreateContainerRequest,
    CreateContainerResponse, ExecSyncRequest, ExecSyncResponse, ListContainersRequest,
    ListContainersResponse, RemoveContainerRequest, RemoveContainerResponse,
    ReopenContainerLogRequest, ReopenContainerLogResponse, StartContainerRequest,
    StartContainerResponse, StopContainerRequest, StopContainerResponse,
    UpdateContainerResourcesRequest, UpdateContainerResourcesResponse,
};

use super::{RuntimeApi, blocking, detached};
use crate::error::Result;

impl RuntimeApi {
    #[tracing::instrument(name = "CreateContainer", skip_all, fields(
        pod_id = %request.pod_sandbox_id,
        container = request.config.as_ref().and_then(|c| c.metadata.as_ref()).map(|m| m.name.clone()),
        container_id = tracing::field::Empty,
    ))]
    pub(super) async fn create_container_rpc(
        &self,
        request: CreateContainerRequest,
    ) -> Result<CreateContainerResponse> {
        let containers = self.daemon.containers.clone();
        let id = detached(async move { containers.create(request).await }).await?;
        tracing::Span::current().record("container_id", id.as_str());
        Ok(CreateContainerResponse { container_id: id })
    }

    #[tracing::instrument(name = "StartContainer", skip_all, fields(container_id = %request.container_id))]
    pub(super) async fn start_container_rpc(
        &self,
        request: StartContainerRequest,
    ) -> Result<StartContainerResponse> {
        let containers = self.daemon.containers.clone();
        detached(async move { containers.start(&request.container_id).await }).await?;
        Ok(StartContainerResponse {})
    }

    #[tracing::instrument(name = "StopContainer", skip_all, fields(container_id = %request.container_id))]
    pub(super) async fn stop_container_rpc(
        &self,
        request: StopContainerRequest,
    ) -> Result<StopContainerResponse> {
        let containers = self.daemon.containers.clone();
        detached(async move {
            containers
                .stop(&request.container_id, request.timeout)
                .await
        })
        .await?;
        Ok(StopContainerResponse {})
    }

    #[tracing::instrument(name = "RemoveContainer", skip_all, fields(container_id = %request.container_id))]
    pub(super) async fn remove_container_rpc(
        &self,
        request: RemoveContainerRequest,
    ) -> Result<RemoveContainerResponse> {
        let containers = self.daemon.containers.clone();
        detached(async move { containers.remove(&request.container_id).await }).await?;
        Ok(RemoveContainerResponse {})
    }

    #[tracing::instrument(name = "ContainerStatus", skip_all, fields(container_id = %request.container_id))]
    pub(super) async fn container_status_rpc(
        &self,
        request: ContainerStatusRequest,
    ) -> Result<ContainerStatusResponse> {
        let containers = self.daemon.containers.clone();
        blocking(move || containers.status(&request.container_id, request.verbose)).await
    }

    #[tracing::instrument(name = "ListContainers", skip_all)]
    pub(super) async fn list_containers_rpc(
        &self,
        request: ListContainersRequest,
    ) -> Result<ListContainersResponse> {
        let containers = self.daemon.containers.clone();
        let listed = blocking(move || Ok(containers.list(request.filter.as_ref()))).await?;
        Ok(ListContainersResponse { containers: listed })
    }

    #[tracing::instrument(name = "ReopenContainerLog", skip_all, fields(container_id = %request.container_id))]
    pub(super) async fn reopen_container_log_rpc(
        &self,
        request: ReopenContainerLogRequest,
    ) -> Result<ReopenContainerLogResponse> {
        let containers = self.daemon.containers.clone();
        detached(async move { containers.reopen_log(&request.container_id).await }).await?;
        Ok(ReopenContainerLogResponse {})
    }

    /// New cgroup limits for a Linux container; wasm containers answer Unimplemented.
    #[tracing::instrument(name = "UpdateContainerResources", skip_all, fields(container_id = %request.container_id))]
    pub(super) async fn update_container_resources_rpc(
        &self,
        request: UpdateContainerResourcesRequest,
    ) -> Result<UpdateContainerResourcesResponse> {
        let containers = self.daemon.containers.clone();
        detached(async move {
            containers
                .update_resources(&request.container_id, request.linux)
                .await
        })
        .await?;
        Ok(UpdateContainerResourcesResponse {})
    }

    /// Runs a command in a running Linux container; wasm containers answer Unimplemented.
    #[tracing::instrument(name = "ExecSync", skip_all, fields(container_id = %request.container_id))]
    pub(super) async fn exec_sync_rpc(&self, request: ExecSyncRequest) -> Result<ExecSyncResponse> {
        let containers = self.daemon.containers.clone();
        let result = detached(async move {
            containers
                .exec_sync(&request.container_id, request.cmd, request.timeout)
                .await
        })
        .await?;
        Ok(ExecSyncResponse {
            stdout: result.stdout,
            stderr: result.stderr,
            exit_code: result.exit_code,
        })
    }
}
