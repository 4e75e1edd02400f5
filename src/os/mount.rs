//! Bind mounts, used to pin a pod's namespaces to files so they outlive any one process.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::mount::{MntFlags, MsFlags};

use crate::error::{Error, Result};

/// Mount operations the sandbox logic needs.
pub trait Mounter: Send + Sync {
    /// Bind-mounts `source` onto the existing file or directory `target`.
    fn bind(&self, source: &Path, target: &Path) -> Result<()>;
    /// Unmounts `target`; a target that is not mounted (or gone) is success.
    fn unmount(&self, target: &Path) -> Result<()>;
    /// Mounts an overlay on `target`: `lowers` top first, writes going to `upper`.
    fn overlay(&self, lowers: &[PathBuf], upper: &Path, work: &Path, target: &Path) -> Result<()>;
    /// Mounts a tmpfs of at most `size` bytes on the existing directory `target` (nosuid,
    /// nodev, noexec, mode 1777: a pod's /dev/shm).
    fn tmpfs(&self, target: &Path, size: u64) -> Result<()>;
}

/// The mount data for an overlay, refusing paths overlayfs cannot take in its option string.
pub fn overlay_options(lowers: &[PathBuf], upper: &Path, work: &Path) -> Result<String> {
    let mut all = lowers.iter().map(PathBuf::as_path).chain([upper, work]);
    if let Some(bad) = all.find(|p| p.to_string_lossy().contains([':', ','])) {
        return Err(Error::InvalidArgument(format!(
            "overlay path {} contains ':' or ',', which overlayfs options cannot carry",
            bad.display()
        )));
    }
    let lower: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        upper.display(),
        work.display()
    );
    // The kernel takes mount data of at most one page.
    if options.len() >= 4096 {
        return Err(Error::InvalidArgument(format!(
            "{} layers are more than an overlay mount can name at once",
            lowers.len()
        )));
    }
    Ok(options)
}

/// The real mounter: mount(2) and umount2(2).
#[derive(Debug, Default)]
pub struct HostMounter;

impl Mounter for HostMounter {
    fn bind(&self, source: &Path, target: &Path) -> Result<()> {
        nix::mount::mount(
            Some(source),
            target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| {
            Error::io(
                format!("bind mount {} on {}", source.display(), target.display()),
                e.into(),
            )
        })
    }

    fn overlay(&self, lowers: &[PathBuf], upper: &Path, work: &Path, target: &Path) -> Result<()> {
        let options = overlay_options(lowers, upper, work)?;
        nix::mount::mount(
            Some("overlay"),
            target,
            Some("overlay"),
            MsFlags::empty(),
            Some(options.as_str()),
        )
        .map_err(|e| Error::io_path("mount overlay on", target, e.into()))
    }

    fn tmpfs(&self, target: &Path, size: u64) -> Result<()> {
        nix::mount::mount(
            Some("shm"),
            target,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some(format!("mode=1777,size={size}").as_str()),
        )
        .map_err(|e| Error::io_path("mount tmpfs on", target, e.into()))
    }

    fn unmount(&self, target: &Path) -> Result<()> {
        match nix::mount::umount2(target, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => Ok(()),
            Err(e) => Err(Error::io_path("unmount", target, e.into())),
        }
    }
}

/// A recording fake for unit tests: keeps the set of mounted targets.
#[derive(Debug, Default)]
pub struct FakeMounter {
    /// Currently "mounted" (source, target) pairs.
    pub mounted: Mutex<Vec<(PathBuf, PathBuf)>>,
    /// When set, `bind` fails for targets whose path ends with this.
    pub fail_bind_suffix: Option<String>,
}

impl Mounter for FakeMounter {
    fn bind(&self, source: &Path, target: &Path) -> Result<()> {
        if let Some(suffix) = &self.fail_bind_suffix {
            if target.ends_with(suffix) {
                return Err(Error::io_path(
                    "bind mount",
                    target,
                    std::io::Error::from_raw_os_error(libc::EPERM),
                ));
            }
        }
        self.lock()
            .push((source.to_path_buf(), target.to_path_buf()));
        Ok(())
    }

    fn unmount(&self, target: &Path) -> Result<()> {
        self.lock().retain(|(_, t)| t != target);
        Ok(())
    }

    fn overlay(&self, lowers: &[PathBuf], upper: &Path, work: &Path, target: &Path) -> Result<()> {
        let options = overlay_options(lowers, upper, work)?;
        self.lock()
            .push((PathBuf::from(options), target.to_path_buf()));
        Ok(())
    }

    fn tmpfs(&self, target: &Path, size: u64) -> Result<()> {
        self.lock().push((
            PathBuf::from(format!("tmpfs size={size}")),
            target.to_path_buf(),
        ));
        Ok(())
    }
}

impl FakeMounter {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(PathBuf, PathBuf)>> {
        self.mounted.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The targets mounted now.
    pub fn targets(&self) -> Vec<PathBuf> {
        self.lock().iter().map(|(_, t)| t.clone()).collect()
    }
}
