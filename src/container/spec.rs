//! What a wasm container runs, from the CRI config and the image: argv (as `wasmtime run`
//! builds it), environment, preopened directories, the log path.

use std::path::{Component, Path, PathBuf};

use cri_proto::ContainerConfig;

use crate::error::{Error, Result};
use crate::image::platform::RunConfig;
use crate::runtime::stdin::StdinMode;
use crate::runtime::wasm::launch::Preopen;

/// argv: the CRI command replaces the entrypoint (argv[0] included) and the CRI args replace
/// the image's Cmd. Without a command, argv[0] is the image's entrypoint, else its program
/// (the first word of Cmd), else `name` (the module's file name or the image name), never the
/// first argument.
pub fn argv(config: &ContainerConfig, run: &RunConfig, name: &str) -> Vec<String> {
    if !config.command.is_empty() {
        return config.command.iter().chain(&config.args).cloned().collect();
    }
    let entrypoint = run.entrypoint.clone().unwrap_or_default();
    let cmd = run.cmd.clone().unwrap_or_default();
    let args = |image_args: &[String]| {
        if config.args.is_empty() {
            image_args.to_vec()
        } else {
            config.args.clone()
        }
    };
    match (entrypoint.split_first(), cmd.split_first()) {
        (Some((first, rest)), _) => {
            let mut argv = vec![first.clone()];
            argv.extend_from_slice(rest);
            argv.extend(args(&cmd));
            argv
        }
        (None, Some((program, rest))) => {
            let mut argv = vec![program.clone()];
            argv.extend(args(rest));
            argv
        }
        (None, None) => {
            let mut argv = vec![name.to_string()];
            argv.extend(args(&[]));
            argv
        }
    }
}

/// The image's environment, then the CRI's (a CRI variable replaces the image's).
pub fn env(config: &ContainerConfig, run: &RunConfig) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::new();
    let image = run.env.clone().unwrap_or_default();
    let pairs = image
        .iter()
        .map(|e| match e.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (e.clone(), String::new()),
        })
        .chain(
            config
                .envs
                .iter()
                .map(|kv| (kv.key.clone(), kv.value.clone())),
        );
    for (key, value) in pairs {
        match env.iter_mut().find(|(k, _)| *k == key) {
            Some(existing) => existing.1 = value,
            None => env.push((key, value)),
        }
    }
    env
}

/// Every CRI mount as a preopened directory at its container path. WASI preopens are
/// directories, so a host path must be an existing directory.
pub fn preopens(config: &ContainerConfig) -> Result<Vec<Preopen>> {
    config
        .mounts
        .iter()
        .map(|m| {
            if !Path::new(&m.container_path).is_absolute() {
                return Err(Error::InvalidArgument(format!(
                    "mount container path {:?} is not absolute",
                    m.container_path
                )));
            }
            let host = Path::new(&m.host_path);
            if !host.is_dir() {
                return Err(Error::InvalidArgument(format!(
                    "mount host path {:?} {}",
                    m.host_path,
                    if host.exists() {
                        "is not a directory (a wasm container can mount directories only)"
                    } else {
                        "does not exist"
                    }
                )));
            }
            Ok(Preopen {
                host: host.to_path_buf(),
                guest: m.container_path.clone(),
                readonly: m.readonly,
            })
        })
        .collect()
}

/// The container's stdin as its config asks: `stdin_once` only means something with `stdin`.
pub fn stdin_mode(config: &ContainerConfig) -> StdinMode {
    StdinMode {
        open: config.stdin,
        once: config.stdin && config.stdin_once,
    }
}

/// The log file: the pod's log directory joined with the container's relative log path,
/// which may not climb out of it. None when either is empty (output is discarded).
pub fn log_path(log_directory: &str, log_path: &str) -> Result<Option<PathBuf>> {
    if log_directory.is_empty() || log_path.is_empty() {
        return Ok(None);
    }
    let relative = Path::new(log_path);
    let contained = relative
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !contained {
        return Err(Error::InvalidArgument(format!(
            "log path {log_path:?} must be relative to the pod's log directory, without \"..\""
        )));
    }
    Ok(Some(Path::new(log_directory).join(relative)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cri_proto::{KeyValue, Mount};

    fn run(entrypoint: &[&str], cmd: &[&str]) -> RunConfig {
        let words = |w: &[&str]| (!w.is_empty()).then(|| w.iter().map(|s| s.to_string()).collect());
        RunConfig {
            entrypoint: words(entrypoint),
            cmd: words(cmd),
            env: Some(vec!["A=image".into(), "B=image".into()]),
            ..Default::default()
        }
    }

    fn config(command: &[&str], args: &[&str]) -> ContainerConfig {
        ContainerConfig {
            command: command.iter().map(|s| s.to_string()).collect(),
            args: args.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn argv_keeps_argv0_whatever_the_cri_args() {
        let module = run(&[], &[]);
        assert_eq!(
            argv(&config(&[], &["a", "b"]), &module, "hello.wasm"),
            ["hello.wasm", "a", "b"]
        );
        assert_eq!(
            argv(&config(&[], &[]), &module, "hello.wasm"),
            ["hello.wasm"]
        );
        let platform = run(&["/app.wasm", "-v"], &["x"]);
        assert_eq!(
            argv(&config(&[], &[]), &platform, "n"),
            ["/app.wasm", "-v", "x"]
        );
        assert_eq!(
            argv(&config(&[], &["y"]), &platform, "n"),
            ["/app.wasm", "-v", "y"]
        );
        let cmd_only = run(&[], &["/app.wasm", "x"]);
        assert_eq!(
            argv(&config(&[], &["y"]), &cmd_only, "n"),
            ["/app.wasm", "y"]
        );
        assert_eq!(
            argv(&config(&["/other.wasm"], &["z"]), &platform, "n"),
            ["/other.wasm", "z"],
            "the command replaces the entrypoint, argv[0] included"
        );
    }

    #[test]
    fn cri_env_overrides_the_image() {
        let mut c = config(&[], &[]);
        c.envs = vec![
            KeyValue {
                key: "B".into(),
                value: "cri".into(),
            },
            KeyValue {
                key: "C".into(),
                value: "cri".into(),
            },
        ];
        let pairs: Vec<(String, String)> = env(&c, &run(&[], &[]));
        let want = [("A", "image"), ("B", "cri"), ("C", "cri")];
        assert_eq!(pairs, want.map(|(k, v)| (k.to_string(), v.to_string())));
    }

    #[test]
    fn mounts_and_log_paths_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(&[], &[]);
        c.mounts = vec![Mount {
            host_path: dir.path().display().to_string(),
            container_path: "/data".into(),
            readonly: true,
            ..Default::default()
        }];
        let p = preopens(&c).unwrap();
        assert_eq!((p[0].guest.as_str(), p[0].readonly), ("/data", true));
        c.mounts[0].host_path = "/nonexistent/dir".into();
        let err = preopens(&c).unwrap_err().to_string();
        assert!(
            err.contains("/nonexistent/dir") && err.contains("does not exist"),
            "{err}"
        );
        assert_eq!(
            log_path("/var/log/pods/x", "c/0.log").unwrap(),
            Some(PathBuf::from("/var/log/pods/x/c/0.log"))
        );
        assert_eq!(log_path("", "c/0.log").unwrap(), None);
        assert!(log_path("/var/log/pods/x", "../../etc/passwd").is_err());
        assert!(log_path("/var/log/pods/x", "/etc/passwd").is_err());
    }
}
