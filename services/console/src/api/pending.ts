// Routes the console needs before docs/openapi.json describes them. Each is typed here by
// hand from the agreed shape and called with `getJson`; `scripts/console.sh build` names a
// route as soon as it appears in the OpenAPI document, to move its calls to the typed client.
// Every route the console uses is in the document today, so the list is empty.
import { token, type Mode } from "./session";

export const PENDING_ROUTES: string[] = [];

/** The server does not serve a route (an older Hookline): the screen says so instead of failing. */
export class MissingRoute extends Error {
  constructor(readonly route: string) {
    super(`this Hookline does not serve ${route} yet`);
  }
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

let unauthorized: () => void = () => {};

/** What to do when the API answers 401 (an expired session, a revoked token): sign out. */
export function onUnauthorized(fn: () => void): void {
  unauthorized = fn;
}

export function unauthorizedSeen(): void {
  unauthorized();
}

/** An untyped GET, for a route in PENDING_ROUTES only. */
export async function getJson<T>(mode: Mode, route: string, path: string, params?: Record<string, string | number | undefined>): Promise<T> {
  const url = new URL(path, window.location.origin);
  for (const [k, v] of Object.entries(params ?? {})) if (v !== undefined && v !== "") url.searchParams.set(k, String(v));
  const t = token(mode);
  const res = await fetch(url, { headers: { accept: "application/json", ...(t ? { authorization: `Bearer ${t}` } : {}) } });
  const text = await res.text();
  if ((res.status === 404 || res.status === 405) && !text) throw new MissingRoute(`GET ${route}`);
  if (res.status === 401) unauthorized();
  if (!res.ok) throw new ApiError(res.status, text || `${res.status} ${res.statusText}`);
  return JSON.parse(text) as T;
}
