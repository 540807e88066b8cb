#!/usr/bin/env bash
# Build and test the web console (services/console): Preact + Vite + TypeScript.
#
#   scripts/console.sh build   npm ci, generate the typed client from docs/openapi.json,
#                              type-check (app and tests), vite build into services/console/dist
#                              (embedded in the hookline binary), print the gzip page weight
#   scripts/console.sh test    build, then the Playwright tests in Debian's chromium against a
#                              real `hookline dev` ($HOOKLINE_BIN) and Kafka ($HOOKLINE_TEST_KAFKA);
#                              prints `console e2e: N passed, N failed, N skipped`
#
# Env: HOOKLINE_BIN (default target/debug/hookline), HOOKLINE_TEST_KAFKA (required by `test`,
# e.g. 127.0.0.1:19092), CONSOLE_SKIP_BUILD=1 (test the dist/ already built), CONSOLE_E2E_GREP
# (run only the tests whose title matches), CONSOLE_E2E_OWN_SERVER=1 (serve this checkout's
# dist/ from the tests, proxying /v1 to hookline, instead of the binary's own /console/).
# No browser is downloaded, ever.
set -euo pipefail

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
APP="$REPO_DIR/services/console"
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 PLAYWRIGHT_BROWSERS_PATH=0
export npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false

log() { printf 'console: %s\n' "$*"; }

deps() {
  command -v npm >/dev/null || { log "npm is missing: install Node.js 20.19+ (apt-get install nodejs npm)"; exit 1; }
  local stamp="$APP/node_modules/.package-lock.json"
  if [[ ! -f "$stamp" || "$APP/package-lock.json" -nt "$stamp" ]]; then
    log "npm ci"
    (cd "$APP" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

build() {
  deps
  cd "$APP"
  log "typed client from docs/openapi.json"
  local out
  out=$(npx openapi-typescript "$REPO_DIR/docs/openapi.json" -o src/api/schema.gen.ts 2>&1) || { echo "$out"; exit 1; }
  # Routes the console calls untyped until the API documents them (src/api/pending.ts):
  # once one is in openapi.json, its calls should move to the typed client.
  node -e '
    const spec = require(process.argv[1]);
    const src = require("fs").readFileSync("src/api/pending.ts", "utf8");
    const list = (/PENDING_ROUTES[^=]*= \[([^\]]*)\]/.exec(src)?.[1].match(/"[^"]+"/g) ?? []).map(JSON.parse);
    const now = list.filter((r) => { const [m, p] = r.split(" "); return spec.paths[p]?.[m.toLowerCase()]; });
    if (now.length) console.log("console: now in openapi.json, move to the typed client: " + now.join(", "));
  ' "$REPO_DIR/docs/openapi.json"
  log "tsc --noEmit"
  npx tsc --noEmit -p tsconfig.json
  npx tsc --noEmit -p tsconfig.e2e.json
  log "vite build -> services/console/dist"
  find dist -mindepth 1 ! -name .gitkeep -delete
  npx vite build --logLevel warn
  [[ -f dist/.gitkeep ]] || : > dist/.gitkeep
  weight
}

weight() {
  local js css
  js=$(cat "$APP"/dist/assets/*.js | gzip -9 | wc -c)
  css=$(cat "$APP"/dist/assets/*.css | gzip -9 | wc -c)
  log "page weight (gzip -9): js ${js} B, css ${css} B, total $((js + css)) B"
}

chromium() {
  [[ -x /usr/bin/chromium ]] && return
  log "installing Debian's chromium (apt-get)"
  local sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
}

run_tests() {
  [[ "${CONSOLE_SKIP_BUILD:-0}" == 1 ]] && deps || build
  chromium
  # Absolute: the tests run from services/console.
  HOOKLINE_BIN="${HOOKLINE_BIN:-target/debug/hookline}"
  [[ "$HOOKLINE_BIN" = /* ]] || HOOKLINE_BIN="$REPO_DIR/$HOOKLINE_BIN"
  export HOOKLINE_BIN
  : "${HOOKLINE_TEST_KAFKA:?set HOOKLINE_TEST_KAFKA to a running broker, e.g. 127.0.0.1:19092}"
  export HOOKLINE_TEST_KAFKA
  [[ -x "$HOOKLINE_BIN" ]] || { log "HOOKLINE_BIN=$HOOKLINE_BIN is not an executable: build hookline first"; exit 1; }
  CONSOLE_E2E_STATE="$(mktemp -d -t hookline-console-e2e.XXXXXX)"
  export CONSOLE_E2E_STATE
  # The stack records every process it starts; stop them all even if the runner dies.
  trap 'stop_recorded' EXIT
  cd "$APP"
  local rc=0
  npx playwright test ${CONSOLE_E2E_GREP:+--grep "$CONSOLE_E2E_GREP"} || rc=$?
  node -e '
    const report = require(process.argv[1]);
    const walk = (s) => [...(s.specs || []).flatMap((sp) => sp.tests.map((t) => ({ title: sp.title, t }))), ...(s.suites || []).flatMap(walk)];
    for (const { title, t } of report.suites.flatMap(walk)) {
      for (const line of new Set([...(t.annotations || []), ...t.results.flatMap((x) => x.annotations || [])].map((a) =>
        a.type === "skip" ? `console e2e: skipped "${title}": ${a.description}` : a.type === "measurement" ? `console e2e: measured: ${a.description}` : "")))
        if (line) console.log(line);
      // A failure names itself and its first error line, so the CI summary says which test it was.
      for (const x of t.results.filter((x) => x.status !== "passed" && x.status !== "skipped")) {
        const first = (x.errors?.[0]?.message ?? x.status).replace(/\x1b\[[0-9;]*m/g, "").split("\n").find((l) => l.trim()) ?? x.status;
        console.log(`console e2e: failed "${title}" after ${(x.duration / 1000).toFixed(1)} s: ${first.trim().slice(0, 300)}`);
      }
    }
    const r = report.stats;
    console.log(`console e2e: ${r.expected} passed, ${r.unexpected + (r.flaky || 0)} failed, ${r.skipped} skipped`);
  ' "$APP/test-results/results.json" || log "no results (the runner failed before the tests)"
  # A failure is diagnosed from what hookline dev logged: keep its last lines in the CI log.
  if [[ $rc != 0 && -f "$CONSOLE_E2E_STATE/hookline-dev.log" ]]; then
    log "last lines of hookline dev's log ($CONSOLE_E2E_STATE/hookline-dev.log):"
    tail -n 80 "$CONSOLE_E2E_STATE/hookline-dev.log" >&2
  fi
  return $rc
}

stop_recorded() {
  local f="$CONSOLE_E2E_STATE/pids" pid name
  [[ -f "$f" ]] || return 0
  while read -r pid name; do
    if kill -0 "$pid" 2>/dev/null; then log "stopping $name ($pid)"; kill "$pid" 2>/dev/null || true; fi
  done <"$f"
  sleep 1
  while read -r pid name; do kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true; done <"$f"
}

case "${1:-}" in
  build) build ;;
  test) run_tests ;;
  weight) weight ;;
  *) sed -n '2,15p' "$0"; exit 64 ;;
esac
