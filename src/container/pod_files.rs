//! The files a pod shares with its Linux containers, made at its first Linux container:
//! /etc/hostname, /etc/hosts and /etc/resolv.conf (from the pod's DNSConfig, or the host's),
//! and a 64 MiB tmpfs for /dev/shm when the pod has its own IPC namespace.

use std::path::Path;

use cri_proto::DnsConfig;

use crate::error::{IoContext, Result};
use crate::os::mount::Mounter;
use crate::runtime::linux::spec::PodFiles;
use crate::store::layout::Layout;
use crate::store::sandbox::SandboxRecord;

/// Size of a pod's /dev/shm, as Docker and containerd make it.
const SHM_SIZE: u64 = 64 << 20;

/// Written last: the pod's files are complete (and its shm mounted) when it exists.
const READY_MARKER: &str = ".ready";

/// The pod's shared files, made when missing. Callers serialise calls for one pod.
pub fn ensure(layout: &Layout, mounts: &dyn Mounter, pod: &SandboxRecord) -> Result<PodFiles> {
    let dir = layout.pod_files_dir(&pod.id);
    let files = PodFiles {
        hostname: dir.join("hostname"),
        hosts: dir.join("hosts"),
        resolv_conf: dir.join("resolv.conf"),
        shm: Some(if pod.namespaces.ipc {
            layout.pod_shm(&pod.id)
        } else {
            "/dev/shm".into()
        }),
    };
    if dir.join(READY_MARKER).exists() {
        return Ok(files);
    }
    std::fs::create_dir_all(&dir).with_path("create", &dir)?;
    let hostname = hostname(pod)?;
    write(&files.hostname, &format!("{hostname}\n"))?;
    let hosts = if pod.namespaces.net {
        hosts(&hostname, &pod.pod_ips)
    } else {
        read_host_file(Path::new("/etc/hosts"))?
    };
    write(&files.hosts, &hosts)?;
    let resolv = match &pod.config.dns_config {
        Some(dns) => resolv_conf(dns),
        None => read_host_file(Path::new("/etc/resolv.conf"))?,
    };
    write(&files.resolv_conf, &resolv)?;
    if pod.namespaces.ipc {
        let shm = layout.pod_shm(&pod.id);
        std::fs::create_dir_all(&shm).with_path("create", &shm)?;
        mounts.tmpfs(&shm, SHM_SIZE)?;
    }
    write(&dir.join(READY_MARKER), "")?;
    Ok(files)
}

/// The pod's hostname: its config's, or the node's when the pod shares the host's UTS.
fn hostname(pod: &SandboxRecord) -> Result<String> {
    if pod.namespaces.uts && !pod.config.hostname.is_empty() {
        return Ok(pod.config.hostname.clone());
    }
    let name =
        nix::unistd::gethostname().map_err(|e| crate::error::Error::io("gethostname", e.into()))?;
    Ok(name.to_string_lossy().into_owned())
}

/// /etc/hosts of a pod with its own network: localhost entries, then the pod's IPs.
fn hosts(hostname: &str, pod_ips: &[String]) -> String {
    let mut text = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n",
    );
    for ip in pod_ips {
        text.push_str(&format!("{ip}\t{hostname}\n"));
    }
    text
}

/// resolv.conf from the pod's DNSConfig.
fn resolv_conf(dns: &DnsConfig) -> String {
    let mut text = String::new();
    if !dns.searches.is_empty() {
        text.push_str(&format!("search {}\n", dns.searches.join(" ")));
    }
    for server in &dns.servers {
        text.push_str(&format!("nameserver {server}\n"));
    }
    if !dns.options.is_empty() {
        text.push_str(&format!("options {}\n", dns.options.join(" ")));
    }
    text
}

fn read_host_file(path: &Path) -> Result<String> {
    match std::fs::read_to_string(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        other => other.with_path("read", path),
    }
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_path("write", path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os::mount::FakeMounter;
    use crate::store::sandbox::PodNamespaces;

    fn pod(namespaces: PodNamespaces) -> SandboxRecord {
        let config = cri_proto::PodSandboxConfig {
            hostname: "web-0".into(),
            dns_config: Some(DnsConfig {
                servers: vec!["10.96.0.10".into()],
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut record = SandboxRecord::new(
            "p1".into(),
            config,
            String::new(),
            namespaces,
            "/c".into(),
            1,
        );
        record.pod_ips = vec!["10.88.0.7".into()];
        record
    }

    #[test]
    fn files_are_made_once_and_shm_is_mounted_once() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path().join("root"), dir.path().join("state"));
        let mounts = FakeMounter::default();
        let own = PodNamespaces {
            net: true,
            ipc: true,
            uts: true,
            pid: false,
        };
        let record = pod(own);
        let files = ensure(&layout, &mounts, &record).unwrap();
        assert_eq!(std::fs::read_to_string(&files.hostname).unwrap(), "web-0\n");
        assert!(
            std::fs::read_to_string(&files.hosts)
                .unwrap()
                .ends_with("10.88.0.7\tweb-0\n")
        );
        assert_eq!(
            std::fs::read_to_string(&files.resolv_conf).unwrap(),
            "nameserver 10.96.0.10\n"
        );
        assert_eq!(files.shm.as_deref(), Some(layout.pod_shm("p1").as_path()));
        assert_eq!(ensure(&layout, &mounts, &record).unwrap(), files);
        assert_eq!(
            mounts.targets(),
            [layout.pod_shm("p1")],
            "one tmpfs, mounted once"
        );

        // A pod on the host's IPC namespace uses the host's /dev/shm; nothing is mounted.
        let host_ipc = pod(PodNamespaces { ipc: false, ..own });
        let mounts = FakeMounter::default();
        let other = Layout::new(dir.path().join("root2"), dir.path().join("state2"));
        let files = ensure(&other, &mounts, &host_ipc).unwrap();
        assert_eq!(files.shm.as_deref(), Some(Path::new("/dev/shm")));
        assert!(mounts.targets().is_empty());
    }

    #[test]
    fn hosts_lists_localhost_then_the_pod_ips() {
        let text = hosts("web", &["10.88.0.5".into()]);
        assert!(text.starts_with("127.0.0.1\tlocalhost\n"), "{text}");
        assert!(text.ends_with("10.88.0.5\tweb\n"), "{text}");
    }

    #[test]
    fn resolv_conf_follows_the_dns_config() {
        let dns = DnsConfig {
            servers: vec!["10.96.0.10".into()],
            searches: vec!["ns.svc.cluster.local".into(), "svc.cluster.local".into()],
            options: vec!["ndots:5".into()],
        };
        assert_eq!(
            resolv_conf(&dns),
            "search ns.svc.cluster.local svc.cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"
        );
    }
}
