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
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# --all-targets: unit, bin, e2e and bench-tool tests (there are no doc tests).
cargo test --locked --workspace --all-targets 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# One closing line over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;?$/) p += $i; if ($(i+1) ~ /^failed;?$/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
