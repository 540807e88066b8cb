// Checks load-tests/ingest.js without k6 (the project never installs or runs k6, an AGPL
// tool): the script is loaded by node with stub `k6` and `k6/http` modules, its default
// function is run, and the request it posts is compared with the one `hookline bench
// ingest --print-request` describes, so the k6 scenario that users run and the generator
// behind load-tests/run.sh cannot drift apart. Also checks its options (scenarios and the
// thresholds users rely on) and its summary.
//
//   node --test load-tests/        (HOOKLINE_BIN: the hookline binary, default target/debug
//                                   or target/release)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { register } from 'node:module';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const SCRIPT = pathToFileURL(path.join(here, 'ingest.js')).href;

// The stubs hand every call to globalThis.k6stub, which each run sets. The hooks run on
// node's loader thread; the stub modules themselves run here.
const stubs = {
  k6: 'export function check(value, checks) { return globalThis.k6stub.check(value, checks); }',
  'k6/http': 'export default { post: (...args) => globalThis.k6stub.post(...args) };',
};
const hooks = `
const stubs = ${JSON.stringify(stubs)};
const script = ${JSON.stringify(SCRIPT)};
export async function resolve(specifier, context, next) {
  if (Object.hasOwn(stubs, specifier)) {
    return { url: 'data:text/javascript,' + encodeURIComponent(stubs[specifier]), shortCircuit: true };
  }
  return next(specifier, context);
}
export async function load(url, context, next) {
  // ingest.js is a k6 ES module in a folder without package.json.
  if (url.split('?')[0] === script) return next(url, { ...context, format: 'module' });
  return next(url, context);
}`;
register('data:text/javascript,' + encodeURIComponent(hooks));

let loads = 0;
/** Loads a fresh copy of ingest.js with this __ENV and runs its default function once. */
async function runScenario(env, status = 202) {
  const posts = [];
  const checks = [];
  globalThis.k6stub = {
    post(url, body, params) {
      posts.push({ method: 'POST', url, headers: params.headers, body: JSON.parse(body) });
      return { status };
    },
    check(value, named) {
      const results = Object.entries(named).map(([name, f]) => [name, f(value)]);
      checks.push(...results);
      return results.every(([, ok]) => ok);
    },
  };
  globalThis.__ENV = env;
  loads += 1;
  const scenario = await import(`${SCRIPT}?load=${loads}`);
  scenario.default();
  return { scenario, posts, checks };
}

function hookline(args) {
  const candidates = process.env.HOOKLINE_BIN
    ? [process.env.HOOKLINE_BIN]
    : ['target/debug/hookline', 'target/release/hookline'].map((p) => path.join(here, '..', p));
  const bin = candidates.find((p) => existsSync(p));
  assert.ok(bin, `no hookline binary at ${candidates.join(' or ')} (build it, or set HOOKLINE_BIN)`);
  return JSON.parse(execFileSync(bin, ['bench', 'ingest', '--print-request', ...args], { encoding: 'utf8' }));
}

/**
 * The parts of a request that must agree: the random traceparent and the clock-dependent
 * timestamps are checked for form here and then replaced by placeholders.
 */
function comparable(request) {
  const headers = Object.fromEntries(Object.entries(request.headers).map(([k, v]) => [k.toLowerCase(), v]));
  if ('traceparent' in headers) {
    assert.match(headers.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/, 'a sampled W3C traceparent');
    headers.traceparent = '<traceparent>';
  }
  const now = Date.now();
  const events = request.body.events.map((e) => {
    assert.ok(Number.isInteger(e.occurred_at) && Math.abs(e.occurred_at - now) < 60_000, `occurred_at ${e.occurred_at} is now, in ms`);
    assert.equal(e.data.occurred_at, e.occurred_at, 'data.occurred_at (what the sink measures from) is the event time');
    return { ...e, occurred_at: '<now>', data: { ...e.data, occurred_at: '<now>' } };
  });
  return { method: request.method, url: request.url, headers, body: { ...request.body, events } };
}

test('ingest.js posts what `hookline bench ingest` posts: route, headers, body (traced, with a token)', async () => {
  const { posts } = await runScenario({ API: 'http://api.test:8090', TOKEN: 't0ken', BATCH: '3', PAYLOAD_BYTES: '200', TRACED: '1' });
  assert.equal(posts.length, 1);
  const k6 = comparable(posts[0]);
  const ours = comparable(hookline(['--api', 'http://api.test:8090', '--token', 't0ken', '--batch', '3', '--payload-bytes', '200', '--traced']));
  assert.deepEqual(k6, ours);
  assert.equal(k6.url, 'http://api.test:8090/v1/events/batch');
  assert.equal(k6.headers.authorization, 'Bearer t0ken');
  assert.deepEqual(k6.body.events.map((e) => [e.type, e.data.seq, e.data.pad.length]), [
    ['load.created', 0, 104], ['load.created', 1, 104], ['load.created', 2, 104],
  ]);
});

test('ingest.js and `hookline bench ingest` agree untraced, without a token, batch 1, default API', async () => {
  const { posts, checks } = await runScenario({ BATCH: '1' });
  const k6 = comparable(posts[0]);
  assert.deepEqual(k6, comparable(hookline(['--batch', '1'])));
  assert.deepEqual(Object.keys(k6.headers), ['content-type'], 'no authorization header without a token, no traceparent untraced');
  assert.deepEqual(checks, [['batch accepted (202)', true]]);
});

test('a request not answered 202 fails the check', async () => {
  const { checks } = await runScenario({ BATCH: '2' }, 503);
  assert.deepEqual(checks, [['batch accepted (202)', false]]);
});

test('options: the thresholds users rely on, and the arrival-rate scenarios', async () => {
  const steady = (await runScenario({ RATE: '2000', BATCH: '100', DURATION: '20s' })).scenario.options;
  assert.deepEqual(steady.thresholds, {
    dropped_iterations: ['count==0'],
    http_req_failed: ['rate==0'],
    checks: ['rate==1'],
  });
  assert.deepEqual(
    { executor: steady.scenarios.steady.executor, rate: steady.scenarios.steady.rate, timeUnit: steady.scenarios.steady.timeUnit, duration: steady.scenarios.steady.duration },
    { executor: 'constant-arrival-rate', rate: 20, timeUnit: '1s', duration: '20s' },
  );
  const burst = (await runScenario({ SCENARIO: 'burst', RATE: '1500', BATCH: '100' })).scenario.options.scenarios.burst;
  assert.equal(burst.executor, 'ramping-arrival-rate');
  assert.deepEqual(burst.stages.map((s) => [s.target, s.duration]), [[15, '15s'], [150, '1s'], [150, '30s'], [15, '1s'], [15, '15s']]);
});

test('handleSummary counts accepted events (checks passed x batch) into SUMMARY', async () => {
  const { scenario } = await runScenario({ BATCH: '10', SUMMARY: '/tmp/summary.json' });
  const metrics = { checks: { values: { passes: 7 } }, iterations: { values: { count: 7 } } };
  const out = scenario.handleSummary({ metrics });
  assert.equal(JSON.parse(out['/tmp/summary.json']).accepted_events, 70);
  assert.match(out.stdout, /7 requests of 10 events, 70 events accepted/);
});
