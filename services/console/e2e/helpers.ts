import { fileURLToPath } from "node:url";
import { expect, type Locator, type Page } from "@playwright/test";
import { mkdirSync } from "node:fs";
import { resolve } from "node:path";
import { waitFor } from "./stack";

export const env = {
  get base() { return must("CONSOLE_BASE_URL"); },
  get api() { return must("E2E_API"); },
  get token() { return must("E2E_TOKEN"); },
  get readToken() { return must("E2E_READ_TOKEN"); },
  get sinkUrl() { return must("E2E_SINK_URL"); },
  get failingUrl() { return must("E2E_FAILING_URL"); },
};

function must(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (global setup did not run?)`);
  return v;
}

export { waitFor };

/** A call to the real API, as a service or an operator's script would make it. */
export async function api<T = unknown>(method: string, path: string, body?: unknown, token = env.token): Promise<{ status: number; body: T }> {
  const r = await fetch(env.api + path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, body: (text ? JSON.parse(text) : undefined) as T };
}

let spec: { paths: Record<string, Record<string, unknown>>; components: { schemas: Record<string, { properties?: Record<string, unknown> }> } } | undefined;

/** Whether the running hookline's own OpenAPI document has this route (new routes arrive over time). */
export async function serves(method: string, path: string): Promise<boolean> {
  spec ??= (await (await fetch(`${env.api}/v1/openapi.json`)).json()) as typeof spec;
  return !!spec!.paths[path]?.[method.toLowerCase()];
}

export async function schemaHas(schema: string, property: string): Promise<boolean> {
  await serves("get", "/v1/endpoints");
  return !!spec!.components.schemas[schema]?.properties?.[property];
}

export async function signIn(page: Page, token = env.token): Promise<void> {
  await page.goto(`${env.base}/console/`);
  await page.getByLabel("API token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByRole("navigation", { name: "Main" })).toBeVisible();
}

const SHOTS = resolve(fileURLToPath(new URL(".", import.meta.url)), "../../../docs/console");

export async function shot(page: Page, name: string): Promise<void> {
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: resolve(SHOTS, `${name}.png`) });
}

export async function publish(type: string, data: object, tenant?: string): Promise<string> {
  const r = await api<{ id: string }>("POST", "/v1/events", { type, data, ...(tenant ? { tenant } : {}) });
  expect(r.status, JSON.stringify(r.body)).toBe(202);
  return r.body.id;
}

export interface Attempt { event_id: string; endpoint_id: string; outcome: string; status: number }

export async function attemptsOf(eventId: string): Promise<Attempt[]> {
  const r = await api<{ data: Attempt[] }>("GET", `/v1/events/${eventId}/attempts`);
  return r.body?.data ?? [];
}

/** Whether an event has been delivered: to `endpointId`, or to any endpoint. */
export async function delivered(eventId: string, endpointId?: string): Promise<boolean> {
  return (await attemptsOf(eventId)).some((a) => a.outcome === "success" && (!endpointId || a.endpoint_id === endpointId));
}

/** Every dead letter of an endpoint, following the API's cursor. */
export async function deadLettersOf(endpointId: string): Promise<{ event_id: string }[]> {
  const all: { event_id: string }[] = [];
  let after: string | undefined;
  do {
    const p = await api<{ data: { event_id: string }[]; next?: string | null }>("GET", `/v1/dlq?endpoint_id=${endpointId}&limit=1000${after ? `&after=${after}` : ""}`);
    all.push(...p.body.data);
    after = p.body.next ?? undefined;
  } while (after);
  return all;
}

/** The failing receiver (env.failingUrl) answers 500 until it is told to recover, and again once told to fail. */
export async function failingReceiver(to: "recover" | "fail"): Promise<void> {
  await fetch(new URL(`/__control/${to}`, env.failingUrl), { method: "POST" });
}

/** A link of the header's main navigation. */
export function navLink(page: Page, name: string): Locator {
  return page.getByRole("navigation", { name: "Main" }).getByRole("link", { name });
}

export function unique(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}${Math.floor(Math.random() * 1e4)}`;
}
