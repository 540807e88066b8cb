#!/usr/bin/env bash
# Builds k6 from the Go module proxy into .cache/bin (once), then runs it with the
# arguments given: scripts/k6.sh run load-tests/steady.js
set -euo pipefail
cd "$(dirname "$0")/.."
K6_VERSION=v1.8.1
BIN_DIR="$PWD/.cache/bin"
if ! "$BIN_DIR/k6" version 2>/dev/null | grep -q "${K6_VERSION#v}"; then
  command -v go >/dev/null || { echo "k6: Go is needed to build k6 (apt-get install golang-go, or https://go.dev/dl)" >&2; exit 1; }
  echo "k6: building $K6_VERSION from the Go module proxy into $BIN_DIR (once)" >&2
  mkdir -p "$BIN_DIR"
  GOBIN="$BIN_DIR" GOMODCACHE="$PWD/.cache/go/mod" GOCACHE="$PWD/.cache/go/build" GOFLAGS=-mod=mod \
    go install "go.k6.io/k6@$K6_VERSION"
fi
[ $# -gt 0 ] || { "$BIN_DIR/k6" version; exit 0; }
exec "$BIN_DIR/k6" "$@"
