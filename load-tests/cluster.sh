#!/usr/bin/env bash
# Broker faults and role scaling under load, against a 3-node KRaft cluster, with a ledger.
#
#   load-tests/cluster.sh SCENARIO...      one or more of the scenarios below, or `all`
#   load-tests/cluster.sh ci               the short variant scripts/test.sh runs (leader-kill, small load)
#
# Scenarios (t = seconds after the load started):
#   steady                 no fault: the control run (the pauses a healthy run has at this load)
#   leader-kill            SIGKILL a broker leading a busy partition (an endpoint's deliveries partition,
#                          else an events partition) that is not the active controller at t=15, start it
#                          again 15 s later
#   rolling                rolling restart from t=10: SIGTERM node 1, start it, wait until no partition
#                          is under-replicated, then node 2, then node 3
#   controller-loss        SIGKILL the active controller (the KRaft quorum leader) at t=15, start it 15 s later
#   scale-senders          senders 1 -> 3 at t=15 -> 1 at t=35 (SIGTERM)
#   sender-join-leave      2 senders; a third joins at t=15 and leaves (SIGTERM) at t=35: the pause
#                          of the partitions that stay where they are
#   scale-routers          routers 1 -> 2 at t=15 -> 1 at t=35 (SIGTERM)
#   sender-kill-rebalance  a 4th sender joins at t=15; while the group rebalances, SIGKILL the sender
#                          that owns the most deliveries partitions
#   sender-drain           SIGTERM the sender that owns the most deliveries partitions at t=20 (graceful drain)
#   crash                  SIGKILL the busiest sender at t=15 and the busiest router at t=30, each started
#                          again at once (the duplicate bound: issue 13's "a sender and the router each
#                          SIGKILLed once at load")
#
# Each run: the cluster (scripts/kafka.sh with KAFKA_NODES=3; started if it is not running, and
# stopped at the end if this run started it), `hookline topics create` with replication factor 3
# and min.insync.replicas 2 on a fresh topic prefix, a `hookline sink` ledger, 2 API replicas
# (`hookline api`) through which FANOUT endpoints are registered (one per deliveries partition:
# an endpoint's deliveries are keyed to one partition, so per-endpoint pauses are per-partition
# pauses), 2 routers, 3 senders and 1 replay worker as separate processes, and constant load
# from `hookline bench produce` (the Kafka path). Then the ledger: events produced, (event,
# endpoint) pairs expected, delivered unique, dead-lettered, lost (expected - unique -
# dead-lettered), duplicates (2xx more than once), and the longest delivery pause while the
# load was on (from the sink's pauses, millisecond resolution), overall and per partition; for
# the rebalance scenarios the longest pause of a partition that was not reassigned. Reports:
# load-tests/results/cluster-<scenario>-<time>.{json,txt,svg}. Exits non-zero on loss (or a
# failed produce, or an invalid signature).
#
# Knobs (environment): RATE events/s (1000; the scale and rebalance scenarios: 150), DURATION
# (60s; rolling: 150s, three restarts on a busy machine), FANOUT endpoints per event (2; the
# scale and rebalance scenarios: 8; at most the 12 deliveries partitions), PAYLOAD_BYTES (256),
# ROUTERS (2), SENDERS (3; sender-join-leave: 2), APIS (2), RESTART_AFTER (15 s: leader-kill and
# controller-loss), CLIENT_PROPS (librdkafka properties for every role, e.g.
# "session.timeout.ms=10000": kafka.client), KAFKA_PORT (27092: nodes on 27192/27292/27392, controllers on +1),
# PORT_BASE (27500: the sink, then API and admin ports up to +50; keep every port below the
# ephemeral range, 32768), HOOKLINE_BIN (target/release/hookline), KEEP_CLUSTER=1 (leave the
# cluster running), LOG_LEVEL (info: the rebalance figures read the roles' "partitions
# assigned/revoked" lines), WARMUP (90s: when this run starts the cluster, a steady run of that
# length comes first and is not reported, since freshly started brokers are slow for their first
# minutes, docs/performance.md "Warm brokers"; 0 skips it; the ci scenario never warms).
set -euo pipefail
cd "$(dirname "$0")/.."

ALL_SCENARIOS="steady leader-kill rolling controller-loss scale-senders sender-join-leave scale-routers sender-kill-rebalance sender-drain crash"
[ $# -ge 1 ] || { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 64; }
scenarios=()
for arg in "$@"; do
  case "$arg" in
    all) read -ra more <<<"$ALL_SCENARIOS"; scenarios+=("${more[@]}") ;;
    ci|steady|leader-kill|rolling|controller-loss|scale-senders|sender-join-leave|scale-routers|sender-kill-rebalance|sender-drain|crash) scenarios+=("$arg") ;;
    *) echo "unknown scenario '$arg' (one of: $ALL_SCENARIOS, all, ci)" >&2; exit 64 ;;
  esac
done

BIN=${HOOKLINE_BIN:-target/release/hookline}
PAYLOAD_BYTES=${PAYLOAD_BYTES:-256}
KAFKA_PORT=${KAFKA_PORT:-27092}
PORT_BASE=${PORT_BASE:-27500}
LOG_LEVEL=${LOG_LEVEL:-info}
RESTART_AFTER=${RESTART_AFTER:-15}
DELIVERIES_PARTITIONS=12
out=load-tests/results; mkdir -p "$out"

# The cluster's own variables only: scripts/test.sh exports its single broker's.
kc() { env -u KAFKA_SSL_PORT -u KAFKA_SASL_PORT -u KAFKA_CONTROLLER_PORT -u KAFKA_STATE_DIR \
         KAFKA_NODES=3 KAFKA_PORT="$KAFKA_PORT" bash scripts/kafka.sh "$@"; }
BOOTSTRAP="127.0.0.1:$((KAFKA_PORT + 100)),127.0.0.1:$((KAFKA_PORT + 200)),127.0.0.1:$((KAFKA_PORT + 300))"
now_ms() { date +%s%3N; }
log() { echo "cluster: $*" >&2; }

source scripts/bootstrap.sh
source load-tests/cluster-lib.sh
[ -x "$BIN" ] || cargo build --release --locked -p hookline

cluster_started_here=0
if ! kc status >/dev/null 2>&1; then
  cluster_started_here=1
  kc start
fi

# ------------------------------------------------------------------------------------------
# processes: every role by name in $work/pids ("name pid" lines; the scenario's actions run in
# a background subshell and start and stop roles too), its admin port in ADMIN
# ------------------------------------------------------------------------------------------
declare -A ADMIN
work=""; gen_pid=""; actions_pid=""
pid_of() { awk -v n="$1" '$1 == n { p = $2 } END { print p }' "$work/pids" 2>/dev/null; }
# Ours, alive: guards against a recycled pid.
alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q "hookline"; }
stop_all() {
  local name pid pids=()
  [ -n "$actions_pid" ] && { kill "$actions_pid" 2>/dev/null || true; wait "$actions_pid" 2>/dev/null || true; actions_pid=""; }
  [ -n "$gen_pid" ] && { kill "$gen_pid" 2>/dev/null || true; gen_pid=""; }
  [ -n "$work" ] && [ -f "$work/pids" ] || return 0
  for name in $(awk '{ print $1 }' "$work/pids" | sort -u); do
    pid=$(pid_of "$name")
    if alive "$pid"; then kill -TERM "$pid" 2>/dev/null || true; pids+=("$pid"); fi
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 250); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  : >"$work/pids"
  wait 2>/dev/null || true
}
finish() {
  stop_all
  if [ "$cluster_started_here" = 1 ] && [ "${KEEP_CLUSTER:-0}" != 1 ]; then kc stop || true; fi
}
trap finish EXIT

# start_role NAME ROLE ADMIN_PORT [VAR=value ...]
start_role() {
  local name=$1 role=$2 admin=$3 pid; shift 3
  env HOOKLINE_ADMIN__LISTEN="127.0.0.1:$admin" "$@" "$BIN" --config "$work/hookline.toml" "$role" >>"$work/$name.log" 2>&1 &
  pid=$!
  echo "$name $pid" >>"$work/pids"; ADMIN[$name]=$admin
  action "start $name (pid $pid)"
}

# stop_role NAME TERM|KILL: signal it and wait until it has exited.
stop_role() {
  local name=$1 sig=$2 pid; pid=$(pid_of "$1")
  alive "$pid" || { action "$name not running"; return 0; }
  kill -s "$sig" "$pid" 2>/dev/null || true
  action "SIG$sig to $name (pid $pid)"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  action "$name exited"
}

wait_ready() {
  local name=$1 timeout=${2:-60}
  for _ in $(seq $((timeout * 5))); do
    curl -sf "http://127.0.0.1:${ADMIN[$name]}/readyz" >/dev/null && return 0
    alive "$(pid_of "$name")" || { log "$name exited"; tail -n 20 "$work/$name.log" >&2; return 1; }
    sleep 0.2
  done
  log "$name not ready after ${timeout}s: $(curl -s "http://127.0.0.1:${ADMIN[$name]}/readyz")"
  return 1
}

# A line in the run's timeline (JSON lines), also on stderr.
action() {
  local t; t=$(now_ms)
  printf '{"t_ms": %s, "what": "%s"}\n' "$t" "$1" >>"$work/actions.jsonl"
  log "+$(( (t - ${load_start:-$t}) / 1000 ))s $1"
}

# Sleeps until S seconds after the load started.
at() { local due=$((load_start + $1 * 1000)) now; now=$(now_ms); (( due > now )) && sleep "$(( (due - now) / 1000 )).$(printf '%03d' $(( (due - now) % 1000 )))"; return 0; }

# The running sender (or router) that owns the most partitions now (from its own log lines).
busiest() {
  local topic="$prefix.deliveries"; [ "$1" = router ] && topic="$prefix.events"
  python3 -c "import sys; sys.path.insert(0, 'load-tests'); from cluster_report import busiest; print(busiest('$work', '$1', '$topic') or '${1}1')"
}

kafka_pid() { cat ".cache/kafka-state/cluster-$KAFKA_PORT/node$1/kafka.pid" 2>/dev/null || echo 0; }
sender_admin() { echo $((PORT_BASE + 30 + $1)); }
router_admin() { echo $((PORT_BASE + 20 + $1)); }

# ------------------------------------------------------------------------------------------
# the scenarios' actions (run in the background while the load runs)
# ------------------------------------------------------------------------------------------
# Before the load: which node to kill (a lookup costs a JVM start, seconds on a busy box).
pick_fault_node() {
  local kind=$1
  kc tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" --describe --topic "$prefix.events" >"$work/describe-events.txt" 2>/dev/null || true
  kc tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" --describe --topic "$prefix.deliveries" >"$work/describe-deliveries.txt" 2>/dev/null || true
  if [ "$kind" = leader ]; then
    # The leader of a busy partition that is not also the active controller (controller-loss
    # is the other scenario): the endpoints' deliveries partitions first, then the events ones.
    local controller pick
    controller=$(kc controller)
    pick=$(python3 - "$work" "$prefix" "$controller" <<'EOF'
import json, re, sys
work, prefix, controller = sys.argv[1], sys.argv[2], sys.argv[3]
def leaders(topic):
    out = {}
    for line in open(f"{work}/describe-{topic}.txt"):
        m = re.search(r"Partition:\s*(\d+)\s+Leader:\s*(-?\d+)", line)
        if m:
            out[int(m.group(1))] = m.group(2)
    return out
d, e = leaders("deliveries"), leaders("events")
cands = [(d.get(x["partition"]), f"leads {prefix}.deliveries/{x['partition']} ({x['path']}'s partition)") for x in json.load(open(f"{work}/endpoints.json"))]
cands += [(l, f"leads {prefix}.events/{p}") for p, l in sorted(e.items())]
cands = [c for c in cands if c[0] and c[0] != "-1"]
pick = next((c for c in cands if c[0] != controller), cands[0] if cands else None)
print(f"{pick[0]}|{pick[1]}" if pick else "")
EOF
)
    [ -n "$pick" ] || { log "no partition leader found"; exit 1; }
    fault_node=${pick%%|*}
    fault_why="${pick#*|}; node $controller is the active controller"
  else
    fault_node=$(kc controller)
    fault_why="is the active controller"
  fi
  echo "$fault_node" >"$work/fault-node"
}

broker_fault() {  # SIGKILL $fault_node at FAULT_AT, start it RESTART_AFTER s later
  at "$FAULT_AT"
  action "SIGKILL node $fault_node (it $fault_why)"
  kc kill-node "$fault_node" 2>/dev/null
  action "node $fault_node gone"
  sleep "$RESTART_AFTER"
  action "starting node $fault_node"
  kc start-node "$fault_node" 2>/dev/null
  action "node $fault_node back in the cluster (it answers and sees 3 brokers)"
}

rolling() {
  local n urp
  at 10
  for n in 1 2 3; do
    action "SIGTERM node $n"
    kc stop-node "$n" 2>/dev/null
    action "node $n stopped"
    kc start-node "$n" 2>/dev/null
    action "node $n back in the cluster (it answers and sees 3 brokers)"
    for _ in $(seq 60); do
      urp=$(kc under-replicated 2>/dev/null || echo "?")
      [ "$urp" = 0 ] && break
      sleep 1
    done
    action "under-replicated partitions: $urp"
  done
}

scale_senders() {
  at 15
  start_role sender2 sender "$(sender_admin 2)"; start_role sender3 sender "$(sender_admin 3)"
  at 35
  stop_role sender3 TERM & stop_role sender2 TERM; wait
  at 45; action "window end"
}

sender_join_leave() {
  at 15; start_role "sender$((SENDERS_NOW + 1))" sender "$(sender_admin $((SENDERS_NOW + 1)))"
  at 35; stop_role "sender$((SENDERS_NOW + 1))" TERM
  at 45; action "window end"
}

scale_routers() {
  at 15; start_role router2 router "$(router_admin 2)"
  at 35; stop_role router2 TERM
  at 45; action "window end"
}

sender_kill_rebalance() {
  local n=$((SENDERS_NOW + 1)) body victim
  at 12; victim=$(busiest sender)
  at 15
  start_role "sender$n" sender "$(sender_admin "$n")"
  # The new member joins once its registry is loaded: /readyz then says only "no partitions
  # assigned yet". A moment later the group is rebalancing: kill sender 1 then.
  for _ in $(seq 300); do
    body=$(curl -s "http://127.0.0.1:${ADMIN[sender$n]}/readyz" || true)
    if [[ "$body" == *"no partitions assigned"* && "$body" != *"registry still loading"* ]]; then break; fi
    sleep 0.05
  done
  action "sender$n joining the group (readyz: $(tr -d '"\n' <<<"$body" | cut -c1-80))"
  sleep 0.3
  stop_role "$victim" KILL
  at 40; action "window end"
}

sender_drain() {
  at 20; stop_role "$(busiest sender)" TERM
}

crash() {  # kill -9 and start again at once, as a supervisor would
  local victim
  at 15; victim=$(busiest sender); stop_role "$victim" KILL
  start_role "$victim" sender "${ADMIN[$victim]}"
  at 30; victim=$(busiest router); stop_role "$victim" KILL
  start_role "$victim" router "${ADMIN[$victim]}"
}

# ------------------------------------------------------------------------------------------
# one scenario
# ------------------------------------------------------------------------------------------
run_scenario() {
  local scenario=$1 name
  work=$(mktemp -d); load_start=""
  local rate=${RATE:-1000} duration=${DURATION:-60s} fanout=${FANOUT:-2} routers=${ROUTERS:-2} senders=${SENDERS:-3} apis=${APIS:-2}
  FAULT_AT=15
  case "$scenario" in
    ci) rate=${RATE:-300}; duration=${DURATION:-35s}; FAULT_AT=8; RESTART_AFTER=${RESTART_AFTER_CI:-12} ;;
    warmup) rate=1000; duration=$WARMUP; fanout=2 ;;
    rolling) duration=${DURATION:-150s} ;;
    scale-senders) rate=${RATE:-150}; fanout=${FANOUT:-8}; senders=1 ;;
    sender-join-leave) rate=${RATE:-150}; fanout=${FANOUT:-8}; senders=${SENDERS:-2} ;;
    scale-routers) rate=${RATE:-150}; fanout=${FANOUT:-8}; routers=1 ;;
    sender-kill-rebalance) rate=${RATE:-150}; fanout=${FANOUT:-8} ;;
  esac
  SENDERS_NOW=$senders
  (( fanout <= DELIVERIES_PARTITIONS )) || { log "FANOUT must be at most $DELIVERIES_PARTITIONS"; exit 64; }
  prefix="cl$(date +%s)"
  name="cluster-$scenario-$(date +%Y%m%d-%H%M%S)"
  log "== $scenario: $rate events/s for $duration, fan-out $fanout, $routers routers, $senders senders, $apis APIs, 1 replay; topics $prefix.* (work $work)"

  local secret
  new_token cluster
  secret=$(python3 -c 'import base64,os;print("whsec_"+base64.b64encode(os.urandom(32)).decode())')
  cat >"$work/hookline.toml" <<EOF
[kafka]
bootstrap_servers = "$BOOTSTRAP"
topic_prefix = "$prefix"

[kafka.partitions]
events = 6
deliveries = $DELIVERIES_PARTITIONS
attempts = 3
dlq = 3
retry = 3

[kafka.client]
$(tr ',' '\n' <<<"${CLIENT_PROPS:-}" | sed -n 's/^\([^=]*\)=\(.*\)$/"\1" = "\2"/p')

$(roles_toml cluster-harness "$LOG_LEVEL")
EOF
  export HOOKLINE_KAFKA__REPLICATION_FACTOR=3 HOOKLINE_KAFKA__MIN_INSYNC_REPLICAS=2
  "$BIN" --config "$work/hookline.toml" topics create >"$work/topics.log" 2>&1 || { cat "$work/topics.log" >&2; exit 1; }

  local sink_port=$PORT_BASE
  "$BIN" sink --listen "127.0.0.1:$sink_port" --secret "$secret" --latency-field occurred_at --summary-every 0 >"$work/sink.log" 2>&1 &
  echo "sink $!" >>"$work/pids"
  local i
  for i in $(seq "$apis"); do
    start_role "api$i" api $((PORT_BASE + 40 + i)) HOOKLINE_API__LISTEN="127.0.0.1:$((PORT_BASE + 10 + i))"
  done
  for i in $(seq "$apis"); do wait_ready "api$i"; done

  # FANOUT endpoints, each on its own deliveries partition (an endpoint on a partition already
  # taken is deleted and another made), registered through the API replicas in turn.
  python3 - "$work" "$fanout" "$apis" "$PORT_BASE" "$token" "$secret" "$sink_port" "$DELIVERIES_PARTITIONS" <<'EOF'
import json, sys, urllib.request
sys.path.insert(0, "load-tests")
from cluster_report import partition_of
work, fanout, apis, base, token, secret, sink, parts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6], int(sys.argv[7]), int(sys.argv[8])
def call(method, api, path, body=None):
    req = urllib.request.Request(f"http://127.0.0.1:{base + 10 + api}{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"authorization": f"Bearer {token}", "content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")
endpoints, taken, n = [], set(), 0
while len(endpoints) < fanout:
    n += 1
    api = n % apis + 1
    path = f"/ep{len(endpoints) + 1}"
    e = call("POST", api, "/v1/endpoints", {"url": f"http://127.0.0.1:{sink}{path}", "event_types": ["load.*"], "secret": secret, "max_in_flight": 128})
    p = partition_of(e["id"].encode(), parts)
    if p in taken:
        call("DELETE", api, f"/v1/endpoints/{e['id']}")
        continue
    taken.add(p)
    endpoints.append({"path": path, "id": e["id"], "partition": p, "api": api})
json.dump(endpoints, open(f"{work}/endpoints.json", "w"))
print("endpoints: " + ", ".join(f"{e['path']} -> partition {e['partition']}" for e in endpoints), file=sys.stderr)
EOF

  for i in $(seq "$routers"); do start_role "router$i" router "$(router_admin "$i")"; done
  for i in $(seq "$senders"); do start_role "sender$i" sender "$(sender_admin "$i")"; done
  start_role replay replay $((PORT_BASE + 50))
  for i in $(seq "$routers"); do wait_ready "router$i"; done
  for i in $(seq "$senders"); do wait_ready "sender$i"; done
  wait_ready replay

  local kafka_procs=() kpid_before=() n kp
  for n in 1 2 3; do
    kpid_before[n]=$(kafka_pid "$n")
    kafka_procs+=("kafka$n=${kpid_before[n]}")
  done
  python3 load-tests/measure.py --procs "$work/procs.before.json" "${kafka_procs[@]}" "sink=$(pid_of sink)"

  case "$scenario" in
    ci|leader-kill) pick_fault_node leader ;;
    controller-loss) pick_fault_node controller ;;
  esac

  load_start=$(now_ms)
  action "load: $rate events/s for $duration"
  case "$scenario" in
    steady|warmup) true & ;;
    ci|leader-kill) broker_fault leader & ;;
    controller-loss) broker_fault controller & ;;
    rolling) rolling & ;;
    scale-senders) scale_senders & ;;
    sender-join-leave) sender_join_leave & ;;
    scale-routers) scale_routers & ;;
    sender-kill-rebalance) sender_kill_rebalance & ;;
    sender-drain) sender_drain & ;;
    crash) crash & ;;
  esac
  actions_pid=$!
  set +e
  python3 load-tests/measure.py "$work/generator.rusage.json" "$BIN" --config "$work/hookline.toml" bench produce \
    --rate "$rate" --duration "$duration" --payload-bytes "$PAYLOAD_BYTES" --summary "$work/generator.json" >/dev/null 2>"$work/generator.log" &
  gen_pid=$!
  wait "$gen_pid"; local generator_status=$?; gen_pid=""
  local load_end; load_end=$(now_ms)
  action "load done (generator exit $generator_status)"
  wait "$actions_pid"; actions_pid=""
  set -e
  [ -s "$work/generator.json" ] || { log "the generator wrote no summary (exit $generator_status)"; tail "$work/generator.log" >&2; exit 1; }

  local accepted expected unique last=-1 still=0
  accepted=$(python3 -c "import json;print(int(json.load(open('$work/generator.json'))['accepted_events']))")
  expected=$((accepted * fanout))
  log "draining: $expected deliveries expected"
  for _ in $(seq 1200); do
    unique=$(curl -sf "http://127.0.0.1:$sink_port/stats" | python3 -c 'import json,sys;print(json.load(sys.stdin)["unique"])')
    [ "$unique" -ge "$expected" ] && break
    if [ "$unique" = "$last" ]; then still=$((still + 1)); else still=0; fi
    [ "$still" -ge 200 ] && break   # nothing new for 20 s (a retry tier's first delay is 5 s)
    last=$unique; sleep 0.1
  done
  action "drained: $unique of $expected"
  curl -sf "http://127.0.0.1:$sink_port/stats?timeline=true&gaps=true" >"$work/sink.json"
  kc tool org.apache.kafka.tools.GetOffsetShell --bootstrap-server "$BOOTSTRAP" --topic "$prefix.dlq" >"$work/dlq-offsets.txt" 2>/dev/null || true
  kc tool org.apache.kafka.tools.GetOffsetShell --bootstrap-server "$BOOTSTRAP" --topic "$prefix.deliveries" >"$work/deliveries-offsets.txt" 2>/dev/null || true
  kafka_procs=()
  for n in 1 2 3; do
    # A restarted node is another process: its CPU counts from its start.
    kp=$(kafka_pid "$n")
    if [ "$kp" = "${kpid_before[n]}" ]; then kafka_procs+=("kafka$n=$kp"); else kafka_procs+=("kafka$n-restarted=$kp"); fi
  done
  local roles=() r
  for r in $(awk '{ print $1 }' "$work/pids" | sort -u); do alive "$(pid_of "$r")" && roles+=("$r=$(pid_of "$r")"); done
  python3 load-tests/measure.py --procs "$work/procs.json" "${kafka_procs[@]}" "${roles[@]}"
  cat >"$work/meta.json" <<EOF
{"scenario": "$scenario", "rate": $rate, "duration": "$duration", "fanout": $fanout, "prefix": "$prefix",
 "load_start_ms": $load_start, "load_end_ms": $load_end, "deliveries_partitions": $DELIVERIES_PARTITIONS,
 "routers": $routers, "senders": $senders, "apis": $apis, "restart_after_s": $RESTART_AFTER, "fault_at_s": $FAULT_AT,
 "kafka_nodes": 3, "replication_factor": 3, "min_insync_replicas": 2, "work": "$work",
 "cluster_dir": "$PWD/.cache/kafka-state/cluster-$KAFKA_PORT"}
EOF
  stop_all

  python3 load-tests/report.py --name "$name" --out "$out" --scenario "cluster-$scenario" --rate "$rate" --duration "$duration" \
    --fanout "$fanout" --batch 0 --payload-bytes "$PAYLOAD_BYTES" --source kafka --generator "$work/generator.json" \
    --generator-rusage "$work/generator.rusage.json" --generator-status "$generator_status" \
    --sink "$work/sink.json" --procs "$work/procs.json" --procs-before "$work/procs.before.json" --baselines '{}' >/dev/null || true
  local status=0
  python3 load-tests/cluster_report.py --report "$out/$name.json" --work "$work" || status=$?
  # The run's topics go; the cluster stays for the next scenario.
  kc delete-topics "$BOOTSTRAP" "$prefix" >/dev/null 2>&1 || true
  REPORTS+=("$out/$name.json")
  return $status
}

REPORTS=()
overall=0
WARMUP=${WARMUP:-90s}
if [ "$cluster_started_here" = 1 ] && [ "$WARMUP" != 0 ] && [[ " ${scenarios[*]} " != *" ci "* ]]; then
  log "warming the new cluster: steady load for $WARMUP, not reported (WARMUP=0 skips it)"
  run_scenario warmup >/dev/null || { log "the warm-up run failed: see its report above"; overall=1; }
  REPORTS=()
fi
for s in "${scenarios[@]}"; do
  run_scenario "$s" || overall=1
done
if [ "${#REPORTS[@]}" -gt 1 ]; then
  python3 load-tests/cluster_report.py --table "${REPORTS[@]}"
fi
exit $overall
