#!/usr/bin/env bash
# Runs crishim on this machine: installs what is missing, builds a release binary and starts
# `crishim serve` on the defaults (socket /run/crishim/crishim.sock, state in /var/lib/crishim
# and /run/crishim). Extra arguments go to `crishim serve` (e.g. --socket, --root, --config).
# Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "hack/run.sh: crishim needs root (namespaces, mounts, cgroups): sudo hack/run.sh" >&2
  exit 1
fi
bash hack/setup.sh
cargo build --release --locked --bin crishim
exec target/release/crishim serve "$@"
