// The system under test: a real `hookline dev` on its own ports and topic prefix, against
// the broker named by HOOKLINE_TEST_KAFKA, plus receivers: a `hookline sink` that accepts
// everything and a receiver that answers 500 until told to recover. Every process started
// is recorded in $STATE/pids, so scripts/console.sh can stop them even if the runner dies.
import { fileURLToPath } from "node:url";
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { appendFileSync, createReadStream, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createServer, request as httpRequest, type Server } from "node:http";
import { AddressInfo, createServer as netServer } from "node:net";
import { tmpdir } from "node:os";
import { extname, join, resolve } from "node:path";

export const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'self'; base-uri 'none'; form-action 'self'";

export async function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const s = netServer();
    s.once("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => ok(port));
    });
  });
}

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 90_000, everyMs = 300): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ""}`);
}

export interface Stack {
  state: string;
  api: string;
  base: string;
  token: string;
  readToken: string;
  sinkUrl: string;
  failingUrl: string;
  servesConsole: boolean;
  stop: () => Promise<void>;
}

function track(state: string, child: ChildProcess, name: string): void {
  appendFileSync(join(state, "pids"), `${child.pid} ${name}\n`);
}

function tokenFor(bin: string, name: string, scopes: string): { token: string; sha256: string } {
  const out = execFileSync(bin, ["api", "token", "--name", name, "--scopes", scopes], { encoding: "utf8" });
  const token = /^token:\s*(\S+)/m.exec(out)?.[1];
  const sha256 = /sha256\s*=\s*"([0-9a-f]+)"/.exec(out)?.[1];
  if (!token || !sha256) throw new Error(`unexpected output of hookline api token: ${out}`);
  return { token, sha256 };
}

export async function startStack(): Promise<Stack> {
  // Relative to the repository root (scripts/console.sh makes it absolute anyway).
  const root = resolve(fileURLToPath(new URL(".", import.meta.url)), "../../..");
  const bin = resolve(root, process.env.HOOKLINE_BIN ?? "target/debug/hookline");
  const kafka = process.env.HOOKLINE_TEST_KAFKA;
  if (!existsSync(bin)) throw new Error(`HOOKLINE_BIN=${bin} does not exist: build hookline first (cargo build)`);
  if (!kafka) throw new Error("HOOKLINE_TEST_KAFKA is not set: name a running broker, e.g. 127.0.0.1:19092");
  const state = process.env.CONSOLE_E2E_STATE ?? mkdtempSync(join(tmpdir(), "hookline-console-e2e-"));
  mkdirSync(state, { recursive: true });
  const [apiPort, adminPort, sinkPort, failPort, webPort] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
  const admin = tokenFor(bin, "console-e2e", "admin");
  const read = tokenFor(bin, "console-e2e-read", "read");
  const prefix = `console-e2e-${Date.now().toString(36)}-${process.pid}`;
  // The failing receiver's origin also plays a product that embeds the portal.
  const embedder = `http://127.0.0.1:${failPort}`;
  const framing = execFileSync(bin, ["config"], { encoding: "utf8", env: {} }).includes("portal_frame_ancestors")
    ? `portal_frame_ancestors = ["${embedder}"]`
    : "";
  const config = `
[kafka]
bootstrap_servers = "${kafka}"
topic_prefix = "${prefix}"
[api]
listen = "127.0.0.1:${apiPort}"
${framing}
[[api.tokens]]
name = "console-e2e"
sha256 = "${admin.sha256}"
scopes = ["admin"]
[[api.tokens]]
name = "console-e2e-read"
sha256 = "${read.sha256}"
scopes = ["read"]
[admin]
listen = "127.0.0.1:${adminPort}"
[retry]
schedule = ["1s"]          # two attempts, one second apart, then the DLQ: quick dead letters
[breaker]
failure_threshold = 100000 # keep the breaker out of the way of the dead-letter scenario
min_calls = 100000
[log]
format = "text"
level = "info"             # rebalances and assignments: what a failed run is diagnosed from
`;
  const configPath = join(state, "hookline.toml");
  writeFileSync(configPath, config);
  const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("HOOKLINE_") || k === "HOOKLINE_BIN"));
  const children: ChildProcess[] = [];
  const spawnLogged = (name: string, args: string[]) => {
    const log = openSync(join(state, `${name}.log`), "a");
    const child = spawn(bin, args, { env: cleanEnv, stdio: ["ignore", log, log] });
    track(state, child, name);
    children.push(child);
    return child;
  };
  spawnLogged("hookline-dev", ["dev", "--config", configPath]);
  spawnLogged("sink", ["sink", "--listen", `127.0.0.1:${sinkPort}`, "--print", "--summary-every", "0"]);
  const failing = failingReceiver();
  await new Promise<void>((ok) => failing.listen(failPort, "127.0.0.1", ok));

  const api = `http://127.0.0.1:${apiPort}`;
  const stop = async () => {
    failing.close();
    web?.close();
    for (const c of children) if (c.exitCode === null) c.kill("SIGTERM");
    await Promise.all(children.map((c) => (c.exitCode !== null ? Promise.resolve() : new Promise((r) => { const t = setTimeout(() => { c.kill("SIGKILL"); r(null); }, 10_000); c.once("exit", () => { clearTimeout(t); r(null); }); }))));
  };
  let web: Server | undefined;
  try {
    await waitFor("hookline dev's API", async () => {
      const r = await fetch(`${api}/v1/endpoints?limit=1`, { headers: { authorization: `Bearer ${admin.token}` } });
      return r.ok || undefined;
    }, 120_000);
    const probe = await fetch(`${api}/console/`);
    // CONSOLE_E2E_OWN_SERVER=1 tests this checkout's dist/ even when the binary embeds another.
    const servesConsole = process.env.CONSOLE_E2E_OWN_SERVER !== "1" && probe.ok && (probe.headers.get("content-type") ?? "").includes("html");
    let base = api;
    if (!servesConsole) {
      // This hookline does not serve the console yet: serve dist/ as it will (same CSP),
      // passing /v1 through to the API, so the browser still talks to the real pipeline.
      web = staticWithProxy(resolve(fileURLToPath(new URL(".", import.meta.url)), "../dist"), apiPort);
      await new Promise<void>((ok) => web!.listen(webPort, "127.0.0.1", ok));
      base = `http://127.0.0.1:${webPort}`;
    }
    return {
      state,
      api,
      base,
      token: admin.token,
      readToken: read.token,
      sinkUrl: `http://127.0.0.1:${sinkPort}/hooks`,
      failingUrl: `http://127.0.0.1:${failPort}/hooks`,
      servesConsole,
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** Answers 500 with a short body until POST /__control/recover, then 204 to every webhook. */
function failingReceiver(): Server {
  let healthy = false;
  return createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      if (req.url === "/__control/recover") {
        healthy = true;
        return res.writeHead(200).end("recovered");
      }
      if (req.url?.startsWith("/__embed?")) {
        // A page of another origin that frames the given URL (the portal may be, the console never).
        const src = new URL(req.url, "http://x").searchParams.get("src") ?? "";
        return res
          .writeHead(200, { "content-type": "text/html" })
          .end(`<!doctype html><title>embedder</title><iframe title="embedded" width="1200" height="600" src="${src.replace(/[<>"]/g, "")}"></iframe>`);
      }
      if (req.url === "/__control/fail") {
        healthy = false;
        return res.writeHead(200).end("failing");
      }
      if (healthy) return res.writeHead(204).end();
      res.writeHead(500, { "content-type": "application/json" }).end('{"error":"simulated outage: the database is down"}');
    });
  });
}

const TYPES: Record<string, string> = { ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".png": "image/png" };

function staticWithProxy(dist: string, apiPort: number): Server {
  return createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    if (url.pathname.startsWith("/v1/")) {
      const up = httpRequest({ host: "127.0.0.1", port: apiPort, path: req.url, method: req.method, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
      up.on("error", () => res.writeHead(502).end());
      req.pipe(up);
      return;
    }
    const m = /^\/(console|portal)(\/.*)?$/.exec(url.pathname);
    if (!m) return res.writeHead(404).end();
    if (!m[2]) return res.writeHead(308, { location: `/${m[1]}/` }).end();
    const rel = m[2] === "/" ? "/index.html" : m[2];
    const file = resolve(dist, "." + rel);
    if (!file.startsWith(dist) || !existsSync(file) || !statSync(file).isFile()) return res.writeHead(404).end();
    res.writeHead(200, {
      "content-type": TYPES[extname(file)] ?? "application/octet-stream",
      "content-security-policy": CSP,
      "x-content-type-options": "nosniff",
      "referrer-policy": "no-referrer",
      "cache-control": rel === "/index.html" ? "no-cache" : "public, max-age=31536000, immutable",
    });
    createReadStream(file).pipe(res);
  });
}

export function readPids(state: string): string {
  return existsSync(join(state, "pids")) ? readFileSync(join(state, "pids"), "utf8") : "";
}
