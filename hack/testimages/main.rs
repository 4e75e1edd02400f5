//! `crishim-testimages`: builds the images the test suite needs and pushes them to a registry
//! (normally the one `hack/registry.sh` starts on 127.0.0.1). Prints a JSON summary: for each
//! image its reference, manifest digest, config digest (the image id) and layer digests.
//!
//! Images (repository `test/<name>`, tag `latest`):
//! - `busybox`: Debian's busybox-static with applet links, /etc/passwd and /etc/group; a second,
//!   zstd-compressed layer deletes /etc/motd (a whiteout) and adds /etc/hello.
//! - `busybox-nonroot`: the same layers, `User 1000:1000`.
//! - `multiplatform`: an index of linux/amd64 (busybox) and linux/arm64.
//! - `foreign`: an index with only linux/arm64 and linux/s390x.
//! - `escape`: a layer whose entries try to leave the layer directory.
//! - `big`: one incompressible layer of `--big-mb` MiB (only when given).
//! - `wasm-module`: a WASI p1 module (hack/testimages/wat/hello.wat) as a wasi/wasm platform
//!   image with an `application/vnd.wasm.content.layer.v1+wasm` layer.
//! - `wasm-component`: the same program as a WASI p2 component (wit-component and the p1
//!   adapter), a wasm artifact: config `application/vnd.wasm.config.v0+json`, layer
//!   `application/wasm`, artifactType set.
//! - `wasm-entrypoint`: a regular Linux image (busybox) whose entrypoint is /app/hello.wasm.
//! - `docker-v2`: busybox as a Docker v2 schema 2 image (Docker media types throughout).
//! - `wasm-platform`: a wasi/wasm platform image as `docker buildx` makes them: a tar+gzip layer
//!   holding /hello.wasm, which is the entrypoint.
//! - `wasm-probe`: the wasm containers' test program (hack/testimages/wat/probe.wat) as a
//!   module artifact with Cmd `probe.wasm` and two Env entries.
//! - `wasm-probe-component`: the same program as a WASI p2 component artifact.
//! - `wasm-probe-platform`: the same program in a wasi/wasm platform image whose tar layer
//!   also holds /etc/greeting, so a container has the image's files.
//! - `wasm-listener`: a WASI p2 component artifact written against the canonical ABI
//!   (hack/testimages/wat/listener.wat, world hack/testimages/wit/listener.wit) that listens
//!   on TCP 0.0.0.0:8080 through wasi:sockets, greets one client, and exits 0.
//! - `wasm-bad-nostart`, `wasm-bad-import`, `wasm-bad-component`: wasm a container cannot
//!   run (no `_start`; an import from `env`; a component without `wasi:cli/run`).

use std::collections::BTreeMap;
use std::io::Write;

use clap::Parser;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest::{
    ImageIndexEntry, OCI_IMAGE_INDEX_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE, OciDescriptor,
    OciImageIndex, OciImageManifest, Platform,
};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde_json::json;
use sha2::{Digest, Sha256};

#[derive(Parser)]
#[command(
    name = "crishim-testimages",
    about = "Build and push crishim's test images"
)]
struct Args {
    /// Registry host:port.
    #[arg(long)]
    registry: String,
    /// Only these images (default: all but big).
    #[arg(long = "image")]
    images: Vec<String>,
    /// Size of the `big` image's layer in MiB.
    #[arg(long)]
    big_mb: Option<usize>,
    /// Basic-auth user.
    #[arg(long)]
    username: Option<String>,
    /// Basic-auth password.
    #[arg(long, default_value = "")]
    password: String,
    /// Talk TLS to the registry, trusting this CA certificate (PEM).
    #[arg(long)]
    ca: Option<std::path::PathBuf>,
}

const GZIP_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const ZSTD_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
const TAR_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const APPLETS: &[&str] = &[
    "sh", "sleep", "cat", "id", "true", "false", "env", "ls", "echo", "hostname", "mkdir", "rm",
    "touch", "wc", "head", "tail", "ps", "kill", "grep", "test", "printf", "date", "pwd", "uname",
    "whoami", "stat", "dd", "yes", "mount", "readlink", "nc", "unshare",
];

fn digest(bytes: &[u8]) -> String {
    let hex: String = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// A layer: its content (a tar, or a wasm binary), compressed as its media type says.
struct Layer {
    tar: Vec<u8>,
    media_type: &'static str,
    title: Option<&'static str>,
}

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_GZIP_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const WASM_CONFIG_V0: &str = "application/vnd.wasm.config.v0+json";
const WASM_CONTENT_LAYER: &str = "application/vnd.wasm.content.layer.v1+wasm";
const WASM_LAYER: &str = "application/wasm";
const HELLO_WAT: &str = include_str!("wat/hello.wat");
const PROBE_WAT: &str = include_str!("wat/probe.wat");
const LISTENER_WAT: &str = include_str!("wat/listener.wat");
const LISTENER_WIT: &str = include_str!("wit/listener.wit");

/// The hello program as a core module.
fn hello_module() -> Vec<u8> {
    wat::parse_str(HELLO_WAT).expect("hello.wat parses")
}

/// The probe program (what wasm container tests run) as a core module.
fn probe_module() -> Vec<u8> {
    wat::parse_str(PROBE_WAT).expect("probe.wat parses")
}

/// The hello program as a WASI p2 command component.
fn hello_component() -> Vec<u8> {
    component_of(&hello_module())
}

/// The listener program: its core module (already speaking the canonical ABI of its world's
/// imports) with the world embedded, made a WASI p2 command component.
fn listener_component() -> Vec<u8> {
    let mut resolve = wit_parser::Resolve::default();
    let package = resolve
        .push_str("listener.wit", LISTENER_WIT)
        .expect("listener.wit parses");
    let world = resolve
        .select_world(&[package], Some("listener"))
        .expect("listener.wit has the listener world");
    let mut module = wat::parse_str(LISTENER_WAT).expect("listener.wat parses");
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .expect("the listener world embeds");
    wit_component::ComponentEncoder::default()
        .module(&module)
        .expect("listener module for the component")
        .validate(true)
        .encode()
        .expect("listener component encodes")
}

/// A core WASI p1 command module as a WASI p2 command component (through the p1 adapter).
fn component_of(module: &[u8]) -> Vec<u8> {
    wit_component::ComponentEncoder::default()
        .module(module)
        .expect("module for the component")
        .adapter(
            "wasi_snapshot_preview1",
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER,
        )
        .expect("p1 adapter")
        .validate(true)
        .encode()
        .expect("component encodes")
}

impl Layer {
    fn blob(&self) -> Vec<u8> {
        match self.media_type {
            GZIP_LAYER | DOCKER_GZIP_LAYER => {
                let mut gz =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                gz.write_all(&self.tar).expect("gzip in memory");
                gz.finish().expect("gzip in memory")
            }
            ZSTD_LAYER => zstd::encode_all(&self.tar[..], 3).expect("zstd in memory"),
            _ => self.tar.clone(),
        }
    }
}

/// Tar entries written with raw names (so the escape image can hold hostile ones).
#[derive(Default)]
struct Tar(Vec<u8>);

impl Tar {
    fn entry(
        &mut self,
        name: &str,
        kind: tar::EntryType,
        mode: u32,
        uid: u64,
        link: &str,
        data: &[u8],
    ) -> &mut Self {
        let mut header = tar::Header::new_gnu();
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(uid);
        header.set_gid(uid);
        header.set_mtime(1_700_000_000);
        header.set_size(data.len() as u64);
        header.set_cksum();
        self.0.extend_from_slice(header.as_bytes());
        self.0.extend_from_slice(data);
        self.0.resize(self.0.len().div_ceil(512) * 512, 0);
        self
    }
    fn dir(&mut self, name: &str, mode: u32, uid: u64) -> &mut Self {
        self.entry(name, tar::EntryType::Directory, mode, uid, "", b"")
    }
    fn file(&mut self, name: &str, mode: u32, data: &[u8]) -> &mut Self {
        self.entry(name, tar::EntryType::Regular, mode, 0, "", data)
    }
    fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.entry(name, tar::EntryType::Symlink, 0o777, 0, target, b"")
    }
    fn finish(&mut self) -> Vec<u8> {
        let mut bytes = std::mem::take(&mut self.0);
        bytes.extend_from_slice(&[0; 1024]);
        bytes
    }
}

fn busybox_layers() -> Vec<Layer> {
    let busybox = std::fs::read("/bin/busybox").unwrap_or_else(|e| {
        panic!("/bin/busybox: {e}; install it with `apt-get install busybox-static` (hack/setup.sh does)")
    });
    let mut base = Tar::default();
    base.dir("bin/", 0o755, 0)
        .file("bin/busybox", 0o755, &busybox);
    for applet in APPLETS {
        base.symlink(&format!("bin/{applet}"), "busybox");
    }
    base.dir("etc/", 0o755, 0)
        .file("etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
        .file("etc/group", 0o644, b"root:x:0:\napp:x:1000:\nextra:x:2000:app\nnogroup:x:65534:\n")
        .file("etc/motd", 0o644, b"base layer\n")
        .dir("tmp/", 0o1777, 0)
        .dir("root/", 0o700, 0)
        .dir("home/", 0o755, 0)
        .dir("home/app/", 0o755, 1000);
    let mut top = Tar::default();
    top.file("etc/.wh.motd", 0o644, b"")
        .file("etc/hello", 0o644, b"from layer 2\n");
    vec![
        Layer {
            tar: base.finish(),
            media_type: GZIP_LAYER,
            title: None,
        },
        Layer {
            tar: top.finish(),
            media_type: ZSTD_LAYER,
            title: None,
        },
    ]
}

fn config(arch: &str, layers: &[Layer], user: &str) -> Vec<u8> {
    let diff_ids: Vec<String> = layers.iter().map(|l| digest(&l.tar)).collect();
    serde_json::to_vec(&json!({
        "architecture": arch,
        "os": "linux",
        "config": {
            "User": user,
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["sh"],
        },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    }))
    .expect("config JSON")
}

struct Pusher {
    client: Client,
    auth: RegistryAuth,
    registry: String,
}

impl Pusher {
    fn reference(&self, name: &str, tag: &str) -> Reference {
        Reference::with_tag(
            self.registry.clone(),
            format!("test/{name}"),
            tag.to_string(),
        )
    }

    /// Pushes blobs and a manifest; returns (manifest digest, manifest size, summary).
    async fn image(
        &self,
        name: &str,
        tag: &str,
        config_bytes: Vec<u8>,
        layers: &[Layer],
    ) -> (String, i64, serde_json::Value) {
        self.artifact(name, tag, (config_bytes, OCI_CONFIG), layers, None)
            .await
    }

    /// Pushes an image or artifact with a config of any media type.
    /// Pushes `name:latest`, a `wasi/wasm` platform image of one tar layer whose entrypoint is
    /// the wasm file `entrypoint`.
    async fn wasi_image(&self, name: &str, tar: &mut Tar, entrypoint: &str) -> serde_json::Value {
        let layers = vec![Layer {
            tar: tar.finish(),
            media_type: GZIP_LAYER,
            title: None,
        }];
        let config = serde_json::to_vec(&json!({
            "architecture": "wasm",
            "os": "wasi",
            "config": { "Entrypoint": [entrypoint] },
            "rootfs": { "type": "layers", "diff_ids": [digest(&layers[0].tar)] },
        }))
        .expect("config JSON");
        let (_, _, info) = self.image(name, "latest", config, &layers).await;
        info
    }

    /// Pushes a WASI p2 component as a one-layer wasm artifact `name:latest`.
    async fn component(
        &self,
        name: &str,
        title: &'static str,
        component: Vec<u8>,
    ) -> serde_json::Value {
        let config = serde_json::to_vec(&json!({
            "architecture": "wasm",
            "os": "wasip2",
            "layerDigests": [digest(&component)],
        }))
        .expect("config JSON");
        let layers = vec![Layer {
            tar: component,
            media_type: WASM_LAYER,
            title: Some(title),
        }];
        let (_, _, info) = self
            .artifact(
                name,
                "latest",
                (config, WASM_CONFIG_V0),
                &layers,
                Some(WASM_CONFIG_V0),
            )
            .await;
        info
    }

    async fn artifact(
        &self,
        name: &str,
        tag: &str,
        (config_bytes, config_type): (Vec<u8>, &str),
        layers: &[Layer],
        artifact_type: Option<&str>,
    ) -> (String, i64, serde_json::Value) {
        let reference = self.reference(name, tag);
        self.client
            .store_auth_if_needed(reference.resolve_registry(), &self.auth)
            .await;
        let mut descriptors = Vec::new();
        for layer in layers {
            let blob = layer.blob();
            let layer_digest = digest(&blob);
            self.client
                .push_blob(&reference, blob.clone(), &layer_digest)
                .await
                .expect("push layer");
            descriptors.push(OciDescriptor {
                media_type: layer.media_type.to_string(),
                digest: layer_digest,
                size: blob.len() as i64,
                annotations: layer.title.map(|t| {
                    BTreeMap::from([("org.opencontainers.image.title".to_string(), t.to_string())])
                }),
                ..Default::default()
            });
        }
        let config_digest = digest(&config_bytes);
        self.client
            .push_blob(&reference, config_bytes.clone(), &config_digest)
            .await
            .expect("push config");
        // A Docker config makes a Docker v2 schema 2 manifest; anything else an OCI one.
        let manifest_type = if config_type == DOCKER_CONFIG {
            DOCKER_MANIFEST
        } else {
            OCI_IMAGE_MEDIA_TYPE
        };
        let manifest = OciImageManifest {
            schema_version: 2,
            media_type: Some(manifest_type.to_string()),
            artifact_type: artifact_type.map(str::to_string),
            config: OciDescriptor {
                media_type: config_type.to_string(),
                digest: config_digest.clone(),
                size: config_bytes.len() as i64,
                ..Default::default()
            },
            layers: descriptors.clone(),
            ..Default::default()
        };
        let bytes = serde_json::to_vec(&manifest).expect("manifest JSON");
        let manifest_digest = digest(&bytes);
        self.client
            .push_manifest_raw(
                &reference,
                bytes.clone(),
                manifest_type.parse().expect("header"),
            )
            .await
            .expect("push manifest");
        let summary = json!({
            "reference": reference.whole(),
            "manifest": manifest_digest,
            "id": config_digest,
            "layers": descriptors.iter().map(|d| d.digest.clone()).collect::<Vec<_>>(),
        });
        (manifest_digest, bytes.len() as i64, summary)
    }

    async fn index(&self, name: &str, entries: Vec<(String, i64, &str)>) -> serde_json::Value {
        let reference = self.reference(name, "latest");
        let manifests = entries
            .into_iter()
            .map(|(digest, size, arch)| ImageIndexEntry {
                media_type: OCI_IMAGE_MEDIA_TYPE.to_string(),
                digest,
                size,
                platform: Some(Platform {
                    architecture: arch.into(),
                    os: "linux".into(),
                    os_version: None,
                    os_features: None,
                    variant: None,
                    features: None,
                }),
                annotations: None,
                artifact_type: None,
            })
            .collect();
        let index = OciImageIndex {
            schema_version: 2,
            media_type: Some(OCI_IMAGE_INDEX_MEDIA_TYPE.to_string()),
            manifests,
            artifact_type: None,
            annotations: None,
        };
        let bytes = serde_json::to_vec(&index).expect("index JSON");
        self.client
            .push_manifest_raw(
                &reference,
                bytes.clone(),
                OCI_IMAGE_INDEX_MEDIA_TYPE.parse().expect("header"),
            )
            .await
            .expect("push index");
        json!({ "reference": reference.whole(), "manifest": digest(&bytes) })
    }
}

fn tiny_layer(text: &str) -> Vec<Layer> {
    vec![Layer {
        tar: Tar::default()
            .file("platform.txt", 0o644, text.as_bytes())
            .finish(),
        media_type: TAR_LAYER,
        title: None,
    }]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = Args::parse();
    let (protocol, extra_root_certificates) = match &args.ca {
        Some(ca) => {
            let data = std::fs::read(ca).unwrap_or_else(|e| panic!("{}: {e}", ca.display()));
            let certificate = oci_client::client::Certificate {
                encoding: oci_client::client::CertificateEncoding::Pem,
                data,
            };
            (ClientProtocol::Https, vec![certificate])
        }
        None => (
            ClientProtocol::HttpsExcept(vec![args.registry.clone()]),
            Vec::new(),
        ),
    };
    let client = Client::try_from(ClientConfig {
        protocol,
        extra_root_certificates,
        platform_resolver: None,
        ..Default::default()
    })
    .expect("registry client");
    let auth = match &args.username {
        Some(user) => RegistryAuth::Basic(user.clone(), args.password.clone()),
        None => RegistryAuth::Anonymous,
    };
    let pusher = Pusher {
        client,
        auth,
        registry: args.registry.clone(),
    };
    let wanted = |name: &str| {
        if args.images.is_empty() {
            name != "big"
        } else {
            args.images.iter().any(|i| i == name)
        }
    };
    let (_, host_arch) = crishim::image::platform::host_platform();
    let mut summary = BTreeMap::new();

    if wanted("busybox") || wanted("busybox-nonroot") || wanted("multiplatform") {
        let layers = busybox_layers();
        let (digest, size, info) = pusher
            .image("busybox", "latest", config(host_arch, &layers, ""), &layers)
            .await;
        summary.insert("busybox", info);
        if wanted("busybox-nonroot") {
            let (_, _, info) = pusher
                .image(
                    "busybox-nonroot",
                    "latest",
                    config(host_arch, &layers, "1000:1000"),
                    &layers,
                )
                .await;
            summary.insert("busybox-nonroot", info);
        }
        if wanted("multiplatform") {
            let arm = tiny_layer("arm64");
            let (_, _, _) = pusher
                .image(
                    "multiplatform",
                    "amd64",
                    config(host_arch, &layers, ""),
                    &layers,
                )
                .await;
            let (arm_digest, arm_size, _) = pusher
                .image("multiplatform", "arm64", config("arm64", &arm, ""), &arm)
                .await;
            let info = pusher
                .index(
                    "multiplatform",
                    vec![(arm_digest, arm_size, "arm64"), (digest, size, host_arch)],
                )
                .await;
            summary.insert("multiplatform", info);
        }
    }
    if wanted("foreign") {
        let arm = tiny_layer("arm64");
        let s390 = tiny_layer("s390x");
        let (a, asz, _) = pusher
            .image("foreign", "arm64", config("arm64", &arm, ""), &arm)
            .await;
        let (s, ssz, _) = pusher
            .image("foreign", "s390x", config("s390x", &s390, ""), &s390)
            .await;
        summary.insert(
            "foreign",
            pusher
                .index("foreign", vec![(a, asz, "arm64"), (s, ssz, "s390x")])
                .await,
        );
    }
    if wanted("escape") {
        let target = std::env::var("CRISHIM_ESCAPE_TARGET")
            .unwrap_or_else(|_| "/tmp/crishim-escape-target".into());
        let target = target.trim_start_matches('/');
        let mut tar = Tar::default();
        tar.file(
            "../../../../../../../../../../../../escaped-dotdot",
            0o644,
            b"x",
        )
        .file(&format!("/{target}/escaped-absolute"), 0o644, b"x")
        .symlink("link-out", &format!("/{target}"))
        .file("link-out/escaped-through-symlink", 0o644, b"x")
        .symlink("up", "../../../../../../../../..")
        .file(
            &format!("up/{target}/escaped-through-dotdot-link"),
            0o644,
            b"x",
        );
        let layers = vec![Layer {
            tar: tar.finish(),
            media_type: TAR_LAYER,
            title: None,
        }];
        let (_, _, info) = pusher
            .image("escape", "latest", config(host_arch, &layers, ""), &layers)
            .await;
        summary.insert("escape", info);
    }
    if let (true, Some(mb)) = (wanted("big"), args.big_mb) {
        let mut data = vec![0u8; mb << 20];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for chunk in data.chunks_mut(8) {
            // xorshift: incompressible filler, no need for real randomness.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
        }
        let layers = vec![Layer {
            tar: Tar::default().file("big.bin", 0o644, &data).finish(),
            media_type: GZIP_LAYER,
            title: None,
        }];
        let (_, _, info) = pusher
            .image("big", "latest", config(host_arch, &layers, ""), &layers)
            .await;
        summary.insert("big", info);
    }
    if wanted("docker-v2") {
        let mut layers = busybox_layers();
        layers.truncate(1);
        layers[0].media_type = DOCKER_GZIP_LAYER;
        let config = (config(host_arch, &layers, ""), DOCKER_CONFIG);
        let (_, _, info) = pusher
            .artifact("docker-v2", "latest", config, &layers, None)
            .await;
        summary.insert("docker-v2", info);
    }
    if wanted("wasm-platform") {
        let mut tar = Tar::default();
        tar.file("hello.wasm", 0o755, &hello_module());
        let info = pusher
            .wasi_image("wasm-platform", &mut tar, "/hello.wasm")
            .await;
        summary.insert("wasm-platform", info);
    }
    if wanted("wasm-module") {
        let module = hello_module();
        let config = serde_json::to_vec(&json!({
            "architecture": "wasm",
            "os": "wasi",
            "config": { "Cmd": ["hello.wasm"] },
            "rootfs": { "type": "layers", "diff_ids": [digest(&module)] },
        }))
        .expect("config JSON");
        let layers = vec![Layer {
            tar: module,
            media_type: WASM_CONTENT_LAYER,
            title: Some("hello.wasm"),
        }];
        let (_, _, info) = pusher.image("wasm-module", "latest", config, &layers).await;
        summary.insert("wasm-module", info);
    }
    if wanted("wasm-component") {
        let component = hello_component();
        let config = serde_json::to_vec(&json!({
            "architecture": "wasm",
            "os": "wasip2",
            "layerDigests": [digest(&component)],
        }))
        .expect("config JSON");
        let layers = vec![Layer {
            tar: component,
            media_type: WASM_LAYER,
            title: Some("hello-component.wasm"),
        }];
        let (_, _, info) = pusher
            .artifact(
                "wasm-component",
                "latest",
                (config, WASM_CONFIG_V0),
                &layers,
                Some(WASM_CONFIG_V0),
            )
            .await;
        summary.insert("wasm-component", info);
    }
    if wanted("wasm-probe") {
        let module = probe_module();
        let config = serde_json::to_vec(&json!({
            "architecture": "wasm",
            "os": "wasi",
            "config": { "Cmd": ["probe.wasm"], "Env": ["FROM_IMAGE=yes", "OVERRIDDEN=image"] },
            "rootfs": { "type": "layers", "diff_ids": [digest(&module)] },
        }))
        .expect("config JSON");
        let layers = vec![Layer {
            tar: module,
            media_type: WASM_CONTENT_LAYER,
            title: Some("probe.wasm"),
        }];
        let (_, _, info) = pusher.image("wasm-probe", "latest", config, &layers).await;
        summary.insert("wasm-probe", info);
    }
    if wanted("wasm-probe-platform") {
        let mut tar = Tar::default();
        tar.file("probe.wasm", 0o755, &probe_module())
            .dir("etc/", 0o755, 0)
            .file("etc/greeting", 0o644, b"hello from the image\n");
        let info = pusher
            .wasi_image("wasm-probe-platform", &mut tar, "/probe.wasm")
            .await;
        summary.insert("wasm-probe-platform", info);
    }
    for (name, title, build) in [
        (
            "wasm-probe-component",
            "probe-component.wasm",
            (|| component_of(&probe_module())) as fn() -> Vec<u8>,
        ),
        (
            "wasm-listener",
            "listener-component.wasm",
            listener_component,
        ),
    ] {
        if wanted(name) {
            let info = pusher.component(name, title, build()).await;
            summary.insert(name, info);
        }
    }
    // Artifacts a wasm container cannot run: no `_start`, an import no host provides, a
    // component without `wasi:cli/run`.
    for (name, wat, media_type) in [
        (
            "wasm-bad-nostart",
            "(module (memory (export \"memory\") 1))",
            WASM_CONTENT_LAYER,
        ),
        (
            "wasm-bad-import",
            "(module (import \"env\" \"missing\" (func)) (func (export \"_start\")))",
            WASM_CONTENT_LAYER,
        ),
        ("wasm-bad-component", "(component)", WASM_LAYER),
    ] {
        if !wanted(name) {
            continue;
        }
        let binary = wat::parse_str(wat).expect("test WAT parses");
        let config = serde_json::to_vec(&json!({
            "architecture": "wasm",
            "os": "wasi",
            "rootfs": { "type": "layers", "diff_ids": [digest(&binary)] },
        }))
        .expect("config JSON");
        let layers = vec![Layer {
            tar: binary,
            media_type,
            title: Some("bad.wasm"),
        }];
        let (_, _, info) = pusher.image(name, "latest", config, &layers).await;
        summary.insert(name, info);
    }
    if wanted("wasm-entrypoint") {
        let mut layers = busybox_layers();
        let mut app = Tar::default();
        app.dir("app/", 0o755, 0)
            .file("app/hello.wasm", 0o755, &hello_module());
        layers.push(Layer {
            tar: app.finish(),
            media_type: GZIP_LAYER,
            title: None,
        });
        let diff_ids: Vec<String> = layers.iter().map(|l| digest(&l.tar)).collect();
        let config = serde_json::to_vec(&json!({
            "architecture": host_arch,
            "os": "linux",
            "config": { "Entrypoint": ["/app/hello.wasm"], "Env": ["PATH=/bin"] },
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
        }))
        .expect("config JSON");
        let (_, _, info) = pusher
            .image("wasm-entrypoint", "latest", config, &layers)
            .await;
        summary.insert("wasm-entrypoint", info);
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&summary).expect("summary JSON")
    );
}
