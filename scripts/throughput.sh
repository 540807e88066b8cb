#!/usr/bin/env bash
# First throughput figure: publish N events with `hookline publish` through `hookline dev`
# to one `hookline sink` endpoint (fan-out 1), and time until the sink has every one.
#
#   scripts/throughput.sh [N]        (default 100000; Kafka must be running: scripts/kafka.sh start)
#
# Prints published/s and delivered/s. The clock starts before the first publish and stops
# when the sink's ledger holds N unique, signature-verified deliveries.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}
BIN=${HOOKLINE_BIN:-target/release/hookline}
SINK_PORT=${SINK_PORT:-9100}
export HOOKLINE_KAFKA__BOOTSTRAP_SERVERS=${HOOKLINE_KAFKA__BOOTSTRAP_SERVERS:-127.0.0.1:${KAFKA_PORT:-9092}}
export HOOKLINE_KAFKA__TOPIC_PREFIX="bench$(date +%s)"
export HOOKLINE_LOG__LEVEL=${HOOKLINE_LOG__LEVEL:-warn,hookline_sender=info}
[ -x "$BIN" ] || cargo build --release -p hookline
LOGS=$(mktemp -d)
SECRET=$(python3 -c 'import base64,os;print("whsec_"+base64.b64encode(os.urandom(32)).decode())')

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

"$BIN" sink --listen "127.0.0.1:$SINK_PORT" --secret "$SECRET" --summary-every 0 >"$LOGS/sink.log" 2>&1 & pids+=($!)
"$BIN" dev >"$LOGS/dev.log" 2>&1 & pids+=($!)
for _ in $(seq 150); do curl -sf "http://127.0.0.1:$SINK_PORT/healthz" >/dev/null && grep -q "sender started" "$LOGS/dev.log" 2>/dev/null && break; sleep 0.2; done
"$BIN" endpoint create --dev --id bench --url "http://127.0.0.1:$SINK_PORT/bench" --event-types '*' --secret "$SECRET" >/dev/null
sleep 1

start=$(date +%s.%N)
"$BIN" publish --type order.created --data '{"order_id":"ord_123","amount":4200,"currency":"EUR","customer":{"id":"cus_9","email":"a@example.com"}}' --count "$N" >/dev/null
while :; do
  unique=$(curl -sf "http://127.0.0.1:$SINK_PORT/stats" | python3 -c 'import json,sys;print(json.load(sys.stdin)["unique"])')
  [ "$unique" -ge "$N" ] && break
  sleep 0.2
done
end=$(date +%s.%N)
stats=$(curl -sf "http://127.0.0.1:$SINK_PORT/stats")
python3 - "$start" "$end" "$N" "$stats" <<'PY'
import json, sys
start, end, n, stats = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
secs = end - start
print(f"delivered {stats['unique']} unique events ({stats['duplicates']} duplicates, "
      f"{stats['invalid_signatures']} invalid signatures) in {secs:.2f}s: {n/secs:.0f} events/s end to end")
PY
