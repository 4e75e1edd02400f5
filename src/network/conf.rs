//! CNI network configuration files: the first `.conflist`, `.conf` or `.json` file (by name) in
//! the conf dir is the pod network, as containerd and CRI-O choose it.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::{Map, Value};

/// One plugin's configuration object, as written in the file.
pub type PluginConf = Map<String, Value>;

/// A parsed network configuration list.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkList {
    /// The file it came from.
    pub file: PathBuf,
    /// The network name (`name`).
    pub name: String,
    /// The CNI spec version the plugins are called with (`cniVersion`).
    pub cni_version: String,
    /// True when the list opts out of CHECK (`disableCheck`).
    pub disable_check: bool,
    /// The plugins, in ADD order.
    pub plugins: Vec<PluginConf>,
}

/// What the conf dir holds right now.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfState {
    /// A usable network list.
    Loaded(NetworkList),
    /// No config file at all (or no such dir).
    Missing,
    /// The first config file cannot be used; the message says why.
    Broken {
        /// The file.
        file: PathBuf,
        /// What is wrong with it.
        error: String,
    },
}

/// Identifies one version of a config file, to reparse only when it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStamp {
    path: PathBuf,
    modified: Option<SystemTime>,
    len: u64,
}

const EXTENSIONS: [&str; 3] = ["conflist", "conf", "json"];

/// The first config file in `dir` by name, with its stamp; None when there is none.
pub fn first_file(dir: &Path) -> Option<FileStamp> {
    let entries = std::fs::read_dir(dir).ok()?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| EXTENSIONS.contains(&e))
        })
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let path = files.into_iter().next()?;
    let meta = std::fs::metadata(&path).ok()?;
    Some(FileStamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        path,
    })
}

/// Reads and parses the file a stamp names.
pub fn load(stamp: &FileStamp) -> ConfState {
    let broken = |error: String| ConfState::Broken {
        file: stamp.path.clone(),
        error,
    };
    let text = match std::fs::read(&stamp.path) {
        Ok(text) => text,
        Err(e) => return broken(format!("read: {e}")),
    };
    let is_list = stamp.path.extension().is_some_and(|e| e == "conflist");
    match parse(&stamp.path, &text, is_list) {
        Ok(list) => ConfState::Loaded(list),
        Err(error) => broken(error),
    }
}

/// Parses a `.conflist` (`is_list`) or a single-plugin `.conf`.
pub fn parse(file: &Path, text: &[u8], is_list: bool) -> Result<NetworkList, String> {
    let value: Value = serde_json::from_slice(text).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Object(object) = value else {
        return Err("not a JSON object".into());
    };
    let name = required_string(&object, "name")?;
    let cni_version = required_string(&object, "cniVersion")?;
    let disable_check = object
        .get("disableCheck")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let plugins = if is_list {
        let Some(Value::Array(plugins)) = object.get("plugins") else {
            return Err("\"plugins\" must be a list".into());
        };
        plugins
            .iter()
            .map(|p| match p {
                Value::Object(p) => Ok(p.clone()),
                _ => Err("every entry of \"plugins\" must be an object".to_string()),
            })
            .collect::<Result<Vec<_>, _>>()?
    } else {
        vec![object]
    };
    if plugins.is_empty() {
        return Err("\"plugins\" is empty".into());
    }
    for plugin in &plugins {
        plugin_type(plugin)?;
    }
    Ok(NetworkList {
        file: file.to_path_buf(),
        name,
        cni_version,
        disable_check,
        plugins,
    })
}

/// A plugin's `type`: the file name of its binary, so it may not name a path.
pub fn plugin_type(plugin: &PluginConf) -> Result<&str, String> {
    let kind = plugin
        .get("type")
        .and_then(Value::as_str)
        .ok_or("a plugin has no \"type\"")?;
    let valid = !kind.is_empty()
        && !kind.starts_with('.')
        && kind
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(kind)
    } else {
        Err(format!("plugin type {kind:?} is not a plugin binary name"))
    }
}

fn required_string(object: &Map<String, Value>, key: &str) -> Result<String, String> {
    match object.get(key).and_then(Value::as_str) {
        Some(s) if !s.is_empty() => Ok(s.to_string()),
        _ => Err(format!("{key:?} is missing or not a string")),
    }
}

/// True when `version` (`x.y.z`) is at least `major.minor`: DEL gets prevResult and CHECK
/// exists from 0.4.0 on.
pub fn version_at_least(version: &str, major: u32, minor: u32) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let have = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    have >= (major, minor)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = r#"{"cniVersion":"1.0.0","name":"pods","plugins":[
        {"type":"bridge","bridge":"cni0"},{"type":"portmap","capabilities":{"portMappings":true}}]}"#;

    #[test]
    fn conflist_and_single_conf() {
        let list = parse(Path::new("/x.conflist"), LIST.as_bytes(), true).unwrap();
        assert_eq!(list.name, "pods");
        assert_eq!(list.plugins.len(), 2);
        assert!(!list.disable_check);
        let conf = parse(
            Path::new("/x.conf"),
            br#"{"cniVersion":"0.4.0","name":"one","type":"loopback"}"#,
            false,
        )
        .unwrap();
        assert_eq!(conf.plugins.len(), 1);
        assert_eq!(plugin_type(&conf.plugins[0]).unwrap(), "loopback");
    }

    #[test]
    fn broken_configs_say_why() {
        let cases: [(&[u8], &str); 5] = [
            (b"{", "invalid JSON"),
            (br#"{"cniVersion":"1.0.0","plugins":[]}"#, "\"name\""),
            (
                br#"{"cniVersion":"1.0.0","name":"n","plugins":[]}"#,
                "empty",
            ),
            (
                br#"{"cniVersion":"1.0.0","name":"n","plugins":[{}]}"#,
                "no \"type\"",
            ),
            (
                br#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"../../bin/sh"}]}"#,
                "not a plugin binary name",
            ),
        ];
        for (text, want) in cases {
            let err = parse(Path::new("/x.conflist"), text, true).unwrap_err();
            assert!(err.contains(want), "{err} should contain {want}");
        }
    }

    #[test]
    fn first_file_by_name_and_reload_on_change() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(first_file(dir.path()), None);
        std::fs::write(dir.path().join("README"), "not a config").unwrap();
        std::fs::write(dir.path().join("20-b.conflist"), LIST).unwrap();
        std::fs::write(dir.path().join("10-a.conf"), "{").unwrap();
        let stamp = first_file(dir.path()).unwrap();
        assert!(
            matches!(load(&stamp), ConfState::Broken { file, .. } if file.ends_with("10-a.conf"))
        );
        std::fs::remove_file(dir.path().join("10-a.conf")).unwrap();
        let stamp2 = first_file(dir.path()).unwrap();
        assert_ne!(stamp, stamp2);
        assert!(matches!(load(&stamp2), ConfState::Loaded(l) if l.name == "pods"));
    }

    #[test]
    fn versions_compare_numerically() {
        assert!(version_at_least("1.0.0", 0, 4));
        assert!(version_at_least("0.4.0", 0, 4));
        assert!(!version_at_least("0.3.1", 0, 4));
        assert!(version_at_least("0.10.0", 0, 4));
    }
}
