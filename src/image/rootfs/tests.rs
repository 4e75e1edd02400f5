//! Container rootfs: lease logic against a fake mounter, and a real overlay (run as root).

use super::*;
use crate::image::store::{LayerRecord, chain_ids, sha256_of};
use crate::image::unpack::unpack_layer;
use crate::os::mount::{FakeMounter, HostMounter};
use crate::store::layout::Layout;

/// A store holding one image of two real layers: the top one deletes /etc/motd.
fn store_with_image() -> (tempfile::TempDir, ImageStore, ImageRecord) {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(Layout::new(
        dir.path().join("root"),
        dir.path().join("state"),
    ))
    .unwrap();
    let tar = |entries: &[(&str, &[u8])]| {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, name, *data).unwrap();
        }
        builder.into_inner().unwrap()
    };
    let layers = [
        tar(&[("etc/motd", b"base"), ("etc/keep", b"kept")]),
        tar(&[("etc/.wh.motd", b"")]),
    ];
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256_of(l)).collect();
    let chains = chain_ids(&diff_ids);
    let mut records = Vec::new();
    for (layer, chain) in layers.iter().zip(&chains) {
        let dest = store.layout().layer_dir(chain);
        std::fs::create_dir_all(&dest).unwrap();
        unpack_layer(&layer[..], "application/vnd.oci.image.layer.v1.tar", &dest).unwrap();
        records.push(LayerRecord {
            digest: sha256_of(layer),
            media_type: "application/vnd.oci.image.layer.v1.tar".into(),
            size: layer.len() as u64,
            chain_id: Some(chain.clone()),
            title: None,
        });
    }
    let image = ImageRecord {
        id: sha256_of(b"config"),
        repo_tags: vec!["docker.io/library/t:latest".into()],
        repo_digests: Vec::new(),
        manifest_digest: sha256_of(b"manifest"),
        manifest_media_type: String::new(),
        artifact_type: None,
        config_media_type: String::new(),
        kind: ImageKind::Linux,
        platform: "linux/amd64".into(),
        size: 0,
        layers: records,
        user: String::new(),
        program: None,
        other_blobs: Vec::new(),
    };
    let image = store.add_image(image).unwrap();
    (dir, store, image)
}

#[test]
fn a_real_overlay_merges_layers_and_keeps_writes_in_the_upper_dir() {
    let (dir, store, image) = store_with_image();
    let container_dir = dir.path().join("root/containers/c1");
    let rootfs = prepare(&store, &HostMounter, "c1", &image, &container_dir).unwrap();
    assert_eq!(std::fs::read(rootfs.join("etc/keep")).unwrap(), b"kept");
    assert!(
        !rootfs.join("etc/motd").exists(),
        "the whiteout hides the lower file"
    );
    std::fs::write(rootfs.join("etc/new"), b"written").unwrap();
    assert!(
        container_dir.join("upper/etc/new").is_file(),
        "writes land in the container's upper dir"
    );
    assert!(
        !store
            .layout()
            .layer_dir(image.layers[0].chain_id.as_ref().unwrap())
            .join("etc/new")
            .exists()
    );

    // The image can go while the container lives: its layers stay until the rootfs goes.
    store.remove(&image.id).unwrap();
    assert_eq!(std::fs::read(rootfs.join("etc/keep")).unwrap(), b"kept");
    remove(&store, &HostMounter, "c1", &container_dir).unwrap();
    remove(&store, &HostMounter, "c1", &container_dir).unwrap();
    assert!(!container_dir.exists());
    assert_eq!(
        std::fs::read_dir(store.layout().layers_dir())
            .unwrap()
            .count(),
        0,
        "layers freed"
    );
}

#[test]
fn a_failed_mount_leaves_no_lease_and_no_directory() {
    let (dir, store, image) = store_with_image();
    let bad_dir = dir.path().join("root/containers/with,comma");
    let err = prepare(&store, &FakeMounter::default(), "c2", &image, &bad_dir).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    assert!(!bad_dir.exists());
    let freed = store.remove(&image.id).unwrap();
    assert_eq!(freed.layers, 2, "no lease held the layers back");
}

#[test]
fn wasm_artifacts_have_no_rootfs() {
    let (dir, store, mut image) = store_with_image();
    image.kind = ImageKind::Wasm;
    for layer in &mut image.layers {
        layer.chain_id = None;
    }
    let err = prepare(
        &store,
        &FakeMounter::default(),
        "c3",
        &image,
        &dir.path().join("c3"),
    )
    .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)));
}
