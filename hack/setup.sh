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
