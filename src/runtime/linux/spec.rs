//! The OCI runtime spec of a Linux container, generated from its CRI config, its pod and its
//! image, as containerd's CRI plugin and CRI-O generate theirs.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use cri_proto::security_profile::ProfileType;
use cri_proto::{LinuxContainerResources, LinuxContainerSecurityContext, MountPropagation};
use oci_spec::runtime::{
    Capabilities, Capability, Linux, LinuxCapabilities, LinuxCpu, LinuxDevice, LinuxDeviceCgroup,
    LinuxDeviceType, LinuxHugepageLimit, LinuxMemory, LinuxNamespace, LinuxNamespaceType,
    LinuxResources, LinuxSeccomp, Mount, PosixRlimitBuilder, PosixRlimitType, Process, Root, Spec,
    User,
};

use super::seccomp;
use crate::error::{Error, Result};
use crate::image::platform::RunConfig;

/// Where one of the container's namespaces comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespaceSource {
    /// The host's own namespace (no entry in the spec).
    Host,
    /// A namespace of its own, created for the container.
    New,
    /// Join the namespace at this path (a pod's pinned namespace, or /proc/PID/ns/KIND).
    Join(PathBuf),
}

/// The container's namespaces, resolved from the CRI NamespaceOptions and the pod's pins.
/// The mount namespace is always new.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespaces {
    /// Network.
    pub network: NamespaceSource,
    /// IPC.
    pub ipc: NamespaceSource,
    /// UTS (hostname).
    pub uts: NamespaceSource,
    /// PID.
    pub pid: NamespaceSource,
}

/// Files the pod shares with its containers, bind-mounted into each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodFiles {
    /// Mounted at /etc/hostname.
    pub hostname: PathBuf,
    /// Mounted at /etc/hosts.
    pub hosts: PathBuf,
    /// Mounted at /etc/resolv.conf.
    pub resolv_conf: PathBuf,
    /// The pod's /dev/shm (a tmpfs the pod's containers share); None: a private tmpfs.
    pub shm: Option<PathBuf>,
}

/// The user a container runs as, resolved in the image's /etc/passwd and /etc/group.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResolvedUser {
    /// uid.
    pub uid: u32,
    /// Primary gid.
    pub gid: u32,
    /// Supplementary gids (the image's groups of the user, then the CRI's supplemental ones).
    pub additional_gids: Vec<u32>,
}

/// Everything the spec is made from.
#[derive(Debug, Clone)]
pub struct SpecInput<'a> {
    /// The CRI container config.
    pub container: &'a cri_proto::ContainerConfig,
    /// The CRI config of its pod.
    pub pod: &'a cri_proto::PodSandboxConfig,
    /// The image's run config (Entrypoint, Cmd, Env, WorkingDir, User).
    pub image: &'a RunConfig,
    /// The container's root filesystem (an overlay mount).
    pub rootfs: PathBuf,
    /// The container's namespaces.
    pub namespaces: Namespaces,
    /// The container's cgroup, a cgroupfs path such as `/kubepods/pod1/crishim-<id>`.
    pub cgroups_path: String,
    /// The pod's shared files.
    pub pod_files: PodFiles,
    /// The user to run as.
    pub user: ResolvedUser,
    /// The daemon's own oom_score_adj: a lower request is raised to it (nodes without
    /// CAP_SYS_RESOURCE cannot set lower values).
    pub min_oom_score_adj: i32,
}

/// What the host's cgroups can do; parts of the spec depend on it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct HostCgroups {
    /// Only cgroup v2 is mounted: the container gets a cgroup namespace of its own, as
    /// containerd gives it there.
    unified_only: bool,
    /// cgroup v1 limits memory plus swap (`memory.memsw.*`, not every kernel has it): a memory
    /// limit then also keeps the container from swapping, as containerd does.
    v1_swap_limit: bool,
}

impl HostCgroups {
    /// Detects them from the host's /sys/fs/cgroup.
    fn detect() -> Self {
        Self::detect_in(Path::new("/sys/fs/cgroup"))
    }

    /// Detects them from a cgroup mount point.
    fn detect_in(root: &Path) -> Self {
        HostCgroups {
            unified_only: root.join("cgroup.controllers").exists(),
            v1_swap_limit: root.join("memory/memory.memsw.limit_in_bytes").exists(),
        }
    }
}

/// PATH when neither the image nor the CRI config sets one (Docker's and containerd's).
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// RLIMIT_NOFILE of a container, soft and hard (containerd's), unless the daemon's own hard
/// limit is lower: raising it needs CAP_SYS_RESOURCE, which many nodes lack.
const NOFILE_LIMIT: u64 = 1_048_576;

/// The RLIMIT_NOFILE containers get here.
fn nofile_limit() -> u64 {
    let own_hard = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(NOFILE_LIMIT, |(_, hard)| hard);
    NOFILE_LIMIT.min(own_hard)
}

/// Every capability, by its number (the index) and its name without `CAP_`.
const CAPABILITIES: [(&str, Capability); 41] = [
    ("CHOWN", Capability::Chown),
    ("DAC_OVERRIDE", Capability::DacOverride),
    ("DAC_READ_SEARCH", Capability::DacReadSearch),
    ("FOWNER", Capability::Fowner),
    ("FSETID", Capability::Fsetid),
    ("KILL", Capability::Kill),
    ("SETGID", Capability::Setgid),
    ("SETUID", Capability::Setuid),
    ("SETPCAP", Capability::Setpcap),
    ("LINUX_IMMUTABLE", Capability::LinuxImmutable),
    ("NET_BIND_SERVICE", Capability::NetBindService),
    ("NET_BROADCAST", Capability::NetBroadcast),
    ("NET_ADMIN", Capability::NetAdmin),
    ("NET_RAW", Capability::NetRaw),
    ("IPC_LOCK", Capability::IpcLock),
    ("IPC_OWNER", Capability::IpcOwner),
    ("SYS_MODULE", Capability::SysModule),
    ("SYS_RAWIO", Capability::SysRawio),
    ("SYS_CHROOT", Capability::SysChroot),
    ("SYS_PTRACE", Capability::SysPtrace),
    ("SYS_PACCT", Capability::SysPacct),
    ("SYS_ADMIN", Capability::SysAdmin),
    ("SYS_BOOT", Capability::SysBoot),
    ("SYS_NICE", Capability::SysNice),
    ("SYS_RESOURCE", Capability::SysResource),
    ("SYS_TIME", Capability::SysTime),
    ("SYS_TTY_CONFIG", Capability::SysTtyConfig),
    ("MKNOD", Capability::Mknod),
    ("LEASE", Capability::Lease),
    ("AUDIT_WRITE", Capability::AuditWrite),
    ("AUDIT_CONTROL", Capability::AuditControl),
    ("SETFCAP", Capability::Setfcap),
    ("MAC_OVERRIDE", Capability::MacOverride),
    ("MAC_ADMIN", Capability::MacAdmin),
    ("SYSLOG", Capability::Syslog),
    ("WAKE_ALARM", Capability::WakeAlarm),
    ("BLOCK_SUSPEND", Capability::BlockSuspend),
    ("AUDIT_READ", Capability::AuditRead),
    ("PERFMON", Capability::Perfmon),
    ("BPF", Capability::Bpf),
    ("CHECKPOINT_RESTORE", Capability::CheckpointRestore),
];

/// The capabilities of an unprivileged container unless it adds or drops some (containerd's).
const DEFAULT_CAPABILITIES: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// Paths hidden from an unprivileged container unless the CRI config lists its own.
const DEFAULT_MASKED_PATHS: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths read-only in an unprivileged container unless the CRI config lists its own.
const DEFAULT_READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Character devices every container may use (runc's list): (major, minor; None is any).
const DEFAULT_CHAR_DEVICES: [(i64, Option<i64>); 9] = [
    (1, Some(3)), // null
    (1, Some(5)), // zero
    (1, Some(7)), // full
    (1, Some(8)), // random
    (1, Some(9)), // urandom
    (5, Some(0)), // tty
    (5, Some(1)), // console
    (5, Some(2)), // ptmx
    (136, None),  // pts/*
];

/// The OCI runtime spec of a Linux container, as containerd's CRI plugin would make it.
pub fn build(input: &SpecInput<'_>) -> Result<Spec> {
    build_on(input, HostCgroups::detect())
}

/// The spec for a host with these cgroups.
fn build_on(input: &SpecInput<'_>, host: HostCgroups) -> Result<Spec> {
    let config = input.container;
    let security = config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref());
    let privileged = security.is_some_and(|s| s.privileged);
    warn_ignored(security);
    let process = process(input, security, privileged)?;
    let mounts = mounts(input, host, security, privileged)?;
    let mut devices = config
        .devices
        .iter()
        .map(device)
        .collect::<Result<Vec<_>>>()?;
    if privileged {
        let requested: Vec<PathBuf> = devices.iter().map(|(d, _)| d.path().clone()).collect();
        devices.extend(
            host_devices(Path::new("/dev"))
                .into_iter()
                .filter(|(d, _)| !requested.contains(d.path())),
        );
    }
    let mut linux = Linux::default();
    linux
        .set_namespaces(Some(namespaces(input, host)))
        .set_cgroups_path(
            (!input.cgroups_path.is_empty()).then(|| input.cgroups_path.clone().into()),
        )
        .set_resources(Some(resources(input, host, privileged, &devices)?))
        .set_devices(Some(devices.into_iter().map(|(d, _)| d).collect()))
        .set_seccomp(seccomp_profile(security, privileged)?)
        .set_rootfs_propagation(rootfs_propagation(config)?.map(str::to_string))
        .set_masked_paths(Some(paths(
            security.map(|s| &s.masked_paths),
            &DEFAULT_MASKED_PATHS,
            privileged,
        )))
        .set_readonly_paths(Some(paths(
            security.map(|s| &s.readonly_paths),
            &DEFAULT_READONLY_PATHS,
            privileged,
        )));
    let mut root = Root::default();
    root.set_path(input.rootfs.clone())
        .set_readonly(Some(security.is_some_and(|s| s.readonly_rootfs)));
    let mut spec = Spec::default();
    spec.set_version(oci_spec::runtime::VERSION.to_string())
        .set_root(Some(root))
        .set_mounts(Some(mounts))
        .set_process(Some(process))
        .set_hostname(None)
        .set_domainname(None)
        .set_hooks(None)
        .set_annotations(Some(config.annotations.clone()))
        .set_linux(Some(linux));
    Ok(spec)
}

/// Logs what the security context asks for that this node cannot do and so is ignored.
fn warn_ignored(security: Option<&LinuxContainerSecurityContext>) {
    let Some(s) = security else {
        return;
    };
    #[allow(deprecated)]
    let apparmor = s
        .apparmor
        .as_ref()
        .is_some_and(|p| p.profile_type != ProfileType::Unconfined as i32)
        || !matches!(s.apparmor_profile.as_str(), "" | "unconfined");
    let selinux = s.selinux_options.as_ref().is_some_and(|o| {
        [&o.user, &o.role, &o.r#type, &o.level]
            .iter()
            .any(|v| !v.is_empty())
    });
    let ambient = s
        .capabilities
        .as_ref()
        .is_some_and(|c| !c.add_ambient_capabilities.is_empty());
    if apparmor || selinux || ambient {
        tracing::warn!(
            apparmor,
            selinux,
            ambient_capabilities = ambient,
            "ignoring security settings this node does not support (AppArmor, SELinux, ambient capabilities)"
        );
    }
}

/// The container's process: argv, environment, directory, user, capabilities and limits.
fn process(
    input: &SpecInput<'_>,
    security: Option<&LinuxContainerSecurityContext>,
    privileged: bool,
) -> Result<Process> {
    let config = input.container;
    if config.tty {
        return Err(Error::InvalidArgument("tty is not supported yet".into()));
    }
    let args = args(config, input.image)?;
    let mut user = User::default();
    user.set_uid(input.user.uid)
        .set_gid(input.user.gid)
        .set_additional_gids(Some(input.user.additional_gids.clone()));
    let nofile = PosixRlimitBuilder::default()
        .typ(PosixRlimitType::RlimitNofile)
        .soft(nofile_limit())
        .hard(nofile_limit())
        .build()
        .map_err(|e| Error::Internal(format!("the RLIMIT_NOFILE of the OCI spec: {e}")))?;
    let no_new_privileges = !privileged && security.is_some_and(|s| s.no_new_privs);
    let mut process = Process::default();
    process
        .set_terminal(Some(false))
        .set_args(Some(args))
        .set_env(Some(env(input)))
        .set_cwd(cwd(config, input.image)?)
        .set_user(user)
        .set_capabilities(Some(capabilities(security, privileged)?))
        .set_rlimits(Some(vec![nofile]))
        // Unset rather than false: libcontainer 0.7 loads seccomp while the process still has
        // CAP_SYS_ADMIN only when the field is absent; with `false` it loads it after dropping
        // capabilities, and the kernel refuses.
        .set_no_new_privileges(no_new_privileges.then_some(true))
        .set_oom_score_adj(Some(oom_score_adj(input)))
        .set_apparmor_profile(None)
        .set_selinux_label(None);
    Ok(process)
}

/// argv by Docker's rules: the CRI command replaces the image's Entrypoint (and its Cmd),
/// the CRI args replace the image's Cmd. Unlike a wasm module's argv, nothing else is put
/// first: without an Entrypoint, the CRI args are the whole command line.
fn args(config: &cri_proto::ContainerConfig, image: &RunConfig) -> Result<Vec<String>> {
    let entrypoint = image.entrypoint.as_deref().unwrap_or_default();
    let cmd = image.cmd.as_deref().unwrap_or_default();
    let argv: Vec<String> = if !config.command.is_empty() {
        config.command.iter().chain(&config.args).cloned().collect()
    } else if !config.args.is_empty() {
        entrypoint.iter().chain(&config.args).cloned().collect()
    } else {
        entrypoint.iter().chain(cmd).cloned().collect()
    };
    if argv.is_empty() {
        let name = config.metadata.as_ref().map_or("", |m| m.name.as_str());
        return Err(Error::InvalidArgument(format!(
            "container {name:?} has no command specified: the CRI config has no command or \
             args and the image no Entrypoint or Cmd"
        )));
    }
    Ok(argv)
}

/// The image's environment and the CRI's on top, with PATH and HOSTNAME when neither sets
/// them.
fn env(input: &SpecInput<'_>) -> Vec<String> {
    let pairs = crate::container::spec::env(input.container, input.image);
    let has = |key: &str| pairs.iter().any(|(k, _)| k == key);
    let mut env = Vec::with_capacity(pairs.len() + 2);
    if !has("PATH") {
        env.push(DEFAULT_PATH.to_string());
    }
    if !has("HOSTNAME") && !input.pod.hostname.is_empty() {
        env.push(format!("HOSTNAME={}", input.pod.hostname));
    }
    env.extend(pairs.into_iter().map(|(k, v)| format!("{k}={v}")));
    env
}

/// The working directory: the CRI's, else the image's, else `/`; it must be absolute.
fn cwd(config: &cri_proto::ContainerConfig, image: &RunConfig) -> Result<PathBuf> {
    let dir = [
        config.working_dir.as_str(),
        image.working_dir.as_deref().unwrap_or(""),
    ]
    .into_iter()
    .find(|d| !d.is_empty())
    .unwrap_or("/");
    if !Path::new(dir).is_absolute() {
        return Err(Error::InvalidArgument(format!(
            "working directory {dir:?} is not an absolute path"
        )));
    }
    Ok(PathBuf::from(dir))
}

/// The requested oom_score_adj, within the kernel's range and no lower than the daemon's own.
fn oom_score_adj(input: &SpecInput<'_>) -> i32 {
    let requested = resources_of(input.container).map_or(0, |r| r.oom_score_adj);
    let adj = requested
        .max(i64::from(input.min_oom_score_adj))
        .clamp(-1000, 1000);
    adj as i32
}

/// The CRI resources of a container, if any.
fn resources_of(config: &cri_proto::ContainerConfig) -> Option<&LinuxContainerResources> {
    config.linux.as_ref().and_then(|l| l.resources.as_ref())
}

/// The container's capabilities (bounding, effective and permitted; never inheritable or
/// ambient): containerd's default set with the CRI's adds and drops, or all when privileged.
fn capabilities(
    security: Option<&LinuxContainerSecurityContext>,
    privileged: bool,
) -> Result<LinuxCapabilities> {
    let set = if privileged {
        all_capabilities()
    } else {
        requested_capabilities(security.and_then(|s| s.capabilities.as_ref()))?
    };
    let mut caps = LinuxCapabilities::default();
    caps.set_bounding(Some(set.clone()))
        .set_effective(Some(set.clone()))
        .set_permitted(Some(set))
        .set_inheritable(Some(Capabilities::new()))
        .set_ambient(Some(Capabilities::new()));
    Ok(caps)
}

/// The default set, emptied by a drop of "ALL", filled by an add of "ALL", then with the
/// named adds and drops applied, in that order.
fn requested_capabilities(requested: Option<&cri_proto::Capability>) -> Result<Capabilities> {
    let (add, drop) = requested.map_or((&[][..], &[][..]), |c| {
        (&c.add_capabilities[..], &c.drop_capabilities[..])
    });
    let is_all = |name: &&String| name.eq_ignore_ascii_case("ALL");
    let mut set: Capabilities = if drop.iter().any(|n| is_all(&n)) {
        Capabilities::new()
    } else {
        DEFAULT_CAPABILITIES.into_iter().collect()
    };
    if add.iter().any(|n| is_all(&n)) {
        set.extend(all_capabilities());
    }
    for name in add.iter().filter(|n| !is_all(n)) {
        set.insert(capability(name)?);
    }
    for name in drop.iter().filter(|n| !is_all(n)) {
        set.remove(&capability(name)?);
    }
    Ok(set)
}

/// A capability by name, with or without `CAP_`, in any case.
fn capability(name: &str) -> Result<Capability> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    CAPABILITIES
        .iter()
        .find(|(n, _)| *n == bare)
        .map(|(_, c)| *c)
        .ok_or_else(|| Error::InvalidArgument(format!("unknown capability {name:?}")))
}

/// Every capability the daemon itself may hold (its bounding set, read from /proc/self/status):
/// a container cannot be given one the daemon lacks (this kind of node often lacks
/// CAP_SYS_RESOURCE), nor one the kernel does not know.
fn all_capabilities() -> Capabilities {
    static BOUNDING: OnceLock<u64> = OnceLock::new();
    let bounding = *BOUNDING.get_or_init(|| {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| {
                let line = status.lines().find(|l| l.starts_with("CapBnd:"))?;
                u64::from_str_radix(line.trim_start_matches("CapBnd:").trim(), 16).ok()
            })
            .unwrap_or(u64::MAX)
    });
    CAPABILITIES
        .iter()
        .enumerate()
        .filter(|(bit, _)| *bit < 64 && bounding & (1 << bit) != 0)
        .map(|(_, (_, c))| *c)
        .collect()
}

/// The mounts: the defaults every container has (less those a CRI mount replaces), then the
/// CRI mounts.
fn mounts(
    input: &SpecInput<'_>,
    host: HostCgroups,
    security: Option<&LinuxContainerSecurityContext>,
    privileged: bool,
) -> Result<Vec<Mount>> {
    let cri = &input.container.mounts;
    let mut mounts: Vec<Mount> = default_mounts(input, host, security, privileged)
        .into_iter()
        .filter(|d| {
            !cri.iter()
                .any(|m| Path::new(&m.container_path) == d.destination())
        })
        .collect();
    for m in cri {
        mounts.push(cri_mount(m)?);
    }
    Ok(mounts)
}

/// The filesystems every container has, and the pod's shared files.
fn default_mounts(
    input: &SpecInput<'_>,
    host: HostCgroups,
    security: Option<&LinuxContainerSecurityContext>,
    privileged: bool,
) -> Vec<Mount> {
    let system = if privileged { "rw" } else { "ro" };
    let readonly = security.is_some_and(|s| s.readonly_rootfs);
    let files = &input.pod_files;
    let shm = match &files.shm {
        Some(path) => bind("/dev/shm", path, false),
        None => mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
    };
    // libcontainer 0.7 mounts a v1 cgroup filesystem by reading /proc/<its parent's pid>, a
    // pid of the container's pid namespace looked up in the host's /proc: in a pod's shared
    // pid namespace that names another process, or none. Such containers get no
    // /sys/fs/cgroup on v1 hosts rather than a wrong one.
    let cgroupfs = (host.unified_only || !matches!(input.namespaces.pid, NamespaceSource::Join(_)))
        .then(|| {
            mount(
                "/sys/fs/cgroup",
                "cgroup",
                "cgroup",
                &["nosuid", "noexec", "nodev", "relatime", system],
            )
        });
    let mut mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", system],
        ),
    ];
    mounts.extend(cgroupfs);
    mounts.extend([
        shm,
        bind("/etc/hostname", &files.hostname, readonly),
        bind("/etc/hosts", &files.hosts, readonly),
        bind("/etc/resolv.conf", &files.resolv_conf, readonly),
    ]);
    mounts
}

/// A mount of a filesystem.
fn mount(destination: &str, typ: &str, source: &str, options: &[&str]) -> Mount {
    let mut m = Mount::default();
    m.set_destination(destination.into())
        .set_typ(Some(typ.to_string()))
        .set_source(Some(source.into()))
        .set_options(Some(options.iter().map(|o| o.to_string()).collect()));
    m
}

/// A private bind mount of a host file or directory.
fn bind(destination: &str, source: &Path, readonly: bool) -> Mount {
    let mut m = Mount::default();
    m.set_destination(destination.into())
        .set_typ(Some("bind".to_string()))
        .set_source(Some(source.to_path_buf()))
        .set_options(Some(vec![
            "rbind".into(),
            "rprivate".into(),
            if readonly { "ro" } else { "rw" }.into(),
        ]));
    m
}

/// A CRI mount as a bind mount; its host path must exist.
fn cri_mount(m: &cri_proto::Mount) -> Result<Mount> {
    if m.image.as_ref().is_some_and(|i| !i.image.is_empty()) {
        return Err(Error::InvalidArgument(format!(
            "mount at {:?}: image volumes are not supported",
            m.container_path
        )));
    }
    if !m.uid_mappings.is_empty() || !m.gid_mappings.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "mount at {:?}: id-mapped mounts are not supported",
            m.container_path
        )));
    }
    if !Path::new(&m.container_path).is_absolute() {
        return Err(Error::InvalidArgument(format!(
            "mount container path {:?} is not absolute",
            m.container_path
        )));
    }
    let host = Path::new(&m.host_path);
    if m.host_path.is_empty() || !host.exists() {
        return Err(Error::InvalidArgument(format!(
            "mount at {:?}: host path {:?} does not exist",
            m.container_path, m.host_path
        )));
    }
    let propagation = propagation(m)?;
    if m.recursive_read_only && !(m.readonly && propagation == MountPropagation::PropagationPrivate)
    {
        return Err(Error::InvalidArgument(format!(
            "mount at {:?}: a recursive read-only mount must be read-only and private",
            m.container_path
        )));
    }
    if m.selinux_relabel {
        tracing::warn!(
            container_path = m.container_path,
            "ignoring selinux_relabel: SELinux is not supported"
        );
    }
    let mut options = vec![
        "rbind",
        match propagation {
            MountPropagation::PropagationPrivate => "rprivate",
            MountPropagation::PropagationHostToContainer => "rslave",
            MountPropagation::PropagationBidirectional => "rshared",
        },
        if m.readonly { "ro" } else { "rw" },
    ];
    if m.recursive_read_only {
        options.push("rro");
    }
    let mut mount = bind(&m.container_path, host, m.readonly);
    mount.set_options(Some(options.into_iter().map(str::to_string).collect()));
    Ok(mount)
}

/// A CRI mount's propagation.
fn propagation(m: &cri_proto::Mount) -> Result<MountPropagation> {
    MountPropagation::try_from(m.propagation).map_err(|_| {
        Error::InvalidArgument(format!(
            "mount at {:?}: unknown propagation {}",
            m.container_path, m.propagation
        ))
    })
}

/// The propagation of the container's root that its mounts need: a shared (bidirectional)
/// mount needs a shared root, a slave mount a slave one (libcontainer's names, applied
/// recursively).
fn rootfs_propagation(config: &cri_proto::ContainerConfig) -> Result<Option<&'static str>> {
    let mut wanted = None;
    for m in &config.mounts {
        match propagation(m)? {
            MountPropagation::PropagationBidirectional => return Ok(Some("shared")),
            MountPropagation::PropagationHostToContainer => wanted = Some("slave"),
            MountPropagation::PropagationPrivate => {}
        }
    }
    Ok(wanted)
}

/// The namespaces: a new mount namespace, the pod's (or the host's, or new) network, IPC,
/// UTS and PID, and a new cgroup namespace on cgroup v2 hosts.
fn namespaces(input: &SpecInput<'_>, host: HostCgroups) -> Vec<LinuxNamespace> {
    let n = &input.namespaces;
    let cgroup = if host.unified_only {
        NamespaceSource::New
    } else {
        NamespaceSource::Host
    };
    [
        (LinuxNamespaceType::Mount, &NamespaceSource::New),
        (LinuxNamespaceType::Network, &n.network),
        (LinuxNamespaceType::Ipc, &n.ipc),
        (LinuxNamespaceType::Uts, &n.uts),
        (LinuxNamespaceType::Pid, &n.pid),
        (LinuxNamespaceType::Cgroup, &cgroup),
    ]
    .into_iter()
    .filter_map(|(typ, source)| {
        let path = match source {
            NamespaceSource::Host => return None,
            NamespaceSource::New => None,
            NamespaceSource::Join(path) => Some(path.clone()),
        };
        let mut ns = LinuxNamespace::default();
        ns.set_typ(typ).set_path(path);
        Some(ns)
    })
    .collect()
}

/// The cgroup limits: CPU, memory, huge pages and unified settings from the CRI, and the
/// device rules.
fn resources(
    input: &SpecInput<'_>,
    host: HostCgroups,
    privileged: bool,
    devices: &[(LinuxDevice, String)],
) -> Result<LinuxResources> {
    let mut resources = match resources_of(input.container) {
        Some(r) => limits_on(r, host)?,
        None => LinuxResources::default(),
    };
    resources.set_devices(Some(device_rules(privileged, devices)));
    Ok(resources)
}

/// The cgroup limits of CRI resources, for UpdateContainerResources (no device rules: those
/// stay as created).
pub fn limits(r: &LinuxContainerResources) -> Result<LinuxResources> {
    limits_on(r, HostCgroups::detect())
}

fn limits_on(r: &LinuxContainerResources, host: HostCgroups) -> Result<LinuxResources> {
    let mut resources = LinuxResources::default();
    let positive = |v: i64| u64::try_from(v).ok().filter(|&v| v > 0);
    let text = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let mut cpu = LinuxCpu::default();
    cpu.set_shares(positive(r.cpu_shares))
        .set_quota((r.cpu_quota != 0).then_some(r.cpu_quota))
        .set_period(positive(r.cpu_period))
        .set_cpus(text(&r.cpuset_cpus))
        .set_mems(text(&r.cpuset_mems));
    let limit = (r.memory_limit_in_bytes > 0).then_some(r.memory_limit_in_bytes);
    let swap = limit.and_then(|limit| match r.memory_swap_limit_in_bytes {
        0 => host.v1_swap_limit.then_some(limit),
        swap => Some(swap),
    });
    let mut memory = LinuxMemory::default();
    memory.set_limit(limit).set_swap(swap);
    let hugepages = r
        .hugepage_limits
        .iter()
        .map(|h| {
            let limit = i64::try_from(h.limit).map_err(|_| {
                Error::InvalidArgument(format!("hugepage limit {} is too large", h.limit))
            })?;
            let mut l = LinuxHugepageLimit::default();
            l.set_page_size(h.page_size.clone()).set_limit(limit);
            Ok(l)
        })
        .collect::<Result<Vec<_>>>()?;
    resources
        .set_cpu((cpu != LinuxCpu::default()).then_some(cpu))
        .set_memory(limit.is_some().then_some(memory))
        .set_hugepage_limits((!hugepages.is_empty()).then_some(hugepages))
        .set_unified((!r.unified.is_empty()).then(|| r.unified.clone()));
    Ok(resources)
}

/// The device cgroup rules: all devices when privileged; else none but runc's defaults and
/// the container's own devices.
fn device_rules(privileged: bool, devices: &[(LinuxDevice, String)]) -> Vec<LinuxDeviceCgroup> {
    let rule = |allow: bool, typ: Option<LinuxDeviceType>, major, minor, access: &str| {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(allow)
            .set_typ(typ)
            .set_major(major)
            .set_minor(minor)
            .set_access(Some(access.to_string()));
        r
    };
    if privileged {
        return vec![rule(true, None, None, None, "rwm")];
    }
    let mut rules = vec![
        rule(false, None, None, None, "rwm"),
        rule(true, Some(LinuxDeviceType::C), None, None, "m"),
        rule(true, Some(LinuxDeviceType::B), None, None, "m"),
    ];
    rules.extend(
        DEFAULT_CHAR_DEVICES
            .iter()
            .map(|&(major, minor)| rule(true, Some(LinuxDeviceType::C), Some(major), minor, "rwm")),
    );
    rules.extend(devices.iter().map(|(d, access)| {
        rule(
            true,
            Some(d.typ()),
            Some(d.major()),
            Some(d.minor()),
            access,
        )
    }));
    rules
}

/// A CRI device: the host's character or block device, at its container path, with the
/// cgroup access it asks for (`rwm` when it asks for none, as the kernel reads an empty one).
fn device(d: &cri_proto::Device) -> Result<(LinuxDevice, String)> {
    if !Path::new(&d.container_path).is_absolute() {
        return Err(Error::InvalidArgument(format!(
            "device container path {:?} is not absolute",
            d.container_path
        )));
    }
    let meta = std::fs::metadata(&d.host_path).map_err(|e| {
        Error::InvalidArgument(format!("device {:?} cannot be used: {e}", d.host_path))
    })?;
    let typ = if meta.file_type().is_char_device() {
        LinuxDeviceType::C
    } else if meta.file_type().is_block_device() {
        LinuxDeviceType::B
    } else {
        return Err(Error::InvalidArgument(format!(
            "device {:?} is not a character or block device",
            d.host_path
        )));
    };
    let access = device_access(&d.permissions)?;
    let mut device = LinuxDevice::default();
    device
        .set_path(PathBuf::from(&d.container_path))
        .set_typ(typ)
        .set_major(i64::from(rustix::fs::major(meta.rdev())))
        .set_minor(i64::from(rustix::fs::minor(meta.rdev())))
        .set_file_mode(Some(meta.mode() & 0o777))
        .set_uid(Some(0))
        .set_gid(Some(0));
    Ok((device, access))
}

/// The host's devices, as a privileged container gets them (as containerd gives them): every
/// character and block device under `dev`, except the terminals' (/dev/pts, /dev/console,
/// /dev/tty*) and what the container mounts itself (/dev/shm, /dev/mqueue).
fn host_devices(dev: &Path) -> Vec<(LinuxDevice, String)> {
    let mut found = Vec::new();
    let mut dirs = vec![dev.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                if !matches!(name.as_str(), "pts" | "shm" | "mqueue") {
                    dirs.push(path);
                }
                continue;
            }
            if name == "console"
                || name.starts_with("tty")
                || !(kind.is_char_device() || kind.is_block_device())
            {
                continue;
            }
            let request = cri_proto::Device {
                container_path: path.display().to_string(),
                host_path: path.display().to_string(),
                permissions: "rwm".into(),
            };
            if let Ok(found_device) = device(&request) {
                found.push(found_device);
            }
        }
    }
    found.sort_by(|a, b| a.0.path().cmp(b.0.path()));
    found
}

/// Device permissions: some of `r`, `w` and `m`, each once.
fn device_access(permissions: &str) -> Result<String> {
    if permissions.is_empty() {
        return Ok("rwm".to_string());
    }
    let valid = permissions.chars().all(|c| matches!(c, 'r' | 'w' | 'm'))
        && permissions.len() <= 3
        && !permissions
            .char_indices()
            .any(|(i, c)| permissions[i + 1..].contains(c));
    if !valid {
        return Err(Error::InvalidArgument(format!(
            "invalid device permissions {permissions:?}: expected some of \"rwm\""
        )));
    }
    Ok(permissions.to_string())
}

/// Masked or read-only paths: none when privileged, the CRI's when it lists some, else the
/// defaults.
fn paths(cri: Option<&Vec<String>>, defaults: &[&str], privileged: bool) -> Vec<String> {
    match cri {
        _ if privileged => Vec::new(),
        Some(list) if !list.is_empty() => list.clone(),
        _ => defaults.iter().map(|p| p.to_string()).collect(),
    }
}

/// The seccomp profile: none when privileged or unconfined (Kubernetes' own default when
/// unset), the runtime's default, or a profile file on the node.
fn seccomp_profile(
    security: Option<&LinuxContainerSecurityContext>,
    privileged: bool,
) -> Result<Option<LinuxSeccomp>> {
    let Some(s) = security.filter(|_| !privileged) else {
        return Ok(None);
    };
    let Some(profile) = &s.seccomp else {
        return deprecated_seccomp(deprecated_seccomp_path(s));
    };
    match ProfileType::try_from(profile.profile_type) {
        Ok(ProfileType::Unconfined) => Ok(None),
        Ok(ProfileType::RuntimeDefault) => Ok(Some(seccomp::runtime_default())),
        Ok(ProfileType::Localhost) => localhost_seccomp(&profile.localhost_ref).map(Some),
        Err(_) => Err(Error::InvalidArgument(format!(
            "unknown seccomp profile type {}",
            profile.profile_type
        ))),
    }
}

/// The deprecated `seccomp_profile_path` string, which older kubelets send instead.
#[allow(deprecated)]
fn deprecated_seccomp_path(s: &LinuxContainerSecurityContext) -> &str {
    &s.seccomp_profile_path
}

/// The profile named the deprecated way: `runtime/default`, `docker/default`, `unconfined`
/// or `localhost/<path>`.
fn deprecated_seccomp(name: &str) -> Result<Option<LinuxSeccomp>> {
    match name {
        "" | "unconfined" => Ok(None),
        "runtime/default" | "docker/default" => Ok(Some(seccomp::runtime_default())),
        _ => match name.strip_prefix("localhost/") {
            Some(path) => localhost_seccomp(path).map(Some),
            None => Err(Error::InvalidArgument(format!(
                "unknown seccomp profile {name:?}"
            ))),
        },
    }
}

/// A profile file on the node, named by its absolute path.
fn localhost_seccomp(path: &str) -> Result<LinuxSeccomp> {
    if !Path::new(path).is_absolute() {
        return Err(Error::InvalidArgument(format!(
            "seccomp profile path {path:?} is not absolute"
        )));
    }
    seccomp::localhost(Path::new(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cri_proto::{
        Capability as CriCapability, ContainerConfig, ContainerMetadata, HugepageLimit, KeyValue,
        LinuxContainerConfig, LinuxPodSandboxConfig, PodSandboxConfig, SecurityProfile,
    };
    use std::collections::HashMap;

    struct Fixture {
        container: ContainerConfig,
        pod: PodSandboxConfig,
        image: RunConfig,
        namespaces: Namespaces,
        host_cgroups: HostCgroups,
        min_oom_score_adj: i32,
        shm: Option<PathBuf>,
        dir: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> Self {
            Fixture {
                container: ContainerConfig {
                    metadata: Some(ContainerMetadata {
                        name: "app".into(),
                        attempt: 0,
                    }),
                    ..Default::default()
                },
                pod: PodSandboxConfig {
                    hostname: "pod-host".into(),
                    ..Default::default()
                },
                image: RunConfig {
                    entrypoint: Some(vec!["/bin/app".into()]),
                    cmd: Some(vec!["--serve".into()]),
                    ..Default::default()
                },
                namespaces: Namespaces {
                    network: NamespaceSource::Join("/run/pod/net".into()),
                    ipc: NamespaceSource::Join("/run/pod/ipc".into()),
                    uts: NamespaceSource::Join("/run/pod/uts".into()),
                    pid: NamespaceSource::New,
                },
                host_cgroups: HostCgroups::default(),
                min_oom_score_adj: -999,
                shm: Some("/run/pod/shm".into()),
                dir: tempfile::tempdir().unwrap(),
            }
        }

        fn build(&self) -> Result<Spec> {
            build_on(
                &SpecInput {
                    container: &self.container,
                    pod: &self.pod,
                    image: &self.image,
                    rootfs: "/run/c/rootfs".into(),
                    namespaces: self.namespaces.clone(),
                    cgroups_path: "/kubepods/pod1/crishim-c1".into(),
                    pod_files: PodFiles {
                        hostname: "/run/pod/hostname".into(),
                        hosts: "/run/pod/hosts".into(),
                        resolv_conf: "/run/pod/resolv.conf".into(),
                        shm: self.shm.clone(),
                    },
                    user: ResolvedUser {
                        uid: 1000,
                        gid: 1001,
                        additional_gids: vec![29],
                    },
                    min_oom_score_adj: self.min_oom_score_adj,
                },
                self.host_cgroups,
            )
        }

        fn spec(&self) -> Spec {
            self.build().unwrap()
        }

        fn linux_config(&mut self) -> &mut LinuxContainerConfig {
            self.container.linux.get_or_insert_default()
        }

        fn security(&mut self) -> &mut LinuxContainerSecurityContext {
            self.linux_config().security_context.get_or_insert_default()
        }

        fn resources(&mut self) -> &mut LinuxContainerResources {
            self.linux_config().resources.get_or_insert_default()
        }

        fn host_dir(&self, name: &str) -> String {
            let path = self.dir.path().join(name);
            std::fs::create_dir_all(&path).unwrap();
            path.display().to_string()
        }
    }

    fn process(spec: &Spec) -> &Process {
        spec.process().as_ref().unwrap()
    }

    fn linux(spec: &Spec) -> &Linux {
        spec.linux().as_ref().unwrap()
    }

    fn args_of(spec: &Spec) -> Vec<String> {
        process(spec).args().clone().unwrap()
    }

    fn env_of(spec: &Spec) -> Vec<String> {
        process(spec).env().clone().unwrap()
    }

    fn effective(spec: &Spec) -> Capabilities {
        process(spec)
            .capabilities()
            .as_ref()
            .unwrap()
            .effective()
            .clone()
            .unwrap()
    }

    fn mount_at<'s>(spec: &'s Spec, destination: &str) -> Vec<&'s Mount> {
        spec.mounts()
            .as_ref()
            .unwrap()
            .iter()
            .filter(|m| m.destination() == Path::new(destination))
            .collect()
    }

    fn options(m: &Mount) -> Vec<String> {
        m.options().clone().unwrap()
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn invalid(result: Result<Spec>) -> String {
        match result {
            Err(Error::InvalidArgument(message)) => message,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    fn cri_mount(container_path: &str, host_path: &str) -> cri_proto::Mount {
        cri_proto::Mount {
            container_path: container_path.into(),
            host_path: host_path.into(),
            ..Default::default()
        }
    }

    #[test]
    fn argv_follows_docker_rules() {
        let mut f = Fixture::new();
        assert_eq!(args_of(&f.spec()), ["/bin/app", "--serve"]);
        f.container.args = strings(&["--debug"]);
        assert_eq!(
            args_of(&f.spec()),
            ["/bin/app", "--debug"],
            "args replace Cmd"
        );
        f.container.command = strings(&["/bin/other"]);
        assert_eq!(
            args_of(&f.spec()),
            ["/bin/other", "--debug"],
            "command replaces the entrypoint"
        );
        f.container.args.clear();
        assert_eq!(args_of(&f.spec()), ["/bin/other"], "and the image's Cmd");
        f.container.command.clear();
        f.image.entrypoint = None;
        f.image.cmd = Some(strings(&["sh", "-c", "true"]));
        assert_eq!(args_of(&f.spec()), ["sh", "-c", "true"]);
        f.container.args = strings(&["echo", "hi"]);
        assert_eq!(
            args_of(&f.spec()),
            ["echo", "hi"],
            "without an entrypoint the args are the whole command"
        );
    }

    #[test]
    fn no_command_at_all_is_an_error() {
        let mut f = Fixture::new();
        f.image.entrypoint = None;
        f.image.cmd = Some(vec![]);
        let message = invalid(f.build());
        assert!(message.contains("no command specified"), "{message}");
        assert!(message.contains("\"app\""), "{message}");
    }

    #[test]
    fn env_gets_path_and_hostname_defaults() {
        let mut f = Fixture::new();
        f.image.env = Some(strings(&["A=image"]));
        assert_eq!(
            env_of(&f.spec()),
            [DEFAULT_PATH, "HOSTNAME=pod-host", "A=image"]
        );
        f.image.env = Some(strings(&["PATH=/image/bin", "A=image"]));
        f.container.envs = vec![
            KeyValue {
                key: "HOSTNAME".into(),
                value: "mine".into(),
            },
            KeyValue {
                key: "A".into(),
                value: "cri".into(),
            },
        ];
        assert_eq!(
            env_of(&f.spec()),
            ["PATH=/image/bin", "A=cri", "HOSTNAME=mine"]
        );
        f.container.envs = vec![KeyValue {
            key: "PATH".into(),
            value: "/cri/bin".into(),
        }];
        assert!(env_of(&f.spec()).contains(&"PATH=/cri/bin".to_string()));
        assert!(!env_of(&f.spec()).contains(&DEFAULT_PATH.to_string()));
    }

    #[test]
    fn cwd_user_terminal_and_limits() {
        let mut f = Fixture::new();
        let spec = f.spec();
        let p = process(&spec);
        assert_eq!(p.cwd(), Path::new("/"));
        assert_eq!((p.user().uid(), p.user().gid()), (1000, 1001));
        assert_eq!(p.user().additional_gids().as_deref(), Some(&[29][..]));
        assert_eq!(p.terminal(), Some(false));
        assert_eq!(p.no_new_privileges(), None);
        let rlimits = p.rlimits().as_ref().unwrap();
        assert_eq!(rlimits.len(), 1);
        assert_eq!(rlimits[0].typ(), PosixRlimitType::RlimitNofile);
        assert_eq!(
            (rlimits[0].soft(), rlimits[0].hard()),
            (nofile_limit(), nofile_limit())
        );
        assert_eq!(spec.hostname(), &None);
        assert_eq!(
            spec.root().as_ref().unwrap().path(),
            Path::new("/run/c/rootfs")
        );
        assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(false));

        f.image.working_dir = Some("/srv".into());
        assert_eq!(process(&f.spec()).cwd(), Path::new("/srv"));
        f.container.working_dir = "/work".into();
        assert_eq!(process(&f.spec()).cwd(), Path::new("/work"));
        f.container.working_dir = "work".into();
        assert!(invalid(f.build()).contains("\"work\""));
        f.container.working_dir.clear();

        f.security().no_new_privs = true;
        assert_eq!(process(&f.spec()).no_new_privileges(), Some(true));
        f.container.tty = true;
        assert_eq!(invalid(f.build()), "tty is not supported yet");
    }

    #[test]
    fn oom_score_adj_is_raised_to_the_daemons() {
        let mut f = Fixture::new();
        f.min_oom_score_adj = -500;
        assert_eq!(process(&f.spec()).oom_score_adj(), Some(0));
        f.resources().oom_score_adj = -998;
        assert_eq!(process(&f.spec()).oom_score_adj(), Some(-500));
        f.resources().oom_score_adj = 900;
        assert_eq!(process(&f.spec()).oom_score_adj(), Some(900));
        f.resources().oom_score_adj = 5000;
        assert_eq!(process(&f.spec()).oom_score_adj(), Some(1000));
        f.min_oom_score_adj = -1000;
        f.resources().oom_score_adj = -998;
        assert_eq!(process(&f.spec()).oom_score_adj(), Some(-998));
    }

    #[test]
    fn default_capabilities() {
        let f = Fixture::new();
        let spec = f.spec();
        let caps = process(&spec).capabilities().as_ref().unwrap();
        let want: Capabilities = DEFAULT_CAPABILITIES.into_iter().collect();
        assert_eq!(caps.bounding().as_ref(), Some(&want));
        assert_eq!(caps.effective().as_ref(), Some(&want));
        assert_eq!(caps.permitted().as_ref(), Some(&want));
        assert_eq!(caps.inheritable().as_ref(), Some(&Capabilities::new()));
        assert_eq!(caps.ambient().as_ref(), Some(&Capabilities::new()));
        assert!(!want.contains(&Capability::SysAdmin));
    }

    #[test]
    fn capabilities_added_and_dropped() {
        let mut f = Fixture::new();
        let mut set = |add: &[&str], drop: &[&str]| {
            f.security().capabilities = Some(CriCapability {
                add_capabilities: strings(add),
                drop_capabilities: strings(drop),
                ..Default::default()
            });
            f.build()
        };
        let caps = effective(&set(&["NET_ADMIN", "CAP_SYS_TIME", "sys_nice"], &["CHOWN"]).unwrap());
        assert!(caps.contains(&Capability::NetAdmin));
        assert!(caps.contains(&Capability::SysTime));
        assert!(caps.contains(&Capability::SysNice));
        assert!(!caps.contains(&Capability::Chown));
        assert!(caps.contains(&Capability::Kill));

        let caps = effective(&set(&["KILL"], &["ALL"]).unwrap());
        assert_eq!(caps, [Capability::Kill].into_iter().collect());

        let caps = effective(&set(&["ALL"], &["NET_RAW"]).unwrap());
        assert!(caps.contains(&Capability::SysAdmin));
        assert!(!caps.contains(&Capability::NetRaw));
        assert!(caps.len() > DEFAULT_CAPABILITIES.len());

        let message = invalid(set(&["NET_FLY"], &[]));
        assert!(message.contains("\"NET_FLY\""), "{message}");
        let message = invalid(set(&[], &["CAP_BOGUS"]));
        assert!(message.contains("\"CAP_BOGUS\""), "{message}");
    }

    #[test]
    fn privileged_containers_get_the_host_devices_but_terminals() {
        let found = host_devices(Path::new("/dev"));
        let paths: Vec<_> = found.iter().map(|(d, _)| d.path().clone()).collect();
        assert!(paths.contains(&PathBuf::from("/dev/null")), "{paths:?}");
        assert!(
            paths.iter().all(|p| {
                let name = p.file_name().unwrap().to_string_lossy();
                !name.starts_with("tty") && name != "console" && !p.starts_with("/dev/pts")
            }),
            "{paths:?}"
        );
        let mut f = Fixture::new();
        f.security().privileged = true;
        let spec = f.spec();
        let devices = linux(&spec).devices().clone().unwrap();
        assert!(devices.iter().any(|d| d.path() == Path::new("/dev/null")));
    }

    #[test]
    fn privileged_containers_get_everything() {
        let mut f = Fixture::new();
        let sc = f.security();
        sc.privileged = true;
        sc.no_new_privs = true;
        sc.seccomp = Some(SecurityProfile {
            profile_type: ProfileType::RuntimeDefault as i32,
            ..Default::default()
        });
        sc.capabilities = Some(CriCapability {
            drop_capabilities: strings(&["ALL"]),
            ..Default::default()
        });
        let spec = f.spec();
        let caps = effective(&spec);
        assert!(caps.contains(&Capability::SysAdmin));
        assert_eq!(caps, all_capabilities());
        assert_eq!(process(&spec).no_new_privileges(), None);
        assert_eq!(linux(&spec).seccomp(), &None);
        assert_eq!(linux(&spec).masked_paths().as_deref(), Some(&[][..]));
        assert_eq!(linux(&spec).readonly_paths().as_deref(), Some(&[][..]));
        assert!(options(mount_at(&spec, "/sys")[0]).contains(&"rw".to_string()));
        assert!(options(mount_at(&spec, "/sys/fs/cgroup")[0]).contains(&"rw".to_string()));
        let rules = linux(&spec)
            .resources()
            .as_ref()
            .unwrap()
            .devices()
            .clone()
            .unwrap();
        assert_eq!(rules.len(), 1);
        assert!(rules[0].allow());
        assert_eq!(rules[0].to_string(), "a *:* rwm");
    }

    #[test]
    fn a_shared_pid_namespace_gets_no_v1_cgroupfs() {
        let mut f = Fixture::new();
        f.namespaces.pid = NamespaceSource::Join("/run/pod/ns/pid".into());
        assert!(mount_at(&f.spec(), "/sys/fs/cgroup").is_empty());
        f.host_cgroups.unified_only = true;
        assert_eq!(mount_at(&f.spec(), "/sys/fs/cgroup").len(), 1);
    }

    #[test]
    fn default_mounts_in_order() {
        let mut f = Fixture::new();
        let spec = f.spec();
        let destinations: Vec<_> = spec
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| m.destination().display().to_string())
            .collect();
        assert_eq!(
            destinations,
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/dev/mqueue",
                "/sys",
                "/sys/fs/cgroup",
                "/dev/shm",
                "/etc/hostname",
                "/etc/hosts",
                "/etc/resolv.conf"
            ]
        );
        assert!(options(mount_at(&spec, "/sys")[0]).contains(&"ro".to_string()));
        let cgroup = mount_at(&spec, "/sys/fs/cgroup")[0];
        assert_eq!(cgroup.typ().as_deref(), Some("cgroup"));
        assert!(options(cgroup).contains(&"ro".to_string()));
        let pts = options(mount_at(&spec, "/dev/pts")[0]);
        assert!(pts.contains(&"newinstance".to_string()) && pts.contains(&"gid=5".to_string()));
        let shm = mount_at(&spec, "/dev/shm")[0];
        assert_eq!(shm.source().as_deref(), Some(Path::new("/run/pod/shm")));
        assert_eq!(options(shm), ["rbind", "rprivate", "rw"]);
        let hosts = mount_at(&spec, "/etc/hosts")[0];
        assert_eq!(hosts.typ().as_deref(), Some("bind"));
        assert_eq!(hosts.source().as_deref(), Some(Path::new("/run/pod/hosts")));
        assert_eq!(options(hosts), ["rbind", "rprivate", "rw"]);

        f.shm = None;
        let spec = f.spec();
        let shm = mount_at(&spec, "/dev/shm")[0];
        assert_eq!(shm.typ().as_deref(), Some("tmpfs"));
        assert!(options(shm).contains(&"size=65536k".to_string()));
    }

    #[test]
    fn readonly_rootfs() {
        let mut f = Fixture::new();
        f.security().readonly_rootfs = true;
        let spec = f.spec();
        assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(true));
        for file in ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"] {
            assert_eq!(
                options(mount_at(&spec, file)[0]),
                ["rbind", "rprivate", "ro"]
            );
        }
        assert_eq!(
            options(mount_at(&spec, "/dev/shm")[0]),
            ["rbind", "rprivate", "rw"]
        );
    }

    #[test]
    fn cri_mounts_with_propagation() {
        let mut f = Fixture::new();
        let data = f.host_dir("data");
        let logs = f.host_dir("logs");
        let mut ro = cri_mount("/data", &data);
        ro.readonly = true;
        let mut slave = cri_mount("/logs", &logs);
        slave.propagation = MountPropagation::PropagationHostToContainer as i32;
        slave.selinux_relabel = true;
        f.container.mounts = vec![ro, slave];
        let spec = f.spec();
        let data_mount = mount_at(&spec, "/data")[0];
        assert_eq!(data_mount.typ().as_deref(), Some("bind"));
        assert_eq!(data_mount.source().as_deref(), Some(Path::new(&data)));
        assert_eq!(options(data_mount), ["rbind", "rprivate", "ro"]);
        assert_eq!(
            options(mount_at(&spec, "/logs")[0]),
            ["rbind", "rslave", "rw"]
        );
        assert_eq!(linux(&spec).rootfs_propagation().as_deref(), Some("slave"));
        let last = spec.mounts().as_ref().unwrap().last().unwrap();
        assert_eq!(
            last.destination(),
            Path::new("/logs"),
            "CRI mounts come last"
        );

        f.container.mounts[0].propagation = MountPropagation::PropagationBidirectional as i32;
        let spec = f.spec();
        assert_eq!(
            options(mount_at(&spec, "/data")[0]),
            ["rbind", "rshared", "ro"]
        );
        assert_eq!(linux(&spec).rootfs_propagation().as_deref(), Some("shared"));

        f.container.mounts = vec![cri_mount("/data", &data)];
        assert_eq!(linux(&f.spec()).rootfs_propagation(), &None);

        f.container.mounts[0].propagation = 7;
        assert!(invalid(f.build()).contains("unknown propagation 7"));
    }

    #[test]
    fn cri_mount_errors() {
        let mut f = Fixture::new();
        let data = f.host_dir("data");
        f.container.mounts = vec![cri_mount("/data", "/nonexistent/crishim/dir")];
        let message = invalid(f.build());
        assert!(
            message.contains("host path \"/nonexistent/crishim/dir\" does not exist"),
            "{message}"
        );
        f.container.mounts = vec![cri_mount("data", &data)];
        assert!(invalid(f.build()).contains("not absolute"));
        let mut image = cri_mount("/data", "");
        image.image = Some(cri_proto::ImageSpec {
            image: "busybox".into(),
            ..Default::default()
        });
        f.container.mounts = vec![image];
        assert!(invalid(f.build()).contains("image volumes are not supported"));
        let mut rro = cri_mount("/data", &data);
        rro.recursive_read_only = true;
        f.container.mounts = vec![rro];
        assert!(invalid(f.build()).contains("recursive read-only"));
        f.container.mounts[0].readonly = true;
        assert_eq!(
            options(mount_at(&f.spec(), "/data")[0]),
            ["rbind", "rprivate", "ro", "rro"]
        );
    }

    #[test]
    fn a_cri_mount_replaces_a_default_one() {
        let mut f = Fixture::new();
        let hosts = f.dir.path().join("my-hosts");
        std::fs::write(&hosts, "127.0.0.1 localhost\n").unwrap();
        let mut m = cri_mount("/etc/hosts", &hosts.display().to_string());
        m.readonly = true;
        f.container.mounts = vec![m];
        let spec = f.spec();
        let found = mount_at(&spec, "/etc/hosts");
        assert_eq!(found.len(), 1, "one mount at /etc/hosts");
        assert_eq!(found[0].source().as_deref(), Some(hosts.as_path()));
        assert_eq!(options(found[0]), ["rbind", "rprivate", "ro"]);
        assert_eq!(mount_at(&spec, "/etc/resolv.conf").len(), 1);
    }

    #[test]
    fn namespaces_host_new_and_joined() {
        let mut f = Fixture::new();
        let kinds = |spec: &Spec| -> Vec<(LinuxNamespaceType, Option<PathBuf>)> {
            linux(spec)
                .namespaces()
                .as_ref()
                .unwrap()
                .iter()
                .map(|n| (n.typ(), n.path().clone()))
                .collect()
        };
        assert_eq!(
            kinds(&f.spec()),
            [
                (LinuxNamespaceType::Mount, None),
                (LinuxNamespaceType::Network, Some("/run/pod/net".into())),
                (LinuxNamespaceType::Ipc, Some("/run/pod/ipc".into())),
                (LinuxNamespaceType::Uts, Some("/run/pod/uts".into())),
                (LinuxNamespaceType::Pid, None),
            ]
        );
        f.namespaces.network = NamespaceSource::Host;
        f.namespaces.pid = NamespaceSource::Host;
        f.namespaces.ipc = NamespaceSource::New;
        f.host_cgroups.unified_only = true;
        assert_eq!(
            kinds(&f.spec()),
            [
                (LinuxNamespaceType::Mount, None),
                (LinuxNamespaceType::Ipc, None),
                (LinuxNamespaceType::Uts, Some("/run/pod/uts".into())),
                (LinuxNamespaceType::Cgroup, None),
            ]
        );
        let spec = f.spec();
        assert_eq!(
            linux(&spec).cgroups_path().as_deref(),
            Some(Path::new("/kubepods/pod1/crishim-c1"))
        );
    }

    #[test]
    fn host_cgroups_are_detected_from_files() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(HostCgroups::detect_in(dir.path()), HostCgroups::default());
        std::fs::create_dir(dir.path().join("memory")).unwrap();
        std::fs::write(dir.path().join("memory/memory.memsw.limit_in_bytes"), "").unwrap();
        assert!(HostCgroups::detect_in(dir.path()).v1_swap_limit);
        std::fs::write(dir.path().join("cgroup.controllers"), "cpu memory").unwrap();
        assert!(HostCgroups::detect_in(dir.path()).unified_only);
    }

    #[test]
    fn resources_from_the_cri() {
        let mut f = Fixture::new();
        let spec = f.spec();
        let r = linux(&spec).resources().as_ref().unwrap();
        assert_eq!((r.cpu(), r.memory()), (&None, &None));
        let r = f.resources();
        r.cpu_shares = 512;
        r.cpu_quota = 50_000;
        r.cpu_period = 100_000;
        r.cpuset_cpus = "0-1".into();
        r.cpuset_mems = "0".into();
        r.memory_limit_in_bytes = 128 << 20;
        r.hugepage_limits = vec![HugepageLimit {
            page_size: "2MB".into(),
            limit: 4 << 20,
        }];
        r.unified = HashMap::from([("memory.high".to_string(), "100000000".to_string())]);
        let spec = f.spec();
        let r = linux(&spec).resources().as_ref().unwrap();
        let cpu = r.cpu().as_ref().unwrap();
        assert_eq!(
            (cpu.shares(), cpu.quota(), cpu.period()),
            (Some(512), Some(50_000), Some(100_000))
        );
        assert_eq!(
            (cpu.cpus().as_deref(), cpu.mems().as_deref()),
            (Some("0-1"), Some("0"))
        );
        let memory = r.memory().unwrap();
        assert_eq!((memory.limit(), memory.swap()), (Some(128 << 20), None));
        let huge = &r.hugepage_limits().as_ref().unwrap()[0];
        assert_eq!((huge.page_size().as_str(), huge.limit()), ("2MB", 4 << 20));
        assert_eq!(
            r.unified()
                .as_ref()
                .unwrap()
                .get("memory.high")
                .map(String::as_str),
            Some("100000000")
        );

        f.host_cgroups.v1_swap_limit = true;
        let swap = |f: &Fixture| {
            linux(&f.spec())
                .resources()
                .as_ref()
                .unwrap()
                .memory()
                .unwrap()
                .swap()
        };
        assert_eq!(swap(&f), Some(128 << 20), "v1: no swap beyond the limit");
        f.resources().memory_swap_limit_in_bytes = 256 << 20;
        assert_eq!(swap(&f), Some(256 << 20));
        f.host_cgroups.v1_swap_limit = false;
        assert_eq!(swap(&f), Some(256 << 20), "an explicit swap limit is kept");
    }

    #[test]
    fn device_rules_deny_all_but_the_defaults() {
        let f = Fixture::new();
        let spec = f.spec();
        let rules: Vec<String> = linux(&spec)
            .resources()
            .as_ref()
            .unwrap()
            .devices()
            .as_ref()
            .unwrap()
            .iter()
            .map(|r| format!("{} {r}", if r.allow() { "allow" } else { "deny" }))
            .collect();
        assert_eq!(rules[0], "deny a *:* rwm");
        for rule in [
            "allow c 1:3 rwm",
            "allow c 1:9 rwm",
            "allow c 5:2 rwm",
            "allow c 136:* rwm",
            "allow c *:* m",
        ] {
            assert!(rules.contains(&rule.to_string()), "{rule} in {rules:?}");
        }
        assert!(!rules.iter().any(|r| r.starts_with("allow a")));
    }

    #[test]
    fn devices_are_checked_on_the_host() {
        let mut f = Fixture::new();
        f.container.devices = vec![cri_proto::Device {
            container_path: "/dev/mynull".into(),
            host_path: "/dev/null".into(),
            permissions: "rw".into(),
        }];
        let spec = f.spec();
        let devices = linux(&spec).devices().as_ref().unwrap();
        assert_eq!(devices.len(), 1);
        let d = &devices[0];
        assert_eq!(d.path(), Path::new("/dev/mynull"));
        assert_eq!((d.typ(), d.major(), d.minor()), (LinuxDeviceType::C, 1, 3));
        assert_eq!((d.uid(), d.gid()), (Some(0), Some(0)));
        assert_eq!(d.file_mode(), Some(0o666));
        let rules = linux(&spec)
            .resources()
            .as_ref()
            .unwrap()
            .devices()
            .clone()
            .unwrap();
        let last = rules.last().unwrap();
        assert!(last.allow());
        assert_eq!(last.to_string(), "c 1:3 rw");

        f.container.devices[0].permissions = "rwx".into();
        assert!(invalid(f.build()).contains("\"rwx\""));
        f.container.devices[0].permissions = "rr".into();
        assert!(invalid(f.build()).contains("\"rr\""));
        f.container.devices[0].permissions = String::new();
        let spec = f.spec();
        let rules = linux(&spec)
            .resources()
            .as_ref()
            .unwrap()
            .devices()
            .clone()
            .unwrap();
        assert_eq!(rules.last().unwrap().to_string(), "c 1:3 rwm");

        let file = f.dir.path().join("regular");
        std::fs::write(&file, "x").unwrap();
        f.container.devices[0].host_path = file.display().to_string();
        let message = invalid(f.build());
        assert!(
            message.contains("not a character or block device"),
            "{message}"
        );
        assert!(message.contains("regular"), "{message}");
        f.container.devices[0].host_path = "/dev/crishim-missing".into();
        assert!(invalid(f.build()).contains("/dev/crishim-missing"));
    }

    #[test]
    fn masked_and_readonly_paths() {
        let mut f = Fixture::new();
        let spec = f.spec();
        assert_eq!(
            linux(&spec).masked_paths().clone().unwrap(),
            strings(&DEFAULT_MASKED_PATHS)
        );
        assert_eq!(
            linux(&spec).readonly_paths().clone().unwrap(),
            strings(&DEFAULT_READONLY_PATHS)
        );
        f.security().masked_paths = strings(&["/proc/secret"]);
        f.security().readonly_paths = strings(&["/proc/ro"]);
        let spec = f.spec();
        assert_eq!(
            linux(&spec).masked_paths().clone().unwrap(),
            ["/proc/secret"]
        );
        assert_eq!(linux(&spec).readonly_paths().clone().unwrap(), ["/proc/ro"]);
    }

    #[test]
    fn pod_sysctls_are_the_monitor_s_and_annotations_are_copied() {
        let mut f = Fixture::new();
        f.pod.linux = Some(LinuxPodSandboxConfig {
            sysctls: HashMap::from([("net.ipv4.ip_forward".to_string(), "1".to_string())]),
            ..Default::default()
        });
        f.container.annotations = HashMap::from([("a".to_string(), "b".to_string())]);
        let spec = f.spec();
        // The monitor set them in the pod's namespaces when the pod started.
        assert_eq!(linux(&spec).sysctl(), &None);
        assert_eq!(
            spec.annotations()
                .as_ref()
                .unwrap()
                .get("a")
                .map(String::as_str),
            Some("b")
        );
    }

    #[test]
    fn seccomp_profile_selection() {
        let mut f = Fixture::new();
        assert_eq!(linux(&f.spec()).seccomp(), &None, "no security context");
        f.security();
        assert_eq!(linux(&f.spec()).seccomp(), &None, "unset");
        let set = |f: &mut Fixture, profile_type: ProfileType, localhost_ref: &str| {
            f.security().seccomp = Some(SecurityProfile {
                profile_type: profile_type as i32,
                localhost_ref: localhost_ref.into(),
            });
            f.build()
        };
        assert_eq!(
            linux(&set(&mut f, ProfileType::Unconfined, "").unwrap()).seccomp(),
            &None
        );
        assert_eq!(
            linux(&set(&mut f, ProfileType::RuntimeDefault, "").unwrap()).seccomp(),
            &Some(seccomp::runtime_default())
        );
        let file = f.dir.path().join("profile.json");
        std::fs::write(&file, r#"{"defaultAction": "SCMP_ACT_LOG"}"#).unwrap();
        let path = file.display().to_string();
        let spec = set(&mut f, ProfileType::Localhost, &path).unwrap();
        let profile = linux(&spec).seccomp().clone().unwrap();
        assert_eq!(
            profile.default_action(),
            oci_spec::runtime::LinuxSeccompAction::ScmpActLog
        );
        let missing = f.dir.path().join("missing.json").display().to_string();
        let message = invalid(set(&mut f, ProfileType::Localhost, &missing));
        assert!(message.contains("missing.json"), "{message}");
        assert!(
            invalid(set(&mut f, ProfileType::Localhost, "relative.json")).contains("not absolute")
        );
    }

    #[test]
    #[allow(deprecated)]
    fn deprecated_seccomp_profile_path() {
        let mut f = Fixture::new();
        let mut with = |name: &str| {
            f.security().seccomp_profile_path = name.to_string();
            f.build()
        };
        assert_eq!(linux(&with("unconfined").unwrap()).seccomp(), &None);
        for name in ["runtime/default", "docker/default"] {
            assert_eq!(
                linux(&with(name).unwrap()).seccomp(),
                &Some(seccomp::runtime_default())
            );
        }
        assert!(invalid(with("something/else")).contains("something/else"));
        assert!(invalid(with("localhost//nonexistent/p.json")).contains("/nonexistent/p.json"));
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), r#"{"defaultAction": "SCMP_ACT_KILL"}"#).unwrap();
        let spec = with(&format!("localhost/{}", file.path().display())).unwrap();
        assert_eq!(
            linux(&spec).seccomp().as_ref().unwrap().default_action(),
            oci_spec::runtime::LinuxSeccompAction::ScmpActKill
        );
        f.security().seccomp = Some(SecurityProfile {
            profile_type: ProfileType::Unconfined as i32,
            ..Default::default()
        });
        f.security().seccomp_profile_path = "runtime/default".into();
        assert_eq!(linux(&f.spec()).seccomp(), &None, "the new field wins");
    }
}
