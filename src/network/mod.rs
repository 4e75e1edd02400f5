//! Pod networking through CNI: the network config from the conf dir, ADD when a pod starts,
//! DEL when it stops (and again, harmlessly, when it is removed), CHECK at recovery. Plugins
//! run through the [`PluginExec`] trait, so the flow is unit-testable without root.

pub mod attachment;
pub mod capabilities;
pub mod conf;
pub mod exec;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use cri_proto::PodSandboxConfig;
use serde_json::Value;

use crate::config::PodNetworkMode;
use crate::error::{Error, Result};
use crate::store::checkpoint;
use attachment::{ATTACHMENT_VERSION, Attachment};
use conf::{ConfState, FileStamp, NetworkList};
use exec::{CniCommand, Invocation, PluginExec};

/// The interface name pods get, as in every Kubernetes runtime.
pub const POD_IFNAME: &str = "eth0";

/// The NetworkReady condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// True when pods can be networked.
    pub ready: bool,
    /// Why not (CamelCase), empty when ready.
    pub reason: String,
    /// What is wrong, for people.
    pub message: String,
}

/// Networking for every pod of the daemon.
pub struct PodNetworks {
    mode: PodNetworkMode,
    conf_dir: PathBuf,
    exec: Arc<dyn PluginExec>,
    loaded: Mutex<Option<(FileStamp, ConfState)>>,
    pod_cidr: RwLock<String>,
}

impl PodNetworks {
    /// Networks configured from `conf_dir`, plugins run by `exec`.
    pub fn new(mode: PodNetworkMode, conf_dir: PathBuf, exec: Arc<dyn PluginExec>) -> Self {
        PodNetworks {
            mode,
            conf_dir,
            exec,
            loaded: Mutex::new(None),
            pod_cidr: RwLock::new(String::new()),
        }
    }

    /// The conf dir's current network config, reparsed only when its first file changed.
    pub fn conf_state(&self) -> ConfState {
        let Some(stamp) = conf::first_file(&self.conf_dir) else {
            return ConfState::Missing;
        };
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((cached, state)) = loaded.as_ref()
            && *cached == stamp
        {
            return state.clone();
        }
        let state = conf::load(&stamp);
        match &state {
            ConfState::Loaded(list) => tracing::info!(
                file = %list.file.display(), network = %list.name, "CNI network config loaded"
            ),
            ConfState::Broken { file, error } => tracing::warn!(
                file = %file.display(), error = %error, "CNI network config is unusable"
            ),
            ConfState::Missing => {}
        }
        *loaded = Some((stamp, state.clone()));
        state
    }

    /// NetworkReady for the runtime Status.
    pub fn readiness(&self) -> Readiness {
        let not_ready = |reason: &str, message: String| Readiness {
            ready: false,
            reason: reason.to_string(),
            message,
        };
        if self.mode == PodNetworkMode::None {
            return not_ready(
                "NetworkPluginNotReady",
                "pod_network = \"none\": pods get a network namespace with only loopback".into(),
            );
        }
        match self.conf_state() {
            ConfState::Loaded(_) => Readiness {
                ready: true,
                reason: String::new(),
                message: String::new(),
            },
            ConfState::Missing => not_ready(
                "NoCNIConfigLoaded",
                format!("no CNI network config found in {}", self.conf_dir.display()),
            ),
            ConfState::Broken { file, error } => not_ready(
                "NoCNIConfigLoaded",
                format!("CNI network config {}: {error}", file.display()),
            ),
        }
    }

    /// Keeps the node's pod CIDR (from UpdateRuntimeConfig) for plugins that ask for ipRanges.
    pub fn set_pod_cidr(&self, cidr: String) {
        *self.pod_cidr.write().unwrap_or_else(|e| e.into_inner()) = cidr;
    }

    /// The pod CIDR in effect (empty when kubelet sent none).
    pub fn pod_cidr(&self) -> String {
        self.pod_cidr
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn network(&self) -> Result<NetworkList> {
        match self.conf_state() {
            ConfState::Loaded(list) => Ok(list),
            _ => Err(Error::FailedPrecondition(format!(
                "pod network is not ready: {}",
                self.readiness().message
            ))),
        }
    }

    /// Attaches pod `pod_id` (its netns pinned at `netns`) to the network: caches what ADD is
    /// called with at `cache` first (so that an interrupted ADD is undone by DEL), runs the
    /// plugins' ADD, caches the result and returns the pod's IPs. With pod_network = "none"
    /// nothing is done. On error the caller detaches.
    pub fn attach(
        &self,
        pod_id: &str,
        pod: &PodSandboxConfig,
        netns: &Path,
        cache: &Path,
    ) -> Result<Vec<String>> {
        if self.mode == PodNetworkMode::None {
            return Ok(Vec::new());
        }
        let list = self.network()?;
        let caps = capabilities::for_pod(pod, &self.pod_cidr())?;
        let plugins = list
            .plugins
            .iter()
            .map(|plugin| {
                let mut config = plugin.clone();
                config.insert("name".into(), Value::String(list.name.clone()));
                config.insert("cniVersion".into(), Value::String(list.cni_version.clone()));
                let runtime = capabilities::runtime_config(plugin, &caps);
                if !runtime.is_empty() {
                    config.insert("runtimeConfig".into(), Value::Object(runtime));
                }
                Value::Object(config)
            })
            .collect();
        let mut attachment = Attachment {
            version: ATTACHMENT_VERSION,
            network: list.name.clone(),
            file: list.file.clone(),
            cni_version: list.cni_version.clone(),
            check: !list.disable_check,
            plugins,
            container_id: pod_id.to_string(),
            ifname: POD_IFNAME.to_string(),
            args: cni_args(pod_id, pod)?,
            result: None,
        };
        checkpoint::write(cache, &attachment)?;
        let started = std::time::Instant::now();
        let mut previous: Option<Value> = None;
        for config in &attachment.plugins {
            let mut config = config.clone();
            if let Some(previous) = previous.take() {
                config["prevResult"] = previous;
            }
            let out = self.run(&attachment, CniCommand::Add, netns_arg(Some(netns)), config)?;
            previous = Some(serde_json::from_slice(&out).map_err(|e| {
                Error::Internal(format!(
                    "CNI ADD of network {:?} returned an invalid result: {e}",
                    list.name
                ))
            })?);
        }
        attachment.result = previous;
        tracing::debug!(
            pod_id,
            network = %list.name,
            ms = started.elapsed().as_secs_f64() * 1e3,
            "CNI ADD finished"
        );
        checkpoint::write(cache, &attachment)?;
        Ok(attachment.pod_ips())
    }

    /// Detaches the pod cached at `cache`: DEL through every plugin in reverse order (each is
    /// tried; the first error is returned). `netns` is None once the namespace is gone. No
    /// cache means the pod was never attached.
    pub fn detach(&self, cache: &Path, netns: Option<&Path>) -> Result<()> {
        if !cache.exists() {
            return Ok(());
        }
        let attachment = read_attachment(cache)?;
        let previous = attachment
            .result
            .clone()
            .filter(|_| conf::version_at_least(&attachment.cni_version, 0, 4));
        let mut outcomes = Vec::new();
        for config in attachment.plugins.iter().rev() {
            let mut config = config.clone();
            if let Some(previous) = &previous {
                config["prevResult"] = previous.clone();
            }
            outcomes.push(self.run(&attachment, CniCommand::Del, netns_arg(netns), config));
        }
        outcomes.into_iter().collect::<Result<Vec<_>>>().map(drop)
    }

    /// CHECK of a live pod's attachment, where the network's spec version has it and the list
    /// does not disable it. True when CHECK ran (and passed), false when there was nothing to
    /// check.
    pub fn check(&self, cache: &Path, netns: &Path) -> Result<bool> {
        if !cache.exists() {
            return Ok(false);
        }
        let attachment = read_attachment(cache)?;
        let Some(result) = attachment.result.clone() else {
            return Ok(false);
        };
        if !attachment.check || !conf::version_at_least(&attachment.cni_version, 0, 4) {
            return Ok(false);
        }
        for config in &attachment.plugins {
            let mut config = config.clone();
            config["prevResult"] = result.clone();
            self.run(
                &attachment,
                CniCommand::Check,
                netns_arg(Some(netns)),
                config,
            )?;
        }
        Ok(true)
    }

    fn run(
        &self,
        attachment: &Attachment,
        command: CniCommand,
        netns: String,
        config: Value,
    ) -> Result<Vec<u8>> {
        // Checked again: the config may come from the cache on disk.
        let plugin = config
            .as_object()
            .map(conf::plugin_type)
            .unwrap_or(Err("a plugin config is not an object".into()))
            .map_err(|e| Error::InvalidArgument(format!("network {}: {e}", attachment.network)))?
            .to_string();
        let started = std::time::Instant::now();
        let out = self.exec.exec(&Invocation {
            plugin: plugin.clone(),
            command,
            container_id: attachment.container_id.clone(),
            netns,
            ifname: attachment.ifname.clone(),
            args: attachment.args.clone(),
            config,
        });
        tracing::debug!(
            plugin = %plugin,
            command = command.as_str(),
            ms = started.elapsed().as_secs_f64() * 1e3,
            ok = out.is_ok(),
            "CNI plugin ran"
        );
        out
    }
}

fn read_attachment(cache: &Path) -> Result<Attachment> {
    let attachment: Attachment = checkpoint::read(cache)?;
    if attachment.version != ATTACHMENT_VERSION {
        return Err(Error::FailedPrecondition(format!(
            "CNI cache {} has version {} (this build reads version {ATTACHMENT_VERSION})",
            cache.display(),
            attachment.version
        )));
    }
    Ok(attachment)
}

fn netns_arg(netns: Option<&Path>) -> String {
    netns.map(|p| p.display().to_string()).unwrap_or_default()
}

/// `CNI_ARGS` as kubelet's runtimes pass them. Values holding `;` or `=` would add keys of
/// their own, so they are refused (Kubernetes names never hold them).
fn cni_args(pod_id: &str, pod: &PodSandboxConfig) -> Result<String> {
    let meta = pod.metadata.clone().unwrap_or_default();
    for (field, value) in [
        ("namespace", &meta.namespace),
        ("name", &meta.name),
        ("uid", &meta.uid),
    ] {
        if value.contains([';', '=']) {
            return Err(Error::InvalidArgument(format!(
                "pod metadata.{field} {value:?} may not contain ';' or '='"
            )));
        }
    }
    Ok(format!(
        "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={pod_id};K8S_POD_UID={}",
        meta.namespace, meta.name, meta.uid
    ))
}

/// `path` when a namespace is mounted there (a pin still in place), else None.
pub fn pinned_netns(path: &Path) -> Option<&Path> {
    const NSFS_MAGIC: i64 = 0x6e73_6673;
    let fs = nix::sys::statfs::statfs(path).ok()?;
    (fs.filesystem_type().0 as i64 == NSFS_MAGIC).then_some(path)
}

#[cfg(test)]
mod tests;
