import type { ComponentChildren } from "preact";
import { href } from "../router";
import type { Loaded } from "./load";

export function Badge({ kind, children }: { kind: string; children: ComponentChildren }) {
  return <span class={`badge badge-${kind}`}>{children}</span>;
}

export function StatusBadge({ status }: { status: string }) {
  const kind =
    status === "delivered" || status === "success" || status === "completed" || status === "healthy"
      ? "ok"
      : status === "pending" || status === "running" || status === "retryable" || status === "deferred" || status === "degraded"
        ? "wait"
        : status === "cancelled" || status === "disabled"
          ? "off"
          : "bad";
  return <Badge kind={kind}>{status}</Badge>;
}

/** Loading, error and "route not served yet" states of a `useLoad`, or the content. `missing`
 * says what the screen can do without the route, where it can do something. */
export function Loading<T>({ state, missing, children }: { state: Loaded<T>; missing?: (route: string) => ComponentChildren; children: (data: T) => ComponentChildren }) {
  if (state.missing) return <Notice kind="missing">{missing ? missing(state.missing) : <>This Hookline does not serve <code>{state.missing}</code> yet.</>}</Notice>;
  if (state.error) return <Notice kind="error">{state.error}</Notice>;
  if (state.data === undefined) return <p class="muted" aria-busy="true">Loading…</p>;
  return <>{children(state.data)}</>;
}

export function Notice({ kind, children }: { kind: "error" | "ok" | "missing" | "info"; children: ComponentChildren }) {
  return (
    <div class={`notice notice-${kind}`} role={kind === "error" ? "alert" : "status"}>
      {children}
    </div>
  );
}

export function Field({ label, hint, children }: { label: string; hint?: string; children: ComponentChildren }) {
  return (
    <label class="field">
      <span class="field-label">{label}</span>
      {children}
      {hint && <span class="field-hint">{hint}</span>}
    </label>
  );
}

export function Code({ children }: { children: ComponentChildren }) {
  return <code class="mono">{children}</code>;
}

/** The way back from a page to the list it belongs to. */
export function Crumbs({ to, children }: { to: string; children: ComponentChildren }) {
  return (
    <p class="crumbs">
      <a href={href(to)}>{children}</a> /
    </p>
  );
}
