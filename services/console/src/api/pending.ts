// Routes and fields the console needs that docs/openapi.json does not describe yet (they are
// being added to the API). Each is typed here by hand, from the agreed shape, and called
// through `getJson`/`postJson`. When a route appears in the OpenAPI document,
// `scripts/console.sh build` names it: move its calls to the typed client and delete it here.
import { token, type Mode } from "./session";

export const PENDING_ROUTES = [
  "GET /v1/me",
  "GET /v1/events",
  "GET /v1/endpoints/{id}/series",
  "GET /v1/stats/event-types",
  "GET /v1/stats/throughput",
  "POST /v1/portal/sessions",
] as const;

export interface Me {
  kind: "token" | "portal" | "open";
  name: string;
  scopes: string[];
  tenant?: string | null;
  permissions?: string[] | null;
  expires_at?: number | null;
}

export interface Series {
  bucket_ms: number;
  buckets: { start: number; successes: number; failures: number; p50_ms?: number | null; p99_ms?: number | null }[];
}

export interface EventTypeSeen {
  event_type: string;
  tenant: string;
  attempts: number;
  last_seen: number;
}

export type EventStatus = "delivered" | "pending" | "failed" | "dead";

export interface EventDelivery {
  endpoint_id: string;
  status: EventStatus | string;
  attempts: number;
  last_status?: number | null;
  next_attempt_at?: number | null;
}

export interface EventSummary {
  event_id: string;
  event_type: string;
  tenant?: string | null;
  first_attempt_at?: number | null;
  last_attempt_at?: number | null;
  status: EventStatus | string;
  deliveries: EventDelivery[];
}

export interface Page<T> {
  data: T[];
  next?: string | null;
}

/** Fields an attempt carries once the API adds them (absent from older servers). */
export interface AttemptExtra {
  request_headers?: Record<string, string> | null;
  response_excerpt?: string | null;
  next_attempt_at?: number | null;
}

export interface PortalSession {
  token: string;
  url: string;
  expires_at: number;
}

export const PORTAL_PERMISSIONS = ["view", "manage_endpoints", "view_secrets", "rotate_secrets", "replay"] as const;

/** The server does not serve a route (yet): the screen says so instead of failing. */
export class MissingRoute extends Error {
  constructor(readonly route: string) {
    super(`this Hookline does not serve ${route} yet`);
  }
}

export class ApiError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

type Params = Record<string, string | number | undefined | null>;

let unauthorized: () => void = () => {};

/** What to do when the API answers 401 (an expired session, a revoked token): sign out. */
export function onUnauthorized(fn: () => void): void {
  unauthorized = fn;
}

async function call<T>(mode: Mode, method: string, route: string, path: string, params?: Params, body?: unknown): Promise<T> {
  const url = new URL(path, window.location.origin);
  for (const [k, v] of Object.entries(params ?? {})) {
    if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, String(v));
  }
  const headers: Record<string, string> = { accept: "application/json" };
  const t = token(mode);
  if (t) headers.authorization = `Bearer ${t}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (res.status === 404 || res.status === 405) {
    // A missing route answers without a problem+json of ours; a missing resource with one.
    const text = await res.text();
    if (!text.includes('"status"')) throw new MissingRoute(`${method} ${route}`);
    throw new ApiError(res.status, detailOf(text) ?? "not found");
  }
  if (res.status === 401) unauthorized();
  if (!res.ok) throw new ApiError(res.status, detailOf(await res.text()) ?? `${res.status} ${res.statusText}`);
  return (await res.json()) as T;
}

function detailOf(text: string): string | undefined {
  try {
    const p = JSON.parse(text) as { detail?: string; title?: string };
    return p.detail ?? p.title;
  } catch {
    return undefined;
  }
}

export const pending = {
  me: (mode: Mode) => call<Me>(mode, "GET", "/v1/me", "/v1/me"),
  series: (mode: Mode, id: string, minutes = 60) =>
    call<Series>(mode, "GET", "/v1/endpoints/{id}/series", `/v1/endpoints/${encodeURIComponent(id)}/series`, { minutes }),
  throughput: (mode: Mode, minutes = 60) => call<Series>(mode, "GET", "/v1/stats/throughput", "/v1/stats/throughput", { minutes }),
  eventTypes: (mode: Mode) => call<{ data: EventTypeSeen[] }>(mode, "GET", "/v1/stats/event-types", "/v1/stats/event-types"),
  events: (mode: Mode, params: Params) => call<Page<EventSummary>>(mode, "GET", "/v1/events", "/v1/events", params),
  portalSession: (mode: Mode, body: { tenant: string; permissions: string[]; ttl_seconds?: number }) =>
    call<PortalSession>(mode, "POST", "/v1/portal/sessions", "/v1/portal/sessions", undefined, body),
};
