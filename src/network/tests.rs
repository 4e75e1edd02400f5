use std::path::Path;
use std::sync::Arc;

use cri_proto::{PodSandboxConfig, PodSandboxMetadata, PortMapping};
use serde_json::json;

use super::exec::{CniCommand, FakePluginExec};
use super::*;

const LIST: &str = r#"{"cniVersion":"1.0.0","name":"pods","plugins":[
    {"type":"bridge","bridge":"cni0","ipam":{"type":"host-local"}},
    {"type":"portmap","capabilities":{"portMappings":true}}]}"#;

fn bridge_result() -> serde_json::Value {
    json!({"cniVersion":"1.0.0",
        "interfaces":[{"name":"cni0"},{"name":"eth0","sandbox":"/ns"}],
        "ips":[{"address":"10.88.0.7/16","interface":1}]})
}

fn pod() -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: "web".into(),
            uid: "u1".into(),
            namespace: "default".into(),
            attempt: 0,
        }),
        port_mappings: vec![PortMapping {
            protocol: 0,
            container_port: 80,
            host_port: 8080,
            host_ip: String::new(),
        }],
        ..Default::default()
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    exec: Arc<FakePluginExec>,
    networks: PodNetworks,
}

fn fixture(conflist: Option<&str>) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let conf_dir = dir.path().join("net.d");
    std::fs::create_dir(&conf_dir).unwrap();
    if let Some(text) = conflist {
        std::fs::write(conf_dir.join("10-pods.conflist"), text).unwrap();
    }
    let exec = Arc::new(FakePluginExec::default());
    let networks = PodNetworks::new(PodNetworkMode::Cni, conf_dir, exec.clone());
    Fixture {
        dir,
        exec,
        networks,
    }
}

impl Fixture {
    fn cache(&self) -> std::path::PathBuf {
        self.dir.path().join("pod/network.json")
    }
}

#[test]
fn readiness_follows_the_conf_dir() {
    let f = fixture(None);
    let r = f.networks.readiness();
    assert!(!r.ready);
    assert_eq!(r.reason, "NoCNIConfigLoaded");
    assert!(r.message.contains("net.d"), "{}", r.message);
    let file = f.dir.path().join("net.d/10-pods.conflist");
    std::fs::write(&file, "{").unwrap();
    let r = f.networks.readiness();
    assert!(
        !r.ready && r.message.contains("10-pods.conflist"),
        "{}",
        r.message
    );
    std::fs::write(&file, LIST).unwrap();
    assert!(
        f.networks.readiness().ready,
        "reloaded after the file changed"
    );
    let err = fixture(None)
        .networks
        .attach("p", &pod(), Path::new("/ns"), &f.cache())
        .unwrap_err();
    assert!(matches!(err, Error::FailedPrecondition(ref m) if m.contains("no CNI network config")));
    let none = PodNetworks::new(PodNetworkMode::None, "/x".into(), f.exec.clone());
    assert!(!none.readiness().ready);
    assert!(
        none.attach("p", &pod(), Path::new("/ns"), &f.cache())
            .unwrap()
            .is_empty()
    );
    assert!(f.exec.calls().is_empty());
}

#[test]
fn add_chains_results_and_caches_them() {
    let f = fixture(Some(LIST));
    f.exec
        .respond("bridge", CniCommand::Add, Ok(bridge_result()));
    f.exec
        .respond("portmap", CniCommand::Add, Ok(bridge_result()));
    f.networks.set_pod_cidr("10.88.0.0/16".into());
    let ips = f
        .networks
        .attach("p1", &pod(), Path::new("/ns"), &f.cache())
        .unwrap();
    assert_eq!(ips, vec!["10.88.0.7"]);
    let calls = f.exec.calls();
    assert_eq!(calls.len(), 2);
    let (bridge, portmap) = (&calls[0], &calls[1]);
    assert_eq!(
        (bridge.plugin.as_str(), bridge.command),
        ("bridge", CniCommand::Add)
    );
    assert_eq!(bridge.netns, "/ns");
    assert_eq!(bridge.ifname, "eth0");
    assert_eq!(
        bridge.args,
        "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=p1;K8S_POD_UID=u1"
    );
    assert_eq!(bridge.config["name"], "pods");
    assert_eq!(bridge.config["cniVersion"], "1.0.0");
    assert!(bridge.config.get("prevResult").is_none());
    assert!(bridge.config.get("runtimeConfig").is_none());
    assert_eq!(portmap.config["prevResult"], bridge_result());
    assert_eq!(
        portmap.config["runtimeConfig"],
        json!({"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]})
    );
    let cached: attachment::Attachment = checkpoint::read(&f.cache()).unwrap();
    assert_eq!(cached.result, Some(bridge_result()));
    assert_eq!(cached.pod_ips(), ips);
}

#[test]
fn failed_add_leaves_a_cache_that_detach_undoes() {
    let f = fixture(Some(LIST));
    f.exec
        .respond("bridge", CniCommand::Add, Ok(bridge_result()));
    f.exec.respond(
        "portmap",
        CniCommand::Add,
        Err(Error::Internal("iptables: no chain".into())),
    );
    let err = f
        .networks
        .attach("p1", &pod(), Path::new("/ns"), &f.cache())
        .unwrap_err();
    assert!(err.to_string().contains("iptables: no chain"), "{err}");
    let cached: attachment::Attachment = checkpoint::read(&f.cache()).unwrap();
    assert_eq!(cached.result, None);
    f.networks.detach(&f.cache(), None).unwrap();
    let dels: Vec<_> = f.exec.calls().into_iter().skip(2).collect();
    let order: Vec<_> = dels
        .iter()
        .map(|c| (c.plugin.as_str(), c.command))
        .collect();
    assert_eq!(
        order,
        vec![("portmap", CniCommand::Del), ("bridge", CniCommand::Del)]
    );
    assert!(
        dels.iter()
            .all(|c| c.netns.is_empty() && c.config.get("prevResult").is_none())
    );
}

#[test]
fn detach_sends_the_cached_config_and_result_even_after_the_conf_changed() {
    let f = fixture(Some(LIST));
    f.exec
        .respond("bridge", CniCommand::Add, Ok(bridge_result()));
    f.exec
        .respond("portmap", CniCommand::Add, Ok(bridge_result()));
    f.networks
        .attach("p1", &pod(), Path::new("/ns"), &f.cache())
        .unwrap();
    std::fs::write(
        f.dir.path().join("net.d/10-pods.conflist"),
        r#"{"cniVersion":"1.0.0","name":"other","plugins":[{"type":"ptp"}]}"#,
    )
    .unwrap();
    f.exec.respond(
        "portmap",
        CniCommand::Del,
        Err(Error::Internal("gone".into())),
    );
    let err = f
        .networks
        .detach(&f.cache(), Some(Path::new("/ns")))
        .unwrap_err();
    assert!(err.to_string().contains("gone"));
    let dels: Vec<_> = f.exec.calls().into_iter().skip(2).collect();
    assert_eq!(
        dels.len(),
        2,
        "bridge DEL still runs after portmap DEL failed"
    );
    assert_eq!(dels[1].plugin, "bridge");
    assert_eq!(dels[1].config["name"], "pods");
    assert_eq!(dels[1].config["prevResult"], bridge_result());
    assert_eq!(dels[1].netns, "/ns");
    let before = f.exec.calls().len();
    f.networks
        .detach(&f.dir.path().join("missing.json"), None)
        .unwrap();
    assert_eq!(
        f.exec.calls().len(),
        before,
        "never attached: nothing to delete"
    );
}

#[test]
fn old_spec_versions_get_no_prev_result_on_del_and_no_check() {
    let f = fixture(Some(
        r#"{"cniVersion":"0.3.1","name":"old","plugins":[{"type":"bridge"}]}"#,
    ));
    f.exec
        .respond("bridge", CniCommand::Add, Ok(bridge_result()));
    f.networks
        .attach("p1", &pod(), Path::new("/ns"), &f.cache())
        .unwrap();
    assert!(!f.networks.check(&f.cache(), Path::new("/ns")).unwrap());
    f.networks.detach(&f.cache(), None).unwrap();
    let calls = f.exec.calls();
    assert_eq!(calls.len(), 2, "no CHECK before 0.4.0");
    assert!(calls[1].config.get("prevResult").is_none());
}

#[test]
fn check_runs_each_plugin_with_the_result_unless_disabled() {
    let f = fixture(Some(LIST));
    f.exec
        .respond("bridge", CniCommand::Add, Ok(bridge_result()));
    f.exec
        .respond("portmap", CniCommand::Add, Ok(bridge_result()));
    f.networks
        .attach("p1", &pod(), Path::new("/ns"), &f.cache())
        .unwrap();
    f.exec.respond(
        "bridge",
        CniCommand::Check,
        Err(Error::Internal("veth missing".into())),
    );
    let err = f.networks.check(&f.cache(), Path::new("/ns")).unwrap_err();
    assert!(err.to_string().contains("veth missing"));
    let checks: Vec<_> = f.exec.calls().into_iter().skip(2).collect();
    assert_eq!(checks[0].command, CniCommand::Check);
    assert_eq!(checks[0].config["prevResult"], bridge_result());

    let disabled = fixture(Some(
        r#"{"cniVersion":"1.0.0","name":"n","disableCheck":true,"plugins":[{"type":"bridge"}]}"#,
    ));
    disabled
        .networks
        .attach("p", &pod(), Path::new("/ns"), &disabled.cache())
        .unwrap();
    disabled
        .networks
        .check(&disabled.cache(), Path::new("/ns"))
        .unwrap();
    assert_eq!(disabled.exec.calls().len(), 1);
}
