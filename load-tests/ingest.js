// Hookline load scenario for k6, for users who run their own k6 against their own
// deployment: events published through POST /v1/events/batch at a constant arrival rate
// (or a burst), each carrying its own creation time so a receiving `hookline sink
// --latency-field occurred_at` measures end-to-end latency from the event's timestamp.
//
//   k6 run -e API=https://hookline.internal -e TOKEN=... -e RATE=2000 load-tests/ingest.js
//
// The project itself never installs, builds or runs k6 (it is AGPL): load-tests/run.sh
// uses `hookline bench ingest`, which sends the same requests. load-tests/ingest.test.mjs
// checks, with node and stub k6 modules, that this script and `hookline bench ingest
// --print-request` still post the same route, headers and body shape.
//
// Environment: API (default http://127.0.0.1:8080), TOKEN (bearer token with the publish
// scope; no authorization header when empty), SCENARIO (steady | burst | soak | smoke),
// RATE (events/s), BATCH (events per request), DURATION (k6 duration, e.g. 60s),
// PAYLOAD_BYTES, TRACED=1 (a sampled traceparent per request), SUMMARY (path of the JSON
// summary to write).
import http from 'k6/http';
import { check } from 'k6';

const API = __ENV.API || 'http://127.0.0.1:8080';
const TOKEN = __ENV.TOKEN || '';
const SCENARIO = __ENV.SCENARIO || 'steady';
const RATE = Number(__ENV.RATE || 1000);
const BATCH = Number(__ENV.BATCH || 50);
const DURATION = __ENV.DURATION || '30s';
const PAYLOAD_BYTES = Number(__ENV.PAYLOAD_BYTES || 256);
const PAD = 'x'.repeat(Math.max(0, PAYLOAD_BYTES - 96));
const perSecond = Math.max(1, Math.round(RATE / BATCH));

function scenarios() {
  if (SCENARIO === 'burst') {
    // The steady rate, then ten times that for 30 s, then back.
    return {
      burst: {
        executor: 'ramping-arrival-rate', startRate: perSecond, timeUnit: '1s',
        preAllocatedVUs: 50, maxVUs: 400,
        stages: [
          { target: perSecond, duration: '15s' },
          { target: perSecond * 10, duration: '1s' },
          { target: perSecond * 10, duration: '30s' },
          { target: perSecond, duration: '1s' },
          { target: perSecond, duration: '15s' },
        ],
      },
    };
  }
  return {
    [SCENARIO]: {
      executor: 'constant-arrival-rate', rate: perSecond, timeUnit: '1s', duration: DURATION,
      preAllocatedVUs: 20, maxVUs: 200,
    },
  };
}

export const options = {
  scenarios: scenarios(),
  thresholds: {
    dropped_iterations: ['count==0'],
    http_req_failed: ['rate==0'],
    checks: ['rate==1'],
  },
  summaryTrendStats: ['avg', 'p(50)', 'p(95)', 'p(99)', 'max'],
};

const params = { headers: { 'content-type': 'application/json', ...(TOKEN ? { authorization: `Bearer ${TOKEN}` } : {}) } };
// TRACED=1: every request carries a sampled W3C traceparent of its own, so each event is
// traced through router and sender (the cost of tracing everything).
const TRACED = __ENV.TRACED === '1';
const hex = (n) => Array.from({ length: n }, () => Math.floor(Math.random() * 16).toString(16)).join('');

export default function () {
  const now = Date.now();
  const events = [];
  for (let i = 0; i < BATCH; i++) {
    events.push({ type: 'load.created', occurred_at: now, data: { occurred_at: now, seq: i, pad: PAD } });
  }
  const request = TRACED ? { headers: { ...params.headers, traceparent: `00-${hex(32)}-${hex(16)}-01` } } : params;
  const res = http.post(`${API}/v1/events/batch`, JSON.stringify({ events }), request);
  check(res, { 'batch accepted (202)': (r) => r.status === 202 });
}

export function handleSummary(data) {
  const m = data.metrics;
  const v = (name, field) => (m[name] && m[name].values[field] !== undefined ? m[name].values[field] : 0);
  const accepted = v('checks', 'passes') * BATCH;
  const text = [
    `k6 ${SCENARIO}: ${v('iterations', 'count')} requests of ${BATCH} events, ${accepted} events accepted`,
    `  request duration p50 ${v('http_req_duration', 'p(50)').toFixed(1)} ms, p99 ${v('http_req_duration', 'p(99)').toFixed(1)} ms`,
    `  dropped iterations ${v('dropped_iterations', 'count')}, failed requests ${(v('http_req_failed', 'rate') * 100).toFixed(2)}%`,
    '',
  ].join('\n');
  const out = { stdout: text };
  if (__ENV.SUMMARY) {
    out[__ENV.SUMMARY] = JSON.stringify({ scenario: SCENARIO, rate: RATE, batch: BATCH, accepted_events: accepted, metrics: m }, null, 1);
  }
  return out;
}
