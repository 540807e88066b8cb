#!/usr/bin/env bash
# The whole test suite, the same on a laptop and in CI (.ci/run calls this):
# install what is missing, build once, start a real single-node Kafka (KRaft) on its own
# port, build the example producers in Java, Go and Python (they publish in the tests), run
# every test (unit, property, in-process and integration against that broker), the
# console's browser tests (Playwright in Debian's chromium against `hookline dev`),
# lint and check the Helm chart, fuzz the management API against its OpenAPI document
# (schemathesis), check the k6 scenario for users (load-tests/ingest.js, with node and stub
# k6 modules: the project never runs k6), run a short load smoke through the HTTP ingest
# with `hookline bench ingest` (zero loss required), SIGKILL a broker of a 3-node cluster
# under load (load-tests/cluster.sh ci, zero loss required), stop the broker, and print one
# summary line.
#
#   scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh

export KAFKA_PORT=${TEST_KAFKA_PORT:-19092}
export KAFKA_CONTROLLER_PORT=${TEST_KAFKA_CONTROLLER_PORT:-19093}
export HOOKLINE_TEST_KAFKA="127.0.0.1:$KAFKA_PORT"
# The broker also listens with TLS, for the Kafka-over-TLS tests.
export KAFKA_SSL_PORT=${TEST_KAFKA_SSL_PORT:-19094}
export HOOKLINE_TEST_KAFKA_TLS="127.0.0.1:$KAFKA_SSL_PORT"
export HOOKLINE_TEST_KAFKA_CA="$PWD/.cache/kafka-state/$KAFKA_PORT/tls/ca.pem"
# ... and with SASL_SSL (SCRAM-SHA-512), as production brokers usually do.
export KAFKA_SASL_PORT=${TEST_KAFKA_SASL_PORT:-19095}
export HOOKLINE_TEST_KAFKA_SASL="127.0.0.1:$KAFKA_SASL_PORT"
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
# One build from scratch: incremental state only costs time and disk (gigabytes) here.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
# Integration tests mostly wait on Kafka and timers: run several at once.
export RUST_TEST_THREADS=${RUST_TEST_THREADS:-6}

t0=$(date +%s)
echo "== build (tests)" >&2
# Fetch and build while Kafka's jars download and the example producers build.
# The example producers (Java, Go, Python) share Maven's cache with Kafka's fetch: one
# after the other, both beside the cargo build.
# The console (npm ci, typed client, type-check, vite build) too: the binary serves its files.
(bash scripts/kafka.sh fetch && bash scripts/producers.sh build && bash scripts/console.sh build) &
fetch_pid=$!
# The image's Debian base (debootstrap, scripts/image.sh) while cargo builds: 1.5 to 2.5 minutes cold.
image_base_log=$(mktemp)
bash scripts/image.sh base >"$image_base_log" 2>&1 &
image_base_pid=$!
cargo build --workspace --all-targets --locked
wait "$fetch_pid"
t1=$(date +%s)

echo "== kafka on 127.0.0.1:$KAFKA_PORT" >&2
started_here=0
bash scripts/kafka.sh status >/dev/null 2>&1 || started_here=1
# A test broker formatted before the SASL listener existed lacks its SCRAM user: the test
# broker's state is disposable, so start it over.
state=".cache/kafka-state/$KAFKA_PORT"
if [ "$started_here" = 1 ] && [ -f "$state/data/meta.properties" ] && [ ! -f "$state/scram-user" ]; then
  bash scripts/kafka.sh reset
fi
# Starts it, or checks the running one (which must have the TLS listener).
bash scripts/kafka.sh start
stop_kafka() { [ "$started_here" = 1 ] && bash scripts/kafka.sh stop || true; }
trap stop_kafka EXIT

echo "== test" >&2
log=$(mktemp)
set +e
cargo test --workspace --locked --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
echo "== console: browser tests (Playwright, Debian's chromium) against hookline dev and this broker" >&2
CONSOLE_SKIP_BUILD=1 HOOKLINE_BIN=target/debug/hookline bash scripts/console.sh test 2>&1 | tee "$log.console"
console_status=${PIPESTATUS[0]}
echo "== helm chart: lint, render, check (configs validated by the hookline binary)" >&2
bash scripts/helm-lint.sh 2>&1 | tee "$log.helm"
helm_status=${PIPESTATUS[0]}
echo "== fuzz the API against its OpenAPI document" >&2
bash scripts/fuzz-api.sh "${FUZZ_EXAMPLES:-25}" 2>&1 | tee "$log.fuzz"
fuzz_status=${PIPESTATUS[0]}
echo "== ingest.js (the k6 scenario for users) against hookline bench ingest, with node" >&2
HOOKLINE_BIN=target/debug/hookline node --test --test-reporter=tap load-tests/ 2>&1 | tee "$log.node"
node_status=${PIPESTATUS[0]}
echo "== load smoke: hookline bench ingest through the HTTP ingest, zero loss required" >&2
HOOKLINE_BIN=target/debug/hookline SINK_PORT=19200 API_PORT=18090 ADMIN_PORT=19290 \
  bash load-tests/run.sh smoke 2>&1 | tee "$log.smoke"
smoke_status=${PIPESTATUS[0]}
echo "== image: debootstrap base + this build's binary, run with podman as the chart runs it" >&2
wait "$image_base_pid" || cat "$image_base_log" >&2
{ HOOKLINE_BIN=target/debug/hookline bash scripts/image.sh build \
  && HOOKLINE_BIN=target/debug/hookline bash scripts/image.sh run-check; } 2>&1 | tee "$log.image"
image_status=${PIPESTATUS[0]}
echo "== cluster: a 3-node KRaft cluster, the leader of a busy partition SIGKILLed under load, zero loss required" >&2
cluster_t0=$(date +%s)
HOOKLINE_BIN=target/debug/hookline KAFKA_PORT=${TEST_CLUSTER_KAFKA_PORT:-19092} PORT_BASE=19500 \
  bash load-tests/cluster.sh ci 2>&1 | tee "$log.cluster"
cluster_status=${PIPESTATUS[0]}
cluster_s=$(( $(date +%s) - cluster_t0 ))
set -e
[ "$helm_status" = 0 ] || status=$helm_status
[ "$fuzz_status" = 0 ] || status=$fuzz_status
[ "$smoke_status" = 0 ] || status=$smoke_status
[ "$cluster_status" = 0 ] || status=$cluster_status
[ "$node_status" = 0 ] || status=$node_status
[ "$console_status" = 0 ] || status=$console_status
[ "$image_status" = 0 ] || status=$image_status
t2=$(date +%s)

passed=$(awk '/^test result:/ {for (i=1;i<=NF;i++) if ($i ~ /^passed;?$/) s+=$(i-1)} END {print s+0}' "$log")
failed=$(awk '/^test result:/ {for (i=1;i<=NF;i++) if ($i ~ /^failed;?$/) s+=$(i-1)} END {print s+0}' "$log")
node_passed=$(awk '/^# pass / {s+=$3} END {print s+0}' "$log.node")
node_failed=$(awk '/^# fail / {s+=$3} END {print s+0}' "$log.node")
# A node run that counted nothing (it did not start) is one failure, not zero.
[ "$node_status" = 0 ] || [ "$node_failed" -gt 0 ] || node_failed=1
console_passed=$(sed -nE 's/^console e2e: ([0-9]+) passed, ([0-9]+) failed.*/\1/p' "$log.console" | tail -1)
console_failed=$(sed -nE 's/^console e2e: ([0-9]+) passed, ([0-9]+) failed.*/\2/p' "$log.console" | tail -1)
console_passed=${console_passed:-0}; console_failed=${console_failed:-0}
[ "$console_status" = 0 ] || [ "$console_failed" -gt 0 ] || console_failed=1
passed=$((passed + node_passed + console_passed)); failed=$((failed + node_failed + console_failed))
echo "build $((t1 - t0))s, tests, fuzz and load smoke $((t2 - t1))s"
grep -E "^helm: " "$log.helm" || echo "helm: no result (exit $helm_status)"
grep -E "^fuzz: " "$log.fuzz" || echo "fuzz: no result (exit $fuzz_status)"
echo "ingest.js (node --test, in the total): $node_passed passed, $node_failed failed"
echo "console (browser tests, in the total): $console_passed passed, $console_failed failed"
grep -E '^console e2e: failed ' "$log.console" || true
grep -E "^image: (localhost|run-check passed)" "$log.image" || echo "image: no result (exit $image_status)"
grep -E "^  accepted " "$log.smoke" | sed 's/^  /load smoke: /' || echo "load smoke: no result (exit $smoke_status)"
grep -E "^  ledger: " "$log.cluster" | sed "s/^  ledger: /cluster (leader SIGKILL, ${cluster_s}s, exit $cluster_status): /" || echo "cluster: no result (exit $cluster_status)"
echo "total: $passed passed, $failed failed"
exit "$status"
