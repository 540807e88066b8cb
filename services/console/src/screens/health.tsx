import type { Endpoint, Stats } from "../api/client";
import { ago, ms, percent } from "../format";
import { StatusBadge } from "../components/ui";

/** Below this success rate over the window, an endpoint the breaker lets through is "degraded". */
const DEGRADED_BELOW = 0.95;

export function healthOf(e: Endpoint, stats?: Stats): "disabled" | "breaker open" | "failing" | "degraded" | "healthy" {
  if (!e.enabled) return "disabled";
  if (e.unhealthy_since) return "breaker open";
  if (e.failing_since) return "failing";
  if (stats?.success_rate != null && stats.success_rate < DEGRADED_BELOW) return "degraded";
  return "healthy";
}

export function HealthCell({ endpoint, stats }: { endpoint: Endpoint; stats?: Stats }) {
  const h = healthOf(endpoint, stats);
  return (
    <span class="health">
      <StatusBadge status={h} />
      {h === "breaker open" && <span class="muted small"> since {ago(endpoint.unhealthy_since)}</span>}
      {h === "failing" && <span class="muted small"> since {ago(endpoint.failing_since)}</span>}
      {h === "disabled" && endpoint.disabled_reason && <span class="muted small"> {endpoint.disabled_reason}</span>}
    </span>
  );
}

export function StatsCells({ stats }: { stats: Stats | undefined }) {
  return (
    <>
      <td class="num">{stats ? percent(stats.success_rate) : "…"}</td>
      <td class="num">{stats ? ms(stats.latency_p99_ms) : "…"}</td>
      <td class="num">{stats ? stats.attempts : "…"}</td>
    </>
  );
}
