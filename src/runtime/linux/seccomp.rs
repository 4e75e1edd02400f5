//! Seccomp profiles for Linux containers: the runtime's default allow-list (what Kubernetes
//! calls `RuntimeDefault`) and profiles the node keeps in files (`Localhost`), in the OCI
//! format that Docker's profiles also use.

use std::path::Path;

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompFilterFlag, LinuxSeccompOperator, LinuxSyscall,
};
use serde::Deserialize;

use crate::error::{Error, Result};

/// System calls every architecture names the same way (the kernel's generic table) that a
/// program and a shell need and that cannot reach beyond the container.
const ALLOWED: &[&str] = &[
    "accept",
    "accept4",
    "adjtimex",
    "bind",
    "brk",
    "cachestat",
    "capget",
    "capset",
    "chdir",
    "chroot",
    "clock_adjtime",
    "clock_getres",
    "clock_gettime",
    "clock_nanosleep",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "dup",
    "dup3",
    "epoll_create1",
    "epoll_ctl",
    "epoll_pwait",
    "epoll_pwait2",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchownat",
    "fcntl",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstatfs",
    "fsync",
    "ftruncate",
    "futex",
    "futex_requeue",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    "get_robust_list",
    "getcpu",
    "getcwd",
    "getdents64",
    "getegid",
    "geteuid",
    "getgid",
    "getgroups",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresuid",
    "getrlimit",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "gettid",
    "gettimeofday",
    "getuid",
    "getxattr",
    "inotify_add_watch",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_setup",
    "io_submit",
    "ioctl",
    "ioprio_get",
    "ioprio_set",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lgetxattr",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "madvise",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdirat",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedsend",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "nanosleep",
    "newfstatat",
    "openat",
    "openat2",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "ppoll",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlinkat",
    "readv",
    "recvfrom",
    "recvmmsg",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_tgsigqueueinfo",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "sendfile",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "set_robust_list",
    "set_tid_address",
    "setfsgid",
    "setfsuid",
    "setgid",
    "setgroups",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setresgid",
    "setresuid",
    "setreuid",
    "setrlimit",
    "setsid",
    "setsockopt",
    "setuid",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd4",
    "socket",
    "socketpair",
    "splice",
    "statfs",
    "statx",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_settime",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_settime",
    "times",
    "tkill",
    "truncate",
    "umask",
    "uname",
    "unlinkat",
    "utimensat",
    "vmsplice",
    "wait4",
    "waitid",
    "write",
    "writev",
];

/// The older system calls x86_64 keeps beside the generic ones (aarch64 never had them).
#[cfg(target_arch = "x86_64")]
const ALLOWED_ARCH: &[&str] = &[
    "access",
    "alarm",
    "arch_prctl",
    "chmod",
    "chown",
    "creat",
    "dup2",
    "epoll_create",
    "epoll_wait",
    "eventfd",
    "fork",
    "futimesat",
    "get_thread_area",
    "getdents",
    "getpgrp",
    "inotify_init",
    "lchown",
    "link",
    "lstat",
    "mkdir",
    "mknod",
    "open",
    "pause",
    "pipe",
    "poll",
    "readlink",
    "rename",
    "rmdir",
    "select",
    "set_thread_area",
    "signalfd",
    "stat",
    "symlink",
    "time",
    "unlink",
    "utime",
    "utimes",
    "vfork",
];

/// aarch64 has only the generic table.
#[cfg(not(target_arch = "x86_64"))]
const ALLOWED_ARCH: &[&str] = &[];

/// The `personality(2)` domains a container may switch to: PER_LINUX, PER_LINUX32,
/// UNAME26|PER_LINUX32 and the query 0xffffffff; never those that weaken address-space
/// randomisation.
const PERSONALITIES: [u64; 4] = [0x0, 0x8, 0x20008, 0xffff_ffff];

/// The architectures a filter covers: the native one and those its processes can also run.
fn architectures() -> Vec<Arch> {
    if cfg!(target_arch = "aarch64") {
        vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm]
    } else {
        vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]
    }
}

/// The runtime's default profile: every system call not listed fails with EPERM. Listed are
/// those ordinary programs use; left out are those that reach the host (mount, modules,
/// reboot, the clock, keyrings, bpf, ptrace, namespaces, swap, accounting, quotas, ...).
pub fn runtime_default() -> LinuxSeccomp {
    let mut allow = LinuxSyscall::default();
    allow
        .set_names(
            ALLOWED
                .iter()
                .chain(ALLOWED_ARCH)
                .map(|s| s.to_string())
                .collect(),
        )
        .set_action(LinuxSeccompAction::ScmpActAllow);
    let mut syscalls = vec![allow];
    syscalls.extend(
        PERSONALITIES
            .iter()
            .filter_map(|&domain| personality(domain)),
    );
    syscalls.extend(clone_without_namespaces());
    let mut clone3 = LinuxSyscall::default();
    // clone3 passes its flags in memory, where a filter cannot look: it fails with ENOSYS,
    // and C libraries fall back to clone, whose flags are checked.
    clone3
        .set_names(vec!["clone3".to_string()])
        .set_action(LinuxSeccompAction::ScmpActErrno)
        .set_errno_ret(Some(libc::ENOSYS as u32));
    syscalls.push(clone3);
    let mut profile = LinuxSeccomp::default();
    profile
        .set_default_action(LinuxSeccompAction::ScmpActErrno)
        .set_default_errno_ret(Some(libc::EPERM as u32))
        .set_architectures(Some(architectures()))
        .set_syscalls(Some(syscalls));
    profile
}

/// The namespace flags of clone(2): a container may fork and make threads, not namespaces.
const CLONE_NAMESPACE_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET) as u64;

/// A rule allowing clone(2) without namespace flags. libcontainer 0.7 reads a masked
/// comparison as `(arg & value_two) == value`, the other way round from runc and Docker
/// profiles (`(arg & value) == value_two`), so the mask goes in `value_two` here; profile
/// files are turned round as they are read (see [`libcontainer_arg`]).
fn clone_without_namespaces() -> Option<LinuxSyscall> {
    let arg = LinuxSeccompArgBuilder::default()
        .index(0_usize)
        .value(0_u64)
        .value_two(CLONE_NAMESPACE_FLAGS)
        .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
        .build()
        .ok()?;
    let mut rule = LinuxSyscall::default();
    rule.set_names(vec!["clone".to_string()])
        .set_action(LinuxSeccompAction::ScmpActAllow)
        .set_args(Some(vec![arg]));
    Some(rule)
}

/// A profile file's argument comparison as libcontainer reads it: a masked comparison has its
/// mask and value swapped (see [`clone_without_namespaces`]).
fn libcontainer_arg(arg: LinuxSeccompArg) -> LinuxSeccompArg {
    if arg.op() != LinuxSeccompOperator::ScmpCmpMaskedEq {
        return arg;
    }
    LinuxSeccompArgBuilder::default()
        .index(arg.index())
        .value(arg.value_two().unwrap_or(0))
        .value_two(arg.value())
        .op(arg.op())
        .build()
        .unwrap_or(arg)
}

/// A rule allowing `personality(domain)`; None if it cannot be built, which leaves that
/// domain denied.
fn personality(domain: u64) -> Option<LinuxSyscall> {
    let arg = LinuxSeccompArgBuilder::default()
        .index(0_usize)
        .value(domain)
        .op(LinuxSeccompOperator::ScmpCmpEq)
        .build()
        .ok()?;
    let mut rule = LinuxSyscall::default();
    rule.set_names(vec!["personality".to_string()])
        .set_action(LinuxSeccompAction::ScmpActAllow)
        .set_args(Some(vec![arg]));
    Some(rule)
}

/// A profile file in the OCI / Docker format.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProfileFile {
    default_action: LinuxSeccompAction,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    architectures: Vec<Arch>,
    /// Docker's per-architecture list (used when `architectures` is empty).
    #[serde(default)]
    arch_map: Vec<ArchMapEntry>,
    #[serde(default)]
    flags: Vec<LinuxSeccompFilterFlag>,
    #[serde(default)]
    syscalls: Vec<RuleFile>,
}

/// An architecture and those that run on it, in Docker's `archMap`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMapEntry {
    architecture: Arch,
    #[serde(default)]
    sub_architectures: Vec<Arch>,
}

/// One rule of a profile file; Docker's rules may apply only under conditions.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RuleFile {
    #[serde(default)]
    names: Vec<String>,
    /// Docker's older one-name form.
    #[serde(default)]
    name: Option<String>,
    action: LinuxSeccompAction,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<LinuxSeccompArg>>,
    #[serde(default)]
    includes: Condition,
    #[serde(default)]
    excludes: Condition,
}

/// Docker's rule condition: architectures (Go names), capabilities, a minimum kernel.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Condition {
    #[serde(default)]
    arches: Vec<String>,
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    min_kernel: Option<String>,
}

/// The node's architecture as Docker's profiles name it (Go's GOARCH).
const GO_ARCH: &str = if cfg!(target_arch = "aarch64") {
    "arm64"
} else {
    "amd64"
};

/// The node's architecture as seccomp names it.
fn native_arch() -> Arch {
    if cfg!(target_arch = "aarch64") {
        Arch::ScmpArchAarch64
    } else {
        Arch::ScmpArchX86_64
    }
}

/// A profile the node keeps in a file (Kubernetes' `Localhost` type), in the OCI format or
/// Docker's. Docker's conditional rules are kept only where they certainly apply: a rule for
/// other architectures, for a newer kernel, or for holders of given capabilities (which the
/// profile alone cannot know) is left out, so it can only deny more, never allow more.
pub fn localhost(path: &Path) -> Result<LinuxSeccomp> {
    let text = std::fs::read(path).map_err(|e| {
        Error::InvalidArgument(format!(
            "cannot read the seccomp profile {}: {e}",
            path.display()
        ))
    })?;
    let file: ProfileFile = serde_json::from_slice(&text).map_err(|e| {
        Error::InvalidArgument(format!("invalid seccomp profile {}: {e}", path.display()))
    })?;
    Ok(from_file(file, &kernel_release()))
}

/// The running kernel's release (`6.1.0-18-amd64`); empty if unknown.
fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default()
}

/// The OCI profile of a parsed file, for a node running kernel `release`.
fn from_file(file: ProfileFile, release: &str) -> LinuxSeccomp {
    let architectures = if file.architectures.is_empty() {
        file.arch_map
            .into_iter()
            .filter(|m| m.architecture == native_arch())
            .flat_map(|m| std::iter::once(m.architecture).chain(m.sub_architectures))
            .collect()
    } else {
        file.architectures
    };
    let syscalls: Vec<LinuxSyscall> = file
        .syscalls
        .into_iter()
        .filter(|r| applies(r, release))
        .map(rule)
        .collect();
    let mut profile = LinuxSeccomp::default();
    profile
        .set_default_action(file.default_action)
        .set_default_errno_ret(file.default_errno_ret)
        .set_architectures((!architectures.is_empty()).then_some(architectures))
        .set_flags((!file.flags.is_empty()).then_some(file.flags))
        .set_syscalls(Some(syscalls));
    profile
}

/// Whether a rule's conditions certainly hold on this node.
fn applies(rule: &RuleFile, release: &str) -> bool {
    let arch_ok =
        rule.includes.arches.is_empty() || rule.includes.arches.iter().any(|a| a == GO_ARCH);
    let arch_excluded = rule.excludes.arches.iter().any(|a| a == GO_ARCH);
    let kernel_ok = rule
        .includes
        .min_kernel
        .as_deref()
        .is_none_or(|min| kernel_at_least(release, min));
    arch_ok && !arch_excluded && kernel_ok && rule.includes.caps.is_empty()
}

/// Whether kernel `release` (`6.1.0-18-amd64`) is at least `min` (`4.8`); an unreadable
/// version is not.
fn kernel_at_least(release: &str, min: &str) -> bool {
    match (version(release), version(min)) {
        (Some(have), Some(want)) => have >= want,
        _ => false,
    }
}

/// The (major, minor) at the start of a kernel version.
fn version(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.trim().split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().unwrap_or("0").parse().ok()?;
    Some((major, minor))
}

/// The OCI rule of a file's rule.
fn rule(file: RuleFile) -> LinuxSyscall {
    let mut names = file.names;
    names.extend(file.name);
    let mut rule = LinuxSyscall::default();
    rule.set_names(names)
        .set_action(file.action)
        .set_errno_ret(file.errno_ret)
        .set_args(
            file.args
                .map(|args| args.into_iter().map(libcontainer_arg).collect()),
        );
    rule
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(profile: &LinuxSeccomp) -> Vec<String> {
        profile
            .syscalls()
            .as_ref()
            .unwrap()
            .iter()
            .filter(|r| r.action() == LinuxSeccompAction::ScmpActAllow && r.args().is_none())
            .flat_map(|r| r.names().clone())
            .collect()
    }

    #[test]
    fn clone_is_allowed_only_without_namespace_flags_and_clone3_is_enosys() {
        let profile = runtime_default();
        let rules = profile.syscalls().as_ref().unwrap();
        let clone = rules
            .iter()
            .find(|r| r.names() == &["clone".to_string()])
            .unwrap();
        let arg = &clone.args().as_ref().unwrap()[0];
        assert_eq!(arg.op(), LinuxSeccompOperator::ScmpCmpMaskedEq);
        // libcontainer's order: (arg0 & value_two) == value.
        assert_eq!((arg.value(), arg.value_two()), (0, Some(0x7E02_0000)));
        let clone3 = rules
            .iter()
            .find(|r| r.names() == &["clone3".to_string()])
            .unwrap();
        assert_eq!(clone3.errno_ret(), Some(libc::ENOSYS as u32));
        assert!(
            !names(&profile)
                .iter()
                .any(|n| n == "clone" || n == "clone3")
        );
    }

    #[test]
    fn runtime_default_allows_the_usual_and_denies_the_dangerous() {
        let profile = runtime_default();
        assert_eq!(profile.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(profile.default_errno_ret(), Some(libc::EPERM as u32));
        let allowed = names(&profile);
        for name in ["read", "write", "openat", "execve", "futex", "mmap"] {
            assert!(allowed.iter().any(|n| n == name), "{name} must be allowed");
        }
        for name in [
            "mount",
            "umount2",
            "pivot_root",
            "reboot",
            "kexec_load",
            "init_module",
            "finit_module",
            "delete_module",
            "bpf",
            "perf_event_open",
            "ptrace",
            "keyctl",
            "add_key",
            "request_key",
            "unshare",
            "setns",
            "swapon",
            "swapoff",
            "acct",
            "settimeofday",
            "clock_settime",
            "open_by_handle_at",
            "userfaultfd",
            "kcmp",
            "process_vm_readv",
            "process_vm_writev",
            "quotactl",
            "name_to_handle_at",
            "lookup_dcookie",
            "iopl",
            "ioperm",
            "create_module",
            "get_kernel_syms",
            "query_module",
            "uselib",
            "vm86",
            "vm86old",
            "nfsservctl",
            "sysfs",
            "_sysctl",
            "personality",
        ] {
            assert!(!allowed.iter().any(|n| n == name), "{name} must be denied");
        }
        let mut sorted = allowed.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), allowed.len(), "no name is listed twice");
    }

    #[test]
    fn personality_is_allowed_for_safe_domains_only() {
        let profile = runtime_default();
        let values: Vec<u64> = profile
            .syscalls()
            .as_ref()
            .unwrap()
            .iter()
            .filter(|r| r.names() == &["personality"])
            .map(|r| {
                let args = r.args().as_ref().unwrap();
                assert_eq!(args.len(), 1);
                assert_eq!(args[0].op(), LinuxSeccompOperator::ScmpCmpEq);
                args[0].value()
            })
            .collect();
        assert_eq!(values, [0x0, 0x8, 0x20008, 0xffff_ffff]);
    }

    #[test]
    fn architectures_follow_the_build_target() {
        let arches = runtime_default().architectures().clone().unwrap();
        assert_eq!(arches[0], native_arch());
        if cfg!(target_arch = "x86_64") {
            assert!(arches.contains(&Arch::ScmpArchX32));
            assert!(names(&runtime_default()).iter().any(|n| n == "open"));
        }
    }

    #[test]
    fn localhost_reads_an_oci_profile() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.json");
        std::fs::write(
            &path,
            r#"{"defaultAction": "SCMP_ACT_LOG", "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
                  "args": [{"index": 1, "value": 7, "op": "SCMP_CMP_GT"}]}]}"#,
        )
        .unwrap();
        let profile = localhost(&path).unwrap();
        assert_eq!(profile.default_action(), LinuxSeccompAction::ScmpActLog);
        assert_eq!(
            profile.architectures().as_deref(),
            Some(&[Arch::ScmpArchX86_64][..])
        );
        let rules = profile.syscalls().as_ref().unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].names(), &["mkdir"]);
        assert_eq!(rules[0].errno_ret(), Some(13));
        let arg = rules[0].args().as_ref().unwrap()[0];
        assert_eq!(
            (arg.index(), arg.value(), arg.op()),
            (1, 7, LinuxSeccompOperator::ScmpCmpGt)
        );
    }

    #[test]
    fn masked_comparisons_of_profile_files_are_turned_round_for_libcontainer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.json");
        std::fs::write(
            &path,
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["clone"],
                "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 2114060288,
                "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]}]}"#,
        )
        .unwrap();
        let profile = localhost(&path).unwrap();
        let arg = profile.syscalls().as_ref().unwrap()[0]
            .args()
            .as_ref()
            .unwrap()[0];
        assert_eq!((arg.value(), arg.value_two()), (0, Some(2_114_060_288)));
    }

    #[test]
    fn localhost_understands_docker_profiles() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker.json");
        let other = if GO_ARCH == "amd64" { "arm64" } else { "amd64" };
        let native = serde_json::to_value(native_arch()).unwrap();
        let json = serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 1,
            "archMap": [
                {"architecture": native, "subArchitectures": ["SCMP_ARCH_X86"]},
                {"architecture": "SCMP_ARCH_PPC64LE", "subArchitectures": []}
            ],
            "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_ALLOW", "comment": "x",
                 "includes": {}, "excludes": {}},
                {"names": ["mount"], "action": "SCMP_ACT_ALLOW",
                 "includes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["arch_only"], "action": "SCMP_ACT_ALLOW",
                 "includes": {"arches": [other]}},
                {"names": ["not_here"], "action": "SCMP_ACT_ALLOW",
                 "excludes": {"arches": [GO_ARCH]}},
                {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW",
                 "includes": {"minKernel": "4.8"}},
                {"name": "old_form", "action": "SCMP_ACT_ALLOW"}
            ]
        });
        std::fs::write(&path, json.to_string()).unwrap();
        let file: ProfileFile = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let profile = from_file(file, "4.19.0-1-amd64");
        assert_eq!(
            profile.architectures().as_deref(),
            Some(&[native_arch(), Arch::ScmpArchX86][..])
        );
        assert_eq!(profile.default_errno_ret(), Some(1));
        assert_eq!(names(&profile), ["read", "ptrace", "old_form"]);
        let file: ProfileFile = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(
            names(&from_file(file, "4.4.0")),
            ["read", "old_form"],
            "a rule for newer kernels is left out"
        );
        assert!(localhost(&path).is_ok());
    }

    #[test]
    fn localhost_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.json");
        let err = localhost(&missing).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
        assert!(err.to_string().contains("missing.json"), "{err}");
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, "{\"syscalls\": []}").unwrap();
        let err = localhost(&bad).unwrap_err();
        assert!(err.to_string().contains("bad.json"), "{err}");
    }

    #[test]
    fn kernel_versions_compare_numerically() {
        assert!(kernel_at_least("6.1.0-18-amd64", "4.8"));
        assert!(kernel_at_least("4.10.0", "4.8"));
        assert!(!kernel_at_least("4.4.0", "4.8"));
        assert!(!kernel_at_least("", "4.8"));
    }
}
