//! Recognising wasm artifacts by the rules of ARCHITECTURE.md: manifest artifactType or config
//! media type, wasm layer media types, or a wasi/wasm platform.

use oci_client::manifest::OciImageManifest;

use crate::image::platform::is_wasm_platform;
use crate::image::store::ImageKind;

/// Config media types of wasm artifacts (v0 as written by the spec draft, v1 by some tools).
pub const WASM_CONFIG_MEDIA_TYPES: [&str; 2] = [
    "application/vnd.wasm.config.v0+json",
    "application/vnd.wasm.config.v1+json",
];

/// Layer media types that hold a wasm module or component.
pub const WASM_LAYER_MEDIA_TYPES: [&str; 3] = [
    "application/wasm",
    "application/vnd.wasm.content.layer.v1+wasm",
    "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm",
];

/// Linux or wasm, from the manifest and the config's os/architecture.
pub fn classify(manifest: &OciImageManifest, os: &str, arch: &str) -> ImageKind {
    let artifact_wasm = manifest
        .artifact_type
        .as_deref()
        .is_some_and(|t| WASM_CONFIG_MEDIA_TYPES.contains(&t) || t.contains("wasm"));
    let config_wasm = WASM_CONFIG_MEDIA_TYPES.contains(&manifest.config.media_type.as_str());
    let layers_wasm = manifest
        .layers
        .iter()
        .any(|l| WASM_LAYER_MEDIA_TYPES.contains(&l.media_type.as_str()));
    if artifact_wasm || config_wasm || layers_wasm || is_wasm_platform(os, arch) {
        ImageKind::Wasm
    } else {
        ImageKind::Linux
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_client::manifest::OciDescriptor;

    fn manifest(config_type: &str, layer_type: &str) -> OciImageManifest {
        OciImageManifest {
            config: OciDescriptor {
                media_type: config_type.to_string(),
                ..Default::default()
            },
            layers: vec![OciDescriptor {
                media_type: layer_type.to_string(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn each_rule_detects_wasm() {
        let oci_config = "application/vnd.oci.image.config.v1+json";
        let tar = "application/vnd.oci.image.layer.v1.tar+gzip";
        assert_eq!(
            classify(&manifest(oci_config, tar), "linux", "amd64"),
            ImageKind::Linux
        );
        for config in WASM_CONFIG_MEDIA_TYPES {
            assert_eq!(classify(&manifest(config, tar), "", ""), ImageKind::Wasm);
        }
        for layer in WASM_LAYER_MEDIA_TYPES {
            assert_eq!(
                classify(&manifest(oci_config, layer), "", ""),
                ImageKind::Wasm
            );
        }
        assert_eq!(
            classify(&manifest(oci_config, tar), "wasi", "wasm"),
            ImageKind::Wasm
        );
        let mut artifact = manifest(oci_config, tar);
        artifact.artifact_type = Some("application/vnd.wasm.config.v0+json".into());
        assert_eq!(classify(&artifact, "", ""), ImageKind::Wasm);
    }
}
