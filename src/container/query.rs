//! ContainerStatus and ListContainers.

use std::collections::HashMap;

use cri_proto::{
    Container, ContainerFilter, ContainerResources, ContainerState, ContainerStatus,
    ContainerStatusResponse, ContainerUser, ImageSpec, LinuxContainerUser,
};
use serde_json::json;

use super::ContainerManager;
use crate::error::Result;
use crate::filter::{id_matches, labels_match};
use crate::store::container::{ContainerBackend, ContainerPhase, ContainerRecord};

fn cri_state(phase: ContainerPhase) -> ContainerState {
    match phase {
        // A Creating record is not in the index; were it seen, it would not be running yet.
        ContainerPhase::Creating | ContainerPhase::Created => ContainerState::ContainerCreated,
        ContainerPhase::Running => ContainerState::ContainerRunning,
        ContainerPhase::Exited => ContainerState::ContainerExited,
    }
}

fn image_spec(record: &ContainerRecord) -> Option<ImageSpec> {
    record.config.image.clone().map(|i| ImageSpec {
        image: i.image,
        ..Default::default()
    })
}

fn matches(record: &ContainerRecord, filter: Option<&ContainerFilter>) -> bool {
    let Some(filter) = filter else {
        return true;
    };
    let state_ok = filter
        .state
        .as_ref()
        .is_none_or(|s| s.state == cri_state(record.phase) as i32);
    id_matches(&filter.id, &record.id)
        && id_matches(&filter.pod_sandbox_id, &record.pod_id)
        && state_ok
        && labels_match(&filter.label_selector, &record.config.labels)
}

/// The CRI status of a record as it stands.
pub(super) fn cri_status(record: &ContainerRecord) -> ContainerStatus {
    let exit = record.exit.clone().unwrap_or_default();
    ContainerStatus {
        id: record.id.clone(),
        metadata: record.config.metadata.clone(),
        state: cri_state(record.phase) as i32,
        created_at: record.created_at,
        started_at: record.started_at,
        finished_at: exit.finished_at,
        exit_code: exit.exit_code,
        image: image_spec(record),
        image_ref: record.image_ref.clone(),
        image_id: record.image_id.clone(),
        reason: exit.reason.clone(),
        message: exit.message.clone(),
        labels: record.config.labels.clone(),
        annotations: record.config.annotations.clone(),
        mounts: record.config.mounts.clone(),
        log_path: record
            .log_path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        resources: record
            .config
            .linux
            .as_ref()
            .and_then(|l| l.resources.clone())
            .map(|linux| ContainerResources {
                linux: Some(linux),
                windows: None,
            }),
        user: match &record.backend {
            ContainerBackend::Linux { user, .. } => Some(ContainerUser {
                linux: Some(LinuxContainerUser {
                    uid: i64::from(user.uid),
                    gid: i64::from(user.gid),
                    supplemental_groups: user
                        .additional_gids
                        .iter()
                        .map(|g| i64::from(*g))
                        .collect(),
                }),
            }),
            ContainerBackend::Wasm { .. } => None,
        },
    }
}

impl ContainerManager {
    /// The status of one container; `verbose` adds an `info` JSON document.
    pub fn status(&self, id: &str, verbose: bool) -> Result<ContainerStatusResponse> {
        let record = self.refresh(&*self.entry(id)?)?;
        let status = cri_status(&record);
        let info = if verbose {
            let (backend, launch) = match &record.backend {
                ContainerBackend::Wasm { launch } => ("wasm", json!(launch)),
                ContainerBackend::Linux { launch, .. } => ("linux", json!(launch)),
            };
            let value = json!({
                "backend": backend,
                "selectedBy": record.selected_by,
                "podSandboxId": record.pod_id,
                "launch": launch,
                "bundle": record.bundle,
                "phase": record.phase,
            });
            HashMap::from([("info".to_string(), value.to_string())])
        } else {
            HashMap::new()
        };
        Ok(ContainerStatusResponse {
            status: Some(status),
            info,
        })
    }

    /// The statuses of pod `pod_id`'s containers, brought up to date.
    pub(super) fn pod_container_statuses(&self, pod_id: &str) -> Vec<ContainerStatus> {
        self.entries()
            .iter()
            .filter(|entry| entry.in_pod(pod_id))
            // A record that cannot be brought up to date is reported as it was last known.
            .map(|entry| cri_status(&self.refresh(entry).unwrap_or_else(|_| entry.snapshot())))
            .collect()
    }

    /// Every container that passes `filter`, newest first.
    pub fn list(&self, filter: Option<&ContainerFilter>) -> Vec<Container> {
        let mut records: Vec<ContainerRecord> = self
            .entries()
            .iter()
            // A record that cannot be brought up to date is listed as it was last known.
            .map(|entry| self.refresh(entry).unwrap_or_else(|_| entry.snapshot()))
            .filter(|record| matches(record, filter))
            .collect();
        records.sort_by_key(|r| std::cmp::Reverse(r.created_at));
        records
            .into_iter()
            .map(|record| Container {
                id: record.id.clone(),
                pod_sandbox_id: record.pod_id.clone(),
                metadata: record.config.metadata.clone(),
                image: image_spec(&record),
                image_ref: record.image_ref.clone(),
                image_id: record.image_id.clone(),
                state: cri_state(record.phase) as i32,
                created_at: record.created_at,
                labels: record.config.labels.clone(),
                annotations: record.config.annotations.clone(),
            })
            .collect()
    }
}
