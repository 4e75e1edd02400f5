//! A real OCI registry on 127.0.0.1 (Debian's docker-registry, through hack/registry.sh) with
//! the test images pushed by crishim-testimages. Each test gets its own, stopped on drop.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A running registry and what was pushed to it.
pub struct TestRegistry {
    dir: tempfile::TempDir,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// crishim-testimages' summary: image name → reference, manifest, id, layers.
    pub summary: serde_json::Value,
}

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

impl TestRegistry {
    /// A registry without auth holding `images`.
    pub fn start(images: &[&str]) -> TestRegistry {
        Self::launch(None, images, &[])
    }

    /// A registry requiring basic auth as `user`/`password`, holding `images`.
    pub fn start_with_auth(user: &str, password: &str, images: &[&str]) -> TestRegistry {
        Self::launch(Some((user, password)), images, &[])
    }

    /// A registry serving HTTPS with `cert`/`key`, holding `images` (pushed trusting `ca`).
    pub fn start_tls(images: &[&str], cert: &Path, key: &Path, ca: &Path) -> TestRegistry {
        let ca = ca.display().to_string();
        Self::launch_with(
            None,
            images,
            &[],
            &[("TLS_CERT", cert.as_os_str()), ("TLS_KEY", key.as_os_str())],
            &["--ca", &ca],
        )
    }

    /// A registry holding `images`, built with extra environment for the image builder.
    pub fn launch(
        auth: Option<(&str, &str)>,
        images: &[&str],
        env: &[(&str, &str)],
    ) -> TestRegistry {
        Self::launch_with(auth, images, env, &[], &[])
    }

    fn launch_with(
        auth: Option<(&str, &str)>,
        images: &[&str],
        env: &[(&str, &str)],
        registry_env: &[(&str, &std::ffi::OsStr)],
        push_args: &[&str],
    ) -> TestRegistry {
        super::require_root();
        let dir = tempfile::Builder::new()
            .prefix("crishim-registry-")
            .tempdir()
            .expect("tempdir");
        let mut start = Command::new(repo_root().join("hack/registry.sh"));
        start
            .arg("start")
            .arg(dir.path())
            .arg("0")
            .envs(registry_env.iter().copied());
        if let Some((user, password)) = auth {
            start.args([user, password]);
        }
        let out = start.output().expect("run hack/registry.sh");
        assert!(
            out.status.success(),
            "hack/registry.sh start failed (run hack/setup.sh to install docker-registry): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let addr = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let mut registry = TestRegistry {
            dir,
            addr,
            summary: serde_json::Value::Null,
        };
        registry.summary = registry.push(auth, images, env, push_args);
        registry
    }

    fn push(
        &self,
        auth: Option<(&str, &str)>,
        images: &[&str],
        env: &[(&str, &str)],
        args: &[&str],
    ) -> serde_json::Value {
        let mut push = Command::new(env!("CARGO_BIN_EXE_crishim-testimages"));
        push.arg("--registry").arg(&self.addr).args(args);
        for image in images {
            push.arg("--image").arg(image);
        }
        if let Some((user, password)) = auth {
            push.args(["--username", user, "--password", password]);
        }
        for (key, value) in env {
            push.env(key, value);
        }
        let out = push.output().expect("run crishim-testimages");
        assert!(
            out.status.success(),
            "crishim-testimages failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("summary JSON")
    }

    /// `addr/test/NAME:latest`.
    pub fn reference(&self, name: &str) -> String {
        format!("{}/test/{name}:latest", self.addr)
    }

    /// A field of an image's summary (`id`, `manifest`).
    pub fn field(&self, name: &str, field: &str) -> String {
        self.summary[name][field]
            .as_str()
            .unwrap_or_else(|| panic!("no {field} for {name}"))
            .to_string()
    }

    /// Layer digests of an image.
    pub fn layers(&self, name: &str) -> Vec<String> {
        self.summary[name]["layers"]
            .as_array()
            .expect("layers")
            .iter()
            .map(|d| d.as_str().expect("digest").to_string())
            .collect()
    }

    /// Where the registry keeps a blob's content on disk (to corrupt it).
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .path()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// Stops the registry (by its PID file).
    pub fn stop(&self) {
        let _ = Command::new(repo_root().join("hack/registry.sh"))
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}
