#!/usr/bin/env bash
# A private OCI registry on 127.0.0.1 for tests (Debian's docker-registry), with its own config,
# storage dir and PID file.
#   hack/registry.sh start DIR [PORT [USER PASSWORD]]  prints HOST:PORT once it answers
#   hack/registry.sh stop DIR                          stops it by the PID in DIR/registry.pid
# PORT 0 (the default) picks a free port. With USER and PASSWORD it requires basic auth.
# With TLS_CERT and TLS_KEY in the environment (PEM files) it serves HTTPS.
set -euo pipefail
cmd=${1:?usage: registry.sh start|stop DIR [PORT [USER PASSWORD]]}
dir=${2:?registry dir}

case "$cmd" in
start)
  port=${3:-0}
  command -v docker-registry >/dev/null || {
    echo "registry.sh: docker-registry is missing: apt-get install docker-registry (or run hack/setup.sh)" >&2
    exit 1
  }
  mkdir -p "$dir/storage"
  auth=""
  if [ $# -ge 5 ]; then
    command -v htpasswd >/dev/null || { echo "registry.sh: htpasswd is missing: apt-get install apache2-utils" >&2; exit 1; }
    htpasswd -Bbn "$4" "$5" > "$dir/htpasswd"
    auth="auth:
  htpasswd:
    realm: crishim-test
    path: $dir/htpasswd"
  fi
  tls=""
  scheme=http
  if [ -n "${TLS_CERT:-}" ]; then
    tls="  tls:
    certificate: $TLS_CERT
    key: ${TLS_KEY:?TLS_KEY must name the key of TLS_CERT}"
    scheme=https
  fi
  cat > "$dir/config.yml" <<YML
version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
  secret: crishim-test-secret
  draintimeout: 1s
$tls
$auth
YML
  docker-registry serve "$dir/config.yml" > "$dir/registry.log" 2>&1 &
  echo $! > "$dir/registry.pid"
  for _ in $(seq 200); do
    addr=$(grep -o 'listening on 127\.0\.0\.1:[0-9]*' "$dir/registry.log" | head -1 | sed 's/listening on //' || true)
    if [ -n "$addr" ] && curl -sk -o /dev/null "$scheme://$addr/v2/"; then
      echo "$addr"
      exit 0
    fi
    kill -0 "$(cat "$dir/registry.pid")" 2>/dev/null || break
    sleep 0.05
  done
  echo "registry.sh: the registry did not start; its log:" >&2
  cat "$dir/registry.log" >&2
  exit 1
  ;;
stop)
  [ -f "$dir/registry.pid" ] || exit 0
  pid=$(cat "$dir/registry.pid")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$dir/registry.pid"
  ;;
*)
  echo "usage: registry.sh start|stop DIR [PORT [USER PASSWORD]]" >&2
  exit 2
  ;;
esac
