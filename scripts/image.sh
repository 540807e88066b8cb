#!/usr/bin/env bash
# The runtime image, built from Debian's packages and run with podman as the Helm chart runs
# it. No container registry is needed (none is reachable here): the base is made with
# debootstrap, the binary is the one built on the host.
#
#   scripts/image.sh build       the base (cached) + the binary -> localhost/hookline:dev; prints the size
#   scripts/image.sh run-check   api, router and sender in three containers against
#                                $HOOKLINE_TEST_KAFKA: /readyz, an endpoint, events delivered to
#                                `hookline sink` on the host, signatures verified
#   scripts/image.sh base        only the base image (debootstrap), e.g. beside the cargo build
#   scripts/image.sh clean       remove the images and .cache/image
#
# In step with the Dockerfile (for registries elsewhere): the same Debian release, the same
# runtime packages (ca-certificates libssl3 zlib1g), user hookline with UID/GID 65532,
# /usr/local/bin/hookline as the entrypoint, ports 9090 and 8080. Change both together.
#
# The base: `debootstrap --variant=minbase` of the host's Debian release (bash, sh, cat and
# sleep come with it: the chart's test pod and kafka-password init container use them), the
# release's security and point updates applied, documentation and locales left out as in
# Debian's -slim images. It is cached as .cache/image/rootfs-<release>-<key>.tar and as the
# podman image localhost/hookline-base:<release>-<key> (the key hashes this recipe), so only
# the first run downloads packages; IMAGE_REFRESH=1 makes it again (newer security updates).
#
# Env:
#   HOOKLINE_BIN          the binary to put in the image (default target/release/hookline;
#                         built with `cargo build --release --locked -p hookline` if missing;
#                         CARGO_TARGET_DIR is honoured). A debug binary works too.
#   HOOKLINE_IMAGE        image name (default localhost/hookline:dev)
#   HOOKLINE_TEST_KAFKA   run-check: the broker, host:port, reachable from the host network
#   IMAGE_MIRROR          Debian mirror (default http://deb.debian.org/debian, and -security)
#   IMAGE_REFRESH=1       build: make the base again even when cached
#
# podman needs runc (crun is not installed) and no default ulimits on this machine's kernel
# sandbox: the script passes its own containers.conf (CONTAINERS_CONF) saying so.
# Needs root (debootstrap, rootful podman) and Debian's podman, runc and debootstrap.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

release=$(. /etc/os-release && echo "${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release}")
mirror=${IMAGE_MIRROR:-http://deb.debian.org/debian}
security_mirror=${IMAGE_SECURITY_MIRROR:-${mirror}-security}
# What the binary links besides glibc and libgcc_s (in minbase): OpenSSL 3 and zlib
# (librdkafka's TLS and compression), plus the CA roots for https endpoints and Kafka TLS.
packages="ca-certificates libssl3 zlib1g"
app_uid=65532   # the chart's podSecurityContext.runAsUser / runAsGroup
image=${HOOKLINE_IMAGE:-localhost/hookline:dev}
cache=$repo/.cache/image
work_root=${IMAGE_WORK_DIR:-/tmp/image-work}
# Bump when the recipe below changes in a way the key does not see.
recipe=1
key=$(printf '%s\n' "$recipe" "$release" "$packages" "$app_uid" "$mirror" | sha256sum | cut -c1-12)
base_tag=$release-$key
base_image=localhost/hookline-base:$base_tag
base_tar=$cache/rootfs-$base_tag.tar

log() { echo "image: $*" >&2; }
die() { echo "image: FAIL: $*" >&2; exit 1; }

need_tools() {
  [ "$(id -u)" = 0 ] || die "needs root (debootstrap and rootful podman)"
  local missing=()
  for t in "$@"; do command -v "$t" >/dev/null || missing+=("$t"); done
  [ ${#missing[@]} = 0 ] || die "missing ${missing[*]}: apt-get update && apt-get install -y podman runc debootstrap"
}

# podman with runc and without default ulimits (setting them fails in this sandbox).
podman_conf() {
  mkdir -p "$cache"
  local conf=$cache/containers.conf
  if [ ! -f "$conf" ]; then
    printf '%s\n' '# Written by scripts/image.sh.' '[containers]' 'default_ulimits = []' \
      '[engine]' 'runtime = "runc"' >"$conf"
  fi
  export CONTAINERS_CONF=$conf
}
pm() { podman --runtime runc "$@"; }

# ------------------------------------------------------------------------------ base
# A debootstrap that failed half-way may leave /proc, /sys or /dev mounted in the rootfs:
# unmount them first, and never let rm cross into another filesystem.
remove_tree() {
  local m
  awk -v d="$1/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf --one-file-system "$1"
}

make_base_tar() {
  local dir rootfs
  mkdir -p "$work_root" "$cache"
  dir=$(mktemp -d "$work_root/base.XXXXXX")
  rootfs=$dir/rootfs
  # shellcheck disable=SC2064
  trap "remove_tree '$dir'; rm -f '$base_tar.tmp'" EXIT
  log "debootstrap --variant=minbase $release (+ $packages) from $mirror"
  # Debian's -slim images leave these out; dpkg keeps them out on later installs too.
  mkdir -p "$rootfs/etc/dpkg/dpkg.cfg.d"
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/hookline-slim" <<'EOF'
# scripts/image.sh: no documentation or translations in the image (as Debian's -slim images).
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
EOF
  debootstrap --variant=minbase --include="${packages// /,}" "$release" "$rootfs" "$mirror" \
    >"$dir/debootstrap.log" 2>&1 || { tail -20 "$dir/debootstrap.log" >&2; die "debootstrap failed"; }
  cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $mirror $release main
deb $mirror $release-updates main
deb $security_mirror $release-security main
EOF
  log "security and point updates"
  chroot "$rootfs" apt-get -q update >"$dir/apt.log" 2>&1 \
    && chroot "$rootfs" env DEBIAN_FRONTEND=noninteractive apt-get -q -y upgrade >>"$dir/apt.log" 2>&1 \
    || { tail -20 "$dir/apt.log" >&2; die "apt-get upgrade in the base failed"; }
  chroot "$rootfs" groupadd --system -K SYS_GID_MAX="$app_uid" --gid "$app_uid" hookline
  chroot "$rootfs" useradd --system -K SYS_UID_MAX="$app_uid" --uid "$app_uid" --gid "$app_uid" \
    --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin hookline
  chroot "$rootfs" apt-get clean
  # What debootstrap and apt leave behind: package lists, logs, the files dpkg had already
  # unpacked before the exclusions applied.
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/debconf/*-old \
    "$rootfs"/var/log/* "$rootfs"/tmp/* "$rootfs"/var/tmp/* "$rootfs"/root/.bash_history \
    "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/* \
    "$rootfs"/usr/share/lintian "$rootfs"/usr/share/linda "$rootfs"/debootstrap
  find "$rootfs/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete 2>/dev/null || true
  find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
  # The host's resolver and hostname are not the image's.
  : >"$rootfs/etc/resolv.conf"; : >"$rootfs/etc/hostname"
  tar --numeric-owner --xattrs -C "$rootfs" -cf "$base_tar.tmp" .
  mv "$base_tar.tmp" "$base_tar"
  remove_tree "$dir"; trap - EXIT
  log "base rootfs $(du -h "$base_tar" | cut -f1) -> $base_tar"
}

ensure_base() {
  need_tools debootstrap podman runc
  podman_conf
  if [ "${IMAGE_REFRESH:-0}" = 1 ]; then
    rm -f "$base_tar"; pm rmi -f "$base_image" >/dev/null 2>&1 || true
  fi
  if pm image exists "$base_image"; then
    log "base $base_image (cached)"
    return
  fi
  [ -f "$base_tar" ] || make_base_tar
  pm import --quiet --change "USER $app_uid:$app_uid" --change 'CMD ["/bin/bash"]' \
    "$base_tar" "$base_image" >/dev/null
  log "base $base_image imported"
}

# ------------------------------------------------------------------------------ build
host_binary() {
  local bin=${HOOKLINE_BIN:-}
  if [ -z "$bin" ]; then
    bin=${CARGO_TARGET_DIR:-target}/release/hookline
    if [ ! -x "$bin" ]; then
      # A release build embeds services/console/dist (the console and portal): build it first.
      if [ ! -f services/console/dist/index.html ]; then
        log "no services/console/dist/index.html: scripts/console.sh build"
        bash scripts/console.sh build >&2
      fi
      log "no $bin: cargo build --release --locked -p hookline"
      cargo build --release --locked -p hookline >&2
    fi
  fi
  [ -x "$bin" ] || die "no binary at $bin (set HOOKLINE_BIN)"
  # The image has the host's Debian release, so the libraries the binary links must be
  # among what the base installs: a new dependency shows here, not in a crash loop.
  local libs
  libs=$(ldd "$bin" | awk '/=>/ {print $1}' | sort)
  for l in $libs; do
    case "$l" in
      libc.so.*|libm.so.*|libgcc_s.so.*|libpthread.so.*|libdl.so.*|librt.so.*|libz.so.*|libssl.so.3|libcrypto.so.3) ;;
      *) die "$bin links $l, which the image does not install: add its package to \$packages here and in the Dockerfile" ;;
    esac
  done
  echo "$bin"
}

cmd_build() {
  local t0 bin ctx size
  t0=$(date +%s)
  ensure_base
  bin=$(host_binary)
  mkdir -p "$work_root"
  ctx=$(mktemp -d "$work_root/ctx.XXXXXX")
  # shellcheck disable=SC2064
  trap "rm -rf '$ctx'" EXIT
  cp "$bin" "$ctx/hookline"
  # Kept in step with the Dockerfile's runtime stage (the same user, path, ports, entrypoint).
  cat >"$ctx/Containerfile" <<EOF
# Generated by scripts/image.sh; the Dockerfile's runtime stage does the same from debian:$release-slim.
FROM $base_image
COPY hookline /usr/local/bin/hookline
USER $app_uid:$app_uid
EXPOSE 9090 8080
ENTRYPOINT ["/usr/local/bin/hookline"]
CMD ["--help"]
EOF
  local previous
  previous=$(pm image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
  log "podman build $image from $base_image + $bin"
  pm build --quiet --pull=never --network none \
    --label "org.opencontainers.image.source=scripts/image.sh" \
    --label "org.opencontainers.image.revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
    --label "org.opencontainers.image.base.name=$base_image" \
    -t "$image" -f "$ctx/Containerfile" "$ctx" >/dev/null
  # The image this one replaces would stay behind untagged, a few hundred MB each build.
  if [ -n "$previous" ] && [ "$previous" != "$(pm image inspect --format '{{.Id}}' "$image")" ]; then
    pm rmi "$previous" >/dev/null 2>&1 || true
  fi
  # The image runs, as the chart's non-root user, and says what it is.
  pm run --rm --network none --read-only "$image" --version >&2 \
    || die "$image does not run: podman run --rm $image --version"
  size=$(pm image inspect --format '{{.Size}}' "$image")
  log "built $image in $(( $(date +%s) - t0 ))s"
  echo "image: $image $((size / 1000000)) MB ($((size / 1048576)) MiB; binary $(( $(stat -c %s "$bin") / 1048576 )) MiB, base $(( $(pm image inspect --format '{{.Size}}' "$base_image") / 1048576 )) MiB)"
}

# ------------------------------------------------------------------------------ run-check
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

cmd_run_check() {
  : "${HOOKLINE_TEST_KAFKA:?set HOOKLINE_TEST_KAFKA to a running broker, e.g. KAFKA_PORT=27092 KAFKA_CONTROLLER_PORT=27093 scripts/kafka.sh start; HOOKLINE_TEST_KAFKA=127.0.0.1:27092}"
  need_tools podman runc curl python3
  podman_conf
  pm image exists "$image" || die "no image $image: run scripts/image.sh build first"
  local t0 run events=20 cli_events=5
  t0=$(date +%s)
  run=hookline-check-$$
  mkdir -p "$work_root"
  dir=$(mktemp -d "$work_root/check.XXXXXX")
  chmod 0755 "$dir"
  started=()
  sink_pid=
  cleanup() {
    local status=$?
    [ -n "$sink_pid" ] && kill "$sink_pid" 2>/dev/null && wait "$sink_pid" 2>/dev/null
    for c in "${started[@]}"; do pm rm -f -t 5 "$c" >/dev/null 2>&1 || true; done
    rm -rf "$dir"
    [ "$status" = 0 ] || echo "image: run-check FAILED (containers removed)" >&2
  }
  trap cleanup EXIT
  trap 'exit 130' INT TERM

  # The sink runs on the host, from the host's binary: the receiver is not the image under test.
  local sink_bin=${HOOKLINE_BIN:-}
  if [ -z "$sink_bin" ]; then
    for b in "${CARGO_TARGET_DIR:-target}/release/hookline" "${CARGO_TARGET_DIR:-target}/debug/hookline"; do
      [ -x "$b" ] && { sink_bin=$b; break; }
    done
  fi
  [ -x "$sink_bin" ] || die "no host binary for the sink: set HOOKLINE_BIN"

  local admin_api admin_router admin_sender api_port sink_port prefix secret token sha
  admin_api=$(free_port); admin_router=$(free_port); admin_sender=$(free_port)
  api_port=$(free_port); sink_port=$(free_port)
  prefix=imagecheck-$$-$(date +%s)
  secret=whsec_$(head -c 24 /dev/urandom | base64)

  # As the chart runs every container: its UID and GID, a read-only root filesystem with a
  # writable /tmp only (the chart's emptyDir), every capability dropped, no privilege
  # escalation, the configuration read-only at /etc/hookline/hookline.toml.
  local -a secure=(--user "$app_uid:$app_uid" --read-only --read-only-tmpfs=false
    --tmpfs /tmp:rw,size=64m,mode=1777 --cap-drop ALL --security-opt no-new-privileges
    --network host)
  local -a conf=(-v "$dir/etc:/etc/hookline:ro" -e HOOKLINE_CONFIG=/etc/hookline/hookline.toml)

  # A token for the API, made by the image itself.
  local out
  out=$(pm run --rm "${secure[@]}" "$image" api token --name image-check --scopes admin) \
    || die "hookline api token failed in the image"
  token=$(sed -n 's/^token: //p' <<<"$out")
  sha=$(sed -n 's/^sha256 = "\(.*\)"$/\1/p' <<<"$out")
  [ -n "$token" ] && [ -n "$sha" ] || die "no token in the output of hookline api token: $out"

  mkdir -p "$dir/etc"
  cat >"$dir/etc/hookline.toml" <<EOF
# scripts/image.sh run-check
[kafka]
bootstrap_servers = "$HOOKLINE_TEST_KAFKA"
topic_prefix = "$prefix"
[kafka.partitions]
events = 2
deliveries = 2
attempts = 1
dlq = 1
retry = 1
[sender]
# The sink listens on the host's loopback; the SSRF policy refuses it otherwise.
allowed_cidrs = ["127.0.0.1/32"]
[api]
require_https = false
[[api.tokens]]
name = "image-check"
sha256 = "$sha"
scopes = ["admin"]
[log]
format = "json"
EOF
  chmod 0644 "$dir/etc/hookline.toml"

  log "topics create (the chart's Job), then topics check (its helm test), prefix $prefix"
  pm run --rm --name "$run-topics" "${secure[@]}" "${conf[@]}" "$image" \
    --config /etc/hookline/hookline.toml topics create >"$dir/topics.log" 2>&1 \
    || { tail -20 "$dir/topics.log" >&2; die "hookline topics create failed in the image"; }
  pm run --rm --name "$run-topics-check" "${secure[@]}" "${conf[@]}" "$image" \
    --config /etc/hookline/hookline.toml topics check >"$dir/topics-check.log" 2>&1 \
    || { tail -20 "$dir/topics-check.log" >&2; die "hookline topics check failed in the image"; }

  local role port
  declare -A admin=([api]=$admin_api [router]=$admin_router [sender]=$admin_sender)
  for role in api router sender; do
    local -a env=(-e "HOOKLINE_ADMIN__LISTEN=127.0.0.1:${admin[$role]}")
    [ "$role" = api ] && env+=(-e "HOOKLINE_API__LISTEN=127.0.0.1:$api_port")
    pm run -d --name "$run-$role" "${secure[@]}" "${conf[@]}" "${env[@]}" "$image" \
      --config /etc/hookline/hookline.toml "$role" >/dev/null \
      || die "podman run $role failed"
    started+=("$run-$role")
  done

  # Every role answers /readyz on its admin port (the chart's readiness probe).
  local deadline
  for role in api router sender; do
    port=${admin[$role]}
    deadline=$(( $(date +%s) + 90 ))
    until curl -fs -o /dev/null "http://127.0.0.1:$port/readyz"; do
      if [ "$(pm inspect --format '{{.State.Running}}' "$run-$role")" != true ] || [ "$(date +%s)" -gt "$deadline" ]; then
        pm logs --tail 30 "$run-$role" >&2 || true
        die "$role: no 200 from /readyz on 127.0.0.1:$port"
      fi
      sleep 1
    done
    log "$role: /readyz 200 on 127.0.0.1:$port ($(( $(date +%s) - t0 ))s)"
  done

  # The user, the read-only root and the writable /tmp, as seen inside a running role.
  local ids
  ids=$(pm exec "$run-sender" id -u):$(pm exec "$run-sender" id -g)
  [ "$ids" = "$app_uid:$app_uid" ] || die "sender runs as $ids, not $app_uid:$app_uid"
  if pm exec "$run-sender" /bin/sh -c 'echo x >/usr/local/bin/x' 2>/dev/null; then die "the root filesystem is writable"; fi
  pm exec "$run-sender" /bin/sh -c 'echo x >/tmp/x && rm /tmp/x' || die "/tmp is not writable"
  log "sender runs as $ids; / is read-only, /tmp writable"

  # What the chart runs besides the binary: the api's preStop `sleep`, the helm test pod's
  # bash with /dev/tcp (its script, verbatim but for the addresses), the kafka-password init
  # container's /bin/sh and cat.
  pm exec "$run-api" sleep 0 || die "no sleep in the image (the api's preStop hook)"
  pm run --rm "${secure[@]}" --entrypoint /bin/bash "$image" -ec '
    get() { # host port path: prints the status line, fails unless 200
      exec 3<>"/dev/tcp/$1/$2"
      printf "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" "$3" "$1" >&3
      IFS= read -r status <&3
      exec 3<&-
      echo "$1:$2$3 -> $status"
      case "$status" in "HTTP/1."?" 200"*) ;; *) return 1 ;; esac
    }
    get 127.0.0.1 '"$api_port"' /healthz
    get 127.0.0.1 '"$admin_api"' /readyz' >&2 || die "the chart's helm test script (bash /dev/tcp) failed in the image"
  pm run --rm "${secure[@]}" "${conf[@]}" --entrypoint /bin/sh "$image" -ec \
    'pw=$(cat /etc/hookline/hookline.toml); [ -n "$pw" ]; while IFS= read -r line || [ -n "$line" ]; do :; done </etc/hookline/hookline.toml' \
    || die "/bin/sh with cat and read (the kafka-password init container) failed in the image"

  # The console and portal: a release binary embeds them; a debug binary reads
  # services/console/dist of the checkout it was built in, which the image does not have.
  local console
  console=$(curl -s -o /dev/null -w '%{http_code} %{content_type}' "http://127.0.0.1:$api_port/console/") || true
  case "$console" in
    "200 text/html"*) log "api: /console/ 200 (the console is in the binary)" ;;
    *) log "WARNING: api: /console/ answered '$console': the console is not in this binary (a debug build, or a release build made before scripts/console.sh build)" ;;
  esac

  # A receiver on the host that verifies signatures, and an endpoint for it through the API.
  "$sink_bin" sink --listen "127.0.0.1:$sink_port" --secret "$secret" --print --summary-every 0 \
    >"$dir/sink.log" 2>&1 &
  sink_pid=$!
  deadline=$(( $(date +%s) + 20 ))
  until (exec 3<>"/dev/tcp/127.0.0.1/$sink_port") 2>/dev/null; do
    [ "$(date +%s)" -le "$deadline" ] || { cat "$dir/sink.log" >&2; die "the sink did not listen"; }
    sleep 0.2
  done

  local api=http://127.0.0.1:$api_port auth=(-H "authorization: Bearer $token" -H 'content-type: application/json')
  local code
  code=$(curl -sS "${auth[@]}" -X POST "$api/v1/endpoints" -o "$dir/endpoint.json" -w '%{http_code}' \
    -d "{\"description\": \"scripts/image.sh run-check\", \"url\": \"http://127.0.0.1:$sink_port/hooks/image-check\", \"event_types\": [\"image.*\"], \"secret\": \"$secret\"}") || true
  [ "$code" = 201 ] || die "POST /v1/endpoints answered ${code:-nothing}: $(cat "$dir/endpoint.json" 2>/dev/null)"
  # The router and the sender see the endpoint (their registries, from the endpoints topic)
  # before an event is published, so none is routed to nobody.
  for role in router sender; do
    deadline=$(( $(date +%s) + 30 ))
    until curl -fsS "http://127.0.0.1:${admin[$role]}/metrics" | grep -qE '^hookline_registry_endpoints 1(\.0)?$'; do
      [ "$(date +%s)" -le "$deadline" ] || die "$role did not load the endpoint (hookline_registry_endpoints)"
      sleep 0.5
    done
  done
  log "endpoint $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$dir/endpoint.json") -> http://127.0.0.1:$sink_port/hooks/image-check, seen by router and sender"

  # Events through the API's ingest, and through `hookline publish` in a container.
  local i id ids_file=$dir/ids
  : >"$ids_file"
  for i in $(seq 1 "$events"); do
    id=$(curl -fsS "${auth[@]}" -X POST "$api/v1/events" -d "{\"type\": \"image.checked\", \"data\": {\"n\": $i}}" \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])') || die "POST /v1/events failed"
    echo "$id" >>"$ids_file"
  done
  log "$events events through POST /v1/events ($(( $(date +%s) - t0 ))s)"
  pm run --rm --name "$run-publish" "${secure[@]}" "${conf[@]}" "$image" --config /etc/hookline/hookline.toml \
    publish --type image.published --data '{"from": "hookline publish"}' --count "$cli_events" >"$dir/publish.log" 2>&1 \
    || { tail -20 "$dir/publish.log" >&2; die "hookline publish failed in the image"; }
  log "$cli_events events with hookline publish in a container ($(( $(date +%s) - t0 ))s)"

  # Every event arrives, signed as the sink expects.
  local want=$((events + cli_events)) valid missing
  deadline=$(( $(date +%s) + 60 ))
  while :; do
    valid=$(grep -F 'signature valid' "$dir/sink.log" | grep -oE 'evt_[0-9a-f]+' | sort -u | wc -l)
    [ "$valid" -ge "$want" ] && break
    if [ "$(date +%s)" -gt "$deadline" ]; then
      tail -20 "$dir/sink.log" >&2; pm logs --tail 20 "$run-sender" >&2 || true
      die "$valid of $want events arrived with a valid signature in 60s"
    fi
    sleep 0.5
  done
  missing=$(grep -F 'signature valid' "$dir/sink.log" | grep -oE 'evt_[0-9a-f]+' | sort -u | comm -13 - <(sort -u "$ids_file") | wc -l)
  [ "$missing" = 0 ] || die "$missing events published through the API did not arrive"
  if grep -qE 'REJECTED|not verified' "$dir/sink.log"; then
    grep -E 'REJECTED|not verified' "$dir/sink.log" | head -5 >&2; die "the sink saw requests without a valid signature"
  fi
  log "sink: $valid events, every signature valid ($(( $(date +%s) - t0 ))s)"

  # A clean stop within the chart's grace period (SIGTERM; podman's -t is the grace).
  local t_stop=$(date +%s)
  pm stop -t 30 "$run-api" "$run-router" "$run-sender" >/dev/null
  for role in api router sender; do
    code=$(pm inspect --format '{{.State.ExitCode}}' "$run-$role")
    [ "$code" = 0 ] || { pm logs --tail 20 "$run-$role" >&2; die "$role exited $code on SIGTERM"; }
  done
  log "api, router, sender stopped on SIGTERM with status 0 in $(( $(date +%s) - t_stop ))s"
  echo "image: run-check passed in $(( $(date +%s) - t0 ))s: api, router, sender ready as UID $app_uid on a read-only root; $valid events delivered, signatures valid; clean SIGTERM"
}

cmd_clean() {
  need_tools podman runc
  podman_conf
  pm rmi -f "$image" >/dev/null 2>&1 || true
  pm images --format '{{.Repository}}:{{.Tag}}' | grep '^localhost/hookline-base:' | xargs -r podman --runtime runc rmi -f >/dev/null || true
  rm -rf "$cache"
  log "removed $image, the base images and $cache"
}

case "${1:-}" in
  build) cmd_build ;;
  run-check) cmd_run_check ;;
  base) ensure_base ;;
  clean) cmd_clean ;;
  *) sed -n '2,10p' "$0" >&2; exit 64 ;;
esac
