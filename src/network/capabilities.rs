//! The CNI capability arguments a pod carries (`runtimeConfig`): port mappings, bandwidth,
//! DNS and the node's pod CIDR. A plugin gets the ones its `capabilities` map asks for.

use cri_proto::{PodSandboxConfig, Protocol};
use serde_json::{Map, Value, json};

use crate::error::{Error, Result};

/// The capability values of one pod, keyed by capability name.
pub fn for_pod(pod: &PodSandboxConfig, pod_cidr: &str) -> Result<Map<String, Value>> {
    let mut caps = Map::new();
    let ports: Vec<Value> = pod
        .port_mappings
        .iter()
        .filter(|p| p.host_port > 0)
        .map(|p| {
            let protocol = match Protocol::try_from(p.protocol) {
                Ok(Protocol::Udp) => "udp",
                Ok(Protocol::Sctp) => "sctp",
                _ => "tcp",
            };
            let mut mapping = json!({
                "hostPort": p.host_port,
                "containerPort": p.container_port,
                "protocol": protocol,
            });
            if !p.host_ip.is_empty() {
                mapping["hostIP"] = json!(p.host_ip);
            }
            mapping
        })
        .collect();
    if !ports.is_empty() {
        caps.insert("portMappings".into(), Value::Array(ports));
    }
    if let Some(bandwidth) = bandwidth(pod)? {
        caps.insert("bandwidth".into(), bandwidth);
    }
    if let Some(dns) = &pod.dns_config {
        caps.insert(
            "dns".into(),
            json!({"servers": dns.servers, "searches": dns.searches, "options": dns.options}),
        );
    }
    if !pod_cidr.is_empty() {
        caps.insert("ipRanges".into(), json!([[{"subnet": pod_cidr}]]));
    }
    Ok(caps)
}

/// The `runtimeConfig` for one plugin: the capabilities it declares that the pod has.
pub fn runtime_config(
    plugin: &Map<String, Value>,
    caps: &Map<String, Value>,
) -> Map<String, Value> {
    let Some(Value::Object(wanted)) = plugin.get("capabilities") else {
        return Map::new();
    };
    wanted
        .iter()
        .filter(|(_, on)| on.as_bool() == Some(true))
        .filter_map(|(name, _)| caps.get(name).map(|v| (name.clone(), v.clone())))
        .collect()
}

const INGRESS: &str = "kubernetes.io/ingress-bandwidth";
const EGRESS: &str = "kubernetes.io/egress-bandwidth";

/// Bandwidth limits from the pod's annotations, in bits per second; the burst is left
/// practically unbounded (i32::MAX bits).
fn bandwidth(pod: &PodSandboxConfig) -> Result<Option<Value>> {
    let mut limits = Map::new();
    for (annotation, rate, burst) in [
        (INGRESS, "ingressRate", "ingressBurst"),
        (EGRESS, "egressRate", "egressBurst"),
    ] {
        if let Some(text) = pod.annotations.get(annotation) {
            let bits = parse_quantity(text).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "annotation {annotation}: {text:?} is not a quantity"
                ))
            })?;
            limits.insert(rate.into(), json!(bits));
            limits.insert(burst.into(), json!(i32::MAX));
        }
    }
    Ok((!limits.is_empty()).then_some(Value::Object(limits)))
}

/// A Kubernetes quantity such as `10M`, `1Gi` or `500k`, as a whole number.
fn parse_quantity(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale: f64 = match suffix {
        "" => 1.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        _ => return None,
    };
    let value = number * scale;
    (value.is_finite() && value >= 0.0 && value < u64::MAX as f64).then(|| value.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cri_proto::{DnsConfig, PortMapping};

    fn pod() -> PodSandboxConfig {
        PodSandboxConfig {
            port_mappings: vec![
                PortMapping {
                    protocol: Protocol::Udp as i32,
                    container_port: 53,
                    host_port: 5353,
                    host_ip: "127.0.0.1".into(),
                },
                PortMapping {
                    protocol: Protocol::Tcp as i32,
                    container_port: 80,
                    host_port: 0,
                    host_ip: String::new(),
                },
            ],
            dns_config: Some(DnsConfig {
                servers: vec!["10.0.0.10".into()],
                searches: vec!["svc.cluster.local".into()],
                options: vec!["ndots:5".into()],
            }),
            annotations: [(INGRESS.to_string(), "10M".to_string())].into(),
            ..Default::default()
        }
    }

    #[test]
    fn capabilities_from_the_pod() {
        let caps = for_pod(&pod(), "10.244.1.0/24").unwrap();
        assert_eq!(
            caps["portMappings"],
            json!([{"hostPort":5353,"containerPort":53,"protocol":"udp","hostIP":"127.0.0.1"}]),
            "ports without a host port are not mapped"
        );
        assert_eq!(caps["bandwidth"]["ingressRate"], json!(10_000_000u64));
        assert!(caps["bandwidth"].get("egressRate").is_none());
        assert_eq!(caps["dns"]["searches"], json!(["svc.cluster.local"]));
        assert_eq!(caps["ipRanges"], json!([[{"subnet":"10.244.1.0/24"}]]));
        assert!(
            !for_pod(&PodSandboxConfig::default(), "")
                .unwrap()
                .contains_key("ipRanges")
        );
    }

    #[test]
    fn plugins_get_only_what_they_ask_for() {
        let caps = for_pod(&pod(), "10.244.1.0/24").unwrap();
        let portmap =
            json!({"type":"portmap","capabilities":{"portMappings":true,"bandwidth":false}});
        let config = runtime_config(portmap.as_object().unwrap(), &caps);
        assert_eq!(config.keys().collect::<Vec<_>>(), vec!["portMappings"]);
        let bridge = json!({"type":"bridge"});
        assert!(runtime_config(bridge.as_object().unwrap(), &caps).is_empty());
    }

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("1Gi"), Some(1 << 30));
        assert_eq!(parse_quantity("500k"), Some(500_000));
        assert_eq!(parse_quantity("1.5M"), Some(1_500_000));
        assert_eq!(parse_quantity("12"), Some(12));
        assert_eq!(parse_quantity("lots"), None);
        let mut bad = pod();
        bad.annotations.insert(EGRESS.into(), "fast".into());
        assert!(matches!(for_pod(&bad, ""), Err(Error::InvalidArgument(_))));
    }
}
