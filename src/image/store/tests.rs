//! The content store against a temporary directory.

use super::*;

fn store() -> (tempfile::TempDir, ImageStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(Layout::new(
        dir.path().join("root"),
        dir.path().join("state"),
    ))
    .unwrap();
    (dir, store)
}

fn image(id_seed: &str, tags: &[&str], layers: &[&str]) -> ImageRecord {
    ImageRecord {
        id: sha256_of(id_seed.as_bytes()),
        repo_tags: tags.iter().map(|t| t.to_string()).collect(),
        repo_digests: vec![format!(
            "docker.io/library/x@{}",
            sha256_of(format!("m{id_seed}").as_bytes())
        )],
        manifest_digest: sha256_of(format!("m{id_seed}").as_bytes()),
        manifest_media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        artifact_type: None,
        config_media_type: "application/vnd.oci.image.config.v1+json".into(),
        kind: ImageKind::Linux,
        platform: "linux/amd64".into(),
        size: 1,
        layers: layers
            .iter()
            .map(|l| LayerRecord {
                digest: sha256_of(l.as_bytes()),
                media_type: "application/vnd.oci.image.layer.v1.tar".into(),
                size: l.len() as u64,
                chain_id: Some(sha256_of(format!("chain-{l}").as_bytes())),
                title: None,
            })
            .collect(),
        user: String::new(),
        program: None,
        other_blobs: Vec::new(),
    }
}

/// Stores an image's blobs and layer dirs as a pull would.
fn materialise(store: &ImageStore, image: &ImageRecord) {
    for (digest, bytes) in [(&image.id, ""), (&image.manifest_digest, "")] {
        std::fs::write(store.layout().blob(digest), bytes).unwrap();
    }
    for layer in &image.layers {
        std::fs::write(store.layout().blob(&layer.digest), b"l").unwrap();
        std::fs::create_dir_all(store.layout().layer_dir(layer.chain_id.as_ref().unwrap()))
            .unwrap();
    }
}

#[test]
fn blobs_are_verified_and_a_mismatch_keeps_nothing() {
    let (_dir, store) = store();
    let digest = sha256_of(b"hello");
    store.put_blob(&digest, Some(5), &b"hello"[..]).unwrap();
    assert_eq!(store.read_blob(&digest).unwrap(), b"hello");
    let other = sha256_of(b"other");
    let err = store.put_blob(&other, None, &b"tampered"[..]).unwrap_err();
    assert!(err.to_string().contains("failed verification"), "{err}");
    assert!(!store.has_blob(&other));
    assert!(
        store.put_blob(&digest, Some(4), &b"hello"[..]).is_err(),
        "size is checked too"
    );
    assert_eq!(
        std::fs::read_dir(store.layout().image_tmp_dir())
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn tags_move_to_the_newest_image_and_lookups_work() {
    let (_dir, store) = store();
    let old = store
        .add_image(image(
            "old",
            &["docker.io/library/x:latest", "docker.io/library/x:1"],
            &["a"],
        ))
        .unwrap();
    let new = store
        .add_image(image("new", &["docker.io/library/x:latest"], &["a", "b"]))
        .unwrap();
    let old_now = store.find(&old.id).unwrap().unwrap();
    assert_eq!(old_now.repo_tags, vec!["docker.io/library/x:1".to_string()]);
    assert_eq!(
        store.find("x").unwrap().unwrap().id,
        new.id,
        "x means docker.io/library/x:latest"
    );
    assert_eq!(store.find("x:1").unwrap().unwrap().id, old.id);
    assert_eq!(
        store
            .find(old.id.trim_start_matches("sha256:"))
            .unwrap()
            .unwrap()
            .id,
        old.id
    );
    assert_eq!(
        store.find(&new.repo_digests[0]).unwrap().unwrap().id,
        new.id
    );
    assert!(store.find("y").unwrap().is_none());
    assert!(store.find("Bad Ref").is_err());

    let again = store
        .add_image(image("new", &["docker.io/library/x:2"], &["a", "b"]))
        .unwrap();
    assert_eq!(again.repo_tags.len(), 2, "a known image gains tags");
    let reopened = ImageStore::open(store.layout().clone()).unwrap();
    assert_eq!(reopened.list().len(), 2, "the index is on disk");
}

#[test]
fn remove_frees_unshared_blobs_and_layers_but_not_leased_ones() {
    let (_dir, store) = store();
    let first = image(
        "first",
        &["docker.io/library/a:latest"],
        &["shared", "only-first"],
    );
    let second = image("second", &["docker.io/library/b:latest"], &["shared"]);
    for i in [&first, &second] {
        materialise(&store, i);
        store.add_image(i.clone()).unwrap();
    }
    let lowers = store.lease_layers("container-1", &first).unwrap();
    assert_eq!(lowers.len(), 2);
    assert!(
        lowers[0].ends_with(
            first.layers[1]
                .chain_id
                .as_ref()
                .unwrap()
                .trim_start_matches("sha256:")
        ),
        "top first"
    );

    let freed = store.remove(&first.id).unwrap();
    assert_eq!(
        freed.blobs, 3,
        "manifest, config and the unshared layer blob"
    );
    assert_eq!(freed.layers, 0, "both layers are leased or shared");
    assert!(
        store.has_blob(&first.layers[0].digest),
        "the shared layer blob stays"
    );
    let only_first = store
        .layout()
        .layer_dir(first.layers[1].chain_id.as_ref().unwrap());
    assert!(only_first.exists(), "a leased layer stays");

    let freed = store.release_layers("container-1").unwrap();
    assert_eq!(freed.layers, 1);
    assert!(!only_first.exists());
    assert!(
        store
            .layout()
            .layer_dir(first.layers[0].chain_id.as_ref().unwrap())
            .exists(),
        "still used by second"
    );
    store.remove(&second.id).unwrap();
    assert!(store.list().is_empty());
    assert_eq!(
        std::fs::read_dir(store.layout().layers_dir())
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(store.layout().blobs_dir())
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn chain_ids_follow_the_image_spec() {
    let a = sha256_of(b"a");
    let b = sha256_of(b"b");
    let chains = chain_ids(&[a.clone(), b.clone()]);
    assert_eq!(chains[0], a);
    assert_eq!(chains[1], sha256_of(format!("{a} {b}").as_bytes()));
}

#[test]
fn leftovers_of_a_crash_are_removed_at_open() {
    let (_dir, store) = store();
    let layout = store.layout().clone();
    std::fs::write(layout.image_tmp_dir().join(".tmpblob"), b"partial").unwrap();
    let half = layout.layers_dir().join(".unpack-abc");
    std::fs::create_dir_all(half.join("etc")).unwrap();
    let done = layout.layer_dir(&sha256_of(b"kept"));
    std::fs::create_dir_all(&done).unwrap();
    drop(store);
    ImageStore::open(layout.clone()).unwrap();
    assert_eq!(
        std::fs::read_dir(layout.image_tmp_dir()).unwrap().count(),
        0
    );
    assert!(!half.exists(), "a half-unpacked layer is gone");
    assert!(done.exists(), "published layers stay");
}

#[test]
fn another_manifest_of_a_known_image_is_freed_with_it() {
    let (_dir, store) = store();
    let first = image(
        "same-config",
        &["docker.io/library/a:latest"],
        &["gzip-layer"],
    );
    let mut second = first.clone();
    second.repo_tags = vec!["docker.io/library/b:latest".into()];
    second.manifest_digest = sha256_of(b"zstd manifest");
    second.layers[0].digest = sha256_of(b"zstd-layer");
    for i in [&first, &second] {
        materialise(&store, i);
        store.add_image(i.clone()).unwrap();
    }
    let merged = store.find(&first.id).unwrap().unwrap();
    assert_eq!(merged.repo_tags.len(), 2);
    assert_eq!(
        merged.other_blobs.len(),
        2,
        "the second manifest and its layer blob"
    );
    let freed = store.remove(&first.id).unwrap();
    assert_eq!(freed.blobs, 5);
    assert_eq!(
        std::fs::read_dir(store.layout().blobs_dir())
            .unwrap()
            .count(),
        0
    );
}
