//! A pod's network attachment as cached on disk: the exact plugin configs ADD was given and
//! the result it returned, so DEL and CHECK repeat them even after the conf dir changed.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Version of the attachment cache format.
pub const ATTACHMENT_VERSION: u32 = 1;

/// What ADD was called with, and what it returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    /// Cache format version.
    pub version: u32,
    /// The network's name.
    pub network: String,
    /// The conf file it came from.
    pub file: PathBuf,
    /// The list's CNI version.
    pub cni_version: String,
    /// False when the list disabled CHECK.
    pub check: bool,
    /// Each plugin's stdin config, in ADD order, without `prevResult`.
    pub plugins: Vec<Value>,
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `CNI_ARGS`.
    pub args: String,
    /// The last plugin's ADD result; None until ADD succeeded.
    pub result: Option<Value>,
}

impl Attachment {
    /// The pod's IPs from the ADD result: the addresses on interfaces inside the pod (or on
    /// no named interface), IPv4 first, as kubelet expects the primary IP first.
    pub fn pod_ips(&self) -> Vec<String> {
        self.result.as_ref().map(result_ips).unwrap_or_default()
    }
}

fn result_ips(result: &Value) -> Vec<String> {
    let interfaces = result
        .get("interfaces")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let in_pod = |ip: &Value| match ip.get("interface").and_then(Value::as_u64) {
        None => true,
        Some(index) => interfaces
            .get(index as usize)
            .and_then(|i| i.get("sandbox"))
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty()),
    };
    let mut addresses: Vec<IpAddr> = Vec::new();
    let mut push = |cidr: &str| {
        let address = cidr.split('/').next().unwrap_or(cidr);
        if let Ok(ip) = address.parse::<IpAddr>()
            && !addresses.contains(&ip)
        {
            addresses.push(ip);
        }
    };
    if let Some(ips) = result.get("ips").and_then(Value::as_array) {
        for ip in ips.iter().filter(|ip| in_pod(ip)) {
            if let Some(address) = ip.get("address").and_then(Value::as_str) {
                push(address);
            }
        }
    }
    // Results of spec 0.2.0 and older.
    for key in ["ip4", "ip6"] {
        if let Some(address) = result
            .get(key)
            .and_then(|v| v.get("ip"))
            .and_then(Value::as_str)
        {
            push(address);
        }
    }
    addresses.sort_by_key(|ip| ip.is_ipv6());
    addresses.iter().map(IpAddr::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pod_ips_from_results_of_each_spec_version() {
        let v1 = json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name":"cni0"},{"name":"veth1"},{"name":"eth0","sandbox":"/run/ns"}],
            "ips": [
                {"address":"fd00::5/64","interface":2},
                {"address":"10.88.0.5/16","gateway":"10.88.0.1","interface":2},
                {"address":"10.88.0.1/16","interface":0}
            ]
        });
        assert_eq!(result_ips(&v1), vec!["10.88.0.5", "fd00::5"]);
        let old = json!({"cniVersion":"0.2.0","ip4":{"ip":"10.1.2.3/24"}});
        assert_eq!(result_ips(&old), vec!["10.1.2.3"]);
        assert!(result_ips(&json!({})).is_empty());
    }
}
