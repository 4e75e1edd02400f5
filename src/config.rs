//! The daemon configuration: `/etc/crishim/config.toml` (optional) with a default for every key,
//! then command-line flags on top.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};

/// Where the config file is read from when `--config` is not given.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/crishim/config.toml";

/// The cgroup driver, as kubelet's `--cgroup-driver` names it; both must agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CgroupDriver {
    /// Cgroup paths are plain directories (`/kubepods/pod123`).
    #[default]
    Cgroupfs,
    /// Cgroup parents are systemd slice names (`kubepods-pod123.slice`), expanded to paths.
    Systemd,
}

/// What a RuntimeClass handler does with the pod's containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HandlerKind {
    /// Choose per container from annotations and the image.
    Auto,
    /// Every container of the pod runs as WebAssembly.
    Wasm,
    /// Every container of the pod runs as a Linux container.
    Linux,
}

/// How pods that do not use the host network get their network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PodNetworkMode {
    /// CNI plugins from the `[cni]` dirs; RunPodSandbox fails while no config is loaded.
    #[default]
    Cni,
    /// No CNI: an own network namespace with only loopback (benchmarks, sandbox tests).
    None,
}

/// Where CNI configs and plugins are found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CniConfig {
    /// The first `.conflist`/`.conf`/`.json` here (by name) is the pod network.
    pub conf_dir: PathBuf,
    /// Plugin binaries are looked up here, in order.
    pub bin_dirs: Vec<PathBuf>,
    /// A plugin call that takes longer is killed and fails.
    pub plugin_timeout_ms: u64,
}

impl Default for CniConfig {
    fn default() -> Self {
        CniConfig {
            conf_dir: PathBuf::from("/etc/cni/net.d"),
            bin_dirs: vec![PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")],
            plugin_timeout_ms: 60_000,
        }
    }
}

/// The whole configuration. Every key has a default; see README.md for the list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The CRI socket. Defaults to `<state>/crishim.sock`.
    pub socket: Option<PathBuf>,
    /// Persistent state: checkpoints, images.
    pub root: PathBuf,
    /// Runtime state (lost at reboot): pod directories, namespace pins, sockets.
    pub state: PathBuf,
    /// The cgroup driver reported to kubelet and used to read cgroup parents.
    pub cgroup_driver: CgroupDriver,
    /// Cgroup parent for pods whose config names none.
    pub default_cgroup_parent: String,
    /// How long RunPodSandbox waits for a new monitor to report ready.
    pub monitor_start_timeout_ms: u64,
    /// How long StopPodSandbox waits for a monitor to exit before killing it.
    pub monitor_stop_timeout_ms: u64,
    /// RuntimeClass handler name to kind. The empty name is the default handler.
    pub runtime_handlers: BTreeMap<String, HandlerKind>,
    /// A Docker `config.json` whose `auths` give registry credentials.
    pub docker_config: Option<PathBuf>,
    /// Per-registry settings, by `host[:port]` as written in image names (`docker.io`).
    pub registries: BTreeMap<String, RegistryConfig>,
    /// How pods get their network.
    pub pod_network: PodNetworkMode,
    /// CNI dirs and limits.
    pub cni: CniConfig,
    /// Where the exec/attach/port-forward server listens (`host:port`; port 0 picks a free
    /// one). Its URLs go to kubelet, which proxies clients to it: loopback keeps it node-local.
    pub stream_server_address: String,
}

/// Settings for one registry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    /// Plain HTTP (true) or TLS (false). Unset: plain HTTP on localhost and 127.0.0.0/8 (as
    /// Docker and containerd allow), TLS elsewhere.
    pub insecure: Option<bool>,
    /// Hosts (`host[:port]`) tried in order before the registry itself.
    pub mirrors: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            socket: None,
            root: PathBuf::from("/var/lib/crishim"),
            state: PathBuf::from("/run/crishim"),
            cgroup_driver: CgroupDriver::default(),
            default_cgroup_parent: "/crishim".to_string(),
            monitor_start_timeout_ms: 5_000,
            monitor_stop_timeout_ms: 5_000,
            runtime_handlers: BTreeMap::from([
                (String::new(), HandlerKind::Auto),
                ("crishim".to_string(), HandlerKind::Auto),
                ("wasmtime".to_string(), HandlerKind::Wasm),
                ("youki".to_string(), HandlerKind::Linux),
            ]),
            docker_config: None,
            registries: BTreeMap::new(),
            pod_network: PodNetworkMode::default(),
            cni: CniConfig::default(),
            stream_server_address: "127.0.0.1:0".to_string(),
        }
    }
}

/// Command-line values that override the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--socket`
    pub socket: Option<PathBuf>,
    /// `--root`
    pub root: Option<PathBuf>,
    /// `--state`
    pub state: Option<PathBuf>,
    /// `--cni-conf-dir`
    pub cni_conf_dir: Option<PathBuf>,
    /// `--cni-bin-dir` (repeatable; replaces the configured list)
    pub cni_bin_dirs: Vec<PathBuf>,
}

impl Config {
    /// Reads the config: `file` must exist when given; the default file is optional.
    pub fn load(file: Option<&Path>, overrides: Overrides) -> Result<Config> {
        let mut config = match file {
            Some(path) => Self::parse_file(path)?,
            None if Path::new(DEFAULT_CONFIG_FILE).exists() => {
                Self::parse_file(Path::new(DEFAULT_CONFIG_FILE))?
            }
            None => Config::default(),
        };
        if overrides.socket.is_some() {
            config.socket = overrides.socket;
        }
        if let Some(root) = overrides.root {
            config.root = root;
        }
        if let Some(state) = overrides.state {
            config.state = state;
        }
        if let Some(dir) = overrides.cni_conf_dir {
            config.cni.conf_dir = dir;
        }
        if !overrides.cni_bin_dirs.is_empty() {
            config.cni.bin_dirs = overrides.cni_bin_dirs;
        }
        Ok(config)
    }

    fn parse_file(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).with_path("read config", path)?;
        Self::parse(&text)
            .map_err(|e| Error::InvalidArgument(format!("config {}: {e}", path.display())))
    }

    /// Parses config TOML text.
    pub fn parse(text: &str) -> std::result::Result<Config, toml::de::Error> {
        toml::from_str(text)
    }

    /// The CRI socket path in effect.
    pub fn socket_path(&self) -> PathBuf {
        self.socket
            .clone()
            .unwrap_or_else(|| self.state.join("crishim.sock"))
    }

    /// True when `host` is reached over plain HTTP: configured insecure, or a loopback name
    /// (as Docker and containerd allow).
    pub fn plain_http(&self, host: &str) -> bool {
        let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
        let loopback = name == "localhost"
            || name
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        self.registries
            .get(host)
            .and_then(|r| r.insecure)
            .unwrap_or(loopback)
    }

    /// Where to fetch `registry`'s content from, in order: its mirrors, then itself.
    pub fn registry_hosts(&self, registry: &str) -> Vec<String> {
        let mut hosts = self
            .registries
            .get(registry)
            .map(|r| r.mirrors.clone())
            .unwrap_or_default();
        hosts.push(registry.to_string());
        hosts
    }

    /// The kind of a RuntimeClass handler, or InvalidArgument naming the known ones.
    pub fn handler_kind(&self, handler: &str) -> Result<HandlerKind> {
        self.runtime_handlers.get(handler).copied().ok_or_else(|| {
            let known: Vec<String> = self
                .runtime_handlers
                .keys()
                .map(|k| format!("{k:?}"))
                .collect();
            Error::InvalidArgument(format!(
                "unknown runtime handler {handler:?}; configured handlers: {}",
                known.join(", ")
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
    }

    #[test]
    fn keys_override_defaults_and_flags_override_keys() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "root = \"/a\"\nstate = \"/b\"\ncgroup_driver = \"systemd\"\n[runtime_handlers]\nspin = \"wasm\"\n",
        )
        .unwrap();
        let config = Config::load(
            Some(&file),
            Overrides {
                state: Some("/c".into()),
                cni_bin_dirs: vec!["/b1".into(), "/b2".into()],
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            config.cni.bin_dirs,
            vec![PathBuf::from("/b1"), PathBuf::from("/b2")]
        );
        assert_eq!(config.cni.conf_dir, PathBuf::from("/etc/cni/net.d"));
        assert_eq!(config.root, PathBuf::from("/a"));
        assert_eq!(config.state, PathBuf::from("/c"));
        assert_eq!(config.socket_path(), PathBuf::from("/c/crishim.sock"));
        assert_eq!(config.cgroup_driver, CgroupDriver::Systemd);
        assert_eq!(config.handler_kind("spin").unwrap(), HandlerKind::Wasm);
    }

    #[test]
    fn unknown_keys_and_missing_files_are_errors() {
        assert!(Config::parse("rooot = \"/a\"").is_err());
        let missing = Config::load(Some(Path::new("/nonexistent/c.toml")), Overrides::default());
        assert!(matches!(missing, Err(Error::Io { .. })));
    }

    #[test]
    fn registries_mirrors_and_plain_http() {
        let config = Config::parse(
            "[registries.\"docker.io\"]\nmirrors = [\"mirror.local:5000\"]\n[registries.\"mirror.local:5000\"]\ninsecure = true\n",
        )
        .unwrap();
        assert_eq!(
            config.registry_hosts("docker.io"),
            vec!["mirror.local:5000", "docker.io"]
        );
        assert_eq!(config.registry_hosts("quay.io"), vec!["quay.io"]);
        assert!(config.plain_http("mirror.local:5000"));
        assert!(config.plain_http("127.0.0.1:5000") && config.plain_http("localhost"));
        assert!(!config.plain_http("docker.io") && !config.plain_http("mirror.local"));
        let tls = Config::parse("[registries.\"127.0.0.1:5443\"]\ninsecure = false\n").unwrap();
        assert!(
            !tls.plain_http("127.0.0.1:5443"),
            "TLS can be forced on loopback"
        );
    }

    #[test]
    fn default_handlers_and_unknown_handler() {
        let config = Config::default();
        assert_eq!(config.handler_kind("").unwrap(), HandlerKind::Auto);
        assert_eq!(config.handler_kind("youki").unwrap(), HandlerKind::Linux);
        let err = config.handler_kind("runc").unwrap_err().to_string();
        assert!(
            err.contains("\"runc\"") && err.contains("\"wasmtime\""),
            "{err}"
        );
    }
}
