//! The domain side of ImageService: pull, status, list, remove, filesystem usage, in CRI terms.

use std::collections::HashMap;
use std::sync::Arc;

use cri_proto::{
    FilesystemIdentifier, FilesystemUsage, Image, ImageFilter, ImageFsInfoResponse, ImageSpec,
    Int64Value, UInt64Value,
};
use serde_json::json;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::image::platform::{ImageConfig, RunConfig};
use crate::image::precompile::{Precompiled, Precompiler};
use crate::image::pull::Puller;
use crate::image::store::{ImageRecord, ImageStore};
use crate::sandbox::now_nanos;
use crate::store::layout::Layout;

/// Images of one daemon.
pub struct Images {
    store: Arc<ImageStore>,
    precompiler: Arc<Precompiler>,
    puller: Puller,
}

fn image_name(spec: Option<&ImageSpec>) -> Result<&str> {
    match spec.map(|s| s.image.as_str()) {
        Some(name) if !name.is_empty() => Ok(name),
        _ => Err(Error::InvalidArgument(
            "image spec is required (ImageSpec.image is empty)".into(),
        )),
    }
}

/// The CRI view of an image record.
pub fn to_cri(record: &ImageRecord) -> Image {
    let user = record.user.split(':').next().unwrap_or_default();
    let (uid, username) = match user.parse::<i64>() {
        Ok(uid) => (Some(Int64Value { value: uid }), String::new()),
        Err(_) => (None, user.to_string()),
    };
    Image {
        id: record.id.clone(),
        repo_tags: record.repo_tags.clone(),
        repo_digests: record.repo_digests.clone(),
        size: record.size,
        uid,
        username,
        spec: Some(ImageSpec {
            image: record.id.clone(),
            ..Default::default()
        }),
        pinned: false,
    }
}

impl Images {
    /// Opens the image store of `config`.
    pub fn open(config: Arc<Config>) -> Result<Images> {
        let store = Arc::new(ImageStore::open(Layout::new(&config.root, &config.state))?);
        let precompiler = Arc::new(Precompiler::new()?);
        // Images pulled under another wasmtime (an upgrade) are compiled again now, not at start.
        for image in store.list() {
            if let Err(e) = precompiler.ensure(&store, &image) {
                tracing::error!(id = %image.id, error = %e, "cannot precompile a stored wasm image");
            }
        }
        let puller = Puller::new(config, store.clone(), precompiler.clone());
        Ok(Images {
            store,
            precompiler,
            puller,
        })
    }

    /// The store (containers lease layers from it).
    pub fn store(&self) -> &Arc<ImageStore> {
        &self.store
    }

    /// The precompiled artifact a wasm container of `image` runs: the image's wasm layer, or
    /// its program file when that is wasm. None for an image with no wasm in it.
    pub fn wasm_artifact(&self, image: &ImageRecord) -> Result<Option<Precompiled>> {
        if let Some(first) = self
            .precompiler
            .ensure(&self.store, image)?
            .into_iter()
            .next()
        {
            return Ok(Some(first));
        }
        self.precompiler.program_artifact(&self.store, image)
    }

    /// The image's run config (Entrypoint, Cmd, Env, WorkingDir); empty for configs of
    /// another shape (wasm artifacts).
    pub fn run_config(&self, image: &ImageRecord) -> Result<RunConfig> {
        let bytes = self.store.read_blob(&image.id)?;
        Ok(ImageConfig::parse(&image.id, &bytes)
            .ok()
            .and_then(|c| c.config)
            .unwrap_or_default())
    }

    /// PullImage: returns the image id.
    pub async fn pull(
        &self,
        spec: Option<&ImageSpec>,
        auth: Option<&cri_proto::AuthConfig>,
    ) -> Result<String> {
        let name = image_name(spec)?;
        Ok(self.puller.pull(name, auth).await?.id)
    }

    /// ImageStatus: a missing image is success with no image, as CRI requires.
    pub fn status(
        &self,
        spec: Option<&ImageSpec>,
        verbose: bool,
    ) -> Result<(Option<Image>, HashMap<String, String>)> {
        let Some(record) = self.store.find(image_name(spec)?)? else {
            return Ok((None, HashMap::new()));
        };
        let info = if verbose {
            let value = json!({
                "kind": record.kind,
                "platform": record.platform,
                "manifestDigest": record.manifest_digest,
                "manifestMediaType": record.manifest_media_type,
                "artifactType": record.artifact_type,
                "configMediaType": record.config_media_type,
                "layers": record.layers,
                "user": record.user,
                "precompiled": self.precompiler.existing(&self.store, &record),
            });
            HashMap::from([("info".to_string(), value.to_string())])
        } else {
            HashMap::new()
        };
        Ok((Some(to_cri(&record)), info))
    }

    /// ListImages, optionally only those matching the filter's image.
    pub fn list(&self, filter: Option<&ImageFilter>) -> Result<Vec<Image>> {
        let wanted = filter
            .and_then(|f| f.image.as_ref())
            .map(|s| s.image.as_str())
            .filter(|s| !s.is_empty());
        let records = match wanted {
            Some(name) => self.store.find(name)?.into_iter().collect(),
            None => self.store.list(),
        };
        Ok(records.iter().map(to_cri).collect())
    }

    /// RemoveImage by id, tag or digest; a missing image is success.
    pub fn remove(&self, spec: Option<&ImageSpec>) -> Result<()> {
        let Some(record) = self.store.find(image_name(spec)?)? else {
            return Ok(());
        };
        let freed = self.store.remove(&record.id)?;
        tracing::info!(id = %record.id, blobs = freed.blobs, layers = freed.layers, "image removed");
        Ok(())
    }

    /// ImageFsInfo: bytes and inodes the store uses, on the root's filesystem.
    pub fn fs_info(&self) -> ImageFsInfoResponse {
        let (bytes, inodes) = self.store.usage();
        let usage = FilesystemUsage {
            timestamp: now_nanos(),
            fs_id: Some(FilesystemIdentifier {
                mountpoint: self.store.layout().root().display().to_string(),
            }),
            used_bytes: Some(UInt64Value { value: bytes }),
            inodes_used: Some(UInt64Value { value: inodes }),
        };
        ImageFsInfoResponse {
            image_filesystems: vec![usage],
            container_filesystems: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::store::ImageKind;

    fn record(user: &str) -> ImageRecord {
        ImageRecord {
            id: format!("sha256:{}", "a".repeat(64)),
            repo_tags: vec!["docker.io/library/x:latest".into()],
            repo_digests: Vec::new(),
            manifest_digest: String::new(),
            manifest_media_type: String::new(),
            artifact_type: None,
            config_media_type: String::new(),
            kind: ImageKind::Linux,
            platform: "linux/amd64".into(),
            size: 42,
            layers: Vec::new(),
            user: user.into(),
            program: None,
            other_blobs: Vec::new(),
        }
    }

    #[test]
    fn user_becomes_uid_or_username_as_kubelet_reads_them() {
        let numeric = to_cri(&record("1000:1000"));
        assert_eq!(numeric.uid.map(|u| u.value), Some(1000));
        assert_eq!(numeric.username, "");
        let named = to_cri(&record("app:app"));
        assert_eq!(named.uid, None);
        assert_eq!(named.username, "app");
        let unset = to_cri(&record(""));
        assert_eq!((unset.uid, unset.username.as_str()), (None, ""));
        assert_eq!(unset.size, 42);
        assert_eq!(unset.spec.unwrap().image, unset.id);
    }
}
