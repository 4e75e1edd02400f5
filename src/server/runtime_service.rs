//! `runtime.v1.RuntimeService`: routes each RPC to its group's file. RPCs of later issues
//! (stats, checkpoints) answer Unimplemented, naming the RPC.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use cri_proto::runtime_service_server::RuntimeService;
use cri_proto::*;
use tonic::{Request, Response, Status};

use crate::daemon::Daemon;
use crate::error::Error;

/// The RuntimeService implementation.
pub struct RuntimeApi {
    pub(super) daemon: Arc<Daemon>,
}

impl RuntimeApi {
    /// A service over the daemon's state.
    pub fn new(daemon: Arc<Daemon>) -> Self {
        RuntimeApi { daemon }
    }
}

type RpcResult<T> = Result<Response<T>, Status>;

/// Defines RPCs that are not built yet: each answers Unimplemented with its CRI name. Written
/// in the form `#[async_trait]` expands to, since that attribute does not see into macros.
macro_rules! not_built_yet {
    ($($method:ident($request:ty) -> $response:ty = $name:literal;)*) => {
        $(
            fn $method<'life0, 'async_trait>(
                &'life0 self,
                _request: Request<$request>,
            ) -> Pin<Box<dyn Future<Output = RpcResult<$response>> + Send + 'async_trait>>
            where
                'life0: 'async_trait,
                Self: 'async_trait,
            {
                Box::pin(async move {
                    tracing::debug!(rpc = $name, "unimplemented RPC called");
                    Err(Error::unimplemented($name).into())
                })
            }
        )*
    };
}

#[tonic::async_trait]
impl RuntimeService for RuntimeApi {
    async fn version(&self, request: Request<VersionRequest>) -> RpcResult<VersionResponse> {
        Ok(Response::new(self.version_rpc(request.into_inner())))
    }

    async fn status(&self, request: Request<StatusRequest>) -> RpcResult<StatusResponse> {
        Ok(Response::new(self.status_rpc(request.into_inner())))
    }

    async fn runtime_config(
        &self,
        _request: Request<RuntimeConfigRequest>,
    ) -> RpcResult<RuntimeConfigResponse> {
        Ok(Response::new(self.runtime_config_rpc()))
    }

    async fn update_runtime_config(
        &self,
        request: Request<UpdateRuntimeConfigRequest>,
    ) -> RpcResult<UpdateRuntimeConfigResponse> {
        Ok(Response::new(
            self.update_runtime_config_rpc(request.into_inner()),
        ))
    }

    async fn run_pod_sandbox(
        &self,
        request: Request<RunPodSandboxRequest>,
    ) -> RpcResult<RunPodSandboxResponse> {
        Ok(Response::new(
            self.run_pod_sandbox_rpc(request.into_inner()).await?,
        ))
    }

    async fn stop_pod_sandbox(
        &self,
        request: Request<StopPodSandboxRequest>,
    ) -> RpcResult<StopPodSandboxResponse> {
        Ok(Response::new(
            self.stop_pod_sandbox_rpc(request.into_inner()).await?,
        ))
    }

    async fn remove_pod_sandbox(
        &self,
        request: Request<RemovePodSandboxRequest>,
    ) -> RpcResult<RemovePodSandboxResponse> {
        Ok(Response::new(
            self.remove_pod_sandbox_rpc(request.into_inner()).await?,
        ))
    }

    async fn pod_sandbox_status(
        &self,
        request: Request<PodSandboxStatusRequest>,
    ) -> RpcResult<PodSandboxStatusResponse> {
        Ok(Response::new(
            self.pod_sandbox_status_rpc(request.into_inner())?,
        ))
    }

    async fn list_pod_sandbox(
        &self,
        request: Request<ListPodSandboxRequest>,
    ) -> RpcResult<ListPodSandboxResponse> {
        Ok(Response::new(
            self.list_pod_sandbox_rpc(request.into_inner()),
        ))
    }

    async fn create_container(
        &self,
        request: Request<CreateContainerRequest>,
    ) -> RpcResult<CreateContainerResponse> {
        Ok(Response::new(
            self.create_container_rpc(request.into_inner()).await?,
        ))
    }

    async fn start_container(
        &self,
        request: Request<StartContainerRequest>,
    ) -> RpcResult<StartContainerResponse> {
        Ok(Response::new(
            self.start_container_rpc(request.into_inner()).await?,
        ))
    }

    async fn stop_container(
        &self,
        request: Request<StopContainerRequest>,
    ) -> RpcResult<StopContainerResponse> {
        Ok(Response::new(
            self.stop_container_rpc(request.into_inner()).await?,
        ))
    }

    async fn remove_container(
        &self,
        request: Request<RemoveContainerRequest>,
    ) -> RpcResult<RemoveContainerResponse> {
        Ok(Response::new(
            self.remove_container_rpc(request.into_inner()).await?,
        ))
    }

    async fn list_containers(
        &self,
        request: Request<ListContainersRequest>,
    ) -> RpcResult<ListContainersResponse> {
        Ok(Response::new(
            self.list_containers_rpc(request.into_inner()).await?,
        ))
    }

    async fn container_status(
        &self,
        request: Request<ContainerStatusRequest>,
    ) -> RpcResult<ContainerStatusResponse> {
        Ok(Response::new(
            self.container_status_rpc(request.into_inner()).await?,
        ))
    }

    async fn update_container_resources(
        &self,
        request: Request<UpdateContainerResourcesRequest>,
    ) -> RpcResult<UpdateContainerResourcesResponse> {
        Ok(Response::new(
            self.update_container_resources_rpc(request.into_inner())
                .await?,
        ))
    }

    async fn reopen_container_log(
        &self,
        request: Request<ReopenContainerLogRequest>,
    ) -> RpcResult<ReopenContainerLogResponse> {
        Ok(Response::new(
            self.reopen_container_log_rpc(request.into_inner()).await?,
        ))
    }

    async fn exec_sync(&self, request: Request<ExecSyncRequest>) -> RpcResult<ExecSyncResponse> {
        Ok(Response::new(
            self.exec_sync_rpc(request.into_inner()).await?,
        ))
    }

    async fn exec(&self, request: Request<ExecRequest>) -> RpcResult<ExecResponse> {
        Ok(Response::new(self.exec_rpc(request.into_inner()).await?))
    }

    async fn attach(&self, request: Request<AttachRequest>) -> RpcResult<AttachResponse> {
        Ok(Response::new(self.attach_rpc(request.into_inner()).await?))
    }

    async fn port_forward(
        &self,
        request: Request<PortForwardRequest>,
    ) -> RpcResult<PortForwardResponse> {
        Ok(Response::new(
            self.port_forward_rpc(request.into_inner()).await?,
        ))
    }

    type GetContainerEventsStream = super::events::EventStream;

    async fn get_container_events(
        &self,
        _request: Request<GetEventsRequest>,
    ) -> RpcResult<Self::GetContainerEventsStream> {
        Ok(Response::new(self.container_events_rpc()))
    }

    not_built_yet! {
        container_stats(ContainerStatsRequest) -> ContainerStatsResponse = "ContainerStats";
        list_container_stats(ListContainerStatsRequest) -> ListContainerStatsResponse = "ListContainerStats";
        pod_sandbox_stats(PodSandboxStatsRequest) -> PodSandboxStatsResponse = "PodSandboxStats";
        list_pod_sandbox_stats(ListPodSandboxStatsRequest) -> ListPodSandboxStatsResponse = "ListPodSandboxStats";
        checkpoint_container(CheckpointContainerRequest) -> CheckpointContainerResponse = "CheckpointContainer";
        list_metric_descriptors(ListMetricDescriptorsRequest) -> ListMetricDescriptorsResponse = "ListMetricDescriptors";
        list_pod_sandbox_metrics(ListPodSandboxMetricsRequest) -> ListPodSandboxMetricsResponse = "ListPodSandboxMetrics";
    }
}
