#!/usr/bin/env bash
# Measures crishim with its own load generator: sandbox lifecycle latencies, daemon RSS idle
# and with N idle pods, and monitor PSS per idle pod. Starts a private daemon in a temp dir
# and stops it (by PID) at the end. Needs root. Usage: sudo hack/measure.sh [pods (100)]
set -euo pipefail
cd "$(dirname "$0")/.."
pods=${1:-100}
cargo build --release --locked --bins
dir=$(mktemp -d /tmp/crishim-measure.XXXXXX)
RUST_LOG=warn target/release/crishim serve --root "$dir/root" --state "$dir/state" 2>"$dir/daemon.log" &
daemon=$!
trap 'kill "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; rm -rf "$dir"' EXIT
endpoint="unix://$dir/state/crishim.sock"
for _ in $(seq 100); do [ -S "$dir/state/crishim.sock" ] && break; sleep 0.05; done

bench=target/release/crishim-bench
echo "== sandbox lifecycle, own network namespace (no CNI), concurrency 1"
$bench --endpoint "$endpoint" -n 300 -c 1
echo "== sandbox lifecycle, concurrency 4"
$bench --endpoint "$endpoint" -n 300 -c 4

rss() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }
echo "== memory"
echo "daemon RSS idle: $(rss "$daemon") KiB"
$bench --endpoint "$endpoint" --scenario idle-pods -n "$pods" -c 2 --ready-file "$dir/ready" --hold-secs 5 >"$dir/idle.txt" &
bench_pid=$!
for _ in $(seq 600); do [ -f "$dir/ready" ] && break; sleep 0.05; done
sleep 1
echo "daemon RSS with $(cat "$dir/ready") pods: $(rss "$daemon") KiB"
total=0; n=0
for pid in $(pgrep -f "crishim monitor --pod-id" || true); do
  if grep -q "$dir" "/proc/$pid/cmdline" 2>/dev/null; then
    total=$((total + $(awk '/^Pss:/{print $2}' "/proc/$pid/smaps_rollup"))); n=$((n + 1))
  fi
done
echo "monitors: $n, PSS total ${total} KiB, per pod $((total / (n > 0 ? n : 1))) KiB"
wait "$bench_pid"
