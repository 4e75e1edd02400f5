//! RunPodSandbox, StopPodSandbox, RemovePodSandbox, PodSandboxStatus, ListPodSandbox.

use cri_proto::{
    ContainerEventType, ListPodSandboxRequest, ListPodSandboxResponse, PodSandboxStatusRequest,
    PodSandboxStatusResponse, RemovePodSandboxRequest, RemovePodSandboxResponse,
    RunPodSandboxRequest, RunPodSandboxResponse, StopPodSandboxRequest, StopPodSandboxResponse,
};

use std::sync::Arc;

use super::{RuntimeApi, blocking, detached};
use crate::daemon::Daemon;
use crate::error::Result;
use crate::store::sandbox::SandboxPhase;

/// Stops a pod, its containers first. A container that will not stop does not hold the pod
/// up: stopping the pod ends its monitor, and with it every container, whose exit is then
/// recorded as such. A pod that was ready gets its STOPPED event.
async fn stop_pod(daemon: &Arc<Daemon>, pod_id: &str) -> Result<()> {
    let was_ready = daemon
        .sandboxes
        .snapshot(pod_id)
        .is_ok_and(|pod| pod.phase == SandboxPhase::Ready);
    if let Err(e) = daemon.containers.stop_pod(pod_id).await {
        tracing::warn!(pod_id, error = %e, "stopping the pod's containers failed; stopping the pod ends them");
    }
    let (sandboxes, id) = (daemon.sandboxes.clone(), pod_id.to_string());
    blocking(move || sandboxes.stop(&id)).await?;
    if was_ready {
        let stopped = ContainerEventType::ContainerStoppedEvent;
        daemon.containers.publish_pod_event(pod_id, stopped);
    }
    Ok(())
}

impl RuntimeApi {
    #[tracing::instrument(name = "RunPodSandbox", skip_all, fields(
        pod = request.config.as_ref().and_then(|c| c.metadata.as_ref()).map(|m| format!("{}/{}", m.namespace, m.name)),
        pod_id = tracing::field::Empty,
    ))]
    pub(super) async fn run_pod_sandbox_rpc(
        &self,
        request: RunPodSandboxRequest,
    ) -> Result<RunPodSandboxResponse> {
        // Detached: if the client gives up (deadline, reset) the pod still gets its watcher.
        let daemon = self.daemon.clone();
        let record = detached(async move {
            let sandboxes = daemon.sandboxes.clone();
            let record = blocking(move || sandboxes.run(request)).await?;
            if let Some(monitor) = record.monitor {
                daemon.watch_monitor(record.id.clone(), monitor);
            }
            Ok(record)
        })
        .await?;
        tracing::Span::current().record("pod_id", record.id.as_str());
        tracing::info!("pod sandbox ready");
        let containers = &self.daemon.containers;
        containers.publish_pod_event(&record.id, ContainerEventType::ContainerCreatedEvent);
        containers.publish_pod_event(&record.id, ContainerEventType::ContainerStartedEvent);
        Ok(RunPodSandboxResponse {
            pod_sandbox_id: record.id,
        })
    }

    #[tracing::instrument(name = "StopPodSandbox", skip_all, fields(pod_id = %request.pod_sandbox_id))]
    pub(super) async fn stop_pod_sandbox_rpc(
        &self,
        request: StopPodSandboxRequest,
    ) -> Result<StopPodSandboxResponse> {
        let daemon = self.daemon.clone();
        detached(async move { stop_pod(&daemon, &request.pod_sandbox_id).await }).await?;
        Ok(StopPodSandboxResponse {})
    }

    #[tracing::instrument(name = "RemovePodSandbox", skip_all, fields(pod_id = %request.pod_sandbox_id))]
    pub(super) async fn remove_pod_sandbox_rpc(
        &self,
        request: RemovePodSandboxRequest,
    ) -> Result<RemovePodSandboxResponse> {
        let daemon = self.daemon.clone();
        detached(async move {
            let id = &request.pod_sandbox_id;
            stop_pod(&daemon, id).await?;
            daemon.containers.remove_pod(id).await?;
            let pod = daemon.containers.pod_status_for_event(id);
            let (sandboxes, pod_id) = (daemon.sandboxes.clone(), id.clone());
            blocking(move || sandboxes.remove(&pod_id)).await?;
            if let Some(pod) = pod {
                daemon.containers.publish_pod_deleted(pod);
            }
            Ok(())
        })
        .await?;
        Ok(RemovePodSandboxResponse {})
    }

    #[tracing::instrument(name = "PodSandboxStatus", skip_all, fields(pod_id = %request.pod_sandbox_id))]
    pub(super) fn pod_sandbox_status_rpc(
        &self,
        request: PodSandboxStatusRequest,
    ) -> Result<PodSandboxStatusResponse> {
        self.daemon
            .sandboxes
            .status(&request.pod_sandbox_id, request.verbose)
    }

    #[tracing::instrument(name = "ListPodSandbox", skip_all)]
    pub(super) fn list_pod_sandbox_rpc(
        &self,
        request: ListPodSandboxRequest,
    ) -> ListPodSandboxResponse {
        ListPodSandboxResponse {
            items: self.daemon.sandboxes.list(request.filter.as_ref()),
        }
    }
}
