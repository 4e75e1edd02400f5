//! Checks a RunPodSandbox request and works out what the pod needs: its namespaces, hostname
//! and cgroup. Pure functions, no side effects.

use cri_proto::{NamespaceMode, NamespaceOption, PodSandboxConfig};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::os::cgroup;
use crate::store::sandbox::PodNamespaces;

/// Linux allows hostnames up to 64 bytes.
const MAX_HOSTNAME: usize = 64;

/// What a valid RunPodSandbox request asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct PodPlan {
    /// Namespaces the pod owns.
    pub namespaces: PodNamespaces,
    /// Hostname to set, when the pod has its own UTS namespace and asks for one.
    pub hostname: Option<String>,
    /// The monitor's cgroup path.
    pub cgroup: String,
    /// Namespaced sysctls the monitor sets in the pod's namespaces, keys with dots.
    pub sysctls: Vec<(String, String)>,
}

/// The pod's sysctls, checked: each must belong to a namespace the pod owns (kubelet's
/// "namespaced" sysctls), keys in dotted or slashed form, no path tricks, no newlines.
fn sysctls(
    requested: &std::collections::HashMap<String, String>,
    namespaces: PodNamespaces,
) -> Result<Vec<(String, String)>> {
    let mut checked = Vec::new();
    for (key, value) in requested {
        let invalid = |why: &str| Error::InvalidArgument(format!("sysctl {key:?}: {why}"));
        let dotted = key.replace('/', ".");
        let clean = dotted.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        });
        if !clean || value.contains(['\n', '\0']) {
            return Err(invalid("not a sysctl name and value"));
        }
        let owned = if dotted.starts_with("net.") {
            Some(("network", namespaces.net))
        } else if dotted.starts_with("kernel.shm")
            || dotted.starts_with("kernel.msg")
            || dotted == "kernel.sem"
            || dotted.starts_with("fs.mqueue.")
        {
            Some(("IPC", namespaces.ipc))
        } else if dotted == "kernel.domainname" {
            Some(("UTS", namespaces.uts))
        } else {
            None
        };
        match owned {
            None => return Err(invalid("not namespaced: it would change the whole node")),
            Some((kind, false)) => {
                return Err(invalid(&format!(
                    "the pod uses the host's {kind} namespace, which it must not change"
                )));
            }
            Some((_, true)) => checked.push((dotted, value.clone())),
        }
    }
    checked.sort();
    Ok(checked)
}

/// Validates the config and plans the pod. `id` names the monitor's cgroup leaf.
pub fn plan(config: &Config, pod: &PodSandboxConfig, handler: &str, id: &str) -> Result<PodPlan> {
    let invalid = |what: &str| Error::InvalidArgument(format!("PodSandboxConfig: {what}"));
    let metadata = pod
        .metadata
        .as_ref()
        .ok_or_else(|| invalid("metadata is required"))?;
    for (field, value) in [
        ("name", &metadata.name),
        ("namespace", &metadata.namespace),
        ("uid", &metadata.uid),
    ] {
        if value.is_empty() {
            return Err(invalid(&format!("metadata.{field} is required")));
        }
    }
    config.handler_kind(handler)?;

    let linux = pod.linux.clone().unwrap_or_default();
    let options: NamespaceOption = linux
        .security_context
        .and_then(|s| s.namespace_options)
        .unwrap_or_default();
    if options
        .userns_options
        .as_ref()
        .is_some_and(|u| u.mode == NamespaceMode::Pod as i32)
    {
        return Err(Error::Unimplemented(
            "pod user namespaces (hostUsers: false) are not supported by crishim yet".into(),
        ));
    }
    let host_network = options.network == NamespaceMode::Node as i32;
    // As containerd does: a host-network pod also keeps the host's UTS namespace (its hostname).
    let namespaces = PodNamespaces {
        net: !host_network,
        uts: !host_network,
        ipc: options.ipc != NamespaceMode::Node as i32,
        pid: options.pid == NamespaceMode::Pod as i32,
    };

    let hostname = (!pod.hostname.is_empty() && namespaces.uts).then(|| pod.hostname.clone());
    if pod.hostname.len() > MAX_HOSTNAME || pod.hostname.contains(['\0', '/']) {
        return Err(invalid(&format!(
            "hostname {:?} is not a valid hostname",
            pod.hostname
        )));
    }

    let parent = if linux.cgroup_parent.is_empty() {
        config.default_cgroup_parent.as_str()
    } else {
        linux.cgroup_parent.as_str()
    };
    let parent = cgroup::parent_path(config.cgroup_driver, parent)?;
    let cgroup = format!(
        "{parent}/{}",
        cgroup::monitor_leaf(config.cgroup_driver, id)
    );
    Ok(PodPlan {
        sysctls: sysctls(&linux.sysctls, namespaces)?,
        namespaces,
        hostname,
        cgroup,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sysctls_of_namespaces_the_pod_owns_are_accepted() {
        let own = PodNamespaces {
            net: true,
            ipc: true,
            uts: true,
            pid: false,
        };
        let ask = |pairs: &[(&str, &str)], namespaces| {
            let map = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            sysctls(&map, namespaces)
        };
        assert_eq!(
            ask(
                &[("net/ipv4/ip_forward", "1"), ("kernel.shmmax", "1024")],
                own
            )
            .unwrap(),
            [
                ("kernel.shmmax".to_string(), "1024".to_string()),
                ("net.ipv4.ip_forward".to_string(), "1".to_string())
            ]
        );
        for bad in [
            "vm.swappiness",
            "net/../../etc",
            "net..core",
            "kernel.panic",
        ] {
            assert!(
                matches!(ask(&[(bad, "1")], own), Err(Error::InvalidArgument(_))),
                "{bad}"
            );
        }
        assert!(ask(&[("net.core.somaxconn", "1\n2")], own).is_err());
        let host_network = PodNamespaces { net: false, ..own };
        let e = ask(&[("net.core.somaxconn", "1024")], host_network).unwrap_err();
        assert!(e.to_string().contains("host's network namespace"), "{e}");
    }
    use cri_proto::{
        LinuxPodSandboxConfig, LinuxSandboxSecurityContext, PodSandboxMetadata, UserNamespace,
    };

    fn pod() -> PodSandboxConfig {
        PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: "web".into(),
                uid: "u1".into(),
                namespace: "default".into(),
                attempt: 0,
            }),
            hostname: "web-0".into(),
            ..Default::default()
        }
    }

    fn with_options(options: NamespaceOption) -> PodSandboxConfig {
        PodSandboxConfig {
            linux: Some(LinuxPodSandboxConfig {
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(options),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..pod()
        }
    }

    #[test]
    fn default_pod_owns_its_namespaces_and_gets_default_cgroup() {
        // Without namespace options every mode is the proto default, POD: pid is shared too.
        let plan = plan(&Config::default(), &pod(), "", "abc").unwrap();
        assert_eq!(
            plan.namespaces,
            PodNamespaces {
                net: true,
                ipc: true,
                uts: true,
                pid: true
            }
        );
        let container_pid = NamespaceOption {
            pid: NamespaceMode::Container as i32,
            ..Default::default()
        };
        let plan = plan_of(&with_options(container_pid));
        assert!(!plan.namespaces.pid);
        assert_eq!(plan.hostname.as_deref(), Some("web-0"));
        assert_eq!(plan.cgroup, "/crishim/crishim-abc");
    }

    fn plan_of(pod: &PodSandboxConfig) -> PodPlan {
        plan(&Config::default(), pod, "", "abc").unwrap()
    }

    #[test]
    fn host_namespaces_and_shared_pid() {
        let options = NamespaceOption {
            network: NamespaceMode::Node as i32,
            ipc: NamespaceMode::Node as i32,
            pid: NamespaceMode::Pod as i32,
            ..Default::default()
        };
        let plan = plan(&Config::default(), &with_options(options), "", "abc").unwrap();
        assert_eq!(
            plan.namespaces,
            PodNamespaces {
                net: false,
                ipc: false,
                uts: false,
                pid: true
            }
        );
        assert_eq!(
            plan.hostname, None,
            "host network keeps the host's hostname"
        );
    }

    #[test]
    fn bad_metadata_handler_and_userns_are_rejected() {
        let config = Config::default();
        let mut missing = pod();
        missing.metadata = None;
        assert!(matches!(
            plan(&config, &missing, "", "a"),
            Err(Error::InvalidArgument(_))
        ));
        let mut no_uid = pod();
        if let Some(m) = no_uid.metadata.as_mut() {
            m.uid.clear();
        }
        let err = plan(&config, &no_uid, "", "a").unwrap_err().to_string();
        assert!(err.contains("metadata.uid"), "{err}");
        assert!(matches!(
            plan(&config, &pod(), "runc", "a"),
            Err(Error::InvalidArgument(_))
        ));
        let userns = NamespaceOption {
            userns_options: Some(UserNamespace {
                mode: NamespaceMode::Pod as i32,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(matches!(
            plan(&config, &with_options(userns), "", "a"),
            Err(Error::Unimplemented(_))
        ));
        let mut long = pod();
        long.hostname = "h".repeat(65);
        assert!(matches!(
            plan(&config, &long, "", "a"),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn cgroup_parent_from_config_is_validated() {
        let mut p = pod();
        p.linux = Some(LinuxPodSandboxConfig {
            cgroup_parent: "/kubepods/../x".into(),
            ..Default::default()
        });
        assert!(matches!(
            plan(&Config::default(), &p, "", "a"),
            Err(Error::InvalidArgument(_))
        ));
        p.linux = Some(LinuxPodSandboxConfig {
            cgroup_parent: "/kubepods/besteffort/podu1".into(),
            ..Default::default()
        });
        assert_eq!(
            plan(&Config::default(), &p, "", "a").unwrap().cgroup,
            "/kubepods/besteffort/podu1/crishim-a"
        );
    }
}
