#!/usr/bin/env bash
# Installs what Hookline's scripts need and the machine lacks: a JDK 17+ and Maven (for the
# local Kafka), a C toolchain with make and perl (librdkafka is built from source by
# rdkafka-sys), OpenSSL headers and pkg-config (librdkafka's TLS), the openssl command (the
# test broker's certificates), curl and python3 with venv (scripts, the chart's checks),
# Node.js with npm (the console, the k6 scenario's check), Debian's chromium (the console's
# browser tests; no browser is ever downloaded by a test tool). Rust itself must already be
# there (rustup), and Go 1.26+ for the chart's tools (helm, helm-unittest, promtool).
set -euo pipefail

missing=()
need() { command -v "$1" >/dev/null 2>&1 || missing+=("$2"); }
need java openjdk-17-jdk-headless
need javac openjdk-17-jdk-headless
need mvn maven
need cc build-essential
need make make
need perl perl
need curl curl
need python3 python3
need openssl openssl
need pkg-config pkg-config
need node nodejs
need npm npm
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
[ -x /usr/bin/chromium ] || missing+=(chromium)
# The runtime image (scripts/image.sh): debootstrap makes its base, podman (with runc) runs it.
need podman podman
need runc runc
need debootstrap debootstrap
# librdkafka is built with TLS against the system OpenSSL.
pkg-config --exists openssl 2>/dev/null || missing+=(libssl-dev)

if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  for d in "$HOME/.cargo/bin" /usr/local/cargo/bin; do [ -x "$d/cargo" ] && export PATH="$d:$PATH"; done
fi
command -v cargo >/dev/null 2>&1 || { echo "bootstrap: cargo not found; install Rust with rustup (https://rustup.rs)" >&2; exit 1; }
java_major=$(java -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2}')
[ "${java_major%%.*}" -ge 17 ] || { echo "bootstrap: Java 17+ needed for Kafka 4.x, found $java_major" >&2; exit 1; }
if command -v go >/dev/null 2>&1 || [ -x /usr/local/go/bin/go ]; then
  command -v go >/dev/null 2>&1 || export PATH="/usr/local/go/bin:$PATH"
  go_minor=$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')
  [ "${go_minor:-0}" -ge 26 ] || echo "bootstrap: Go 1.26+ is needed for the chart's tools, found $(go env GOVERSION); install it from go.dev" >&2
else
  echo "bootstrap: Go not found: the chart's checks (helm, helm-unittest, promtool) need Go 1.26+" >&2
fi
