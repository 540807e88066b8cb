#!/usr/bin/env bash
# Hookline on a cluster that refuses what it should: the 3-node KRaft cluster of
# scripts/kafka.sh with the StandardAuthorizer (allow.everyone.if.no.acl.found=false) and
# SASL/SCRAM users (KAFKA_CLUSTER_ACL=1).
#
#   load-tests/cluster-acl.sh            the end-to-end run, then one run per missing ACL
#   load-tests/cluster-acl.sh happy      the end-to-end run only
#
# 1. The admin user (a super user) creates the topics (`hookline topics create` with the admin's
#    credentials): Hookline's own user may not create topics.
# 2. The admin grants user "hookline" exactly the ACLs of docs/operations.md ("Kafka ACLs"), for
#    the topic prefix PREFIX (default "acme": not Hookline's default prefix, so that no name
#    matches by accident).
# 3. api, router, sender and replay run as separate processes with the hookline user's SCRAM
#    credentials; endpoints are registered through the API, events produced to the events topic
#    (by the admin user, standing for a platform service), delivered to a `hookline sink`; a DLQ
#    replay job runs to completion and the API's history answers. Every pair must arrive.
# 4. Then for each ACL in turn: remove it, start the roles again on the same topics, produce
#    events, and record what each role says (its first distinct warnings and errors), whether it
#    exits, what /readyz says, and whether anything is delivered; then put the ACL back.
#
# Writes load-tests/results/cluster-acl-<time>.txt (and .json). Exits non-zero when the
# end-to-end run does not deliver everything.
# Knobs: KAFKA_PORT (26092: nodes on 26192/26292/26392, SASL on +2), PORT_BASE (26500),
# PREFIX (acme), EVENTS (2000), OBSERVE (seconds per missing-ACL case, 25), HOOKLINE_BIN,
# KEEP_CLUSTER=1 (leave the cluster running).
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-all}
BIN=${HOOKLINE_BIN:-target/release/hookline}
KAFKA_PORT=${KAFKA_PORT:-26092}
PORT_BASE=${PORT_BASE:-26500}
PREFIX=${PREFIX:-acme}
EVENTS=${EVENTS:-2000}
OBSERVE=${OBSERVE:-25}
out=load-tests/results; mkdir -p "$out"
name="cluster-acl-$(date +%Y%m%d-%H%M%S)"
work=$(mktemp -d)
report="$work/report.txt"

kc() { env -u KAFKA_SSL_PORT -u KAFKA_SASL_PORT -u KAFKA_CONTROLLER_PORT -u KAFKA_STATE_DIR \
         KAFKA_NODES=3 KAFKA_CLUSTER_ACL=1 KAFKA_PORT="$KAFKA_PORT" bash scripts/kafka.sh "$@"; }
SASL="127.0.0.1:$((KAFKA_PORT + 102)),127.0.0.1:$((KAFKA_PORT + 202)),127.0.0.1:$((KAFKA_PORT + 302))"
log() { echo "acl: $*" >&2; }
say() { echo "$*" | tee -a "$report" >&2; }

source scripts/bootstrap.sh
source load-tests/cluster-lib.sh
[ -x "$BIN" ] || cargo build --release --locked -p hookline

started_here=0
if ! kc status >/dev/null 2>&1; then started_here=1; kc start; fi
ADMIN_PROPS=$(kc env | sed -n 's/^KAFKA_ADMIN_CLIENT_PROPERTIES=//p')
[ -n "$ADMIN_PROPS" ] || { log "the cluster on $KAFKA_PORT runs without ACLs (stop it first)"; exit 1; }

pids=()
stop_roles() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 250); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  pids=()
}
sink_pid=""
finish() {
  stop_roles
  [ -n "$sink_pid" ] && { kill "$sink_pid" 2>/dev/null || true; wait "$sink_pid" 2>/dev/null || true; }
  if [ "$started_here" = 1 ] && [ "${KEEP_CLUSTER:-0}" != 1 ]; then kc stop || true; fi
}
trap finish EXIT

# The AclCommand as the admin, over SASL.
acls() { kc tool org.apache.kafka.tools.AclCommand --bootstrap-server "$SASL" --command-config "$ADMIN_PROPS" "$@"; }

# The ACLs docs/operations.md lists, one `AclCommand` argument list per line: NAME|ARGS.
# Hookline's consumer groups are <prefix>.router and <prefix>.sender. The readers of state
# topics, history, replay ranges and unreadable-record probes have group ids of their own
# ("hookline-...", outside the prefix) but only assign partitions and never commit: the
# end-to-end run shows they need no group ACL (it runs a DLQ replay job too).
ACL_LIST="topic Read|--operation Read --topic $PREFIX. --resource-pattern-type prefixed
topic Write|--operation Write --topic $PREFIX. --resource-pattern-type prefixed
topic Describe|--operation Describe --topic $PREFIX. --resource-pattern-type prefixed
group Read|--operation Read --group $PREFIX. --resource-pattern-type prefixed
group Describe|--operation Describe --group $PREFIX. --resource-pattern-type prefixed
cluster IdempotentWrite|--operation IdempotentWrite --cluster"
grant() { acls --add --allow-principal User:hookline "$@" >/dev/null; }
revoke() { acls --remove --force --allow-principal User:hookline "$@" >/dev/null; }

new_token acl
secret=$(python3 -c 'import base64,os;print("whsec_"+base64.b64encode(os.urandom(32)).decode())')
config() {  # config USER PASSWORD
  cat <<EOF
[kafka]
bootstrap_servers = "$SASL"
topic_prefix = "$PREFIX"
replication_factor = 3
min_insync_replicas = 2

[kafka.partitions]
events = 3
deliveries = 6
attempts = 3
dlq = 3
retry = 3

[kafka.client]
"security.protocol" = "SASL_PLAINTEXT"
"sasl.mechanism" = "SCRAM-SHA-512"
"sasl.username" = "$1"
"sasl.password" = "$2"

$(roles_toml acl-test info)
EOF
}
config admin admin-test-secret >"$work/admin.toml"
config hookline hookline-test-secret >"$work/hookline.toml"
api="http://127.0.0.1:$((PORT_BASE + 1))"
curl_api() { curl -sS -H "authorization: Bearer $token" -H 'content-type: application/json' "$@"; }

say "== Hookline with only the documented ACLs (user hookline, prefix '$PREFIX', $(date -u +%FT%TZ))"
# A fresh prefix state: this script's topics and ACLs from an earlier run go first.
kc delete-topics "$SASL" "$PREFIX" --command-config "$ADMIN_PROPS" >/dev/null 2>&1 || true
acls --remove --force --principal User:hookline >/dev/null 2>&1 || true
sleep 2
"$BIN" --config "$work/admin.toml" topics create >"$work/topics.log" 2>&1 || { cat "$work/topics.log" >&2; exit 1; }
say "topics created by the admin user: $(grep -c '^created' "$work/topics.log")"
while IFS='|' read -r what args; do
  # shellcheck disable=SC2086
  grant $args
done <<<"$ACL_LIST"
acls --list --principal User:hookline >"$work/acls.txt" 2>&1 || true
say "ACLs of User:hookline:"
grep -E "ResourcePattern|principal" "$work/acls.txt" | sed 's/^/  /' | tee -a "$report" >&2 || true

# Hookline's own user may not create topics: what `hookline topics create` says as that user.
tc=0
"$BIN" --config "$work/hookline.toml" topics create >"$work/topics-as-hookline.log" 2>&1 || tc=$?
say "hookline topics create as user hookline (exit $tc): $(grep -v '^\s*$' "$work/topics-as-hookline.log" | tail -n 3 | tr '\n' ' ' | cut -c1-400)"

"$BIN" sink --listen "127.0.0.1:$PORT_BASE" --secret "$secret" --summary-every 0 >"$work/sink.log" 2>&1 & sink_pid=$!

# start_roles TAG: api, router, sender, replay as user hookline; logs in $work/TAG-<role>.log
start_roles() {
  local tag=$1 role i=0
  for role in api router sender replay; do
    i=$((i + 1))
    env HOOKLINE_ADMIN__LISTEN="127.0.0.1:$((PORT_BASE + 10 + i))" HOOKLINE_API__LISTEN="127.0.0.1:$((PORT_BASE + 1))" \
      "$BIN" --config "$work/hookline.toml" "$role" >"$work/$tag-$role.log" 2>&1 &
    pids+=($!)
  done
}
readyz() { curl -s "http://127.0.0.1:$((PORT_BASE + 10 + $1))/readyz" 2>/dev/null | tr -d '\n' | cut -c1-300; }
unique() { curl -sf "http://127.0.0.1:$PORT_BASE/stats" | python3 -c 'import json,sys;print(json.load(sys.stdin)["unique"])'; }
produce() {  # produce N: events to the events topic as the admin user (a platform service)
  "$BIN" --config "$work/admin.toml" bench produce --rate 500 --duration "$(( $1 / 500 ))s" --summary "$work/produce.json" >/dev/null 2>"$work/produce.log"
  python3 -c "import json;print(int(json.load(open('$work/produce.json'))['accepted_events']))"
}

# ---- the end-to-end run -------------------------------------------------------------------
status=0
start_roles ok
for _ in $(seq 300); do curl -sf "http://127.0.0.1:$((PORT_BASE + 11))/readyz" >/dev/null && break; sleep 0.2; done
ready=1
for i in 1 2 3 4; do
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$((PORT_BASE + 10 + i))/readyz" >/dev/null && break; sleep 0.2; done
  curl -sf "http://127.0.0.1:$((PORT_BASE + 10 + i))/readyz" >/dev/null || { ready=0; say "role $i not ready: $(readyz "$i")"; }
done
ids=()
for n in 1 2; do
  id=$(curl_api -X POST "$api/v1/endpoints" -d "{\"url\": \"http://127.0.0.1:$PORT_BASE/ep$n\", \"event_types\": [\"load.*\"], \"secret\": \"$secret\"}" \
       | python3 -c 'import json,sys;print(json.load(sys.stdin)["id"])') || id=""
  ids+=("$id")
done
accepted=$(produce "$EVENTS")
expected=$((accepted * 2))
last=-1; still=0
for _ in $(seq 600); do
  got=$(unique); [ "$got" -ge "$expected" ] && break
  if [ "$got" = "$last" ]; then still=$((still + 1)); else still=0; fi
  [ "$still" -ge 150 ] && break
  last=$got; sleep 0.1
done
attempts=$(curl_api "$api/v1/endpoints/${ids[0]}/attempts" | python3 -c 'import json,sys;d=json.load(sys.stdin);print(len(d.get("data", d) if isinstance(d, dict) else d))' 2>/dev/null || echo "?")
dlq=$(curl_api -o /dev/null -w '%{http_code}' "$api/v1/dlq")
replay_id=$(curl_api -X POST "$api/v1/replays" -d "{\"source\": \"dlq\", \"from\": $(( ($(date +%s) - 3600) * 1000 ))}" | python3 -c 'import json,sys;print(json.load(sys.stdin)["id"])' 2>/dev/null || echo "")
replay_state="?"
for _ in $(seq 60); do
  replay_state=$(curl_api "$api/v1/replays/$replay_id" | python3 -c 'import json,sys;print(json.load(sys.stdin).get("state"))' 2>/dev/null || echo "?")
  [ "$replay_state" = completed ] && break
  sleep 0.5
done
errors=$(cat "$work"/ok-*.log | grep -c '"level":"ERROR"' || true)
say "end to end: roles ready $ready; $accepted events produced, $expected pairs expected, $got delivered unique; attempts API answered $attempts records, GET /v1/dlq $dlq, DLQ replay job $replay_state; ERROR lines in the roles' logs: $errors"
if [ "$got" -lt "$expected" ] || [ "$ready" != 1 ]; then status=1; say "FAILED: not every pair arrived with the documented ACLs"; fi
for f in "$work"/ok-*.log; do
  grep -E '"level":"(ERROR|WARN)"' "$f" | python3 -c '
import json, sys
seen = []
for line in sys.stdin:
    try: m = json.loads(line)
    except ValueError: continue
    msg = (m.get("message", "") + " " + str(m.get("error", ""))).strip()[:220]
    if msg not in seen: seen.append(msg)
for s in seen[:4]: print("   ", s)
' | sed "s|^|  $(basename "$f" .log):|" | tee -a "$report" >&2 || true
done
stop_roles

# ---- one ACL missing at a time ------------------------------------------------------------
if [ "$MODE" != happy ]; then
  while IFS='|' read -r what args; do
    say ""
    say "== without: $what"
    # shellcheck disable=SC2086
    revoke $args
    sleep 2
    before=$(unique)
    start_roles "no-${what// /-}"
    ( produce 1000 >/dev/null 2>&1 || true ) &
    prod=$!
    sleep "$OBSERVE"
    i=0
    for role in api router sender replay; do
      i=$((i + 1))
      pid=${pids[$((i - 1))]}
      f="$work/no-${what// /-}-$role.log"
      if kill -0 "$pid" 2>/dev/null; then state="running; readyz: $(readyz "$i")"
      else rc=0; wait "$pid" 2>/dev/null || rc=$?; state="EXITED with status $rc"; fi
      say "  $role: $state"
      python3 - "$f" <<'EOF' | tee -a "$report" >&2
import json, sys
# Each distinct warning or error once (by level, message, error and reason, with its count and
# one example's fields), then what the process printed outside the JSON log (its exit error).
seen, counts, plain = {}, {}, []
for line in open(sys.argv[1], errors="replace"):
    try:
        m = json.loads(line)
    except ValueError:
        if line.strip():
            plain.append(line.strip()[:400])
        continue
    if m.get("level") not in ("ERROR", "WARN"):
        continue
    key = (m.get("level"), m.get("message", "")[:120], str(m.get("error", ""))[:120], str(m.get("reason", ""))[:80])
    counts[key] = counts.get(key, 0) + 1
    if key not in seen:
        fields = {k: v for k, v in m.items() if k not in ("timestamp", "level", "message", "target", "log.target", "log.module_path", "log.file", "log.line", "repeats", "errors")}
        seen[key] = f"{m.get('level')} {m.get('message', '')} {json.dumps(fields) if fields else ''}".strip()[:360]
for key in list(seen)[:5]:
    print(f"    {seen[key]}" + (f"  [x{counts[key]}]" if counts[key] > 1 else ""))
for text in plain[-2:]:
    print("    exit: " + text)
if not seen and not plain:
    print("    (no warning or error)")
EOF
    done
    wait "$prod" 2>/dev/null || true
    say "  delivered during the case: $(( $(unique) - before ))"
    stop_roles
    # shellcheck disable=SC2086
    grant $args
  done <<<"$ACL_LIST"
fi

cp "$report" "$out/$name.txt"
python3 - "$report" "$out/$name.json" "$status" <<'EOF'
import json, sys
json.dump({"report": open(sys.argv[1]).read().splitlines(), "ok": sys.argv[3] == "0"}, open(sys.argv[2], "w"), indent=1)
EOF
log "report: $out/$name.txt (work $work)"
exit $status
