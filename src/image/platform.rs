//! Choosing the manifest for this host from an image index, and image config parsing.

use oci_client::manifest::ImageIndexEntry;
use serde::Deserialize;

use crate::error::{Error, Result};

/// The host's platform in OCI terms (`linux/amd64` on x86-64).
pub fn host_platform() -> (&'static str, &'static str) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    ("linux", arch)
}

/// True for the platforms a wasm artifact declares (`wasi/wasm`, and `wasip1`/`wasip2` or
/// `wasm32` spellings some tools write).
pub fn is_wasm_platform(os: &str, arch: &str) -> bool {
    os.starts_with("wasi") && arch.starts_with("wasm")
}

fn describe(entry: &ImageIndexEntry) -> String {
    match &entry.platform {
        Some(p) => match &p.variant {
            Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
            None => format!("{}/{}", p.os, p.architecture),
        },
        None => "unknown".to_string(),
    }
}

/// Picks the host platform's manifest, or the wasm one when there is no Linux one for this
/// host. The error lists the platforms the index has.
pub fn select<'a>(image: &str, entries: &'a [ImageIndexEntry]) -> Result<&'a ImageIndexEntry> {
    let (os, arch) = host_platform();
    let matching = |want: &dyn Fn(&str, &str) -> bool| {
        entries.iter().find(|e| {
            e.platform
                .as_ref()
                .is_some_and(|p| want(&p.os.to_string(), &p.architecture.to_string()))
        })
    };
    matching(&|o, a| o == os && a == arch)
        .or_else(|| matching(&is_wasm_platform))
        .ok_or_else(|| {
            let have: Vec<String> = entries.iter().map(describe).collect();
            Error::NotFound(format!(
                "image {image} has no {os}/{arch} or wasi/wasm variant; it has: {}",
                have.join(", ")
            ))
        })
}

/// The parts of an image config crishim reads. Every field is optional, so wasm configs
/// (which have another shape) parse too.
#[derive(Debug, Default, Deserialize)]
pub struct ImageConfig {
    /// `amd64`, `wasm`, ...
    #[serde(default)]
    pub architecture: String,
    /// `linux`, `wasi`, ...
    #[serde(default)]
    pub os: String,
    /// The run config.
    #[serde(default)]
    pub config: Option<RunConfig>,
    /// The layers' diff ids.
    #[serde(default)]
    pub rootfs: Option<RootFs>,
}

/// The `config` object of an image config.
#[derive(Debug, Default, Deserialize)]
pub struct RunConfig {
    /// `User`: a name, uid, or `uid:gid`.
    #[serde(rename = "User", default)]
    pub user: Option<String>,
    /// `Entrypoint`.
    #[serde(rename = "Entrypoint", default)]
    pub entrypoint: Option<Vec<String>>,
    /// `Cmd`.
    #[serde(rename = "Cmd", default)]
    pub cmd: Option<Vec<String>>,
    /// `Env`: `NAME=value` entries.
    #[serde(rename = "Env", default)]
    pub env: Option<Vec<String>>,
    /// `WorkingDir`.
    #[serde(rename = "WorkingDir", default)]
    pub working_dir: Option<String>,
    /// `StopSignal`: the signal StopContainer sends first (a name like `SIGQUIT` or a number).
    #[serde(rename = "StopSignal", default)]
    pub stop_signal: Option<String>,
}

/// The `rootfs` object of an image config.
#[derive(Debug, Default, Deserialize)]
pub struct RootFs {
    /// Digests of the uncompressed layers, bottom first.
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

impl ImageConfig {
    /// Parses a config blob; a config that is not JSON is an error naming the image.
    pub fn parse(image: &str, bytes: &[u8]) -> Result<ImageConfig> {
        serde_json::from_slice(bytes).map_err(|e| {
            Error::InvalidArgument(format!("image {image} has an invalid config: {e}"))
        })
    }

    /// The program the image runs: the first word of Entrypoint, else of Cmd.
    pub fn program(&self) -> Option<String> {
        let config = self.config.as_ref()?;
        [&config.entrypoint, &config.cmd]
            .into_iter()
            .find_map(|words| words.as_ref().and_then(|w| w.first()).cloned())
    }

    /// The config's User, or empty.
    pub fn user(&self) -> String {
        self.config
            .as_ref()
            .and_then(|c| c.user.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_client::config::{Architecture, Os};
    use oci_client::manifest::Platform;

    fn entry(os: &str, arch: &str) -> ImageIndexEntry {
        ImageIndexEntry {
            media_type: oci_client::manifest::OCI_IMAGE_MEDIA_TYPE.to_string(),
            digest: format!("sha256:{os}{arch}"),
            size: 1,
            platform: Some(Platform {
                architecture: Architecture::from(arch),
                os: Os::from(os),
                os_version: None,
                os_features: None,
                variant: None,
                features: None,
            }),
            annotations: None,
            artifact_type: None,
        }
    }

    #[test]
    fn prefers_the_host_then_wasm_and_lists_what_there_is() {
        let (os, arch) = host_platform();
        let entries = [
            entry("linux", "s390x"),
            entry("wasi", "wasm"),
            entry(os, arch),
        ];
        assert_eq!(
            select("x", &entries).unwrap().digest,
            format!("sha256:{os}{arch}")
        );
        assert_eq!(
            select("x", &entries[..2]).unwrap().digest,
            "sha256:wasiwasm"
        );
        let err = select("x", &entries[..1]).unwrap_err().to_string();
        assert!(err.contains("it has: linux/s390x"), "{err}");
    }

    #[test]
    fn config_fields_are_optional() {
        let config = ImageConfig::parse("x", br#"{"architecture":"amd64","os":"linux","config":{"User":"1000:1000"},"rootfs":{"type":"layers","diff_ids":["sha256:a"]}}"#).unwrap();
        assert_eq!(config.user(), "1000:1000");
        assert_eq!(config.program(), None);
        let with_cmd = ImageConfig::parse("x", br#"{"config":{"Cmd":["/app.wasm","a"]}}"#).unwrap();
        assert_eq!(with_cmd.program().as_deref(), Some("/app.wasm"));
        let both =
            ImageConfig::parse("x", br#"{"config":{"Entrypoint":["/e"],"Cmd":["/c"]}}"#).unwrap();
        assert_eq!(both.program().as_deref(), Some("/e"));
        assert_eq!(config.rootfs.unwrap().diff_ids.len(), 1);
        assert_eq!(ImageConfig::parse("x", b"{}").unwrap().user(), "");
        assert!(ImageConfig::parse("x", b"nope").is_err());
    }
}
