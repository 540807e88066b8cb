export function time(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || ms <= 0) return "—";
  const d = new Date(ms);
  return d.toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

export function ago(ms: number | null | undefined, now = Date.now()): string {
  if (!ms) return "—";
  const s = Math.round((now - ms) / 1000);
  if (s < 0) return `in ${duration(-s)}`;
  return `${duration(s)} ago`;
}

export function duration(s: number): string {
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

export function percent(x: number | null | undefined): string {
  return x === null || x === undefined ? "—" : `${(x * 100).toFixed(x >= 0.999 || x === 0 ? 0 : 1)}%`;
}

export function ms(x: number | null | undefined): string {
  return x === null || x === undefined ? "—" : `${x} ms`;
}

/** `<input type="datetime-local">` value <-> Unix ms, in the browser's time zone. */
export function toLocalInput(msValue: number | undefined): string {
  if (!msValue) return "";
  const d = new Date(msValue - new Date(msValue).getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 16);
}

export function fromLocalInput(value: string): number | undefined {
  if (!value) return undefined;
  const t = new Date(value).getTime();
  return Number.isNaN(t) ? undefined : t;
}
