#!/usr/bin/env bash
# Runs one load scenario end to end and writes a report.
#
#   load-tests/run.sh [steady|burst|soak|smoke]      (default steady)
#
# Knobs (environment): SOURCE=ingest (default: events offered to the HTTP ingest API by
# `hookline bench ingest`) or SOURCE=kafka (produced straight to the events topic by
# `hookline bench produce`), RATE events/s (default 10000), DURATION (60s; 500ms, 20s, 30m,
# 2h), FANOUT endpoints per event (1), BATCH events per ingest request (100; ingest only),
# PAYLOAD_BYTES (256), MAX_IN_FLIGHT ingest requests outstanding (256), BASELINES=1 to also
# measure the raw HTTP and raw Kafka limits, TRACED=1 to give every request a sampled
# traceparent and export the spans to a local OTLP receiver (load-tests/otlp_sink.py),
# HTTPS=1 to serve the sink over TLS (a throw-away CA, trusted through sender.ca_file),
# ORDERING=endpoint|key to register the endpoints as ordered lanes (none by default),
# ENDPOINT_IN_FLIGHT each endpoint's max_in_flight (128; a sender opens about as many
# connections to each endpoint when its deliveries queue, as at a start with a backlog),
# CONTRACTS=1 to enforce a schema and give every endpoint a filter and a mask (docs/contracts.md),
# KEEP_TOPICS=1 to keep the run's topics afterwards (deleted by default), KAFKA_PORT (9092),
# WARMUP (20s; 0 for none): the first run on a broker process runs this long first, unreported,
# INSTRUCTIONS=1 to run `hookline dev` under callgrind and count its instructions per delivery
# (load-tests/instructions.py; repeatable where CPU seconds are not).
#
# Starts (or reuses) Kafka, a `hookline sink` ledger, `hookline dev`; registers FANOUT
# endpoints through the API; runs the generator (Hookline's own: the project never runs
# k6; load-tests/ingest.js is for users who run their own); waits for the deliveries to
# drain; then writes load-tests/results/<scenario>-<time>.{json,txt,svg} with the offered
# rate, delivered/s, end-to-end latency from each event's own timestamp, loss, duplicates,
# the drain time (from the generator's exit until the sink held every expected delivery),
# and CPU seconds and peak RSS per process. Exits non-zero on loss, invalid signatures,
# dropped arrivals or failed requests (or produces).
set -euo pipefail
cd "$(dirname "$0")/.."
SCENARIO=${1:-steady}
case "$SCENARIO" in
  smoke) RATE=${RATE:-200}; DURATION=${DURATION:-5s}; BATCH=${BATCH:-10} ;;
  soak) DURATION=${DURATION:-30m} ;;
esac
RATE=${RATE:-10000}; DURATION=${DURATION:-60s}; FANOUT=${FANOUT:-1}; BATCH=${BATCH:-100}
PAYLOAD_BYTES=${PAYLOAD_BYTES:-256}; BASELINES=${BASELINES:-0}; TRACED=${TRACED:-0}; OTLP_PORT=${OTLP_PORT:-9390}; HTTPS=${HTTPS:-0}
SOURCE=${SOURCE:-ingest}; MAX_IN_FLIGHT=${MAX_IN_FLIGHT:-256}; ORDERING=${ORDERING:-none}
case "$SOURCE" in
  ingest|kafka) ;;
  *) echo "SOURCE must be ingest (HTTP ingest API) or kafka (the events topic), not '$SOURCE'" >&2; exit 64 ;;
esac
export KAFKA_PORT=${KAFKA_PORT:-9092}
BIN=${HOOKLINE_BIN:-target/release/hookline}
SINK_PORT=${SINK_PORT:-9200}; API_PORT=${API_PORT:-8090}; ADMIN_PORT=${ADMIN_PORT:-9290}
stamp=$(date +%Y%m%d-%H%M%S)
out=load-tests/results; mkdir -p "$out"
name="$SCENARIO-$stamp"; work=$(mktemp -d)
# Under callgrind `hookline dev` runs some 50 times slower: no warm-up (instructions do not
# depend on the broker's JIT) and longer waits for readiness and the drain.
INSTRUCTIONS=${INSTRUCTIONS:-0}; polls=1
if [ "$INSTRUCTIONS" = 1 ]; then name="instructions-$stamp"; WARMUP=0; polls=10; fi
# A warm-up run (below) reports into its own scratch folder, never into results/.
[ "${LOAD_WARMING:-0}" = 1 ] && out=$work

source scripts/bootstrap.sh
bash scripts/kafka.sh start >&2
[ -x "$BIN" ] || cargo build --release --locked -p hookline
kafka_pid=$(cat ".cache/kafka-state/$KAFKA_PORT/kafka.pid" 2>/dev/null || echo 0)

# A broker's first load meets a cold JVM: its JIT compilers take about half a core for the
# first 15 s or so, and at 25,000 deliveries/s the first run on a fresh broker fell 18 s
# behind where the next one held p99 at 188 ms (Kafka 20.2 CPU-s against 11.7, and 8.4 to
# 8.8 later; docs/performance.md). So the first run on each broker process first runs WARMUP (20s;
# 0 for none, and smoke's default) of the same shape, not reported; the broker's state
# folder remembers which process was warmed.
WARMUP=${WARMUP:-$([ "$SCENARIO" = smoke ] && echo 0 || echo 20s)}
warmed=".cache/kafka-state/$KAFKA_PORT/warmed-pid"
if [ "$WARMUP" != 0 ] && [ "${LOAD_WARMING:-0}" != 1 ] && [ "$(cat "$warmed" 2>/dev/null)" != "$kafka_pid" ]; then
  echo "== warm-up: broker pid $kafka_pid has carried no load run yet: $WARMUP of the same shape first, not reported" >&2
  if LOAD_WARMING=1 DURATION=$WARMUP BASELINES=0 TRACED=0 HOOKLINE_BIN="$BIN" load-tests/run.sh "$SCENARIO" >"$work/warmup.log" 2>&1; then
    echo "$kafka_pid" >"$warmed"
  else
    echo "== warm-up failed (kept in $work/warmup.log); measuring anyway" >&2; tail -n 5 "$work/warmup.log" >&2
  fi
fi

secret=$(python3 -c 'import base64,os;print("whsec_"+base64.b64encode(os.urandom(32)).decode())')
export HOOKLINE_KAFKA__BOOTSTRAP_SERVERS="127.0.0.1:$KAFKA_PORT" HOOKLINE_KAFKA__TOPIC_PREFIX="load$(date +%s)"
export HOOKLINE_API__LISTEN="127.0.0.1:$API_PORT" HOOKLINE_ADMIN__LISTEN="127.0.0.1:$ADMIN_PORT" HOOKLINE_LOG__LEVEL=warn

pids=()
# The run's topics go with it (KEEP_TOPICS=1 keeps them): a broker that collects the topics
# of run after run gets slower (with 1,100 of them it used twice the CPU for the same load,
# docs/performance.md), and every later figure with it.
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true
  [ "${KEEP_TOPICS:-0}" = 1 ] || bash scripts/kafka.sh delete-topics "127.0.0.1:$KAFKA_PORT" "$HOOKLINE_KAFKA__TOPIC_PREFIX" >/dev/null 2>&1 || true
}
trap cleanup EXIT

baselines="{}"
if [ "$BASELINES" = 1 ]; then
  echo "== baselines" >&2
  "$BIN" sink --listen "127.0.0.1:$((SINK_PORT + 1))" --secret "$secret" --summary-every 0 >/dev/null 2>&1 & bpid=$!
  sleep 0.5
  http_json=$("$BIN" bench http --url "http://127.0.0.1:$((SINK_PORT + 1))/bench" --secret "$secret" --concurrency 64 --count 200000 --payload-bytes "$PAYLOAD_BYTES")
  kill "$bpid"; wait "$bpid" 2>/dev/null || true
  kafka_json=$("$BIN" bench kafka --count 500000 --payload-bytes $((PAYLOAD_BYTES + 200)))
  baselines="{\"http\": $http_json, \"kafka\": $kafka_json}"
  echo "$baselines" >&2
fi

echo "== $SCENARIO: $RATE events/s for $DURATION, fan-out $FANOUT, source $SOURCE$([ "$SOURCE" = ingest ] && echo ", batches of $BATCH")" >&2
if [ "$TRACED" = 1 ]; then
  python3 load-tests/otlp_sink.py "$OTLP_PORT" "$work/otlp.json" & otlp_pid=$!; pids+=("$otlp_pid")
  export HOOKLINE_TRACES__OTLP_ENDPOINT="http://127.0.0.1:$OTLP_PORT/v1/traces"
fi
scheme=http; sink_tls=(); sink_curl=()
if [ "$HTTPS" = 1 ]; then
  bash scripts/test-ca.sh "$work/tls"
  scheme=https; sink_tls=(--tls-cert "$work/tls/server.pem" --tls-key "$work/tls/server.key"); sink_curl=(--cacert "$work/tls/ca.pem")
  export HOOKLINE_SENDER__CA_FILE="$work/tls/ca.pem"
fi
"$BIN" sink --listen "127.0.0.1:$SINK_PORT" --secret "$secret" --latency-field occurred_at --summary-every 0 "${sink_tls[@]}" >"$work/sink.log" 2>&1 & sink_pid=$!; pids+=("$sink_pid")
dev=("$BIN" dev)
[ "$INSTRUCTIONS" = 1 ] && dev=(valgrind --tool=callgrind --fair-sched=yes --callgrind-out-file="$work/callgrind.out" "${dev[@]}")
"${dev[@]}" >"$work/dev.log" 2>&1 & dev_pid=$!; pids+=("$dev_pid")
for _ in $(seq $((150 * polls))); do curl -sf "http://127.0.0.1:$ADMIN_PORT/readyz" >/dev/null && break; sleep 0.2; done
curl -sf "http://127.0.0.1:$ADMIN_PORT/readyz" >/dev/null || { echo "hookline dev did not become ready" >&2; tail "$work/dev.log" >&2; exit 1; }
# CONTRACTS=1: the event contracts on the hot path (docs/contracts.md): load.created's schema
# enforced (ingest and router validate every event), and on every endpoint a CEL filter
# that is always true (evaluated for every delivery) and a keyed-hash mask of `pad` (every
# body re-serialised and signed after it).
contract=""
if [ "${CONTRACTS:-0}" = 1 ]; then
  curl -sf -X PUT "http://127.0.0.1:$API_PORT/v1/event-types/load.created" -H 'content-type: application/json' -d '{
    "validation": "enforce", "versions": [{"version": 1, "schema": {"type": "object", "required": ["occurred_at", "seq"],
      "properties": {"occurred_at": {"type": "integer"}, "seq": {"type": "integer", "minimum": 0}, "pad": {"type": "string"}}}}]}' >/dev/null
  contract=', "filter": "payload.seq >= 0", "transform": {"ops": [{"op": "mask", "pointer": "/pad", "with": "hash"}]}'
fi
for i in $(seq 1 "$FANOUT"); do
  curl -sf -X POST "http://127.0.0.1:$API_PORT/v1/endpoints" -H 'content-type: application/json' \
    -d "{\"url\": \"$scheme://127.0.0.1:$SINK_PORT/ep$i\", \"event_types\": [\"load.*\"], \"secret\": \"$secret\", \"max_in_flight\": ${ENDPOINT_IN_FLIGHT:-128}, \"ordering\": \"$ORDERING\"$contract}" >/dev/null
done

python3 load-tests/measure.py --procs "$work/procs.before.json" "kafka=$kafka_pid" "hookline-dev=$dev_pid" "sink=$sink_pid"
shape=steady; [ "$SCENARIO" = burst ] && shape=burst
traced=(); [ "$TRACED" = 1 ] && traced=(--traced)
if [ "$SOURCE" = kafka ]; then
  generator=("$BIN" bench produce)
else
  generator=("$BIN" bench ingest --api "http://127.0.0.1:$API_PORT" --batch "$BATCH" --max-in-flight "$MAX_IN_FLIGHT")
fi
# Counting: an idle window first (what the process does with no load: timers, statistics,
# polls), then the load from here until the drain ends, each dumped on its own.
count() { callgrind_control "$@" "$dev_pid" >/dev/null; date +%s%N; }
if [ "$INSTRUCTIONS" = 1 ]; then
  idle_from=$(count --zero); sleep 20; idle_to=$(count --dump=idle)
  load_from=$(count --zero)
fi
set +e
python3 load-tests/measure.py "$work/generator.rusage.json" "${generator[@]}" --shape "$shape" --rate "$RATE" \
  --duration "$DURATION" --payload-bytes "$PAYLOAD_BYTES" "${traced[@]}" --summary "$work/generator.json" >/dev/null
generator_status=$?
generator_ended_ns=$(date +%s%N)
set -e
[ -s "$work/generator.json" ] || { echo "the generator wrote no summary (exit $generator_status)" >&2; exit 1; }

[[ $(<"$work/generator.json") =~ \"accepted_events\":[[:space:]]*([0-9]+) ]] || { echo "no accepted_events in the generator's summary" >&2; exit 1; }
accepted=${BASH_REMATCH[1]}
expected=$((accepted * FANOUT))
echo "== draining: $expected deliveries expected" >&2
last=-1; still=0; unique=0; drain_ms=none
for _ in $(seq $((600 * polls))); do
  # Read without a Python start (a fifth of a second on a busy machine): the drain time is measured here.
  [[ $(curl -sf "${sink_curl[@]}" "$scheme://127.0.0.1:$SINK_PORT/stats") =~ \"unique\":([0-9]+) ]] && unique=${BASH_REMATCH[1]}
  if [ "$unique" -ge "$expected" ]; then drain_ms=$((($(date +%s%N) - generator_ended_ns) / 1000000)); break; fi
  if [ "$unique" = "$last" ]; then still=$((still + 1)); else still=0; fi
  [ "$still" -ge $((100 * polls)) ] && break   # nothing new for 10 s (100 s under callgrind)
  last=$unique; sleep 0.1
done
curl -sf "${sink_curl[@]}" "$scheme://127.0.0.1:$SINK_PORT/stats?timeline=true" >"$work/sink.json"
if [ "$INSTRUCTIONS" = 1 ]; then
  load_to=$(count --dump=load)
  python3 load-tests/instructions.py --dir "$work" --idle-ns $((idle_to - idle_from)) --load-ns $((load_to - load_from)) \
    --deliveries "$unique" --fanout "$FANOUT" --source "$SOURCE" | tee "$out/$name.instructions.txt" >&2
fi
python3 load-tests/measure.py --procs "$work/procs.json" "kafka=$kafka_pid" "hookline-dev=$dev_pid" "sink=$sink_pid"

python3 load-tests/report.py --name "$name" --out "$out" --scenario "$SCENARIO" --rate "$RATE" --duration "$DURATION" \
  --fanout "$FANOUT" --batch "$BATCH" --payload-bytes "$PAYLOAD_BYTES" --source "$SOURCE" --generator "$work/generator.json" \
  --generator-rusage "$work/generator.rusage.json" --generator-status "$generator_status" --drain-ms "$drain_ms" \
  --sink "$work/sink.json" --procs "$work/procs.json" --procs-before "$work/procs.before.json" --baselines "$baselines"
if [ "$TRACED" = 1 ]; then
  # Stop hookline first so it flushes its last spans, then read the receiver's counts.
  kill -TERM "$dev_pid"; wait "$dev_pid" 2>/dev/null || true
  kill -TERM "$otlp_pid"; wait "$otlp_pid" 2>/dev/null || true
  python3 -c "import json;c=json.load(open('$work/otlp.json'));print(f\"traces: {c['spans']} spans in {c['requests']} OTLP requests ({c['bytes']/1e6:.1f} MB) for {$expected} deliveries\")" | tee -a "$out/$name.txt" >&2
fi

