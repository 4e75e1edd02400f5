//! Version, Status, RuntimeConfig and UpdateRuntimeConfig.

use std::collections::HashMap;

use cri_proto::{
    LinuxRuntimeConfiguration, RuntimeCondition, RuntimeConfigResponse, RuntimeFeatures,
    RuntimeHandler, RuntimeHandlerFeatures, RuntimeStatus, StatusRequest, StatusResponse,
    UpdateRuntimeConfigRequest, UpdateRuntimeConfigResponse, VersionRequest, VersionResponse,
};
use serde_json::json;

use super::RuntimeApi;
use crate::config::CgroupDriver;

/// The CRI API version crishim speaks.
const CRI_API_VERSION: &str = "v1";

impl RuntimeApi {
    #[tracing::instrument(name = "Version", skip_all)]
    pub(super) fn version_rpc(&self, _request: VersionRequest) -> VersionResponse {
        VersionResponse {
            version: "0.1.0".to_string(),
            runtime_name: "crishim".to_string(),
            runtime_version: env!("CARGO_PKG_VERSION").to_string(),
            runtime_api_version: CRI_API_VERSION.to_string(),
        }
    }

    /// RuntimeReady says whether the state dirs are usable; NetworkReady whether a CNI
    /// network config is loaded.
    #[tracing::instrument(name = "Status", skip_all)]
    pub(super) fn status_rpc(&self, request: StatusRequest) -> StatusResponse {
        let config = &self.daemon.config;
        let unusable: Vec<String> = [&config.root, &config.state]
            .into_iter()
            .filter(|dir| !dir.is_dir())
            .map(|dir| dir.display().to_string())
            .collect();
        let runtime = RuntimeCondition {
            r#type: "RuntimeReady".to_string(),
            status: unusable.is_empty(),
            reason: if unusable.is_empty() {
                String::new()
            } else {
                "StateDirMissing".to_string()
            },
            message: if unusable.is_empty() {
                String::new()
            } else {
                format!("state directories are missing: {}", unusable.join(", "))
            },
        };
        let readiness = self.daemon.sandboxes.network().readiness();
        let network = RuntimeCondition {
            r#type: "NetworkReady".to_string(),
            status: readiness.ready,
            reason: readiness.reason,
            message: readiness.message,
        };
        let info = if request.verbose {
            let value = json!({
                "config": &**config,
                "cgroupMode": self.daemon.sandboxes.cgroup_mode(),
                "podCIDR": self.daemon.sandboxes.network().pod_cidr(),
                "version": env!("CARGO_PKG_VERSION"),
            });
            HashMap::from([("info".to_string(), value.to_string())])
        } else {
            HashMap::new()
        };
        let runtime_handlers = config
            .runtime_handlers
            .keys()
            .map(|name| RuntimeHandler {
                name: name.clone(),
                features: Some(RuntimeHandlerFeatures {
                    recursive_read_only_mounts: false,
                    user_namespaces: false,
                }),
            })
            .collect();
        StatusResponse {
            status: Some(RuntimeStatus {
                conditions: vec![runtime, network],
            }),
            info,
            runtime_handlers,
            features: Some(RuntimeFeatures {
                supplemental_groups_policy: false,
            }),
        }
    }

    #[tracing::instrument(name = "RuntimeConfig", skip_all)]
    pub(super) fn runtime_config_rpc(&self) -> RuntimeConfigResponse {
        let driver = match self.daemon.config.cgroup_driver {
            CgroupDriver::Cgroupfs => cri_proto::CgroupDriver::Cgroupfs,
            CgroupDriver::Systemd => cri_proto::CgroupDriver::Systemd,
        };
        RuntimeConfigResponse {
            linux: Some(LinuxRuntimeConfiguration {
                cgroup_driver: driver as i32,
            }),
        }
    }

    /// Keeps the pod CIDR kubelet sends; an empty or absent one leaves the old value.
    #[tracing::instrument(name = "UpdateRuntimeConfig", skip_all)]
    pub(super) fn update_runtime_config_rpc(
        &self,
        request: UpdateRuntimeConfigRequest,
    ) -> UpdateRuntimeConfigResponse {
        let cidr = request
            .runtime_config
            .and_then(|c| c.network_config)
            .map(|n| n.pod_cidr)
            .unwrap_or_default();
        if !cidr.is_empty() {
            tracing::info!(pod_cidr = %cidr, "pod CIDR updated");
            self.daemon.sandboxes.network().set_pod_cidr(cidr);
        }
        UpdateRuntimeConfigResponse {}
    }
}
