//! End-to-end tests of the ImageService against a real registry on 127.0.0.1: pull by tag and
//! digest, platforms, auth, status/list/remove, missing images, corrupt blobs, hostile layers,
//! and a registry that goes away mid-pull.

#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use common::registry::TestRegistry;
use common::*;
use cri_proto::image_service_client::ImageServiceClient;
use cri_proto::*;
use tonic::Code;
use tonic::transport::Channel;

fn spec(image: &str) -> Option<ImageSpec> {
    Some(ImageSpec {
        image: image.to_string(),
        ..Default::default()
    })
}

async fn pull(
    client: &mut ImageServiceClient<Channel>,
    image: &str,
) -> Result<String, tonic::Status> {
    pull_with(client, image, None).await
}

async fn pull_with(
    client: &mut ImageServiceClient<Channel>,
    image: &str,
    auth: Option<AuthConfig>,
) -> Result<String, tonic::Status> {
    client
        .pull_image(PullImageRequest {
            image: spec(image),
            auth,
            sandbox_config: None,
        })
        .await
        .map(|r| r.into_inner().image_ref)
}

async fn status(client: &mut ImageServiceClient<Channel>, image: &str) -> ImageStatusResponse {
    client
        .image_status(ImageStatusRequest {
            image: spec(image),
            verbose: true,
        })
        .await
        .unwrap()
        .into_inner()
}

fn dir_entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[tokio::test]
async fn pull_by_tag_and_digest_then_status_list_and_remove() {
    let registry = TestRegistry::start(&["busybox"]);
    let daemon = TestDaemon::start().await;
    let mut images = daemon.images().await;
    let reference = registry.reference("busybox");
    let id = pull(&mut images, &reference).await.unwrap();
    assert_eq!(
        id,
        registry.field("busybox", "id"),
        "PullImage returns the image id (config digest)"
    );

    let manifest = registry.field("busybox", "manifest");
    let by_digest = format!("{}/test/busybox@{manifest}", registry.addr);
    let answer = status(&mut images, &reference).await;
    let image = answer.image.unwrap();
    assert_eq!(image.id, id);
    assert_eq!(image.repo_tags, vec![reference.clone()]);
    assert_eq!(image.repo_digests, vec![by_digest.clone()]);
    assert!(image.size > 500_000, "busybox is in there: {}", image.size);
    assert_eq!(image.uid.map(|u| u.value), None, "no User in the config");
    let info: serde_json::Value = serde_json::from_str(&answer.info["info"]).unwrap();
    assert_eq!(info["kind"], "linux");
    assert_eq!(
        info["layers"][1]["media_type"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );

    // The layers are unpacked: the base has busybox, the top a whiteout for /etc/motd.
    let layers: Vec<String> = info["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["chain_id"].as_str().unwrap().to_string())
        .collect();
    let layout = daemon.layout();
    assert!(layout.layer_dir(&layers[0]).join("bin/busybox").is_file());
    assert!(
        std::fs::symlink_metadata(layout.layer_dir(&layers[1]).join("etc/motd"))
            .unwrap()
            .file_type()
            .is_char_device()
    );
    assert_eq!(
        std::fs::read_to_string(layout.layer_dir(&layers[1]).join("etc/hello")).unwrap(),
        "from layer 2\n"
    );

    // Pull by digest: same image; the id and the digest reference find it too.
    assert_eq!(pull(&mut images, &by_digest).await.unwrap(), id);
    assert_eq!(status(&mut images, &id).await.image.unwrap().id, id);
    assert_eq!(status(&mut images, &by_digest).await.image.unwrap().id, id);

    let listed = images
        .list_images(ListImagesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .images;
    assert_eq!(listed.len(), 1);
    let filtered = images
        .list_images(ListImagesRequest {
            filter: Some(ImageFilter {
                image: spec("127.0.0.1:1/none:latest"),
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .images;
    assert!(filtered.is_empty());

    let fs = images
        .image_fs_info(ImageFsInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    let used_before = fs.image_filesystems[0].used_bytes.unwrap().value;
    assert!(used_before > 1_000_000, "{used_before}");

    images
        .remove_image(RemoveImageRequest {
            image: spec(&reference),
        })
        .await
        .unwrap();
    images
        .remove_image(RemoveImageRequest {
            image: spec(&reference),
        })
        .await
        .unwrap();
    assert!(
        status(&mut images, &reference).await.image.is_none(),
        "a missing image is an empty status"
    );
    assert!(!layout.layer_dir(&layers[0]).exists(), "layers are freed");
    assert_eq!(dir_entries(&layout.blobs_dir()), 0, "blobs are freed");
    let fs = images
        .image_fs_info(ImageFsInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(fs.image_filesystems[0].used_bytes.unwrap().value < used_before / 10);
}

#[tokio::test]
async fn non_root_user_multi_platform_index_and_foreign_platforms() {
    let registry = TestRegistry::start(&["busybox-nonroot", "multiplatform", "foreign"]);
    let daemon = TestDaemon::start().await;
    let mut images = daemon.images().await;
    pull(&mut images, &registry.reference("busybox-nonroot"))
        .await
        .unwrap();
    let image = status(&mut images, &registry.reference("busybox-nonroot"))
        .await
        .image
        .unwrap();
    assert_eq!(image.uid.unwrap().value, 1000);

    let id = pull(&mut images, &registry.reference("multiplatform"))
        .await
        .unwrap();
    assert_eq!(
        id,
        registry.field("busybox", "id"),
        "the index resolves to this host's platform"
    );
    // The repo digest is the index's: what the tag resolved to, so kubelet finds it again.
    let by_index = format!(
        "{}/test/multiplatform@{}",
        registry.addr,
        registry.field("multiplatform", "manifest")
    );
    let image = status(&mut images, &by_index)
        .await
        .image
        .expect("found by the index digest");
    assert!(
        image.repo_digests.contains(&by_index),
        "{:?}",
        image.repo_digests
    );
    assert_eq!(pull(&mut images, &by_index).await.unwrap(), id);

    let err = pull(&mut images, &registry.reference("foreign"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(
        err.message().contains("linux/arm64") && err.message().contains("linux/s390x"),
        "{}",
        err.message()
    );
    assert!(
        status(&mut images, &registry.reference("foreign"))
            .await
            .image
            .is_none()
    );
}

#[tokio::test]
async fn missing_images_bad_references_and_unreachable_registries() {
    let registry = TestRegistry::start(&["busybox"]);
    let daemon = TestDaemon::start().await;
    let mut images = daemon.images().await;
    let err = pull(
        &mut images,
        &format!("{}/test/nothing:latest", registry.addr),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let err = pull(
        &mut images,
        &format!("{}/test/busybox:no-such-tag", registry.addr),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    for bad in ["Upper/Case", "a b", "x@sha256:123"] {
        let err = pull(&mut images, bad).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad}: {err:?}");
    }
    let err = pull(&mut images, "").await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    registry.stop();
    let err = pull(&mut images, &registry.reference("busybox"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(
        err.message().contains(&registry.addr),
        "names the registry: {}",
        err.message()
    );
    assert_eq!(dir_entries(&daemon.layout().blobs_dir()), 0);
}

#[tokio::test]
async fn registry_auth_from_the_request_and_from_a_docker_config() {
    let registry = TestRegistry::start_with_auth("tester", "s3cret", &["busybox"]);
    let docker_config = tempfile::NamedTempFile::new().unwrap();
    let encoded = "dGVzdGVyOnMzY3JldA=="; // base64 of tester:s3cret
    std::fs::write(
        docker_config.path(),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{encoded}"}}}}}}"#,
            registry.addr
        ),
    )
    .unwrap();

    let daemon = TestDaemon::start().await;
    let mut images = daemon.images().await;
    let reference = registry.reference("busybox");
    let err = pull(&mut images, &reference).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    let wrong = AuthConfig {
        username: "tester".into(),
        password: "nope".into(),
        ..Default::default()
    };
    assert_eq!(
        pull_with(&mut images, &reference, Some(wrong))
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    let right = AuthConfig {
        username: "tester".into(),
        password: "s3cret".into(),
        ..Default::default()
    };
    pull_with(&mut images, &reference, Some(right))
        .await
        .unwrap();
    images
        .remove_image(RemoveImageRequest {
            image: spec(&reference),
        })
        .await
        .unwrap();
    let encoded_auth = AuthConfig {
        auth: encoded.into(),
        ..Default::default()
    };
    pull_with(&mut images, &reference, Some(encoded_auth))
        .await
        .unwrap();

    let from_file = TestDaemon::start_with_config(&format!(
        "docker_config = \"{}\"",
        docker_config.path().display()
    ))
    .await;
    let mut images = from_file.images().await;
    pull(&mut images, &reference).await.unwrap();
}

#[tokio::test]
async fn a_corrupt_blob_is_refused_and_nothing_is_kept() {
    let registry = TestRegistry::start(&["busybox"]);
    let base_layer = &registry.layers("busybox")[0];
    let file = registry.blob_file(base_layer);
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();

    let daemon = TestDaemon::start().await;
    let mut images = daemon.images().await;
    let err = pull(&mut images, &registry.reference("busybox"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::DataLoss, "{err:?}");
    assert!(
        err.message().contains(base_layer.as_str()),
        "{}",
        err.message()
    );
    let layout = daemon.layout();
    assert!(
        !layout.blob(base_layer).exists(),
        "the corrupt blob is not kept"
    );
    assert_eq!(
        dir_entries(&layout.image_tmp_dir()),
        0,
        "no temporary file is left"
    );
    assert_eq!(dir_entries(&layout.layers_dir()), 0, "nothing is unpacked");
    assert!(
        status(&mut images, &registry.reference("busybox"))
            .await
            .image
            .is_none()
    );
}

#[tokio::test]
async fn a_layer_that_tries_to_escape_is_contained() {
    let target = tempfile::Builder::new()
        .prefix("crishim-escape-")
        .tempdir()
        .unwrap();
    let target_path = target.path().display().to_string();
    let registry = TestRegistry::launch(
        None,
        &["escape"],
        &[("CRISHIM_ESCAPE_TARGET", &target_path)],
    );
    let daemon = TestDaemon::start().await;
    let mut images = daemon.images().await;
    pull(&mut images, &registry.reference("escape"))
        .await
        .unwrap();
    assert_eq!(
        dir_entries(target.path()),
        0,
        "nothing was written to {target_path}"
    );
    assert!(!Path::new("/escaped-dotdot").exists());
    let info: serde_json::Value = serde_json::from_str(
        &status(&mut images, &registry.reference("escape"))
            .await
            .info["info"],
    )
    .unwrap();
    let layer = daemon
        .layout()
        .layer_dir(info["layers"][0]["chain_id"].as_str().unwrap());
    let inside = layer.join(target_path.trim_start_matches('/'));
    for name in [
        "escaped-absolute",
        "escaped-through-symlink",
        "escaped-through-dotdot-link",
    ] {
        assert!(
            inside.join(name).is_file(),
            "{name} landed inside the layer"
        );
    }
    assert!(layer.join("escaped-dotdot").is_file());
}

/// Forwards one registry through 127.0.0.1, cutting every connection after `limit` bytes
/// from the registry: a registry that goes away in the middle of a blob.
async fn cutting_proxy(upstream: String, limit: usize) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                });
                let mut sent = 0;
                let mut buf = vec![0u8; 16 * 1024];
                while sent < limit {
                    let Ok(n) = server_read.read(&mut buf).await else {
                        break;
                    };
                    if n == 0 {
                        break;
                    }
                    let n = n.min(limit - sent);
                    if client_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    sent += n;
                }
                // Dropping both halves closes the connection mid-response.
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_registry_that_goes_away_mid_pull_leaves_nothing_half_written() {
    let registry = TestRegistry::launch(None, &["big"], &[]);
    let registry = {
        // Push the big image: 4 MiB of incompressible data in one layer.
        let mut push = std::process::Command::new(env!("CARGO_BIN_EXE_crishim-testimages"));
        push.args([
            "--registry",
            &registry.addr,
            "--image",
            "big",
            "--big-mb",
            "4",
        ]);
        let out = push.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        registry
    };
    let proxy = cutting_proxy(registry.addr.clone(), 1 << 20).await;
    let daemon = TestDaemon::start().await;
    let mut images = daemon.images().await;
    let err = pull(&mut images, &format!("{proxy}/test/big:latest"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(
        err.message().contains(&proxy),
        "names the registry: {}",
        err.message()
    );
    let layout = daemon.layout();
    assert_eq!(
        dir_entries(&layout.image_tmp_dir()),
        0,
        "no partial download is left"
    );
    assert_eq!(dir_entries(&layout.layers_dir()), 0);
    assert!(
        status(&mut images, &format!("{proxy}/test/big:latest"))
            .await
            .image
            .is_none()
    );
    // The same image pulls fine straight from the registry afterwards.
    pull(&mut images, &registry.reference("big")).await.unwrap();
}

#[tokio::test]
async fn concurrent_pulls_of_one_image_download_it_once() {
    let registry = TestRegistry::start(&["busybox"]);
    let daemon = TestDaemon::start().await;
    let reference = registry.reference("busybox");
    let mut pulls = Vec::new();
    for _ in 0..4 {
        let mut images = daemon.images().await;
        let reference = reference.clone();
        pulls.push(tokio::spawn(async move {
            pull(&mut images, &reference).await.unwrap()
        }));
    }
    let mut ids = Vec::new();
    for p in pulls {
        ids.push(p.await.unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1);
    let downloads = daemon.log().matches("blob downloaded").count();
    assert_eq!(downloads, 3, "config and two layers, once each");
}

#[tokio::test]
async fn wasm_artifacts_are_recognised_and_precompiled_at_pull() {
    let registry = TestRegistry::start(&[
        "wasm-module",
        "wasm-component",
        "wasm-entrypoint",
        "wasm-platform",
    ]);
    let mut daemon = TestDaemon::start().await;
    let mut images = daemon.images().await;
    let mut compiled = Vec::new();
    for (name, title) in [
        ("wasm-module", "hello.wasm"),
        ("wasm-component", "hello-component.wasm"),
    ] {
        let reference = registry.reference(name);
        assert_eq!(
            pull(&mut images, &reference).await.unwrap(),
            registry.field(name, "id")
        );
        let info: serde_json::Value =
            serde_json::from_str(&status(&mut images, &reference).await.info["info"]).unwrap();
        assert_eq!(info["kind"], "wasm", "{name}: {info}");
        assert_eq!(info["layers"][0]["title"], title);
        assert!(
            info["layers"][0]["chain_id"].is_null(),
            "wasm layers are not unpacked"
        );
        let precompiled = info["precompiled"].as_array().unwrap();
        assert_eq!(precompiled.len(), 1, "{name}: {info}");
        let path = std::path::PathBuf::from(precompiled[0].as_str().unwrap());
        assert!(
            std::fs::metadata(&path).unwrap().len() > 1000,
            "{name}: a real .cwasm"
        );
        compiled.push(path);
    }
    assert_eq!(
        info_kind(&mut images, &registry.reference("wasm-component")).await,
        "wasm"
    );
    assert_eq!(
        dir_entries(&daemon.layout().layers_dir()),
        0,
        "artifacts are not unpacked"
    );

    // A wasi/wasm platform image with a tar layer: unpacked, and its entrypoint precompiled.
    let platform_image = registry.reference("wasm-platform");
    pull(&mut images, &platform_image).await.unwrap();
    let info: serde_json::Value =
        serde_json::from_str(&status(&mut images, &platform_image).await.info["info"]).unwrap();
    assert_eq!(info["kind"], "wasm");
    let chain = info["layers"][0]["chain_id"].as_str().expect("unpacked");
    assert!(
        daemon
            .layout()
            .layer_dir(chain)
            .join("hello.wasm")
            .is_file()
    );
    assert_eq!(info["precompiled"].as_array().unwrap().len(), 1, "{info}");
    pull(&mut images, &registry.reference("wasm-entrypoint"))
        .await
        .unwrap();
    assert_eq!(
        info_kind(&mut images, &registry.reference("wasm-entrypoint")).await,
        "linux",
        "a Linux image with a .wasm entrypoint"
    );

    // A daemon that finds an artifact without its precompiled form compiles it at start.
    drop(images);
    daemon.kill9();
    std::fs::remove_file(&compiled[0]).unwrap();
    daemon.spawn().await;
    let mut images = daemon.images().await;
    // Answered only once the daemon serves, which is after its start-up work.
    assert_eq!(
        info_kind(&mut images, &registry.reference("wasm-module")).await,
        "wasm"
    );
    assert!(compiled[0].is_file(), "recompiled at start");
    for name in ["wasm-module", "wasm-component"] {
        images
            .remove_image(RemoveImageRequest {
                image: spec(&registry.reference(name)),
            })
            .await
            .unwrap();
    }
    assert!(
        compiled.iter().all(|p| !p.exists()),
        "RemoveImage deletes the precompiled files"
    );
}

async fn info_kind(images: &mut ImageServiceClient<Channel>, reference: &str) -> String {
    let info: serde_json::Value =
        serde_json::from_str(&status(images, reference).await.info["info"]).unwrap();
    info["kind"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn docker_v2_images_and_registry_mirrors() {
    let registry = TestRegistry::start(&["docker-v2", "busybox"]);
    // The image names a registry that does not exist; its mirror (the test registry) serves it.
    let daemon = TestDaemon::start_with_config(&format!(
        "[registries.\"registry.invalid:5000\"]\nmirrors = [\"{}\"]\n",
        registry.addr
    ))
    .await;
    let mut images = daemon.images().await;
    let id = pull(&mut images, &registry.reference("docker-v2"))
        .await
        .unwrap();
    let answer = status(&mut images, &id).await;
    let info: serde_json::Value = serde_json::from_str(&answer.info["info"]).unwrap();
    assert_eq!(
        info["manifestMediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(
        info["configMediaType"],
        "application/vnd.docker.container.image.v1+json"
    );
    assert!(
        daemon
            .layout()
            .layer_dir(info["layers"][0]["chain_id"].as_str().unwrap())
            .join("bin/busybox")
            .is_file()
    );

    let mirrored = "registry.invalid:5000/test/busybox:latest";
    assert_eq!(
        pull(&mut images, mirrored).await.unwrap(),
        registry.field("busybox", "id")
    );
    let image = status(&mut images, mirrored).await.image.unwrap();
    assert_eq!(
        image.repo_tags,
        vec![mirrored.to_string()],
        "recorded under the name asked for"
    );
}

/// A front for a registry that wants OAuth2 bearer tokens, like Docker Hub's: POST /token
/// trades the refresh token `good-refresh` for the access token `granted`; every other request
/// needs `Authorization: Bearer granted` and is forwarded, one per connection, to `upstream`.
async fn token_gate(upstream: String) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let realm = format!("http://{addr}/token");
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let (upstream, realm) = (upstream.clone(), realm.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    match client.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let header = |name: &str| {
                    head.lines().find_map(|l| {
                        l.split_once(':')
                            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                            .map(|(_, v)| v.trim().to_string())
                    })
                };
                let respond = |status: &str, extra: String, body: &str| {
                    format!(
                        "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                let answer = if head.starts_with("POST /token") {
                    let length: usize = header("content-length")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    while buf.len() < head_end + length {
                        match client.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body =
                        String::from_utf8_lossy(&buf[head_end..head_end + length]).to_string();
                    if body.contains("grant_type=refresh_token")
                        && body.contains("refresh_token=good-refresh")
                    {
                        respond(
                            "200 OK",
                            "Content-Type: application/json\r\n".into(),
                            r#"{"access_token":"granted"}"#,
                        )
                    } else {
                        respond("401 Unauthorized", String::new(), "")
                    }
                } else if header("authorization").as_deref() == Some("Bearer granted") {
                    let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let forwarded: String = head
                        .split("\r\n")
                        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
                        .filter(|l| !l.is_empty())
                        .map(|l| format!("{l}\r\n"))
                        .collect();
                    let _ = server
                        .write_all(format!("{forwarded}Connection: close\r\n\r\n").as_bytes())
                        .await;
                    let _ = server.write_all(&buf[head_end..]).await;
                    let _ = tokio::io::copy(&mut server, &mut client).await;
                    return;
                } else {
                    let challenge = format!(
                        "WWW-Authenticate: Bearer realm=\"{realm}\",service=\"crishim-test\"\r\n"
                    );
                    respond("401 Unauthorized", challenge, "")
                };
                let _ = client.write_all(answer.as_bytes()).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn identity_tokens_are_traded_for_access_tokens() {
    let registry = TestRegistry::start(&["busybox"]);
    let gate = token_gate(registry.addr.clone()).await;
    let daemon = TestDaemon::start().await;
    let mut images = daemon.images().await;
    let reference = format!("{gate}/test/busybox:latest");
    let err = pull(&mut images, &reference).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "no credentials: {err:?}");
    let bad = AuthConfig {
        identity_token: "stale".into(),
        ..Default::default()
    };
    let err = pull_with(&mut images, &reference, Some(bad))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert!(
        err.message().contains("refused the identity token"),
        "{}",
        err.message()
    );
    let good = AuthConfig {
        identity_token: "good-refresh".into(),
        ..Default::default()
    };
    assert_eq!(
        pull_with(&mut images, &reference, Some(good))
            .await
            .unwrap(),
        registry.field("busybox", "id")
    );
}

/// Makes a CA and a server certificate for 127.0.0.1 with openssl; returns (cert, key, ca).
fn make_certificates(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl (apt-get install openssl)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=crishim test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
    (
        dir.join("server.pem"),
        dir.join("server.key"),
        dir.join("ca.pem"),
    )
}

#[tokio::test]
async fn tls_registries_are_trusted_through_the_system_ca_store() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key, ca) = make_certificates(certs.path());
    let registry = TestRegistry::start_tls(&["busybox"], &cert, &key, &ca);
    let force_tls = format!("[registries.\"{}\"]\ninsecure = false\n", registry.addr);
    let reference = registry.reference("busybox");

    // The system store (SSL_CERT_FILE points the system verifier at a bundle) decides trust.
    let ca_path = ca.display().to_string();
    let trusting =
        TestDaemon::start_with_env(&force_tls, &[("SSL_CERT_FILE", ca_path.as_str())]).await;
    let mut images = trusting.images().await;
    assert_eq!(
        pull(&mut images, &reference).await.unwrap(),
        registry.field("busybox", "id")
    );

    let other_bundle = certs.path().join("other.pem");
    std::fs::copy(certs.path().join("server.pem"), &other_bundle).unwrap();
    let other = other_bundle.display().to_string();
    let distrusting =
        TestDaemon::start_with_env(&force_tls, &[("SSL_CERT_FILE", other.as_str())]).await;
    let mut images = distrusting.images().await;
    let err = pull(&mut images, &reference).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains(&registry.addr), "{}", err.message());
    assert!(
        err.message().contains("certificate"),
        "a trust failure: {}",
        err.message()
    );
}
