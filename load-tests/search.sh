#!/usr/bin/env bash
# Searches for the highest sustainable rate of one scenario, running load-tests/run.sh steady
# at different rates.
#
#   load-tests/search.sh                 fan-out 1, events produced to the events topic
#   FANOUT=10 load-tests/search.sh       fan-out 10
#
# Knobs (environment): FANOUT (1), SOURCE (kafka; ingest for the HTTP ingest API), START
# events/s of the first run (5000), DURATION of each run (20s), MAX_RUNS (7), P99_MS (250),
# RATE_TOLERANCE percent (5), DRAIN_MS (1000); everything else goes to run.sh as it is
# (KAFKA_PORT, SINK_PORT, API_PORT, ADMIN_PORT, PAYLOAD_BYTES, BATCH, HOOKLINE_BIN ...).
#
# A run at RATE events/s with fan-out F is sustainable when: nothing is lost, no signature is
# invalid, no request (or produce) failed; the generator dropped no arrival and achieved at
# least (1 - RATE_TOLERANCE) x RATE; the window (the sink's per-second timeline from the first
# second after the first delivery that delivered at most (1 + RATE_TOLERANCE) x RATE x F, to
# the last second with a delivery, left out as partial) is at least half the run; in it the
# sink received at least (1 - RATE_TOLERANCE) x RATE x F deliveries/s and every second's
# end-to-end p99 was under P99_MS; and the sink held every expected delivery at most DRAIN_MS
# after the generator stopped (no backlog left). A start that delivers above the offered rate
# is left out: it works off a backlog (the sender opening its connections to the receiver,
# or, before `bench produce` waited for its producer id, the generator's first sends arriving
# in one burst); load-tests/README.md says more. load-tests/search.py applies the rule.
#
# Starts at START and doubles while runs are sustainable (halves while they are not), then
# bisects between the highest sustainable and the lowest unsustainable rate above it (rates at
# three significant figures) until they are less than 10% apart, or MAX_RUNS runs are done.
# One run at a time; each run's report stays in load-tests/results/steady-<time>.*. Prints a
# table row per run, then writes load-tests/results/search-<fanout>-<time>.{json,txt} with
# every run, the highest sustainable rate in events/s and deliveries/s and why the search
# stopped. Starts Kafka if it is not running (and then stops it at the end; KEEP_KAFKA=1
# leaves it up); a broker that has carried no run yet is warmed first, by run.sh, with a run
# at START events/s for WARMUP (60s here; 0 skips it) that is not judged, since a freshly
# started broker is slow for its first minutes (docs/performance.md). Exits non-zero when no
# rate was sustainable or a run wrote no report.
set -euo pipefail
cd "$(dirname "$0")/.."
export FANOUT=${FANOUT:-1} SOURCE=${SOURCE:-kafka} START=${START:-5000} DURATION=${DURATION:-20s} MAX_RUNS=${MAX_RUNS:-7}
export P99_MS=${P99_MS:-250} RATE_TOLERANCE=${RATE_TOLERANCE:-5} DRAIN_MS=${DRAIN_MS:-1000}
export KAFKA_PORT=${KAFKA_PORT:-9092}
KEEP_KAFKA=${KEEP_KAFKA:-0}
out=load-tests/results; mkdir -p "$out"
base="$out/search-$FANOUT-$(date +%Y%m%d-%H%M%S)"
work=$(mktemp -d); history="$work/history.jsonl"

started_kafka=0; run_pid=
stop_run() {
  # run.sh runs in a process group of its own: the whole group (generator included) goes.
  [ -n "$run_pid" ] && kill -TERM -- "-$run_pid" 2>/dev/null && wait "$run_pid" 2>/dev/null
  run_pid=
}
finish() {
  stop_run || true
  [ "$started_kafka" = 1 ] && [ "$KEEP_KAFKA" != 1 ] && { bash scripts/kafka.sh stop >&2 || true; }
  rm -rf "$work"
}
trap finish EXIT
trap 'exit 130' INT; trap 'exit 143' TERM

# One steady run at $1 events/s for $2, its output in $3, in a process group of its own
# (stop_run); its exit status is not the verdict (non-zero on loss or dropped arrivals: the
# verdict reads the report).
steady_run() {
  set -m; RATE=$1 DURATION=$2 load-tests/run.sh steady >"$3" 2>&1 & run_pid=$!; set +m
  wait "$run_pid" || true
  run_pid=
}

# Kafka outside the runs' process groups, so that stopping a run never stops the broker.
if ! bash scripts/kafka.sh status >/dev/null 2>&1; then
  bash scripts/kafka.sh start >&2; started_kafka=1
fi
# run.sh warms a broker that has carried no run yet, before the first run (at START).
export WARMUP=${WARMUP:-60s}

echo "== search: fan-out $FANOUT, source $SOURCE, runs of $DURATION from $START events/s, at most $MAX_RUNS runs" >&2
status=0
while rate=$(python3 load-tests/search.py next --history "$history") && [ -n "$rate" ]; do
  echo "== run at $rate events/s ($((rate * FANOUT)) deliveries/s)" >&2
  steady_run "$rate" "$DURATION" "$work/run.log"
  report=$(sed -n 's/^report: \([^,]*\.json\),.*/\1/p' "$work/run.log")
  if [ -z "$report" ] || [ ! -s "$report" ]; then
    echo "the run at $rate events/s wrote no report; its last lines:" >&2
    tail -n 20 "$work/run.log" >&2
    status=1; break
  fi
  python3 load-tests/search.py judge --report "$report" --history "$history"
done
[ -s "$history" ] || exit 1
python3 load-tests/search.py summary --history "$history" --out "$base" || status=1
exit "$status"
