//! Registry credentials: from the PullImage request's AuthConfig, else from a Docker
//! `config.json` named in the config.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use cri_proto::AuthConfig;
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;

use crate::error::{Error, IoContext, Result};

#[derive(Debug, Default, Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, DockerAuth>,
}

#[derive(Debug, Default, Deserialize)]
struct DockerAuth {
    #[serde(default)]
    auth: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default, rename = "identitytoken")]
    identity_token: String,
    #[serde(default, rename = "registrytoken")]
    registry_token: String,
}

/// Credentials for a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// Usable as they are.
    Ready(RegistryAuth),
    /// An identity (refresh) token, traded for an access token per registry host.
    IdentityToken(String),
}

/// The credentials to use for `registry`: the request's (when they are for it), else the
/// Docker config's entry for it, else anonymous.
pub fn resolve(
    request: Option<&AuthConfig>,
    docker_config: Option<&Path>,
    registry: &str,
) -> Result<Credentials> {
    // Request credentials are for the image's registry (and its server_address, when set).
    let request = request
        .filter(|a| a.server_address.is_empty() || server_host(&a.server_address) == registry);
    if let Some(auth) = request.and_then(|a| {
        from_fields(
            &a.username,
            &a.password,
            &a.auth,
            &a.identity_token,
            &a.registry_token,
        )
        .transpose()
    }) {
        return auth;
    }
    let anonymous = Credentials::Ready(RegistryAuth::Anonymous);
    let Some(path) = docker_config else {
        return Ok(anonymous);
    };
    let text = std::fs::read_to_string(path).with_path("read docker config", path)?;
    let config: DockerConfig = serde_json::from_str(&text)
        .map_err(|e| Error::InvalidArgument(format!("docker config {}: {e}", path.display())))?;
    let entry = config
        .auths
        .iter()
        .find(|(key, _)| server_host(key) == registry);
    match entry {
        Some((_, a)) => Ok(from_fields(
            &a.username,
            &a.password,
            &a.auth,
            &a.identity_token,
            &a.registry_token,
        )?
        .unwrap_or(anonymous)),
        None => Ok(anonymous),
    }
}

/// `https://index.docker.io/v1/` → `docker.io`; `https://host:5000/x` → `host:5000`.
fn server_host(key: &str) -> &str {
    let host = key
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default();
    if host == "index.docker.io" || host == "registry-1.docker.io" {
        "docker.io"
    } else {
        host
    }
}

fn from_fields(
    username: &str,
    password: &str,
    auth: &str,
    identity_token: &str,
    registry_token: &str,
) -> Result<Option<Credentials>> {
    if !registry_token.is_empty() {
        return Ok(Some(Credentials::Ready(RegistryAuth::Bearer(
            registry_token.to_string(),
        ))));
    }
    if !identity_token.is_empty() {
        return Ok(Some(Credentials::IdentityToken(identity_token.to_string())));
    }
    if !username.is_empty() {
        return Ok(Some(Credentials::Ready(RegistryAuth::Basic(
            username.to_string(),
            password.to_string(),
        ))));
    }
    if !auth.is_empty() {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|e| Error::InvalidArgument(format!("auth is not base64: {e}")))?;
        let decoded = String::from_utf8(decoded)
            .map_err(|_| Error::InvalidArgument("auth is not UTF-8".into()))?;
        let (user, pass) = decoded
            .split_once(':')
            .ok_or_else(|| Error::InvalidArgument("auth is not base64 of user:password".into()))?;
        return Ok(Some(Credentials::Ready(RegistryAuth::Basic(
            user.to_string(),
            pass.to_string(),
        ))));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_credentials_come_first() {
        let request = AuthConfig {
            username: "u".into(),
            password: "p".into(),
            ..Default::default()
        };
        assert_eq!(
            resolve(Some(&request), None, "r").unwrap(),
            Credentials::Ready(RegistryAuth::Basic("u".into(), "p".into()))
        );
        let encoded = AuthConfig {
            auth: base64::engine::general_purpose::STANDARD.encode("a:b:c"),
            ..Default::default()
        };
        assert_eq!(
            resolve(Some(&encoded), None, "r").unwrap(),
            Credentials::Ready(RegistryAuth::Basic("a".into(), "b:c".into()))
        );
        let token = AuthConfig {
            registry_token: "t".into(),
            ..Default::default()
        };
        assert_eq!(
            resolve(Some(&token), None, "r").unwrap(),
            Credentials::Ready(RegistryAuth::Bearer("t".into()))
        );
        let identity = AuthConfig {
            identity_token: "i".into(),
            ..Default::default()
        };
        assert!(matches!(
            resolve(Some(&identity), None, "r"),
            Ok(Credentials::IdentityToken(_))
        ));
        assert_eq!(
            resolve(Some(&AuthConfig::default()), None, "r").unwrap(),
            Credentials::Ready(RegistryAuth::Anonymous)
        );
    }

    #[test]
    fn request_credentials_for_another_server_are_not_used() {
        let request = AuthConfig {
            username: "u".into(),
            password: "p".into(),
            server_address: "https://index.docker.io/v1/".into(),
            ..Default::default()
        };
        assert_eq!(
            resolve(Some(&request), None, "docker.io").unwrap(),
            Credentials::Ready(RegistryAuth::Basic("u".into(), "p".into()))
        );
        assert_eq!(
            resolve(Some(&request), None, "mirror.local:5000").unwrap(),
            Credentials::Ready(RegistryAuth::Anonymous)
        );
    }

    #[test]
    fn docker_config_by_registry_host() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let auth = base64::engine::general_purpose::STANDARD.encode("hub:secret");
        std::fs::write(
            &path,
            format!(r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{auth}"}},"127.0.0.1:5000":{{"username":"l","password":"p"}}}}}}"#),
        )
        .unwrap();
        assert_eq!(
            resolve(None, Some(&path), "docker.io").unwrap(),
            Credentials::Ready(RegistryAuth::Basic("hub".into(), "secret".into()))
        );
        assert_eq!(
            resolve(None, Some(&path), "127.0.0.1:5000").unwrap(),
            Credentials::Ready(RegistryAuth::Basic("l".into(), "p".into()))
        );
        assert_eq!(
            resolve(None, Some(&path), "quay.io").unwrap(),
            Credentials::Ready(RegistryAuth::Anonymous)
        );
    }
}
