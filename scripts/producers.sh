#!/usr/bin/env bash
# Builds and runs the example producers in docs/producers/ (Java, Go, Python): each publishes
# hookline.v1.Event records to the events topic, encoded with classes generated from
# proto/hookline/v1/hookline.proto at build time. See docs/producers.md.
#
#   scripts/producers.sh build [java|go|python ...]   install what is missing and build (all by default)
#   scripts/producers.sh run LANG -- ARGS...          run one (built first if out of date), e.g.
#       scripts/producers.sh run go -- --bootstrap 127.0.0.1:9092 --topic hookline.events \
#           --codec zstd --count 10 --id-prefix demo
#   scripts/producers.sh clean                        delete this script's build outputs (not the shared caches)
#
# Everything lives under .cache/ (HOOKLINE_CACHE_DIR), shared with the other scripts where it is a
# download cache: Maven's local repository .cache/m2 (as scripts/kafka.sh), Go's .cache/go/{mod,build},
# pip's .cache/pip.
# This script's own outputs: .cache/producers/ (the Java jar, protoc, generated Python),
# .cache/venv-producers/ (pinned Python packages), .cache/bin/hookline-producer-go, and the
# gitignored docs/producers/go/hooklinev1/ (generated Go, where `go build` expects it).
# A build whose inputs did not change since the last one is skipped.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$SCRIPT_DIR/.." && pwd)"
abs_path() { if [[ "$1" == /* ]]; then echo "$1"; else echo "$PWD/$1"; fi; }
CACHE_DIR="$(abs_path "${HOOKLINE_CACHE_DIR:-$REPO_DIR/.cache}")"
SRC_DIR="$REPO_DIR/docs/producers"
PROTO_DIR="$REPO_DIR/proto"
PROTO_FILE="$PROTO_DIR/hookline/v1/hookline.proto"
OUT_DIR="$CACHE_DIR/producers"
M2_DIR="$CACHE_DIR/m2"
DEP_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.6.1"
JAVA_BUILD_DIR="$OUT_DIR/java"
JAR="$JAVA_BUILD_DIR/hookline-producer.jar"
GO_BIN="$CACHE_DIR/bin/hookline-producer-go"
VENV="$CACHE_DIR/venv-producers"
PY_GEN="$OUT_DIR/python"
LANGS=(java go python)

say() { echo "producers: $*" >&2; }
die() { echo "producers: error: $*" >&2; exit 1; }
now_ms() { date +%s%3N; }
since() { local d=$(( $(now_ms) - $1 )); printf '%d.%ds' $((d / 1000)) $(((d % 1000) / 100)); }

# quietly LOG CMD...: runs CMD with its output in LOG; on failure shows the log's tail and fails.
quietly() {
  local log="$1"; shift
  if ! "$@" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    die "failed: $* (full log: $log)"
  fi
}

# apt_install PACKAGE...: Debian packages, announced (the machine is root in CI; sudo elsewhere).
apt_install() {
  say "installing $* (apt-get)"
  local sudo=""; [[ "$(id -u)" -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# stamp_of FILES...: one hash over the files' names and contents (the inputs of a build).
stamp_of() { (cd "$REPO_DIR" && sha1sum "$@" | sha1sum | cut -c1-40); }
up_to_date() { [[ -f "$1" && "$(cat "$1")" == "$2" ]]; }

# The protobuf release shared by the three builds: docs/producers/java/pom.xml's protobuf.version.
protobuf_version() {
  sed -n 's:.*<protobuf.version>\(.*\)</protobuf.version>.*:\1:p' "$SRC_DIR/java/pom.xml" | head -n 1
}

need_java() {
  local missing=()
  command -v javac >/dev/null 2>&1 || missing+=(openjdk-17-jdk-headless)
  command -v mvn >/dev/null 2>&1 || missing+=(maven)
  if (( ${#missing[@]} )); then apt_install "${missing[@]}"; fi
}

# protoc from Maven Central (com.google.protobuf:protoc, the same release as protobuf-java), for Go.
PROTOC=""
ensure_protoc() {
  local version arch dir
  version="$(protobuf_version)"
  [[ -n "$version" ]] || die "no <protobuf.version> in docs/producers/java/pom.xml"
  case "$(uname -m)" in
    x86_64|amd64) arch=x86_64 ;;
    aarch64|arm64) arch=aarch_64 ;;
    *) die "no protoc artifact for $(uname -m)" ;;
  esac
  dir="$OUT_DIR/protoc/$version"
  PROTOC="$dir/protoc"
  [[ -x "$PROTOC" ]] && return 0
  need_java
  mkdir -p "$dir" "$M2_DIR"
  quietly "$OUT_DIR/protoc.log" mvn -q -B -Dstyle.color=never -Dmaven.repo.local="$M2_DIR" \
    "$DEP_PLUGIN:copy" -Dartifact="com.google.protobuf:protoc:$version:exe:linux-$arch" \
    -DoutputDirectory="$dir" -Dmdep.stripVersion=true -Dmdep.stripClassifier=true
  mv "$dir/protoc.exe" "$PROTOC"
  chmod +x "$PROTOC"
}

build_java() {
  local stamp
  stamp="$(stamp_of "$PROTO_FILE" $(cd "$REPO_DIR" && find docs/producers/java -path docs/producers/java/target -prune -o -type f -print | sort))"
  if [[ -f "$JAR" ]] && up_to_date "$JAVA_BUILD_DIR.stamp" "$stamp"; then return 0; fi
  need_java
  local t0; t0=$(now_ms)
  mkdir -p "$OUT_DIR" "$M2_DIR"
  quietly "$OUT_DIR/java.log" mvn -q -B -Dstyle.color=never -f "$SRC_DIR/java/pom.xml" \
    -Dmaven.repo.local="$M2_DIR" -Dhookline.build.dir="$JAVA_BUILD_DIR" package
  echo "$stamp" >"$JAVA_BUILD_DIR.stamp"
  say "java: built $JAR in $(since "$t0")"
}

go_env() {
  export GOMODCACHE="$CACHE_DIR/go/mod" GOCACHE="$CACHE_DIR/go/build" GOFLAGS="-modcacherw"
}

build_go() {
  if ! command -v go >/dev/null 2>&1; then
    apt_install golang-go # go.mod's `go` line makes it fetch a newer toolchain if this one is older
  fi
  ensure_protoc
  local stamp src="$SRC_DIR/go"
  stamp="$(stamp_of "$PROTO_FILE" docs/producers/go/go.mod docs/producers/go/go.sum docs/producers/go/main.go)-$(go version)-$PROTOC"
  if [[ -x "$GO_BIN" && -f "$src/hooklinev1/hookline.pb.go" ]] && up_to_date "$OUT_DIR/go.stamp" "$stamp"; then return 0; fi
  local t0; t0=$(now_ms)
  go_env
  mkdir -p "$OUT_DIR/go/bin" "$(dirname "$GO_BIN")"
  # protoc-gen-go at the version go.mod pins (its `tool` line), then main.go's //go:generate line.
  (cd "$src" && quietly "$OUT_DIR/go.log" go build -o "$OUT_DIR/go/bin/protoc-gen-go" google.golang.org/protobuf/cmd/protoc-gen-go)
  (cd "$src" && PATH="$(dirname "$PROTOC"):$OUT_DIR/go/bin:$PATH" quietly "$OUT_DIR/go.log" go generate ./...)
  (cd "$src" && quietly "$OUT_DIR/go.log" go build -o "$GO_BIN" .)
  echo "$stamp" >"$OUT_DIR/go.stamp"
  say "go: built $GO_BIN in $(since "$t0")"
}

build_python() {
  local py="${PYTHON:-python3}" stamp req="$SRC_DIR/python/requirements.txt"
  command -v "$py" >/dev/null 2>&1 || apt_install python3
  stamp="$(stamp_of docs/producers/python/requirements.txt)-$("$py" --version 2>&1)"
  local t0; t0=$(now_ms)
  if ! [[ -x "$VENV/bin/python" ]] || ! up_to_date "$VENV/.hookline-stamp" "$stamp"; then
    rm -rf "$VENV"
    if ! "$py" -m venv "$VENV" >/dev/null 2>&1; then
      rm -rf "$VENV"
      apt_install python3-venv
      "$py" -m venv "$VENV" || die "python3 -m venv still fails"
    fi
    say "python: installing docs/producers/python/requirements.txt into $VENV (pip)"
    quietly "$OUT_DIR/python.log" env PIP_CACHE_DIR="$CACHE_DIR/pip" "$VENV/bin/pip" install --disable-pip-version-check --no-input -r "$req"
    echo "$stamp" >"$VENV/.hookline-stamp"
  fi
  # hookline_pb2, with the protoc that grpcio-tools ships (a version the pinned protobuf runs).
  stamp="$(stamp_of "$PROTO_FILE")-$(cat "$VENV/.hookline-stamp")"
  if [[ -f "$PY_GEN/hookline/v1/hookline_pb2.py" ]] && up_to_date "$PY_GEN.stamp" "$stamp"; then return 0; fi
  rm -rf "$PY_GEN"
  mkdir -p "$PY_GEN"
  quietly "$OUT_DIR/python.log" "$VENV/bin/python" -m grpc_tools.protoc -I "$PROTO_DIR" --python_out="$PY_GEN" "$PROTO_FILE"
  quietly "$OUT_DIR/python.log" env PYTHONPATH="$PY_GEN" "$VENV/bin/python" -c 'from hookline.v1 import hookline_pb2'
  echo "$stamp" >"$PY_GEN.stamp"
  say "python: ready ($VENV, generated code in $PY_GEN) in $(since "$t0")"
}

# with_lock CMD...: one build at a time per cache (parallel tests, a test beside scripts/test.sh).
with_lock() {
  mkdir -p "$OUT_DIR"
  if command -v flock >/dev/null 2>&1; then
    local fd
    exec {fd}>"$OUT_DIR/.lock"
    flock -w 900 "$fd" || die "timed out waiting for $OUT_DIR/.lock"
    "$@"
    exec {fd}>&-
  else
    "$@"
  fi
}

build() {
  local langs=("$@") lang
  (( ${#langs[@]} )) || langs=("${LANGS[@]}")
  for lang in "${langs[@]}"; do
    case "$lang" in
      java|go|python) "build_$lang" ;;
      *) die "unknown language '$lang' (java, go or python)" ;;
    esac
  done
}

run() {
  local lang="${1:-}"
  [[ -n "$lang" ]] || die "usage: $0 run java|go|python -- ARGS..."
  shift
  [[ "${1:-}" == "--" ]] && shift
  with_lock build "$lang"
  case "$lang" in
    java) exec java ${JAVA_OPTS:-} -jar "$JAR" "$@" ;;
    go) exec "$GO_BIN" "$@" ;;
    python) PYTHONPATH="$PY_GEN" exec "$VENV/bin/python" "$SRC_DIR/python/producer.py" "$@" ;;
  esac
}

clean() {
  rm -rf "$OUT_DIR" "$VENV" "$GO_BIN" "$SRC_DIR/go/hooklinev1"
  say "removed $OUT_DIR, $VENV, $GO_BIN and docs/producers/go/hooklinev1"
}

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}" >&2; }

cmd="${1:-}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
  build) with_lock build "$@" ;;
  run) run "$@" ;;
  clean) with_lock clean ;;
  -h|--help|help) usage ;;
  *) usage; exit 2 ;;
esac
