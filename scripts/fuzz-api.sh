#!/usr/bin/env bash
# Fuzzes the management API against its own OpenAPI document with schemathesis (from PyPI,
# installed into .cache/venv): every operation, generated valid and invalid inputs, with an
# admin token; the check is that no request gets a 5xx or kills the server.
#
#   scripts/fuzz-api.sh [max examples per operation, default 25]
# Needs Kafka on 127.0.0.1:${KAFKA_PORT:-9092} and a built target/debug/hookline.
set -euo pipefail
cd "$(dirname "$0")/.."
EXAMPLES=${1:-25}
BIN=${HOOKLINE_BIN:-target/debug/hookline}
PORT=${FUZZ_API_PORT:-18080}
VENV=.cache/venv
ST_VERSION=4.32.5

if ! "$VENV/bin/st" --version 2>/dev/null | grep -q "$ST_VERSION"; then
  echo "fuzz: installing schemathesis $ST_VERSION into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "schemathesis==$ST_VERSION"
fi

work=$(mktemp -d)
token="hl_fuzz_$(python3 -c 'import secrets;print(secrets.token_hex(16))')"
sha=$(printf '%s' "$token" | sha256sum | cut -d' ' -f1)
cat > "$work/hookline.toml" <<TOML
[kafka]
bootstrap_servers = "127.0.0.1:${KAFKA_PORT:-9092}"
topic_prefix = "fuzz$(date +%s)"

[kafka.partitions]
events = 1
deliveries = 1
attempts = 1
dlq = 1
retry = 1

[admin]
listen = ""

[api]
listen = "127.0.0.1:$PORT"
history_lookback_ms = 60000

[[api.tokens]]
name = "fuzz"
sha256 = "$sha"
scopes = ["admin"]

[log]
level = "warn"
TOML
"$BIN" --config "$work/hookline.toml" topics create >/dev/null
"$BIN" --config "$work/hookline.toml" api >"$work/api.log" 2>&1 &
api_pid=$!
trap 'kill $api_pid 2>/dev/null || true; wait $api_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done

# The first run is deterministic (the same cases every time); "$@" adds options.
fuzz() {
  "$VENV/bin/st" run "http://127.0.0.1:$PORT/v1/openapi.json" "$@" \
    -H "Authorization: Bearer $token" \
    --checks not_a_server_error \
    --max-examples "$EXAMPLES" \
    --workers 1 \
    --request-timeout 20 \
    --report junit --report-junit-path "$work/junit.xml" 2>&1 | tee "$work/st.log"
  return "${PIPESTATUS[0]}"
}
# Failed checks (answers the API got wrong), and errors (schemathesis could not run a case).
counts() {
  python3 - "$work/junit.xml" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
print(sum(int(s.get("tests", 0)) for s in suites), sum(int(s.get("failures", 0)) for s in suites), sum(int(s.get("errors", 0)) for s in suites))
PY
}
set +e
fuzz --generation-deterministic
status=$?
read -r tests failures errors < <(counts)
# One worker: with two threads, Hypothesis parsing a module's source for a lambda's
# description raced in CPython 3.11's AST validator ("AST constructor recursion depth
# mismatch": as far as I can tell a race between threads), which failed three CI runs in a
# row on POST /v1/endpoints and its preview.
# Only schemathesis's own errors: run again with other random cases, at most twice; any
# failed check, or errors in every run, stand.
for again in 1 2; do
  [ "$status" != 0 ] && [ "$failures" = 0 ] && [ "$errors" -gt 0 ] && kill -0 "$api_pid" 2>/dev/null || break
  echo "fuzz: $errors schemathesis errors and no failed check: running again with random cases ($again of 2)" >&2
  fuzz
  status=$?
  read -r tests failures errors < <(counts)
done
set -e
if ! kill -0 "$api_pid" 2>/dev/null; then
  echo "fuzz: the API process died; its log:" >&2
  tail -20 "$work/api.log" >&2
  status=1
fi
echo "fuzz: schemathesis over $tests API operations, $((failures + errors)) with failures"
exit "$status"
