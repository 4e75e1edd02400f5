#!/usr/bin/env bash
# Measures crishim with its own load generator: sandbox lifecycle latencies, daemon RSS idle
# and with N idle pods, monitor PSS per idle pod, wasm containers (create+start, run to
# completion, pod creation to exit, memory per idle wasm pod, from a registry on 127.0.0.1),
# Linux containers (lifecycle latencies, run to completion, memory with N running), and pod
# sandboxes on a bridge CNI network. Starts a private daemon in a temp dir
# and stops it (by PID) at the end. Needs root. Usage: sudo hack/measure.sh [pods (100)]
set -euo pipefail
cd "$(dirname "$0")/.."
pods=${1:-100}
cargo build --release --locked --bins
dir=$(mktemp -d /tmp/crishim-measure.XXXXXX)
echo 'pod_network = "none"' >"$dir/config.toml"
RUST_LOG=warn target/release/crishim serve --config "$dir/config.toml" --root "$dir/root" --state "$dir/state" 2>"$dir/daemon.log" &
daemon=$!
cni_daemon=
cleanup() {
  for pid in $daemon $cni_daemon; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  ip link del crimeasure0 2>/dev/null || true
  [ -f "$dir/registry/registry.pid" ] && bash hack/registry.sh stop "$dir/registry"
  rm -rf "$dir"
}
trap cleanup EXIT
endpoint="unix://$dir/state/crishim.sock"
for _ in $(seq 100); do [ -S "$dir/state/crishim.sock" ] && break; sleep 0.05; done

bench=target/release/crishim-bench
echo "== sandbox lifecycle, own network namespace (no CNI), concurrency 1"
$bench --endpoint "$endpoint" -n 300 -c 1
echo "== sandbox lifecycle, concurrency 4"
$bench --endpoint "$endpoint" -n 300 -c 4

rss() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }
monitors_pss() {
  local total=0 n=0
  for pid in $(pgrep -f "crishim monitor --pod-id" || true); do
    if grep -q "$dir" "/proc/$pid/cmdline" 2>/dev/null; then
      total=$((total + $(awk '/^Pss:/{print $2}' "/proc/$pid/smaps_rollup"))); n=$((n + 1))
    fi
  done
  echo "monitors: $n, PSS total ${total} KiB, per pod $((total / (n > 0 ? n : 1))) KiB"
}
echo "== memory"
# Holds $pods pods of a scenario (its extra arguments after the label) for 5 s and reads the
# daemon's RSS and the monitors' PSS meanwhile.
hold_and_measure() {
  local label=$1; shift
  rm -f "$dir/ready"
  $bench --endpoint "$endpoint" -n "$pods" -c 2 --ready-file "$dir/ready" --hold-secs 5 "$@" >"$dir/idle.txt" &
  local bench_pid=$!
  for _ in $(seq 2400); do [ -f "$dir/ready" ] && break; sleep 0.05; done
  sleep 1
  echo "daemon RSS with $(cat "$dir/ready") $label: $(rss "$daemon") KiB"
  monitors_pss
  wait "$bench_pid"
}
echo "daemon RSS idle: $(rss "$daemon") KiB"
hold_and_measure "pods" --scenario idle-pods

echo "== wasm containers (the probe module from hack/testimages/wat/probe.wat)"
registry=$(bash hack/registry.sh start "$dir/registry" 0)
target/release/crishim-testimages --registry "$registry" --image wasm-probe >/dev/null
probe="$registry/test/wasm-probe:latest"
echo "-- run to completion of a module that prints a line, concurrency 1 and 4 (exits seen by events)"
$bench --endpoint "$endpoint" --scenario container-run --image "$probe" -n 2000 -c 1
$bench --endpoint "$endpoint" --scenario container-run --image "$probe" -n 4000 -c 4
echo "-- the same at concurrency 1 with no event listener (kubelet's default, generic PLEG): exits seen by polling"
$bench --endpoint "$endpoint" --scenario container-run --image "$probe" -n 1000 -c 1 --exit-seen poll
echo "-- pod creation to the module's exit, concurrency 1"
$bench --endpoint "$endpoint" --scenario pod-to-exit --image "$probe" -n 100 -c 1
echo "-- $pods idle wasm pods (a guest sleeping in poll_oneoff)"
hold_and_measure "wasm pods" --scenario idle-container-pods --image "$probe" --arg idle

echo "== Linux containers (busybox from Debian's busybox-static)"
target/release/crishim-testimages --registry "$registry" --image busybox >/dev/null
busybox="$registry/test/busybox:latest"
echo "-- create, start, stop (timeout 0), remove of \`sleep 1000\`, concurrency 1"
$bench --endpoint "$endpoint" --scenario container-lifecycle --image "$busybox" --command sleep --arg 1000 -n 100 -c 1
echo "-- run to completion of \`true\`, concurrency 1 and 4"
$bench --endpoint "$endpoint" --scenario container-run --image "$busybox" --command true -n 100 -c 1
$bench --endpoint "$endpoint" --scenario container-run --image "$busybox" --command true -n 200 -c 4
echo "-- $pods pods with a running \`sleep\` container"
hold_and_measure "pods running a Linux container" --scenario idle-container-pods --image "$busybox" \
  --command sleep --arg 100000

echo "== sandbox lifecycle with bridge CNI (bridge + host-local + portmap + loopback), concurrency 1"
mkdir -p "$dir/net.d"
cat >"$dir/net.d/10-measure.conflist" <<JSON
{"cniVersion": "1.0.0", "name": "measure", "plugins": [
  {"type": "bridge", "bridge": "crimeasure0", "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "dataDir": "$dir/ipam", "ranges": [[{"subnet": "10.90.0.0/16"}]]}},
  {"type": "portmap", "capabilities": {"portMappings": true}},
  {"type": "loopback"}]}
JSON
RUST_LOG=warn,crishim::network=debug target/release/crishim serve --root "$dir/cni-root" --state "$dir/cni-state" \
  --cni-conf-dir "$dir/net.d" 2>"$dir/cni-daemon.log" &
cni_daemon=$!
for _ in $(seq 100); do [ -S "$dir/cni-state/crishim.sock" ] && break; sleep 0.05; done
$bench --endpoint "unix://$dir/cni-state/crishim.sock" -n 100 -c 1
grep -o 'CNI ADD finished.*' "$dir/cni-daemon.log" | grep -o 'ms=[0-9.]*' | cut -d= -f2 | sort -n |
  awk '{ v[NR] = $1 } END { if (NR) printf "CNI ADD (all plugins) p50 %.1f ms over %d pods\n", v[int((NR + 1) / 2)], NR }'
