#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks to build and run crishim and its tests.
# Idempotent; needs root (apt-get). The Rust toolchain (cargo 1.85+) must already be installed.
set -euo pipefail

packages=(
  protobuf-compiler   # protoc: the CRI bindings are generated at build time
  util-linux          # nsenter, used by the e2e tests to look inside pod namespaces
  procps              # pgrep/ps for hack/measure.sh
  docker-registry     # the OCI registry the image tests push to and pull from (127.0.0.1)
  apache2-utils       # htpasswd, for the registry-with-auth tests
  busybox-static      # the test images' userland
  curl                # hack/registry.sh waits for the registry with it
  openssl             # the TLS registry test makes its CA and certificate with it
  containernetworking-plugins  # CNI plugins (bridge, host-local, portmap, loopback) in /usr/lib/cni
  iptables            # the bridge and portmap plugins program NAT with it
  iproute2            # ip, used by the network tests
  libseccomp-dev      # libcontainer links libseccomp for container seccomp profiles
  pkg-config          # finds libseccomp at build time
  golang-go                            # builds hack/streamclient, the e2e tests' independent
  golang-github-docker-spdystream-dev  #   exec/attach/port-forward client (the SPDY library
  golang-github-gorilla-websocket-dev  #   kubectl uses, and a WebSocket one)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "hack/setup.sh: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "hack/setup.sh: cargo not found; install Rust 1.85 or newer (rustup) and retry" >&2
  exit 1
fi

# The pod network `crishim serve` uses by default, unless the conf dir already has one.
conf_dir=/etc/cni/net.d
if ! ls "$conf_dir"/*.conflist "$conf_dir"/*.conf "$conf_dir"/*.json >/dev/null 2>&1; then
  mkdir -p "$conf_dir"
  cat >"$conf_dir/10-crishim.conflist" <<'JSON'
{
  "cniVersion": "1.0.0",
  "name": "crishim",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "crishim0",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "10.88.0.0/16" }]],
        "routes": [{ "dst": "0.0.0.0/0" }]
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } },
    { "type": "loopback" }
  ]
}
JSON
  echo "hack/setup.sh: wrote the default pod network $conf_dir/10-crishim.conflist (bridge crishim0, 10.88.0.0/16)"
fi
