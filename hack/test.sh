#!/usr/bin/env bash
# Runs every test: formatting, clippy, unit tests and the e2e tests (which start the real
# daemon and use real namespaces, mounts and cgroups). Needs root. Installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "hack/test.sh: the e2e tests need root (namespaces, mounts, cgroups): sudo hack/test.sh" >&2
  exit 1
fi
bash hack/setup.sh
cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings
cargo test --locked --workspace
