#!/usr/bin/env python3
"""Merges the load generator's summary (`hookline bench ingest` or `hookline bench produce`),
the sink's ledger, process figures and baselines into one report: <out>/<name>.json
(everything), <name>.txt (the human summary) and <name>.svg (delivered/s and end-to-end p99
over the run). Exits 1 on loss, invalid signatures, dropped arrivals, failed requests (or
produces), or a generator that failed."""
import argparse
import json
import sys

p = argparse.ArgumentParser()
for a in ["name", "out", "scenario", "duration", "source", "generator", "generator-rusage", "sink", "procs", "procs-before", "baselines"]:
    p.add_argument(f"--{a}", required=True)
for a in ["rate", "fanout", "batch", "payload-bytes", "generator-status"]:
    p.add_argument(f"--{a}", type=int, required=True)
# ms from the generator's exit until the sink held every expected delivery (an upper bound:
# run.sh polls the sink about every 0.1 s); "none" when it never did (loss) or was not measured.
p.add_argument("--drain-ms", type=lambda v: None if v == "none" else int(v), default=None)
args = p.parse_args()

gen = json.load(open(args.generator))
sink = json.load(open(args.sink))
procs = json.load(open(args.procs))
# CPU is counted over the run only (Kafka may have been running before); peak RSS is the
# process's peak since it started.
before = json.load(open(args.procs_before))
for name, pr in procs.items():
    if pr and before.get(name):
        for key in ("cpu_seconds", "system_seconds", "context_switches", "jit_cpu_seconds"):
            if key in pr and key in before[name]:
                pr[key] = round(pr[key] - before[name][key], 2)
procs["generator"] = json.load(open(args.generator_rusage))
baselines = json.loads(args.baselines)
accepted = int(gen["accepted_events"])
expected = accepted * args.fanout
WARMUP_SECONDS = 2
timeline = sink.get("timeline") or []
busy = [s for s in timeline if s["delivered"] > 0]
span = (busy[-1]["t"] - busy[0]["t"] + 1) if busy else 0
delivered = sink["unique"]
lat = sink.get("latency_ms") or {}
report = {
    "scenario": args.scenario,
    "offered_events_per_second": args.rate,
    "duration": args.duration,
    "fanout": args.fanout,
    "source": args.source,
    "batch": args.batch if args.source == "ingest" else None,
    "payload_bytes": args.payload_bytes,
    "events_accepted": accepted,
    "deliveries_expected": expected,
    "deliveries_unique": delivered,
    "loss": max(0, expected - delivered),
    "duplicates": sink["duplicates"],
    "invalid_signatures": sink["invalid_signatures"],
    "delivered_per_second": round(delivered / span, 1) if span else 0,
    "delivered_per_second_peak": max((s["delivered"] for s in busy), default=0),
    "drain_ms": args.drain_ms,
    "e2e_latency_ms": lat,
    # The first seconds carry the consumer groups' first fetch after joining: the worst
    # per-second p99 after them is the steady state's figure.
    "e2e_p99_after_warmup_ms": max((s["p99_ms"] for s in busy[WARMUP_SECONDS:]), default=None),
    "generator": {**gen, "exit_status": args.generator_status},
    "processes": procs,
    "baselines": baselines,
    "timeline": timeline,
}
if "http" in baselines:
    report["ratio_to_raw_http"] = round(report["delivered_per_second"] / baselines["http"]["per_second"], 3)
if "kafka" in baselines:
    report["ratio_to_raw_kafka_consume"] = round(report["delivered_per_second"] / baselines["kafka"]["consume_per_second"], 3)

path = f"batches of {args.batch} to the HTTP ingest" if args.source == "ingest" else "produced to the events topic"
failed_by = f" {json.dumps(gen['failed_by'])}" if gen["failed_by"] else ""
if gen["generator"].endswith("ingest"):
    rl = gen["request_latency_ms"]
    generator_line = (f"  generator ({gen['generator']}): {gen['requests_sent']} requests, dropped arrivals {gen['dropped_arrivals']}, "
                      f"failed {gen['failed']}{failed_by}, request p50 {rl['p50']:.1f} ms, p99 {rl['p99']:.1f} ms, max {rl['max']:.1f} ms")
else:
    generator_line = (f"  generator ({gen['generator']}): {gen['produced']} produced, {gen['acknowledged']} acknowledged, "
                      f"failed {gen['failed']}{failed_by}, max lag behind schedule {gen['max_schedule_lag_ms'] or 0:.1f} ms")
lines = [
    f"scenario {args.scenario}: offered {args.rate} events/s for {args.duration}, fan-out {args.fanout}, {path}, {args.payload_bytes} B payloads",
    f"  accepted {accepted} events -> {expected} deliveries expected, {delivered} delivered unique, loss {report['loss']}, duplicates {report['duplicates']}, invalid signatures {report['invalid_signatures']}",
    f"  delivered {report['delivered_per_second']}/s over {span} s (peak second {report['delivered_per_second_peak']})"
    + (f"; all delivered {args.drain_ms} ms after the generator stopped" if args.drain_ms is not None else ""),
    f"  end to end (from each event's own timestamp): p50 {lat.get('p50')} ms, p95 {lat.get('p95')} ms, p99 {lat.get('p99')} ms, max {lat.get('max')} ms"
    + f"; after the first {WARMUP_SECONDS} s, worst per-second p99 {report['e2e_p99_after_warmup_ms']} ms",
    generator_line,
]
for name, pr in procs.items():
    if pr:
        jit = f" (JIT compilers {pr['jit_cpu_seconds']:.1f} s)" if "jit_cpu_seconds" in pr else ""
        lines.append(f"  {name:13s} cpu {pr['cpu_seconds']:8.1f} s   peak rss {pr['peak_rss_mib']:8.1f} MiB{jit}")
if "http" in baselines:
    lines.append(f"  raw HTTP ceiling {baselines['http']['per_second']:.0f} req/s (concurrency {baselines['http']['concurrency']}): Hookline at {report['ratio_to_raw_http']:.2f} of it")
if "kafka" in baselines:
    k = baselines["kafka"]
    lines.append(f"  raw Kafka: produce {k['produce_per_second']:.0f}/s, consume {k['consume_per_second']:.0f}/s: Hookline at {report['ratio_to_raw_kafka_consume']:.2f} of consume")
text = "\n".join(lines)
print(text)

# The plot: delivered/s (left axis) and p99 ms (right axis) per second.
W, H, L, R, T, B = 860, 360, 70, 70, 40, 50
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       f'<rect width="{W}" height="{H}" fill="white"/>',
       f'<text x="{W/2}" y="22" text-anchor="middle" font-size="14">Hookline {args.scenario}: {args.rate} events/s offered, fan-out {args.fanout}</text>']
if busy:
    t0 = busy[0]["t"]
    xs = [s["t"] - t0 for s in busy]
    xmax = max(xs) or 1
    dmax = max(s["delivered"] for s in busy) * 1.1 or 1
    pmax = max(s["p99_ms"] for s in busy) * 1.1 or 1
    X = lambda x: L + (W - L - R) * x / xmax
    Y = lambda v, vmax: H - B - (H - T - B) * v / vmax
    svg.append(f'<line x1="{L}" y1="{H-B}" x2="{W-R}" y2="{H-B}" stroke="black"/><line x1="{L}" y1="{T}" x2="{L}" y2="{H-B}" stroke="black"/><line x1="{W-R}" y1="{T}" x2="{W-R}" y2="{H-B}" stroke="black"/>')
    for i in range(5):
        v = dmax * i / 4
        svg.append(f'<text x="{L-6}" y="{Y(v, dmax)+4}" text-anchor="end" fill="#1f77b4">{v:.0f}</text>')
        pv = pmax * i / 4
        svg.append(f'<text x="{W-R+6}" y="{Y(pv, pmax)+4}" fill="#d62728">{pv:.0f}</text>')
    for i in range(6):
        x = xmax * i / 5
        svg.append(f'<text x="{X(x)}" y="{H-B+18}" text-anchor="middle">{x:.0f}</text>')
    svg.append(f'<text x="{W/2}" y="{H-10}" text-anchor="middle">seconds</text>')
    svg.append(f'<text x="16" y="{H/2}" fill="#1f77b4" transform="rotate(-90 16 {H/2})" text-anchor="middle">delivered per second</text>')
    svg.append(f'<text x="{W-14}" y="{H/2}" fill="#d62728" transform="rotate(90 {W-14} {H/2})" text-anchor="middle">p99 end-to-end ms</text>')
    d = " ".join(f"{X(x):.1f},{Y(s['delivered'], dmax):.1f}" for x, s in zip(xs, busy))
    q = " ".join(f"{X(x):.1f},{Y(s['p99_ms'], pmax):.1f}" for x, s in zip(xs, busy))
    svg.append(f'<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="{d}"/>')
    svg.append(f'<polyline fill="none" stroke="#d62728" stroke-width="1.5" points="{q}"/>')
svg.append("</svg>")

base = f"{args.out}/{args.name}"
json.dump(report, open(f"{base}.json", "w"), indent=1)
open(f"{base}.txt", "w").write(text + "\n")
open(f"{base}.svg", "w").write("\n".join(svg))
print(f"report: {base}.json, {base}.txt, {base}.svg")
ok = (report["loss"] == 0 and report["invalid_signatures"] == 0 and gen["dropped_arrivals"] == 0
      and gen["failed"] == 0 and args.generator_status == 0)
sys.exit(0 if ok else 1)
