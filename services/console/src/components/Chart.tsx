// Deliveries (stacked bars: successes, failures) and latency (p50 and p99 lines) per bucket,
// drawn as plain SVG: no chart library, no inline style (colours come from the stylesheet).
import type { Series } from "../api/client";

const W = 720;
const H = 200;
const PAD = { left: 44, right: 52, top: 12, bottom: 24 };

export function SeriesChart({ series, title, minutes = 60, now = Date.now() }: { series: Series; title: string; minutes?: number; now?: number }) {
  // Buckets are placed by their start time on a fixed window ending now: the API may leave
  // out the minutes without attempts.
  const step = series.bucket_ms || 60_000;
  const slots = Math.max(1, Math.round((minutes * 60_000) / step));
  const end = Math.floor(now / step) * step + step;
  const begin = end - slots * step;
  const b = series.buckets.filter((x) => x.start >= begin && x.start < end);
  const slotOf = (x: { start: number }) => Math.floor((x.start - begin) / step);
  const innerW = W - PAD.left - PAD.right;
  const innerH = H - PAD.top - PAD.bottom;
  const maxCount = Math.max(1, ...b.map((x) => x.successes + x.failures));
  const maxLatency = Math.max(1, ...b.map((x) => x.p99_ms ?? x.p50_ms ?? 0));
  const slot = innerW / slots;
  const barW = Math.max(1, slot * 0.8);
  const y = (v: number) => PAD.top + innerH - (v / maxCount) * innerH;
  const yl = (v: number) => PAD.top + innerH - (v / maxLatency) * innerH;
  const line = (pick: (x: Series["buckets"][number]) => number | null | undefined) =>
    b
      .map((x) => [slotOf(x), pick(x)] as const)
      .filter(([, v]) => v !== null && v !== undefined)
      .map(([i, v], k) => `${k === 0 ? "M" : "L"}${(PAD.left + i * slot + slot / 2).toFixed(1)},${yl(v as number).toFixed(1)}`)
      .join(" ");
  const total = b.reduce((a, x) => a + x.successes + x.failures, 0);
  const failures = b.reduce((a, x) => a + x.failures, 0);
  const label = `${title}: ${total} deliveries, ${failures} failed, in ${slots} buckets of ${Math.round(step / 1000)} s`;
  return (
    <figure class="chart">
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={label}>
        <title>{label}</title>
        {(maxCount >= 2 ? [0, 0.5, 1] : [0, 1]).map((f) => (
          <g key={f}>
            <line class="grid" x1={PAD.left} x2={W - PAD.right} y1={y(maxCount * f)} y2={y(maxCount * f)} />
            <text class="axis" x={PAD.left - 6} y={y(maxCount * f) + 4} text-anchor="end">
              {maxCount * f >= 10 ? Math.round(maxCount * f) : +(maxCount * f).toFixed(1)}
            </text>
            <text class="axis" x={W - PAD.right + 6} y={yl(maxLatency * f) + 4}>
              {Math.round(maxLatency * f)} ms
            </text>
          </g>
        ))}
        {b.map((x) => {
          const bx = PAD.left + slotOf(x) * slot + (slot - barW) / 2;
          return (
            <g key={x.start}>
              <rect class="bar-ok" x={bx} width={barW} y={y(x.successes)} height={Math.max(0, PAD.top + innerH - y(x.successes))} />
              <rect class="bar-fail" x={bx} width={barW} y={y(x.successes + x.failures)} height={Math.max(0, y(x.successes) - y(x.successes + x.failures))} />
            </g>
          );
        })}
        <path class="line-p50" d={line((x) => x.p50_ms)} />
        <path class="line-p99" d={line((x) => x.p99_ms)} />
        {b.map((x) => (
          <g key={`l${x.start}`}>
            {x.p50_ms != null && <circle class="dot-p50" r={2.5} cx={PAD.left + slotOf(x) * slot + slot / 2} cy={yl(x.p50_ms)} />}
            {x.p99_ms != null && <circle class="dot-p99" r={2.5} cx={PAD.left + slotOf(x) * slot + slot / 2} cy={yl(x.p99_ms)} />}
          </g>
        ))}
        <text class="axis" x={PAD.left} y={H - 6}>
          {new Date(begin).toLocaleTimeString(undefined, { timeStyle: "short" })}
        </text>
        <text class="axis" x={W - PAD.right} y={H - 6} text-anchor="end">
          {new Date(end).toLocaleTimeString(undefined, { timeStyle: "short" })}
        </text>
      </svg>
      <figcaption class="legend">
        <span class="key key-ok">successes</span>
        <span class="key key-fail">failures</span>
        <span class="key key-p50">p50 latency</span>
        <span class="key key-p99">p99 latency</span>
        <span class="muted">
          {total} deliveries, {failures} failed
        </span>
      </figcaption>
    </figure>
  );
}

/** A series from raw attempts, for servers without the series route (last attempts only). */
export function seriesFromAttempts(attempts: { at: number; outcome: string; latency_ms: number }[], minutes = 60, now = Date.now()): Series {
  const bucket_ms = 60_000;
  const start0 = Math.floor((now - minutes * 60_000) / bucket_ms) * bucket_ms;
  const buckets = Array.from({ length: minutes + 1 }, (_, i) => ({ start: start0 + i * bucket_ms, successes: 0, failures: 0, lat: [] as number[] }));
  for (const a of attempts) {
    if (a.outcome === "deferred") continue;
    const i = Math.floor((a.at - start0) / bucket_ms);
    const slot = buckets[i];
    if (!slot) continue;
    if (a.outcome === "success") slot.successes++;
    else slot.failures++;
    slot.lat.push(a.latency_ms);
  }
  const q = (xs: number[], p: number) => {
    if (!xs.length) return null;
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? null;
  };
  return { bucket_ms, buckets: buckets.map(({ lat, ...x }) => ({ ...x, p50_ms: q(lat, 0.5), p99_ms: q(lat, 0.99) })) };
}
