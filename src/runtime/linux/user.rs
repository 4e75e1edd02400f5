//! The user a Linux container runs as: the CRI security context's user and group, else the
//! image's `User`, looked up in the image's own /etc/passwd and /etc/group. The image is
//! untrusted, so both files are opened inside its root only, whatever symlinks they are.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;

use cri_proto::LinuxContainerSecurityContext;
use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};

use super::spec::ResolvedUser;
use crate::error::{Error, IoContext, Result};

/// The most of /etc/passwd or /etc/group that is read; a larger file is refused.
const MAX_FILE_BYTES: u64 = 4 << 20;

/// A user or a group as requested: a name to look up, or a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Id<'a> {
    Name(&'a str),
    Number(u32),
}

/// One line of /etc/passwd.
#[derive(Debug)]
struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
}

/// One line of /etc/group.
#[derive(Debug)]
struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// Resolves the container's uid, gid and supplementary gids. The CRI run_as_user,
/// run_as_username and run_as_group win over the image's `User` (`name`, `uid`,
/// `name:group`, `uid:gid`, ...). A name must be in the image's /etc/passwd (or /etc/group);
/// a uid need not be (its gid is then 0 unless given).
pub fn resolve(
    rootfs: &Path,
    security: Option<&LinuxContainerSecurityContext>,
    image_user: Option<&str>,
) -> Result<ResolvedUser> {
    let (user, group) = requested(security, image_user)?;
    let root = rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io_path("open the container rootfs", rootfs, e.into()))?;
    let passwd = parse_passwd(&read_in_root(&root, "etc/passwd")?.unwrap_or_default());
    let groups = parse_group(&read_in_root(&root, "etc/group")?.unwrap_or_default());
    let (uid, passwd_gid, name) = lookup_user(user, &passwd)?;
    let gid = match group {
        Some(group) => lookup_group(group, &groups)?,
        None => passwd_gid,
    };
    let supplemental = security.map_or(&[][..], |s| &s.supplemental_groups[..]);
    let mut additional_gids = Vec::new();
    let member_of = groups
        .iter()
        .filter(|g| name.is_some_and(|n| g.members.iter().any(|m| m == n)))
        .map(|g| g.gid);
    let cri = supplemental
        .iter()
        .map(|&g| id_number(g, "supplemental group"))
        .collect::<Result<Vec<u32>>>()?;
    for g in member_of.chain(cri) {
        if g != gid && !additional_gids.contains(&g) {
            additional_gids.push(g);
        }
    }
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
    })
}

/// The user and group asked for: the CRI's where set, else the image's.
fn requested<'a>(
    security: Option<&'a LinuxContainerSecurityContext>,
    image_user: Option<&'a str>,
) -> Result<(Id<'a>, Option<Id<'a>>)> {
    let (mut user, mut group) = image_spec(image_user.unwrap_or(""));
    if let Some(s) = security {
        if let Some(uid) = &s.run_as_user {
            (user, group) = (Id::Number(id_number(uid.value, "run_as_user")?), None);
        } else if !s.run_as_username.is_empty() {
            (user, group) = (Id::Name(&s.run_as_username), None);
        }
        if let Some(gid) = &s.run_as_group {
            group = Some(Id::Number(id_number(gid.value, "run_as_group")?));
        }
    }
    Ok((user, group))
}

/// The image's `User`: `user[:group]`, each a name or a number; empty is root.
fn image_spec(spec: &str) -> (Id<'_>, Option<Id<'_>>) {
    let (user, group) = match spec.split_once(':') {
        Some((user, group)) => (user, (!group.is_empty()).then_some(group)),
        None => (spec, None),
    };
    let user = if user.is_empty() {
        Id::Number(0)
    } else {
        id(user)
    };
    (user, group.map(id))
}

/// A number if it is one, else a name.
fn id(text: &str) -> Id<'_> {
    text.parse().map_or(Id::Name(text), Id::Number)
}

/// A CRI id (int64) as a uid or gid.
fn id_number(value: i64, what: &str) -> Result<u32> {
    u32::try_from(value)
        .map_err(|_| Error::InvalidArgument(format!("{what} {value} is not a valid id")))
}

/// uid, primary gid and name (when /etc/passwd has it) of the requested user.
fn lookup_user<'p>(user: Id<'_>, passwd: &'p [PasswdEntry]) -> Result<(u32, u32, Option<&'p str>)> {
    match user {
        Id::Name(name) => passwd
            .iter()
            .find(|e| e.name == name)
            .map(|e| (e.uid, e.gid, Some(e.name.as_str())))
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "user {name:?} not found in the image's /etc/passwd"
                ))
            }),
        Id::Number(uid) => Ok(passwd
            .iter()
            .find(|e| e.uid == uid)
            .map_or((uid, 0, None), |e| (uid, e.gid, Some(e.name.as_str())))),
    }
}

/// The gid of the requested group.
fn lookup_group(group: Id<'_>, groups: &[GroupEntry]) -> Result<u32> {
    match group {
        Id::Number(gid) => Ok(gid),
        Id::Name(name) => groups
            .iter()
            .find(|g| g.name == name)
            .map(|g| g.gid)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "group {name:?} not found in the image's /etc/group"
                ))
            }),
    }
}

/// The entries of an /etc/passwd; malformed lines are skipped, as libc does.
fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let _password = fields.next()?;
            let uid = fields.next()?.parse().ok()?;
            let gid = fields.next()?.parse().ok()?;
            (!name.is_empty()).then(|| PasswdEntry {
                name: name.to_string(),
                uid,
                gid,
            })
        })
        .collect()
}

/// The entries of an /etc/group; malformed lines are skipped.
fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let _password = fields.next()?;
            let gid = fields.next()?.parse().ok()?;
            let members = fields
                .next()
                .unwrap_or("")
                .split(',')
                .filter(|m| !m.is_empty())
                .map(str::to_string)
                .collect();
            (!name.is_empty()).then(|| GroupEntry {
                name: name.to_string(),
                gid,
                members,
            })
        })
        .collect()
}

/// Reads `relative` inside the directory `root` as if `root` were `/`: symlinks and `..`
/// cannot leave it. None when the file does not exist.
fn read_in_root(root: &OwnedFd, relative: &str) -> Result<Option<String>> {
    let shown = format!("/{relative} of the image");
    let fd = match rustix::fs::openat2(
        root,
        relative,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR) => return Ok(None),
        Err(e) => return Err(Error::io(format!("open {shown}"), e.into())),
    };
    let stat = rustix::fs::fstat(&fd).map_err(|e| Error::io(format!("stat {shown}"), e.into()))?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(Error::InvalidArgument(format!(
            "{shown} is not a regular file"
        )));
    }
    let mut bytes = Vec::new();
    std::fs::File::from(fd)
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .context(|| format!("read {shown}"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(Error::InvalidArgument(format!(
            "{shown} is larger than {} MiB",
            MAX_FILE_BYTES >> 20
        )));
    }
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cri_proto::Int64Value;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        # a comment\n\
        broken line\n\
        app:x:1000:1001::/home/app:/bin/sh\n\
        web:x:33:33::/var/www:/bin/false\n";
    const GROUP: &str = "root:x:0:\n\
        appgroup:x:1001:\n\
        audio:x:29:app,web\n\
        video:x:44:app\n\
        staff:x:50:web\n";

    fn rootfs(passwd: Option<&str>, group: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        if let Some(p) = passwd {
            std::fs::write(dir.path().join("etc/passwd"), p).unwrap();
        }
        if let Some(g) = group {
            std::fs::write(dir.path().join("etc/group"), g).unwrap();
        }
        dir
    }

    fn user(uid: u32, gid: u32, additional_gids: &[u32]) -> ResolvedUser {
        ResolvedUser {
            uid,
            gid,
            additional_gids: additional_gids.to_vec(),
        }
    }

    #[test]
    fn image_user_forms() {
        let root = rootfs(Some(PASSWD), Some(GROUP));
        let r = |u: Option<&str>| resolve(root.path(), None, u).unwrap();
        assert_eq!(r(None), user(0, 0, &[]));
        assert_eq!(r(Some("")), user(0, 0, &[]));
        assert_eq!(r(Some("app")), user(1000, 1001, &[29, 44]));
        assert_eq!(
            r(Some("1000")),
            user(1000, 1001, &[29, 44]),
            "uid in passwd"
        );
        assert_eq!(r(Some("4242")), user(4242, 0, &[]), "uid not in passwd");
        assert_eq!(r(Some("4242:7")), user(4242, 7, &[]));
        assert_eq!(r(Some("app:staff")), user(1000, 50, &[29, 44]));
        assert_eq!(
            r(Some("web:audio")),
            user(33, 29, &[50]),
            "primary gid left out"
        );
        assert_eq!(r(Some("1000:video")), user(1000, 44, &[29]));
    }

    #[test]
    fn unknown_names_are_errors() {
        let root = rootfs(Some(PASSWD), Some(GROUP));
        let err = resolve(root.path(), None, Some("nobody")).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)));
        assert!(
            err.to_string()
                .contains("user \"nobody\" not found in the image's /etc/passwd"),
            "{err}"
        );
        let err = resolve(root.path(), None, Some("app:wheel")).unwrap_err();
        assert!(err.to_string().contains("group \"wheel\""), "{err}");
    }

    #[test]
    fn missing_files() {
        let root = rootfs(None, None);
        assert_eq!(
            resolve(root.path(), None, Some("1234")).unwrap(),
            user(1234, 0, &[])
        );
        let err = resolve(root.path(), None, Some("app")).unwrap_err();
        assert!(err.to_string().contains("not found"), "{err}");
        let no_group = rootfs(Some(PASSWD), None);
        assert_eq!(
            resolve(no_group.path(), None, Some("app")).unwrap(),
            user(1000, 1001, &[])
        );
    }

    #[test]
    fn cri_security_context_wins() {
        let root = rootfs(Some(PASSWD), Some(GROUP));
        let mut sc = LinuxContainerSecurityContext {
            run_as_user: Some(Int64Value { value: 33 }),
            ..Default::default()
        };
        let image = Some("app:staff");
        assert_eq!(
            resolve(root.path(), Some(&sc), image).unwrap(),
            user(33, 33, &[29, 50])
        );
        sc.run_as_group = Some(Int64Value { value: 5 });
        sc.supplemental_groups = vec![7, 29, 5, 7];
        assert_eq!(
            resolve(root.path(), Some(&sc), image).unwrap(),
            user(33, 5, &[29, 50, 7])
        );
        let sc = LinuxContainerSecurityContext {
            run_as_username: "app".into(),
            ..Default::default()
        };
        assert_eq!(
            resolve(root.path(), Some(&sc), Some("web")).unwrap(),
            user(1000, 1001, &[29, 44])
        );
        let sc = LinuxContainerSecurityContext {
            run_as_user: Some(Int64Value { value: -1 }),
            ..Default::default()
        };
        assert!(resolve(root.path(), Some(&sc), None).is_err());
        let sc = LinuxContainerSecurityContext {
            run_as_group: Some(Int64Value { value: 9 }),
            ..Default::default()
        };
        assert_eq!(
            resolve(root.path(), Some(&sc), Some("app:staff")).unwrap(),
            user(1000, 9, &[29, 44]),
            "run_as_group alone replaces the image's group"
        );
    }

    #[test]
    fn passwd_symlinks_cannot_leave_the_rootfs() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("host");
        std::fs::create_dir(&host).unwrap();
        std::fs::write(host.join("passwd"), "hostonlyuser:x:4711:4711::/:/bin/sh\n").unwrap();
        std::fs::write(host.join("group"), "hostonlygroup:x:4712:\n").unwrap();
        let rootfs = dir.path().join("rootfs");
        std::fs::create_dir_all(rootfs.join("etc")).unwrap();
        let targets = [
            host.join("passwd").display().to_string(),
            "../../host/passwd".to_string(),
            "../../../../../../../..".to_string() + &host.join("passwd").display().to_string(),
        ];
        for target in targets {
            let link = rootfs.join("etc/passwd");
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(&target, &link).unwrap();
            assert!(
                std::fs::read_to_string(&link)
                    .unwrap()
                    .contains("hostonlyuser"),
                "{target}: an ordinary open does reach the host's file"
            );
            let err = resolve(&rootfs, None, Some("hostonlyuser")).unwrap_err();
            assert!(err.to_string().contains("not found"), "{target}: {err}");
            assert_eq!(
                resolve(&rootfs, None, Some("4711")).unwrap(),
                user(4711, 0, &[]),
                "{target}: the host's gid must not leak"
            );
        }
        std::os::unix::fs::symlink("/../host/group", rootfs.join("etc/group")).unwrap();
        let err = resolve(&rootfs, None, Some("0:hostonlygroup")).unwrap_err();
        assert!(err.to_string().contains("not found"), "{err}");
    }

    #[test]
    fn symlinks_inside_the_rootfs_are_followed() {
        let root = rootfs(None, None);
        std::fs::create_dir(root.path().join("data")).unwrap();
        std::fs::write(root.path().join("data/passwd"), PASSWD).unwrap();
        std::os::unix::fs::symlink("/data/passwd", root.path().join("etc/passwd")).unwrap();
        assert_eq!(
            resolve(root.path(), None, Some("web")).unwrap(),
            user(33, 33, &[])
        );
    }

    #[test]
    fn oversized_or_special_files_are_refused() {
        let root = rootfs(None, None);
        let big = "a:x:1:1::/:/bin/sh\n".repeat((MAX_FILE_BYTES as usize / 19) + 2);
        std::fs::write(root.path().join("etc/passwd"), big).unwrap();
        let err = resolve(root.path(), None, Some("a")).unwrap_err();
        assert!(err.to_string().contains("larger than 4 MiB"), "{err}");
        std::fs::remove_file(root.path().join("etc/passwd")).unwrap();
        std::fs::create_dir(root.path().join("etc/passwd")).unwrap();
        let err = resolve(root.path(), None, Some("a")).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }
}
