//! PullImage: manifest (choosing this host's platform from an index), config and layers from a
//! registry (its mirrors first), every blob verified against its digest before it is kept, then
//! Linux layers unpacked once each and published by rename, and the image recorded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use cri_proto::AuthConfig;
use futures_util::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{DigestError, OciDistributionError, OciErrorCode};
use oci_client::manifest::{
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE, OciDescriptor, OciImageManifest, OciManifest,
};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::config::Config;
use crate::error::{Error, IoContext, Result};
use crate::image::auth::Credentials;
use crate::image::platform::{self, ImageConfig};
use crate::image::precompile::Precompiler;
use crate::image::reference::{ImageRef, parse_digest};
use crate::image::store::{
    ImageKind, ImageRecord, ImageStore, LayerRecord, chain_ids, sha256_digest,
};
use crate::image::unpack::unpack_layer;
use crate::image::{auth, token, wasm};

const ACCEPTED_MANIFESTS: [&str; 4] = [
    OCI_IMAGE_MEDIA_TYPE,
    OCI_IMAGE_INDEX_MEDIA_TYPE,
    IMAGE_MANIFEST_MEDIA_TYPE,
    IMAGE_MANIFEST_LIST_MEDIA_TYPE,
];
const TITLE_ANNOTATION: &str = "org.opencontainers.image.title";

/// Pulls images into a store. Concurrent pulls of one image share one download.
pub struct Puller {
    config: Arc<Config>,
    store: Arc<ImageStore>,
    precompiler: Arc<Precompiler>,
    in_flight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// One registry host being pulled from.
struct Source<'a> {
    client: Client,
    reference: Reference,
    auth: &'a RegistryAuth,
    host: String,
}

impl Puller {
    /// A puller into `store`.
    pub fn new(config: Arc<Config>, store: Arc<ImageStore>, precompiler: Arc<Precompiler>) -> Self {
        Puller {
            config,
            store,
            precompiler,
            in_flight: Mutex::new(HashMap::new()),
        }
    }

    /// Pulls `image` (any form kubelet sends) and returns its record.
    pub async fn pull(&self, image: &str, auth_config: Option<&AuthConfig>) -> Result<ImageRecord> {
        let reference = ImageRef::parse(image)?;
        let key = reference.to_string();
        let lock = self
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.clone())
            .or_default()
            .clone();
        let result = {
            // A second pull of the same image waits here, then finds every blob already stored.
            let _pulling = lock.lock().await;
            self.pull_from_hosts(&reference, auth_config).await
        };
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if Arc::strong_count(&lock) <= 2 {
            in_flight.remove(&key);
        }
        result
    }

    async fn pull_from_hosts(
        &self,
        reference: &ImageRef,
        auth_config: Option<&AuthConfig>,
    ) -> Result<ImageRecord> {
        let started = Instant::now();
        let _content = self.store.hold_for_pull().await;
        let mut last_error = None;
        for host in self.config.registry_hosts(&reference.registry) {
            // The request's credentials are for the registry itself, never sent to a mirror;
            // a mirror gets only what the Docker config holds for it.
            let request = auth_config.filter(|_| host == reference.registry);
            let credentials = auth::resolve(request, self.config.docker_config.as_deref(), &host)?;
            match self.pull_from(&host, reference, &credentials).await {
                Ok(record) => {
                    tracing::info!(image = %reference, host = %host, id = %record.id, size = record.size,
                        millis = started.elapsed().as_millis() as u64, "image pulled");
                    return Ok(record);
                }
                Err(e) => {
                    if host != reference.registry {
                        tracing::warn!(image = %reference, mirror = %host, error = %e, "mirror failed; trying the next source");
                    }
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| Error::Internal(format!("no source for {reference}"))))
    }

    fn source<'a>(
        &self,
        host: &str,
        reference: &ImageRef,
        registry_auth: &'a RegistryAuth,
    ) -> Result<Source<'a>> {
        let protocol = if self.config.plain_http(host) {
            ClientProtocol::HttpsExcept(vec![host.to_string()])
        } else {
            ClientProtocol::Https
        };
        let client = Client::try_from(ClientConfig {
            protocol,
            platform_resolver: None,
            connect_timeout: Some(std::time::Duration::from_secs(10)),
            read_timeout: Some(std::time::Duration::from_secs(60)),
            ..Default::default()
        })
        .map_err(|e| Error::Internal(format!("registry client for {host}: {e}")))?;
        let reference = match (&reference.digest, &reference.tag) {
            (Some(digest), _) => Reference::with_digest(
                host.to_string(),
                reference.repository.clone(),
                digest.clone(),
            ),
            (None, tag) => Reference::with_tag(
                host.to_string(),
                reference.repository.clone(),
                tag.clone().unwrap_or_else(|| "latest".into()),
            ),
        };
        Ok(Source {
            client,
            reference,
            auth: registry_auth,
            host: host.to_string(),
        })
    }

    async fn pull_from(
        &self,
        host: &str,
        image: &ImageRef,
        credentials: &Credentials,
    ) -> Result<ImageRecord> {
        let registry_auth = match credentials {
            Credentials::Ready(auth) => auth.clone(),
            Credentials::IdentityToken(refresh) => RegistryAuth::Bearer(
                token::exchange(
                    self.config.plain_http(host),
                    host,
                    &image.repository,
                    refresh,
                )
                .await?,
            ),
        };
        let source = self.source(host, image, &registry_auth)?;
        let name = image.to_string();
        let (manifest_bytes, manifest_digest, resolved_digest) =
            self.platform_manifest(&source, &name).await?;
        let manifest: OciImageManifest = serde_json::from_slice(&manifest_bytes).map_err(|e| {
            Error::InvalidArgument(format!(
                "image {name}: manifest {manifest_digest} is invalid: {e}"
            ))
        })?;
        self.put_blob(manifest_digest.clone(), manifest_bytes.clone())
            .await?;

        self.fetch_blob(&source, &manifest.config).await?;
        let config_bytes = self.store.read_blob(&manifest.config.digest)?;
        let image_config = ImageConfig::parse(&name, &config_bytes)?;
        let kind = wasm::classify(&manifest, &image_config.os, &image_config.architecture);
        let (os, arch) = platform::host_platform();
        // A config that names no platform is taken as this host's, as Docker does.
        let declared = !image_config.os.is_empty() && !image_config.architecture.is_empty();
        if kind == ImageKind::Linux
            && declared
            && (image_config.os != os || image_config.architecture != arch)
        {
            return Err(Error::NotFound(format!(
                "image {name} is for {}/{} only; this host runs {os}/{arch}",
                image_config.os, image_config.architecture
            )));
        }
        for layer in &manifest.layers {
            self.fetch_blob(&source, layer).await?;
        }
        // Wasm artifacts carry raw modules; a wasi/wasm platform image may carry tar layers
        // instead (its module is a file in them), which are unpacked like a Linux image's.
        let tar_layers = !manifest.layers.is_empty()
            && manifest
                .layers
                .iter()
                .all(|l| l.media_type.contains(".tar") || l.media_type.contains("rootfs.diff"));
        let chains = if kind == ImageKind::Linux || tar_layers {
            self.unpack_layers(&name, &manifest, &image_config).await?
        } else {
            vec![None; manifest.layers.len()]
        };
        let layers = manifest
            .layers
            .iter()
            .zip(chains)
            .map(|(l, chain_id)| LayerRecord {
                digest: l.digest.clone(),
                media_type: l.media_type.clone(),
                size: l.size.max(0) as u64,
                chain_id,
                title: l
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(TITLE_ANNOTATION).cloned()),
            })
            .collect::<Vec<_>>();
        let record = ImageRecord {
            id: manifest.config.digest.clone(),
            repo_tags: image.repo_tag().into_iter().collect(),
            repo_digests: vec![image.repo_digest(&resolved_digest)],
            manifest_digest,
            manifest_media_type: manifest
                .media_type
                .clone()
                .unwrap_or_else(|| OCI_IMAGE_MEDIA_TYPE.to_string()),
            artifact_type: manifest.artifact_type.clone(),
            config_media_type: manifest.config.media_type.clone(),
            kind,
            platform: format!("{}/{}", image_config.os, image_config.architecture),
            size: manifest.config.size.max(0) as u64 + layers.iter().map(|l| l.size).sum::<u64>(),
            layers,
            user: image_config.user(),
            program: image_config.program(),
            other_blobs: Vec::new(),
        };
        let (store, precompiler) = (self.store.clone(), self.precompiler.clone());
        blocking(move || {
            // Compiled before the image is recorded: a wasm image in the store always starts
            // without compiling, and one that does not compile is not kept.
            precompiler.ensure(&store, &record)?;
            store.add_image(record)
        })
        .await
    }

    /// The manifest for this host: the manifest itself, or the host's entry of an index.
    /// Returns its bytes, its digest, and the digest the reference resolved to (the index's,
    /// for a multi-platform image), which is what repo digests name, as containerd records them.
    async fn platform_manifest(
        &self,
        source: &Source<'_>,
        name: &str,
    ) -> Result<(Vec<u8>, String, String)> {
        let (bytes, digest) = source
            .client
            .pull_manifest_raw(&source.reference, source.auth, &ACCEPTED_MANIFESTS)
            .await
            .map_err(|e| registry_error(&source.host, name, e))?;
        let parsed: OciManifest = serde_json::from_slice(&bytes).map_err(|e| {
            Error::InvalidArgument(format!("image {name}: manifest is invalid: {e}"))
        })?;
        let OciManifest::ImageIndex(index) = parsed else {
            return Ok((bytes.to_vec(), digest.clone(), digest));
        };
        let index_digest = digest;
        let entry = platform::select(name, &index.manifests)?;
        parse_digest(&entry.digest).map_err(Error::InvalidArgument)?;
        let (bytes, digest) = source
            .client
            .pull_manifest_raw(
                &source.reference.clone_with_digest(entry.digest.clone()),
                source.auth,
                &ACCEPTED_MANIFESTS,
            )
            .await
            .map_err(|e| registry_error(&source.host, name, e))?;
        Ok((bytes.to_vec(), digest, index_digest))
    }

    async fn put_blob(&self, digest: String, bytes: Vec<u8>) -> Result<()> {
        parse_digest(&digest).map_err(Error::InvalidArgument)?;
        let store = self.store.clone();
        blocking(move || {
            if store.has_blob(&digest) {
                return Ok(());
            }
            let size = bytes.len() as u64;
            store.put_blob(&digest, Some(size), &bytes[..])
        })
        .await
    }

    /// Downloads a blob into a temporary file, hashing as it streams; keeps it only when the
    /// digest and size match the descriptor.
    async fn fetch_blob(&self, source: &Source<'_>, descriptor: &OciDescriptor) -> Result<()> {
        let digest = parse_digest(&descriptor.digest).map_err(Error::InvalidArgument)?;
        if self.store.has_blob(&digest) {
            return Ok(());
        }
        let started = Instant::now();
        let expected = u64::try_from(descriptor.size).unwrap_or(0);
        let tmp = tempfile::NamedTempFile::new_in(self.store.layout().image_tmp_dir())
            .context(|| "create a temporary blob".to_string())?;
        let mut file = tokio::fs::File::from_std(
            tmp.reopen()
                .context(|| "open the temporary blob".to_string())?,
        );
        let mut stream = source
            .client
            .pull_blob_stream(&source.reference, descriptor)
            .await
            .map_err(|e| registry_error(&source.host, &digest, e))?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                // The client checks the digest itself at the end of the stream.
                let mismatch = e.get_ref().is_some_and(|inner| inner.is::<DigestError>());
                if mismatch {
                    Error::Corrupt(format!(
                        "blob {digest} from registry {} failed verification: {e}",
                        source.host
                    ))
                } else {
                    Error::Unavailable(format!(
                        "download of {digest} from registry {} broke off: {e}",
                        source.host
                    ))
                }
            })?;
            size += chunk.len() as u64;
            if size > expected {
                return Err(Error::Corrupt(format!(
                    "blob {digest} is larger than its {expected} bytes"
                )));
            }
            hasher.update(&chunk);
            file.write_all(&chunk)
                .await
                .context(|| format!("write blob {digest}"))?;
        }
        file.flush()
            .await
            .context(|| format!("write blob {digest}"))?;
        let got = sha256_digest(hasher);
        if got != digest || size != expected {
            return Err(Error::Corrupt(format!(
                "blob {digest} from registry {} failed verification: got {got}, {size} of {expected} bytes",
                source.host
            )));
        }
        let store = self.store.clone();
        let committed = digest.clone();
        blocking(move || store.commit_blob(tmp, &committed)).await?;
        tracing::info!(digest = %digest, bytes = size, millis = started.elapsed().as_millis() as u64, "blob downloaded");
        Ok(())
    }

    /// Unpacks each layer not unpacked yet; returns the chain ids, bottom first.
    async fn unpack_layers(
        &self,
        name: &str,
        manifest: &OciImageManifest,
        config: &ImageConfig,
    ) -> Result<Vec<Option<String>>> {
        let diff_ids = config
            .rootfs
            .as_ref()
            .map(|r| r.diff_ids.clone())
            .unwrap_or_default();
        if diff_ids.len() != manifest.layers.len() {
            return Err(Error::InvalidArgument(format!(
                "image {name} has {} layers but its config lists {} diff ids",
                manifest.layers.len(),
                diff_ids.len()
            )));
        }
        for diff_id in &diff_ids {
            parse_digest(diff_id).map_err(Error::InvalidArgument)?;
        }
        let chains = chain_ids(&diff_ids);
        for ((layer, diff_id), chain) in manifest.layers.iter().zip(&diff_ids).zip(&chains) {
            let store = self.store.clone();
            let (layer, diff_id, chain) = (layer.clone(), diff_id.clone(), chain.clone());
            blocking(move || unpack_once(&store, &layer, &diff_id, &chain)).await?;
        }
        Ok(chains.into_iter().map(Some).collect())
    }
}

/// Unpacks a layer into a temporary directory beside its destination, checks its diff id, and
/// publishes it by rename, so a crash never leaves a half layer under its chain id.
fn unpack_once(
    store: &ImageStore,
    layer: &OciDescriptor,
    diff_id: &str,
    chain: &str,
) -> Result<()> {
    let dest = store.layout().layer_dir(chain);
    if dest.exists() {
        return Ok(());
    }
    let started = Instant::now();
    let layers = store.layout().layers_dir();
    let tmp = tempfile::Builder::new()
        .prefix(".unpack-")
        .tempdir_in(&layers)
        .with_path("create a temporary layer in", &layers)?;
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .with_path("chmod", tmp.path())?;
    let blob = store.layout().blob(&layer.digest);
    let file = std::fs::File::open(&blob).with_path("open layer blob", &blob)?;
    let got = unpack_layer(file, &layer.media_type, tmp.path())?;
    if got != diff_id {
        return Err(Error::Corrupt(format!(
            "layer {} unpacks to diff id {got}, but the image config says {diff_id}",
            layer.digest
        )));
    }
    // Everything unpacked reaches the disk before the layer is published under its chain id.
    let tree = std::fs::File::open(tmp.path()).with_path("open", tmp.path())?;
    rustix::fs::syncfs(&tree).map_err(|e| Error::io_path("syncfs", tmp.path(), e.into()))?;
    let unpacked = tmp.keep();
    match std::fs::rename(&unpacked, &dest) {
        Ok(()) => sync_dir(&layers)?,
        // Another pull published the same layer first.
        Err(e) if dest.exists() => {
            tracing::debug!(chain, error = %e, "layer already unpacked by another pull");
            std::fs::remove_dir_all(&unpacked).with_path("remove", &unpacked)?;
        }
        Err(e) => return Err(Error::io_path("publish layer", &dest, e)),
    }
    tracing::info!(digest = %layer.digest, chain, millis = started.elapsed().as_millis() as u64, "layer unpacked");
    Ok(())
}

fn sync_dir(dir: &std::path::Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_path("fsync", dir)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("image task failed: {e}")))?
}

/// An error and its causes, "outer: inner: innermost" (a TLS failure sits several levels down).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(inner) = cause {
        let part = inner.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = inner.source();
    }
    text
}

/// Maps a registry client error to the gRPC-facing error, naming the registry.
fn registry_error(host: &str, what: &str, e: OciDistributionError) -> Error {
    let not_found = |code: &OciErrorCode| {
        matches!(
            code,
            OciErrorCode::ManifestUnknown
                | OciErrorCode::BlobUnknown
                | OciErrorCode::NameUnknown
                | OciErrorCode::NotFound
        )
    };
    let denied =
        |code: &OciErrorCode| matches!(code, OciErrorCode::Unauthorized | OciErrorCode::Denied);
    match e {
        OciDistributionError::RequestError(ref inner)
            if inner.is_connect() || inner.is_timeout() =>
        {
            Error::Unavailable(format!(
                "registry {host} is unreachable: {}",
                with_causes(&e)
            ))
        }
        OciDistributionError::RegistryError { ref envelope, .. }
            if envelope.errors.iter().any(|c| not_found(&c.code)) =>
        {
            Error::NotFound(format!("{what} not found in registry {host}"))
        }
        OciDistributionError::ServerError { code: 404, .. } => {
            Error::NotFound(format!("{what} not found in registry {host}"))
        }
        OciDistributionError::RegistryError { ref envelope, .. }
            if envelope.errors.iter().any(|c| denied(&c.code)) =>
        {
            Error::Unauthenticated(format!(
                "registry {host} refused the credentials for {what}: {e}"
            ))
        }
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_)
        | OciDistributionError::ServerError {
            code: 401 | 403, ..
        } => Error::Unauthenticated(format!(
            "registry {host} refused the credentials for {what}: {e}"
        )),
        OciDistributionError::DigestError(_) => Error::Corrupt(format!(
            "{what} from registry {host} failed verification: {e}"
        )),
        OciDistributionError::RequestError(_) | OciDistributionError::IoError(_) => {
            Error::Unavailable(format!("registry {host}: {what}: {}", with_causes(&e)))
        }
        other => Error::Internal(format!("registry {host}: {what}: {other}")),
    }
}
