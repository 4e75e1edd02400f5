//! Cgroups for pods: find the hierarchies (v1, hybrid or v2), put a process in a cgroup, remove
//! it, update a container's limits (through libcgroups), and turn a CRI cgroup parent into a
//! path for the configured driver.

use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::CgroupDriver;
use crate::error::{Error, IoContext, Result};

/// Cgroup operations the sandbox logic needs. Paths are absolute within each hierarchy.
pub trait Cgroups: Send + Sync {
    /// Creates the cgroup `path` in every hierarchy and moves `pid` into it.
    fn join(&self, path: &str, pid: i32) -> Result<()>;
    /// Removes the (empty) cgroup `path` from every hierarchy; a missing one is success.
    fn remove(&self, path: &str) -> Result<()>;
    /// "v1", "hybrid" or "v2", for Status.
    fn mode(&self) -> &'static str;
    /// Sets the limits of the live cgroup `path` (a container's), in every hierarchy.
    fn update(&self, path: &str, limits: &oci_spec::runtime::LinuxResources) -> Result<()>;
}

/// Turns the cgroup parent of a pod config into a cgroupfs path, validating it.
/// With the systemd driver a slice name such as `kubepods-burstable.slice` is expanded to
/// `/kubepods.slice/kubepods-burstable.slice`, as systemd lays slices out.
pub fn parent_path(driver: CgroupDriver, parent: &str) -> Result<String> {
    let invalid = |why: &str| Error::InvalidArgument(format!("cgroup parent {parent:?}: {why}"));
    let path = match driver {
        CgroupDriver::Cgroupfs => {
            if !parent.starts_with('/') {
                return Err(invalid("must be an absolute path with the cgroupfs driver"));
            }
            parent.trim_end_matches('/').to_string()
        }
        CgroupDriver::Systemd => expand_slice(parent).ok_or_else(|| {
            invalid(
                "must be a systemd slice name (like kubepods-pod1.slice) with the systemd driver",
            )
        })?,
    };
    if Path::new(&path)
        .components()
        .any(|c| !matches!(c, Component::RootDir | Component::Normal(_)))
    {
        return Err(invalid("must not contain '.' or '..'"));
    }
    Ok(path)
}

/// The leaf cgroup name for a pod's monitor under its parent.
pub fn monitor_leaf(driver: CgroupDriver, pod_id: &str) -> String {
    match driver {
        CgroupDriver::Cgroupfs => format!("crishim-{pod_id}"),
        CgroupDriver::Systemd => format!("crishim-{pod_id}.scope"),
    }
}

fn expand_slice(slice: &str) -> Option<String> {
    let name = slice.strip_suffix(".slice")?;
    if name == "-" {
        return Some(String::new());
    }
    if name.is_empty() || name.contains('/') || name.starts_with('-') || name.ends_with('-') {
        return None;
    }
    let mut path = String::new();
    let mut prefix = String::new();
    for part in name.split('-') {
        if part.is_empty() {
            return None;
        }
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        path.push('/');
        path.push_str(&prefix);
        path.push_str(".slice");
    }
    Some(path)
}

/// A mounted cgroup hierarchy.
#[derive(Debug, Clone, PartialEq)]
struct Hierarchy {
    mount_point: PathBuf,
    unified: bool,
    cpuset: bool,
}

/// The real cgroup filesystem, as mounted on this host.
#[derive(Debug)]
pub struct HostCgroups {
    hierarchies: Vec<Hierarchy>,
}

impl HostCgroups {
    /// Finds the mounted hierarchies from /proc/self/mountinfo.
    pub fn detect() -> Result<Self> {
        let path = Path::new("/proc/self/mountinfo");
        let text = std::fs::read_to_string(path).with_path("read", path)?;
        let hierarchies = parse_mountinfo(&text);
        if hierarchies.is_empty() {
            return Err(Error::Internal(
                "no cgroup filesystem is mounted (looked in /proc/self/mountinfo)".into(),
            ));
        }
        Ok(HostCgroups { hierarchies })
    }

    fn dir(h: &Hierarchy, path: &str) -> PathBuf {
        h.mount_point.join(path.trim_start_matches('/'))
    }
}

fn parse_mountinfo(text: &str) -> Vec<Hierarchy> {
    let mut found: Vec<Hierarchy> = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mut right = right.split(' ');
        let fstype = right.next().unwrap_or_default();
        let super_options = right.nth(1).unwrap_or_default();
        let Some(mount_point) = left.split(' ').nth(4) else {
            continue;
        };
        let unified = match fstype {
            "cgroup2" => true,
            "cgroup" => false,
            _ => continue,
        };
        let hierarchy = Hierarchy {
            mount_point: PathBuf::from(mount_point.replace("\\040", " ")),
            unified,
            cpuset: super_options.split(',').any(|o| o == "cpuset"),
        };
        if !found.iter().any(|h| h.mount_point == hierarchy.mount_point) {
            found.push(hierarchy);
        }
    }
    found
}

impl Cgroups for HostCgroups {
    fn join(&self, path: &str, pid: i32) -> Result<()> {
        for h in &self.hierarchies {
            let dir = Self::dir(h, path);
            if h.cpuset {
                create_cpuset_dirs(&h.mount_point, path)?;
            } else {
                std::fs::create_dir_all(&dir).with_path("create cgroup", &dir)?;
            }
            let procs = dir.join("cgroup.procs");
            std::fs::write(&procs, pid.to_string())
                .context(|| format!("move pid {pid} into {}", procs.display()))?;
        }
        Ok(())
    }

    fn remove(&self, path: &str) -> Result<()> {
        for h in &self.hierarchies {
            let dir = Self::dir(h, path);
            // Processes leave their cgroup a moment after they are reaped: retry while busy.
            let deadline = Instant::now() + Duration::from_secs(2);
            loop {
                match std::fs::remove_dir(&dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(e)
                        if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline =>
                    {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(e) => return Err(Error::io_path("remove cgroup", &dir, e)),
                }
            }
        }
        Ok(())
    }

    fn update(&self, path: &str, limits: &oci_spec::runtime::LinuxResources) -> Result<()> {
        use libcgroups::common::{
            CgroupConfig, CgroupManager, ControllerOpt, create_cgroup_manager,
        };
        let failed = |e: &dyn std::fmt::Display| {
            Error::Internal(format!("update the limits of cgroup {path}: {e}"))
        };
        let manager = create_cgroup_manager(CgroupConfig {
            cgroup_path: PathBuf::from(path),
            systemd_cgroup: false,
            container_name: path.rsplit('/').next().unwrap_or(path).to_string(),
        })
        .map_err(|e| failed(&e))?;
        manager
            .apply(&ControllerOpt {
                resources: limits,
                disable_oom_killer: false,
                oom_score_adj: None,
                freezer_state: None,
            })
            .map_err(|e| failed(&e))
    }

    fn mode(&self) -> &'static str {
        match (
            self.hierarchies.iter().any(|h| !h.unified),
            self.hierarchies.iter().any(|h| h.unified),
        ) {
            (true, true) => "hybrid",
            (true, false) => "v1",
            _ => "v2",
        }
    }
}

/// Creates each missing level of a v1 cpuset cgroup, copying cpus and mems from its parent:
/// a new cpuset cgroup starts empty and refuses tasks until both are set.
fn create_cpuset_dirs(mount_point: &Path, path: &str) -> Result<()> {
    let mut dir = mount_point.to_path_buf();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        let parent = dir.clone();
        dir.push(part);
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io_path("create cgroup", &dir, e)),
        }
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let own = dir.join(file);
            let current = std::fs::read_to_string(&own).with_path("read", &own)?;
            if current.trim().is_empty() {
                let from = parent.join(file);
                let value = std::fs::read_to_string(&from).with_path("read", &from)?;
                std::fs::write(&own, value.trim()).with_path("write", &own)?;
            }
        }
    }
    Ok(())
}

/// A recording fake for unit tests.
#[derive(Debug, Default)]
pub struct FakeCgroups {
    /// Cgroups that exist now, with the pids joined to them.
    pub groups: Mutex<Vec<(String, i32)>>,
    /// Every limit update, in order.
    pub updates: Mutex<Vec<(String, oci_spec::runtime::LinuxResources)>>,
}

impl FakeCgroups {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, i32)>> {
        self.groups.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cgroup paths that exist now.
    pub fn paths(&self) -> Vec<String> {
        self.lock().iter().map(|(p, _)| p.clone()).collect()
    }
}

impl Cgroups for FakeCgroups {
    fn join(&self, path: &str, pid: i32) -> Result<()> {
        self.lock().push((path.to_string(), pid));
        Ok(())
    }

    fn remove(&self, path: &str) -> Result<()> {
        self.lock().retain(|(p, _)| p != path);
        Ok(())
    }

    fn mode(&self) -> &'static str {
        "fake"
    }

    fn update(&self, path: &str, limits: &oci_spec::runtime::LinuxResources) -> Result<()> {
        self.updates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((path.to_string(), limits.clone()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_slices_expand_like_systemd() {
        assert_eq!(
            parent_path(CgroupDriver::Systemd, "kubepods-burstable-pod1.slice").unwrap(),
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice"
        );
        assert_eq!(parent_path(CgroupDriver::Systemd, "-.slice").unwrap(), "");
        assert!(parent_path(CgroupDriver::Systemd, "/kubepods").is_err());
        assert!(parent_path(CgroupDriver::Systemd, "a--b.slice").is_err());
    }

    #[test]
    fn cgroupfs_parents_must_be_clean_absolute_paths() {
        assert_eq!(
            parent_path(CgroupDriver::Cgroupfs, "/kubepods/pod1/").unwrap(),
            "/kubepods/pod1"
        );
        assert!(parent_path(CgroupDriver::Cgroupfs, "kubepods").is_err());
        let err = parent_path(CgroupDriver::Cgroupfs, "/kubepods/../../etc").unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)));
    }

    #[test]
    fn mountinfo_finds_v1_and_unified_hierarchies() {
        let text = "\
30 25 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
32 30 0:28 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
33 30 0:29 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
34 25 0:30 / /proc rw - proc proc rw";
        let found = parse_mountinfo(text);
        assert_eq!(found.len(), 3);
        assert!(found[1].cpuset && !found[0].cpuset);
        assert!(found[2].unified);
        let cgroups = HostCgroups { hierarchies: found };
        assert_eq!(cgroups.mode(), "hybrid");
    }
}
