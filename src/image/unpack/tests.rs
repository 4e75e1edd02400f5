//! Layer unpacking against real files (run as root, as the whole suite is: chown, mknod and
//! trusted.* xattrs need it).

use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use super::*;
use crate::image::store::sha256_of;

/// Builds a tar in memory; names are written raw so tests can use hostile paths.
#[derive(Default)]
struct TarBuilder {
    bytes: Vec<u8>,
}

impl TarBuilder {
    fn entry(
        &mut self,
        name: &str,
        kind: tar::EntryType,
        mode: u32,
        link: &str,
        data: &[u8],
    ) -> &mut Self {
        let mut header = tar::Header::new_gnu();
        let raw = &mut header.as_old_mut().name;
        raw[..name.len()].copy_from_slice(name.as_bytes());
        if !link.is_empty() {
            let raw = &mut header.as_old_mut().linkname;
            raw[..link.len()].copy_from_slice(link.as_bytes());
        }
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(1234);
        header.set_gid(5678);
        header.set_mtime(1_700_000_000);
        header.set_size(data.len() as u64);
        header.set_cksum();
        self.bytes.extend_from_slice(header.as_bytes());
        self.bytes.extend_from_slice(data);
        self.bytes.resize(self.bytes.len().div_ceil(512) * 512, 0);
        self
    }

    fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.entry(name, tar::EntryType::Regular, 0o644, "", data)
    }

    fn dir(&mut self, name: &str) -> &mut Self {
        self.entry(name, tar::EntryType::Directory, 0o755, "", b"")
    }

    fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.entry(name, tar::EntryType::Symlink, 0o777, target, b"")
    }

    fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.entry(name, tar::EntryType::Link, 0o644, target, b"")
    }

    fn finish(&mut self) -> Vec<u8> {
        let mut bytes = std::mem::take(&mut self.bytes);
        bytes.extend_from_slice(&[0u8; 1024]);
        bytes
    }
}

fn unpack_into(tar: &[u8], dir: &Path) -> Result<String> {
    std::fs::create_dir_all(dir).unwrap();
    unpack_layer(tar, "application/vnd.oci.image.layer.v1.tar", dir)
}

#[test]
fn unpacks_files_links_and_metadata_with_the_right_diff_id() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = TarBuilder::default()
        .dir("bin/")
        .entry(
            "bin/tool",
            tar::EntryType::Regular,
            0o4755,
            "",
            b"#!/bin/sh\n",
        )
        .symlink("bin/sh", "tool")
        .hardlink("bin/again", "bin/tool")
        .file("deep/er/file.txt", b"implied dirs")
        .entry("dev-null", tar::EntryType::Char, 0o666, "", b"")
        .finish();
    let dest = tmp.path().join("layer");
    let diff_id = unpack_into(&tar, &dest).unwrap();
    assert_eq!(diff_id, sha256_of(&tar));

    let tool = std::fs::metadata(dest.join("bin/tool")).unwrap();
    assert_eq!((tool.uid(), tool.gid()), (1234, 5678));
    assert_eq!(
        tool.permissions().mode() & 0o7777,
        0o4755,
        "set-uid survives the chown"
    );
    assert_eq!(tool.mtime(), 1_700_000_000);
    assert_eq!(tool.nlink(), 2, "the hard link shares the inode");
    assert_eq!(
        std::fs::read_link(dest.join("bin/sh")).unwrap(),
        Path::new("tool")
    );
    assert_eq!(
        std::fs::read(dest.join("deep/er/file.txt")).unwrap(),
        b"implied dirs"
    );
    assert!(
        std::fs::metadata(dest.join("dev-null"))
            .unwrap()
            .file_type()
            .is_char_device()
    );
}

#[test]
fn gzip_and_zstd_layers_give_the_same_tree_and_diff_id() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = TarBuilder::default().file("a/b", b"content").finish();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(&tar[..], 3).unwrap();
    let plain = unpack_into(&tar, &tmp.path().join("plain")).unwrap();
    let dest = tmp.path().join("gz");
    std::fs::create_dir_all(&dest).unwrap();
    assert_eq!(
        unpack_layer(
            &gz[..],
            "application/vnd.oci.image.layer.v1.tar+gzip",
            &dest
        )
        .unwrap(),
        plain
    );
    let dest = tmp.path().join("zst");
    std::fs::create_dir_all(&dest).unwrap();
    // The media type says nothing here: the magic bytes decide.
    assert_eq!(
        unpack_layer(&zst[..], "application/octet-stream", &dest).unwrap(),
        plain
    );
    assert_eq!(std::fs::read(dest.join("a/b")).unwrap(), b"content");
}

#[test]
fn whiteouts_become_overlay_whiteouts() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = TarBuilder::default()
        .file(".wh.gone", b"")
        .dir("opaque/")
        .file("opaque/.wh..wh..opq", b"")
        .finish();
    let dest = tmp.path().join("layer");
    unpack_into(&tar, &dest).unwrap();
    let gone = std::fs::symlink_metadata(dest.join("gone")).unwrap();
    assert!(gone.file_type().is_char_device());
    assert_eq!(gone.rdev(), 0);
    assert!(!dest.join(".wh.gone").exists());
    let opaque =
        rustix::fs::getxattr(dest.join("opaque"), "trusted.overlay.opaque", &mut [0u8; 4]).unwrap();
    assert_eq!(opaque, 1);
    assert!(!dest.join("opaque/.wh..wh..opq").exists());
}

/// Everything under `dir`, relative.
fn tree(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            found.push(path.strip_prefix(dir).unwrap().display().to_string());
            if entry.file_type().unwrap().is_dir() {
                stack.push(path);
            }
        }
    }
    found.sort();
    found
}

#[test]
fn hostile_paths_and_links_stay_inside_the_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret"), b"keep").unwrap();
    let abs_outside = outside.display().to_string();
    let tar = TarBuilder::default()
        .file("../outside/dotdot", b"x")
        .file(&format!("{abs_outside}/absolute"), b"x")
        .symlink("escape", "../outside")
        .file("escape/through-relative-link", b"x")
        .symlink("abs-escape", &abs_outside)
        .file("abs-escape/through-absolute-link", b"x")
        .symlink("root-link", "/")
        .file(&format!("root-link{abs_outside}/through-root-link"), b"x")
        .finish();
    let dest = tmp.path().join("layer");
    unpack_into(&tar, &dest).unwrap();
    assert_eq!(
        tree(&outside),
        vec!["secret".to_string()],
        "nothing was written outside"
    );
    assert_eq!(std::fs::read(outside.join("secret")).unwrap(), b"keep");
    // The writes landed inside the layer, where the links resolve when the layer is the root.
    assert!(dest.join("outside/dotdot").exists());
    assert!(
        dest.join(abs_outside.trim_start_matches('/'))
            .join("absolute")
            .exists()
    );
    assert!(dest.join("outside/through-relative-link").exists());

    // A hard link may not reach a file outside: its target resolves inside, where there is none.
    let tar = TarBuilder::default()
        .hardlink("stolen", "../outside/secret")
        .finish();
    let err = unpack_into(&tar, &tmp.path().join("layer2")).unwrap_err();
    assert!(err.to_string().contains("hard link target"), "{err}");
    assert_eq!(
        std::fs::metadata(outside.join("secret")).unwrap().nlink(),
        1
    );
}

#[test]
fn garbage_is_not_a_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let err = unpack_into(&[7u8; 1024 * 3][..], &tmp.path().join("l")).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
}
