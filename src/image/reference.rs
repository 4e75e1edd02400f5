//! Image references, parsed and normalised the way kubelet and Docker write them:
//! `busybox` → `docker.io/library/busybox:latest`, `foo/bar` → `docker.io/foo/bar:latest`,
//! `host:5000/x` keeps its registry, `name@sha256:…` is a digest reference.

use std::fmt;

use crate::error::{Error, Result};

/// The registry of unqualified names.
pub const DEFAULT_REGISTRY: &str = "docker.io";
const MAX_NAME: usize = 255;

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// Registry host (and port): `docker.io`, `127.0.0.1:5000`.
    pub registry: String,
    /// Repository path in the registry: `library/busybox`.
    pub repository: String,
    /// The tag, when the reference is not by digest.
    pub tag: Option<String>,
    /// `sha256:<64 hex>` when the reference is by digest.
    pub digest: Option<String>,
}

impl ImageRef {
    /// Parses and normalises `text`; InvalidArgument says what is wrong.
    pub fn parse(text: &str) -> Result<ImageRef> {
        let invalid =
            |why: &str| Error::InvalidArgument(format!("invalid image reference {text:?}: {why}"));
        if text.is_empty() {
            return Err(invalid("it is empty"));
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("it contains whitespace"));
        }
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => (
                rest,
                Some(parse_digest(digest).map_err(|why| invalid(&why))?),
            ),
            None => (text, None),
        };
        // A tag follows the last ':' that comes after the last '/' (a ':' before is a port).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag {
            if !valid_tag(tag) {
                return Err(invalid(&format!("tag {tag:?} is not valid")));
            }
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, path)) if first.contains(['.', ':']) || first == "localhost" => {
                (first, path)
            }
            _ => (DEFAULT_REGISTRY, name),
        };
        if !valid_registry(registry) {
            return Err(invalid(&format!("registry {registry:?} is not valid")));
        }
        let registry = if registry == "index.docker.io" {
            DEFAULT_REGISTRY
        } else {
            registry
        };
        if path.is_empty() || !path.split('/').all(valid_path_component) {
            return Err(invalid(
                "repository names are lowercase letters, digits and separators . _ - /",
            ));
        }
        let repository = if registry == DEFAULT_REGISTRY && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        if registry.len() + 1 + repository.len() > MAX_NAME {
            return Err(invalid("the name is longer than 255 characters"));
        }
        // A digest pins the content: a tag given beside it is not kept (as containerd does).
        let tag = match (&digest, tag) {
            (Some(_), _) => None,
            (None, Some(tag)) => Some(tag.to_string()),
            (None, None) => Some("latest".to_string()),
        };
        Ok(ImageRef {
            registry: registry.to_string(),
            repository,
            tag,
            digest,
        })
    }

    /// `registry/repository`, the name part of repo tags and repo digests.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// `name:tag` when the reference has a tag.
    pub fn repo_tag(&self) -> Option<String> {
        self.tag.as_ref().map(|t| format!("{}:{t}", self.name()))
    }

    /// `name@digest` for a manifest digest.
    pub fn repo_digest(&self, digest: &str) -> String {
        format!("{}@{digest}", self.name())
    }

    /// What to ask the registry for: the digest when there is one, else the tag.
    pub fn manifest_key(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.digest, &self.tag) {
            (Some(d), _) => write!(f, "{}@{d}", self.name()),
            (None, Some(t)) => write!(f, "{}:{t}", self.name()),
            (None, None) => write!(f, "{}", self.name()),
        }
    }
}

/// Checks a `sha256:<64 lowercase hex>` digest; the only algorithm registries use.
pub fn parse_digest(text: &str) -> std::result::Result<String, String> {
    match text.split_once(':') {
        Some(("sha256", hex))
            if hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) =>
        {
            Ok(text.to_string())
        }
        _ => Err(format!(
            "digest {text:?} is not sha256:<64 lowercase hex digits>"
        )),
    }
}

/// True for a full image id or `sha256:`-prefixed id.
pub fn looks_like_id(text: &str) -> bool {
    let hex = text.strip_prefix("sha256:").unwrap_or(text);
    hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn valid_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric() || c == '_')
        && tag.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn valid_registry(registry: &str) -> bool {
    let (host, port) = match registry.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (registry, None),
    };
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
        && port
            .is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// A path component: lowercase alphanumerics joined by single separators `.`, `_`, `__`, `-`+.
fn valid_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let ok = separator == "."
            || separator == "_"
            || separator == "__"
            || separator.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(text: &str) -> String {
        ImageRef::parse(text).unwrap().to_string()
    }

    #[test]
    fn normalises_like_kubelet() {
        assert_eq!(norm("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(norm("foo/bar"), "docker.io/foo/bar:latest");
        assert_eq!(
            norm("index.docker.io/library/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            norm("127.0.0.1:5000/test/busybox:v1"),
            "127.0.0.1:5000/test/busybox:v1"
        );
        assert_eq!(norm("localhost/app"), "localhost/app:latest");
        assert_eq!(
            norm("registry.k8s.io/pause:3.9"),
            "registry.k8s.io/pause:3.9"
        );
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            norm(&format!("busybox@{digest}")),
            format!("docker.io/library/busybox@{digest}")
        );
        assert_eq!(
            norm(&format!("busybox:1.0@{digest}")),
            format!("docker.io/library/busybox@{digest}")
        );
        let r = ImageRef::parse("127.0.0.1:5000/a/b").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("127.0.0.1:5000", "a/b")
        );
        assert_eq!(r.repo_tag().as_deref(), Some("127.0.0.1:5000/a/b:latest"));
        assert_eq!(r.manifest_key(), "latest");
    }

    #[test]
    fn rejects_malformed_references() {
        for bad in [
            "",
            "Busybox",
            "busy box",
            "busybox:",
            "busybox:-x",
            "busybox@sha256:abc",
            "busybox@md5:00",
            "a//b",
            "-a",
            "a/b-",
            "host:port/x",
            "a..b",
            &format!("x:{}", "t".repeat(129)),
        ] {
            let err = ImageRef::parse(bad).unwrap_err();
            assert!(
                matches!(err, Error::InvalidArgument(_)),
                "{bad:?} gave {err}"
            );
        }
    }

    #[test]
    fn ids_and_digests() {
        assert!(looks_like_id(&"ab".repeat(32)));
        assert!(looks_like_id(&format!("sha256:{}", "0".repeat(64))));
        assert!(!looks_like_id("busybox"));
        assert!(parse_digest(&format!("sha256:{}", "A".repeat(64))).is_err());
    }
}
