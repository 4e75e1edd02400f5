//! Container and pod events for GetContainerEvents, kubelet's evented PLEG. Each event carries
//! the pod's status and the statuses of all its containers at the time: kubelet files its pod
//! cache from them. Events are only built while someone listens. A container's STOPPED event
//! goes out when its exit is first seen: from the monitor's exit report, a status read or a
//! stop, whichever comes first.

use std::sync::Arc;

use cri_proto::{ContainerEventResponse, ContainerEventType, ContainerStatus, PodSandboxStatus};
use tokio::sync::broadcast;

use super::query::cri_status;
use super::{ContainerEntry, ContainerManager};
use crate::sandbox::now_nanos;
use crate::store::container::ContainerRecord;

/// How far a listener may fall behind before its stream ends (kubelet then relists).
const BACKLOG: usize = 4096;

/// The daemon's event channel. Events are shared (`Arc`): the channel's slots are made
/// up front, and a slot of a whole event would cost the daemon about 2 MiB for nothing.
pub struct Events {
    sender: broadcast::Sender<Arc<ContainerEventResponse>>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            sender: broadcast::channel(BACKLOG).0,
        }
    }
}

impl ContainerManager {
    /// A new listener: every event from now on.
    pub fn subscribe_events(&self) -> broadcast::Receiver<Arc<ContainerEventResponse>> {
        self.events.sender.subscribe()
    }

    /// Whether anyone listens (nothing is built otherwise).
    pub(super) fn listened(&self) -> bool {
        self.events.sender.receiver_count() > 0
    }

    /// Publishes an event of the container `record` describes, with the record as the
    /// container's status (its entry may not show it yet: a start is published before it is
    /// visible, so that no STOPPED can come before its STARTED); a deleted one is left out.
    /// A pod that is gone already gets none: kubelet could not file it under a pod.
    pub(super) fn publish(&self, record: &ContainerRecord, kind: ContainerEventType) {
        let Some(pod) = self.pod_status_for_event(&record.pod_id) else {
            return;
        };
        let mut statuses = self.pod_container_statuses(&pod.id);
        statuses.retain(|s| s.id != record.id);
        if kind != ContainerEventType::ContainerDeletedEvent {
            statuses.push(cri_status(record));
        }
        self.send_event(&record.id, kind, pod, statuses);
    }

    /// Publishes an event of pod `pod_id` itself (RunPodSandbox, StopPodSandbox, the end of
    /// its monitor), as containerd does for its sandboxes.
    pub fn publish_pod_event(&self, pod_id: &str, kind: ContainerEventType) {
        // `pod_id` may be a prefix, as the pod RPCs take: the event names the pod in full.
        if let Some(pod) = self.pod_status_for_event(pod_id) {
            let (id, statuses) = (pod.id.clone(), self.pod_container_statuses(&pod.id));
            self.send_event(&id, kind, pod, statuses);
        }
    }

    /// The pod's status, when someone listens: taken before RemovePodSandbox for the DELETED
    /// event that follows it ([`Self::publish_pod_deleted`]).
    pub fn pod_status_for_event(&self, pod_id: &str) -> Option<PodSandboxStatus> {
        if !self.listened() {
            return None;
        }
        self.sandboxes.status(pod_id, false).ok()?.status
    }

    /// Publishes the DELETED event of a removed pod, whose status was taken before.
    pub fn publish_pod_deleted(&self, pod: PodSandboxStatus) {
        let id = pod.id.clone();
        self.send_event(
            &id,
            ContainerEventType::ContainerDeletedEvent,
            pod,
            Vec::new(),
        );
    }

    /// Container `id` ended (its monitor says so): it is brought up to date, which publishes
    /// its STOPPED event if nothing saw the exit before. An unknown id is one removed since.
    /// It waits for the container's operation in progress: its STARTED (or a stop's own
    /// STOPPED) goes out first, its DELETED after.
    pub async fn notice_exit(&self, id: &str) {
        if let Some(entry) = self.known(id) {
            let _op = entry.lock_op().await;
            self.take_exit(&entry);
        }
    }

    /// Every container of pod `pod_id` brought up to date, as [`Self::notice_exit`] does: the
    /// exits that happened while nobody followed the monitor's reports.
    pub async fn notice_exits_of_pod(&self, pod_id: &str) {
        for entry in self.of_pod(pod_id) {
            let _op = entry.lock_op().await;
            self.take_exit(&entry);
        }
    }

    /// [`Self::notice_exit`] when no operation holds the container, at once; false when one
    /// does (the caller then waits for it in a task of its own), so that the pod's other
    /// exits are not held up behind a stop's grace period.
    pub fn notice_exit_unless_busy(&self, id: &str) -> bool {
        let Some(entry) = self.known(id) else {
            return true;
        };
        let Some(_op) = entry.try_lock_op() else {
            return false;
        };
        self.take_exit(&entry);
        true
    }

    fn known(&self, id: &str) -> Option<Arc<ContainerEntry>> {
        self.containers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// Brings `entry` up to date; the caller holds its operation lock.
    fn take_exit(&self, entry: &ContainerEntry) {
        if let Err(e) = self.refresh(entry) {
            tracing::warn!(container_id = %entry.snapshot().id, error = %e, "a container's exit cannot be read");
        }
    }

    /// Pod `pod_id`'s monitor has ended: its containers are brought up to date (STOPPED
    /// events for those that were running), then the pod's own STOPPED event.
    pub fn notice_pod_ended(&self, pod_id: &str) {
        if !self.listened() {
            return;
        }
        for entry in self.of_pod(pod_id) {
            if let Err(e) = self.refresh(&entry) {
                tracing::warn!(pod_id, error = %e, "a container of an ended pod cannot be brought up to date");
            }
        }
        self.publish_pod_event(pod_id, ContainerEventType::ContainerStoppedEvent);
    }

    fn send_event(
        &self,
        id: &str,
        kind: ContainerEventType,
        pod: PodSandboxStatus,
        containers_statuses: Vec<ContainerStatus>,
    ) {
        let event = ContainerEventResponse {
            container_id: id.to_string(),
            container_event_type: kind as i32,
            created_at: now_nanos(),
            containers_statuses,
            pod_sandbox_status: Some(pod),
        };
        // An error only means that nobody listens any more.
        let _ = self.events.sender.send(Arc::new(event));
    }
}
