#!/usr/bin/env bash
# Builds hack/streamclient (an independent, client-go-like exec/attach/port-forward client for
# the e2e tests) with Debian's Go and Go libraries, in GOPATH mode: no Go module proxy needed.
#   hack/streamclient/build.sh OUTPUT
set -euo pipefail

if [ $# -ne 1 ] || [ -z "$1" ]; then
  echo "usage: $0 OUTPUT" >&2
  exit 2
fi
out=$1
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
src=$(cd "$(dirname "$0")" && pwd)
packages="golang-go golang-github-docker-spdystream-dev golang-github-gorilla-websocket-dev"
gocode=/usr/share/gocode/src

missing() {
  echo "hack/streamclient/build.sh: $1; install the Debian packages: apt-get install $packages" >&2
  exit 1
}

command -v go >/dev/null 2>&1 || missing "no Go toolchain (go) on PATH"
# Debian ships spdystream as golang-github-docker-spdystream-dev; recent versions put it under
# github.com/moby/spdystream (with github.com/docker/spdystream a symlink), older ones only
# under github.com/docker/spdystream.
spdy=""
for d in "$gocode/github.com/moby/spdystream" "$gocode/github.com/docker/spdystream"; do
  if [ -f "$d/connection.go" ]; then
    spdy=$(readlink -f "$d")
    break
  fi
done
[ -n "$spdy" ] || missing "github.com/moby/spdystream is not in $gocode"
[ -f "$gocode/github.com/gorilla/websocket/client.go" ] || missing "github.com/gorilla/websocket is not in $gocode"

# A private GOPATH: the libraries under both spdystream import paths, and this package.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/src/github.com/moby" "$tmp/src/github.com/docker" "$tmp/src/github.com/gorilla" \
  "$tmp/src/crishim/streamclient"
ln -s "$spdy" "$tmp/src/github.com/moby/spdystream"
ln -s "$spdy" "$tmp/src/github.com/docker/spdystream"
ln -s "$(readlink -f "$gocode/github.com/gorilla/websocket")" "$tmp/src/github.com/gorilla/websocket"
cp "$src"/*.go "$tmp/src/crishim/streamclient/"

# A usable build cache even where HOME is unset or read-only.
if [ -z "${GOCACHE:-}" ]; then
  cache="${XDG_CACHE_HOME:-${HOME:-}/.cache}/go-build"
  if [ -z "${XDG_CACHE_HOME:-}${HOME:-}" ] || ! mkdir -p "$cache" 2>/dev/null || [ ! -w "$cache" ]; then
    cache="$tmp/cache"
  fi
  export GOCACHE="$cache"
fi

mkdir -p "$(dirname "$out")"
cd "$tmp/src/crishim/streamclient"
GO111MODULE=off GOPATH="$tmp" GOFLAGS= GOPROXY=off CGO_ENABLED=0 go build -o "$out" .
echo "built $out"
