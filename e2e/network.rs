//! End-to-end tests of pod networking: the real daemon running Debian's CNI plugins (bridge,
//! host-local, portmap, loopback) into real pod network namespaces. Each test has its own
//! bridge, subnet and IPAM store, and deletes its bridge at the end.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use cri_proto::*;
use tonic::Code;

/// Where Debian's containernetworking-plugins package puts the plugins.
const PLUGIN_DIR: &str = "/usr/lib/cni";

/// One test's network: a bridge, a subnet, a host-local store, a conf dir and a dir of
/// scripted plugins.
struct TestNetwork {
    dir: tempfile::TempDir,
    bridge: String,
    subnet: String,
    prefix: String,
}

impl TestNetwork {
    fn new(n: u8) -> TestNetwork {
        for plugin in ["bridge", "host-local", "portmap", "loopback"] {
            assert!(
                Path::new(PLUGIN_DIR).join(plugin).exists(),
                "CNI plugin {plugin} is missing from {PLUGIN_DIR}: run `sudo hack/setup.sh` \
                 (it installs containernetworking-plugins and iptables)"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("net.d")).unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        let net = TestNetwork {
            dir,
            bridge: format!("crie2e{n}"),
            subnet: format!("10.89.{n}.0/24"),
            prefix: format!("10.89.{n}."),
        };
        let _ = Command::new("ip")
            .args(["link", "del", &net.bridge])
            .stderr(Stdio::null())
            .status();
        // The bridge plugin (1.1.1) gives a bridge it creates a MAC only once an IP was
        // allocated: after a first ADD that failed in IPAM the bridge keeps a zero MAC, and
        // every later ADD fails with "could not set bridge's mac". The test of an IPAM
        // failure needs a bridge with a MAC of its own.
        let mac = format!("02:42:0a:59:{n:02x}:01");
        for args in [
            vec!["link", "add", &net.bridge, "type", "bridge"],
            vec!["link", "set", &net.bridge, "address", &mac, "up"],
        ] {
            assert!(
                Command::new("ip").args(&args).status().unwrap().success(),
                "ip {args:?}"
            );
        }
        net
    }

    fn conf_dir(&self) -> PathBuf {
        self.dir.path().join("net.d")
    }

    fn name(&self) -> String {
        format!("{}-net", self.bridge)
    }

    /// The daemon's `[cni]` table: Debian's plugins, then this test's scripted ones.
    fn daemon_config(&self, timeout_ms: u64) -> String {
        format!(
            "[cni]\nconf_dir = \"{}\"\nbin_dirs = [\"{PLUGIN_DIR}\", \"{}\"]\nplugin_timeout_ms = {timeout_ms}\n",
            self.conf_dir().display(),
            self.dir.path().join("bin").display()
        )
    }

    /// bridge + host-local (ranges from the pod CIDR: ipRanges) + portmap + loopback.
    fn bridge_plugins(&self) -> String {
        format!(
            r#"{{"type":"bridge","bridge":"{}","isGateway":true,"ipMasq":false,"hairpinMode":true,
                "capabilities":{{"ipRanges":true}},
                "ipam":{{"type":"host-local","dataDir":"{}","routes":[{{"dst":"0.0.0.0/0"}}]}}}},
               {{"type":"portmap","capabilities":{{"portMappings":true}}}},
               {{"type":"loopback"}}"#,
            self.bridge,
            self.ipam_dir().display()
        )
    }

    fn write_conflist(&self, plugins: &str) {
        let text = format!(
            r#"{{"cniVersion":"1.0.0","name":"{}","plugins":[{plugins}]}}"#,
            self.name()
        );
        std::fs::write(self.conf_dir().join("10-test.conflist"), text).unwrap();
    }

    fn write_plugin(&self, name: &str, script: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.path().join("bin").join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn ipam_dir(&self) -> PathBuf {
        self.dir.path().join("ipam")
    }

    /// The IPs host-local holds for this network.
    fn allocated_ips(&self) -> Vec<String> {
        match std::fs::read_dir(self.ipam_dir().join(self.name())) {
            Ok(entries) => entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&self.prefix))
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Interfaces (the pods' veth ends) attached to the bridge.
    fn bridge_ports(&self) -> Vec<String> {
        let out = Command::new("ip")
            .args(["-o", "link", "show", "master", &self.bridge])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    async fn set_pod_cidr(
        &self,
        client: &mut cri_proto::runtime_service_client::RuntimeServiceClient<
            tonic::transport::Channel,
        >,
    ) {
        client
            .update_runtime_config(UpdateRuntimeConfigRequest {
                runtime_config: Some(RuntimeConfig {
                    network_config: Some(NetworkConfig {
                        pod_cidr: self.subnet.clone(),
                    }),
                }),
            })
            .await
            .unwrap();
    }
}

impl TestNetwork {
    /// Deletes portmap's rules for this network that a failed test left (a pod never stopped
    /// never got its DEL).
    fn delete_port_mappings(&self) {
        let Ok(out) = Command::new("iptables")
            .args([
                "-t",
                "nat",
                "-L",
                "CNI-HOSTPORT-DNAT",
                "--line-numbers",
                "-n",
            ])
            .output()
        else {
            return;
        };
        let marker = format!("name: \"{}\"", self.name());
        let ours: Vec<(String, String)> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains(&marker))
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                Some((words.next()?.to_string(), words.next()?.to_string()))
            })
            .collect();
        // Highest rule number first, so the others keep theirs.
        for (number, _) in ours.iter().rev() {
            let _ = Command::new("iptables")
                .args(["-t", "nat", "-D", "CNI-HOSTPORT-DNAT", number])
                .status();
        }
        for (_, chain) in &ours {
            for flag in ["-F", "-X"] {
                let _ = Command::new("iptables")
                    .args(["-t", "nat", flag, chain])
                    .status();
            }
        }
    }
}

impl Drop for TestNetwork {
    fn drop(&mut self) {
        self.delete_port_mappings();
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(Stdio::null())
            .status();
    }
}

async fn network_condition(daemon: &TestDaemon) -> RuntimeCondition {
    let status = daemon
        .runtime()
        .await
        .status(StatusRequest { verbose: false })
        .await
        .unwrap()
        .into_inner();
    status
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.r#type == "NetworkReady")
        .unwrap()
}

fn net_pin(daemon: &TestDaemon, id: &str) -> PathBuf {
    daemon.state().join("pods").join(id).join("ns/net")
}

/// Runs `args` in the pod's network namespace.
fn in_pod(daemon: &TestDaemon, id: &str, args: &[&str]) -> Command {
    let mut command = Command::new("nsenter");
    command
        .arg(format!("--net={}", net_pin(daemon, id).display()))
        .args(args);
    command
}

/// A one-shot `busybox nc` listener; `received` waits for it to exit and returns what it got.
struct Listener(std::process::Child);

impl Listener {
    fn start(mut command: Command) -> Listener {
        Listener(command.stdout(Stdio::piped()).spawn().unwrap())
    }

    fn received(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.0.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = self.0.kill();
                let _ = self.0.wait();
                panic!("the nc listener got no connection within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut out = String::new();
        self.0
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        out
    }
}

impl Drop for Listener {
    /// A listener of a failed test is killed, so it does not keep its pod's netns alive.
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Sends `message` with a `busybox nc` client, retrying until the listener is up.
fn send(mut client: impl FnMut() -> Command, message: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut child = client()
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        use std::io::Write;
        // A client that could not connect has exited already: its stdin is a broken pipe.
        let _ = child.stdin.take().unwrap().write_all(message.as_bytes());
        if child.wait().unwrap().success() {
            return;
        }
        assert!(Instant::now() < deadline, "could not connect within 10 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts a one-shot listener with `listen`, sends `message` to it with `client`, and returns
/// what the listener received. A listener that got only an empty connection is started again
/// (for up to 10 s): a client attempt that timed out while connecting can leave the listener
/// a connection that the client's kernel resets.
fn deliver(
    listen: impl Fn() -> Command,
    mut client: impl FnMut() -> Command,
    message: &str,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut listener = Listener::start(listen());
        send(&mut client, message);
        let received = listener.received();
        if !received.is_empty() || Instant::now() > deadline {
            return received;
        }
    }
}

fn nat_rules() -> String {
    let out = Command::new("iptables-save")
        .args(["-t", "nat"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn pod_ips(status: &PodSandboxStatusResponse) -> (String, Vec<String>) {
    let network = status.status.clone().unwrap().network.unwrap();
    (
        network.ip,
        network.additional_ips.into_iter().map(|p| p.ip).collect(),
    )
}

#[tokio::test]
async fn pods_get_ips_reach_each_other_and_publish_host_ports() {
    let net = TestNetwork::new(1);
    net.write_conflist(&net.bridge_plugins());
    let daemon = TestDaemon::start_with_cni(&net.daemon_config(20_000)).await;
    let mut client = daemon.runtime().await;
    let ready = network_condition(&daemon).await;
    assert!(ready.status, "{ready:?}");

    // The IPAM ranges come from the pod CIDR only: without one, host-local says so.
    let err = client
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(pod_config("early", &[])),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_err();
    assert!(err.message().contains("no IP ranges specified"), "{err:?}");
    assert!(
        client
            .list_pod_sandbox(ListPodSandboxRequest::default())
            .await
            .unwrap()
            .into_inner()
            .items
            .is_empty()
    );
    net.set_pod_cidr(&mut client).await;

    let mut server_config = pod_config("server", &[]);
    server_config.port_mappings = vec![PortMapping {
        protocol: Protocol::Tcp as i32,
        container_port: 8080,
        host_port: 18081,
        host_ip: String::new(),
    }];
    let server = run_pod(&mut client, server_config).await;
    let client_pod = run_pod(&mut client, pod_config("client", &[])).await;
    let (server_ip, extra) = pod_ips(&pod_status(&mut client, &server).await);
    let (client_ip, _) = pod_ips(&pod_status(&mut client, &client_pod).await);
    assert!(extra.is_empty(), "one range set, one IP: {extra:?}");
    assert!(server_ip.starts_with(&net.prefix) && client_ip.starts_with(&net.prefix));
    assert_ne!(server_ip, client_ip);
    let mut allocated = net.allocated_ips();
    allocated.sort();
    let mut expected = vec![server_ip.clone(), client_ip.clone()];
    expected.sort();
    assert_eq!(
        allocated, expected,
        "host-local holds exactly the pods' IPs"
    );

    // lo is up and eth0 carries the pod IP inside the pod.
    let addrs = in_pod(&daemon, &server, &["ip", "-o", "addr", "show"])
        .output()
        .unwrap();
    let addrs = String::from_utf8_lossy(&addrs.stdout);
    assert!(addrs.contains("lo    inet 127.0.0.1/8"), "{addrs}");
    assert!(
        addrs.contains(&format!("eth0    inet {server_ip}/24")),
        "{addrs}"
    );
    let lo = in_pod(&daemon, &server, &["ip", "-o", "link", "show", "lo"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&lo.stdout).contains(",UP"),
        "lo is up"
    );

    // Pod to pod.
    let listen = || in_pod(&daemon, &server, &["busybox", "nc", "-l", "-p", "8080"]);
    let received = deliver(
        listen,
        || {
            in_pod(
                &daemon,
                &client_pod,
                &["busybox", "nc", "-w", "2", &server_ip, "8080"],
            )
        },
        "hello from the client pod\n",
    );
    assert_eq!(received, "hello from the client pod\n");

    // Host port on 127.0.0.1 to the server pod.
    let received = deliver(
        listen,
        || {
            let mut c = Command::new("busybox");
            c.args(["nc", "-w", "2", "127.0.0.1", "18081"]);
            c
        },
        "hello through the host port\n",
    );
    assert_eq!(received, "hello through the host port\n");
    assert!(
        nat_rules().contains(&server),
        "portmap's rules name the pod"
    );

    // Stop releases the IP and the port mapping; the other pod keeps its IP.
    stop_pod(&mut client, &server).await;
    assert_eq!(net.allocated_ips(), vec![client_ip.clone()]);
    assert!(!nat_rules().contains(&server), "portmap's rules are gone");
    for id in [&server, &client_pod] {
        remove_pod(&mut client, id).await;
    }
    assert!(net.allocated_ips().is_empty());
    assert!(net.bridge_ports().is_empty(), "{:?}", net.bridge_ports());
}

#[tokio::test]
async fn fifty_pods_stopped_and_removed_leak_no_veth_netns_or_ip() {
    let net = TestNetwork::new(2);
    net.write_conflist(&net.bridge_plugins());
    let daemon = TestDaemon::start_with_cni(&net.daemon_config(20_000)).await;
    let mut client = daemon.runtime().await;
    net.set_pod_cidr(&mut client).await;
    let mut ids = Vec::new();
    for i in 0..50 {
        ids.push(run_pod(&mut client, pod_config(&format!("p{i}"), &[])).await);
    }
    assert_eq!(net.allocated_ips().len(), 50);
    assert_eq!(net.bridge_ports().len(), 50);
    for id in &ids {
        stop_pod(&mut client, id).await;
        remove_pod(&mut client, id).await;
    }
    assert!(net.allocated_ips().is_empty(), "{:?}", net.allocated_ips());
    assert!(net.bridge_ports().is_empty(), "{:?}", net.bridge_ports());
    let pins = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&*daemon.state().to_string_lossy()))
        .count();
    assert_eq!(pins, 0, "no namespace pin is left mounted");
    assert_eq!(
        std::fs::read_dir(daemon.state().join("pods"))
            .unwrap()
            .count(),
        0
    );
}

/// Asserts RunPodSandbox fails with `code` and a message containing `want`, and that nothing
/// of the pod is left: no record, no pod dir, no pin, no IP, no veth.
async fn run_fails_cleanly(
    daemon: &TestDaemon,
    net: &TestNetwork,
    name: &str,
    code: Code,
    want: &str,
) {
    let mut client = daemon.runtime().await;
    let err = client
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(pod_config(name, &[])),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), code, "{err:?}");
    assert!(
        err.message().contains(want),
        "{:?} should contain {want:?}",
        err.message()
    );
    let pods = client
        .list_pod_sandbox(ListPodSandboxRequest::default())
        .await
        .unwrap()
        .into_inner()
        .items;
    assert!(pods.is_empty(), "{pods:?}");
    let pod_dirs = std::fs::read_dir(daemon.state().join("pods"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(
        pod_dirs, 0,
        "no pod dir (so no pin, no monitor socket) is left"
    );
    assert!(
        net.allocated_ips().is_empty(),
        "IPs kept: {:?}",
        net.allocated_ips()
    );
    assert!(
        net.bridge_ports().is_empty(),
        "veths kept: {:?}",
        net.bridge_ports()
    );
}

#[tokio::test]
async fn bad_configs_and_failing_plugins_fail_run_pod_sandbox_and_leave_nothing() {
    let net = TestNetwork::new(3);
    let daemon = TestDaemon::start_with_cni(&net.daemon_config(1_500)).await;
    let mut client = daemon.runtime().await;
    net.set_pod_cidr(&mut client).await;

    let missing = network_condition(&daemon).await;
    assert!(!missing.status);
    assert_eq!(missing.reason, "NoCNIConfigLoaded");
    assert!(
        missing.message.contains(&*net.conf_dir().to_string_lossy()),
        "{missing:?}"
    );
    run_fails_cleanly(
        &daemon,
        &net,
        "a",
        Code::FailedPrecondition,
        "no CNI network config found",
    )
    .await;

    std::fs::write(net.conf_dir().join("10-test.conflist"), "{\"cniVersion\":").unwrap();
    let broken = network_condition(&daemon).await;
    assert!(
        !broken.status && broken.message.contains("10-test.conflist"),
        "{broken:?}"
    );
    run_fails_cleanly(&daemon, &net, "b", Code::FailedPrecondition, "invalid JSON").await;

    net.write_conflist(r#"{"type":"nosuchplugin"}"#);
    assert!(
        network_condition(&daemon).await.status,
        "a parsable config is loaded"
    );
    run_fails_cleanly(
        &daemon,
        &net,
        "c",
        Code::FailedPrecondition,
        "CNI plugin \"nosuchplugin\" not found",
    )
    .await;

    net.write_plugin(
        "failing",
        r#"cat >/dev/null; echo '{"cniVersion":"1.0.0","code":7,"msg":"boom from the plugin","details":"no luck"}'; exit 1"#,
    );
    net.write_conflist(&format!(
        "{},{{\"type\":\"failing\"}}",
        net.bridge_plugins()
    ));
    run_fails_cleanly(
        &daemon,
        &net,
        "d",
        Code::Internal,
        "boom from the plugin: no luck",
    )
    .await;

    // A plugin that hangs after bridge took an IP: killed at the timeout, the IP released.
    net.write_plugin("hanging", "cat >/dev/null; sleep 60");
    net.write_conflist(&format!(
        "{},{{\"type\":\"hanging\"}}",
        net.bridge_plugins()
    ));
    let started = Instant::now();
    run_fails_cleanly(
        &daemon,
        &net,
        "e",
        Code::DeadlineExceeded,
        "CNI plugin hanging ADD did not finish within 1500 ms",
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(20));
    let sleepers = Command::new("pgrep")
        .args(["-f", "sleep 60"])
        .output()
        .unwrap();
    assert!(
        sleepers.stdout.is_empty(),
        "the plugin's children were killed with it"
    );

    // A good config again is picked up without a restart.
    net.write_conflist(&net.bridge_plugins());
    let id = run_pod(&mut client, pod_config("f", &[])).await;
    assert!(
        pod_ips(&pod_status(&mut client, &id).await)
            .0
            .starts_with(&net.prefix)
    );
    remove_pod(&mut client, &id).await;
    assert!(net.allocated_ips().is_empty());
}

#[tokio::test]
async fn host_network_pods_skip_cni() {
    let net = TestNetwork::new(4);
    let daemon = TestDaemon::start_with_cni(&net.daemon_config(1_500)).await;
    let mut client = daemon.runtime().await;
    // No config at all: a host-network pod still runs, and gets no pod IP from CNI.
    let config = with_namespaces(
        pod_config("host", &[]),
        NamespaceMode::Node,
        NamespaceMode::Container,
        NamespaceMode::Pod,
    );
    let id = run_pod(&mut client, config).await;
    assert_eq!(pod_ips(&pod_status(&mut client, &id).await).0, "");
    remove_pod(&mut client, &id).await;
}

#[tokio::test]
async fn a_restarted_daemon_checks_and_later_releases_the_network() {
    let net = TestNetwork::new(5);
    net.write_conflist(&net.bridge_plugins());
    let mut daemon = TestDaemon::start_with_cni(&net.daemon_config(20_000)).await;
    let mut client = daemon.runtime().await;
    net.set_pod_cidr(&mut client).await;
    let id = run_pod(&mut client, pod_config("survivor", &[])).await;
    let (ip, _) = pod_ips(&pod_status(&mut client, &id).await);
    daemon.kill9();
    daemon.spawn().await;
    let mut client = daemon.runtime().await;
    let status = pod_status(&mut client, &id).await;
    assert_eq!(state_of(&status), PodSandboxState::SandboxReady);
    assert_eq!(
        pod_ips(&status).0,
        ip,
        "the pod keeps its IP across the restart"
    );
    assert!(
        daemon.log().contains("CNI CHECK of a recovered pod passed"),
        "{}",
        daemon.log()
    );
    remove_pod(&mut client, &id).await;
    assert!(net.allocated_ips().is_empty());
    assert!(net.bridge_ports().is_empty());
}
