//! What the CRI list filters of pods and containers share: id prefixes and label selectors.

use std::collections::HashMap;

/// True when `wanted` is empty or a prefix of `id` (kubelet filters by id prefix).
pub fn id_matches(wanted: &str, id: &str) -> bool {
    wanted.is_empty() || id.starts_with(wanted)
}

/// True when every pair of `selector` is among `labels`.
pub fn labels_match(selector: &HashMap<String, String>, labels: &HashMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}
