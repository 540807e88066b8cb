#!/usr/bin/env python3
"""The arithmetic of load-tests/search.sh: the verdict on one run.sh report, the next rate to
try, and the summary.

  search.py judge --report R.json --history H.jsonl   the run's verdict, appended to H; prints its table row
  search.py next --history H.jsonl                    the next rate to run, or nothing when the search is done
  search.py summary --history H.jsonl --out BASE      prints the table, writes BASE.json and BASE.txt

The rule (thresholds from the environment, as search.sh passes them: P99_MS, RATE_TOLERANCE
in percent, DRAIN_MS; START and MAX_RUNS for `next`). The window of a run is its per-second
timeline (the sink's clock) from the first second after the first delivery that delivered at
most (1 + RATE_TOLERANCE) x RATE x F (the start's backlog is caught up) to the last second
with a delivery, that one left out (partial). A run at RATE events/s with fan-out F is
sustainable when all of these hold:
  - nothing lost, no invalid signature, no failed request or produce, the generator exited 0;
  - the generator kept its rate: no dropped arrival, and it achieved at least
    (1 - RATE_TOLERANCE) x RATE accepted events/s;
  - the window is at least half the generator's schedule (the start's backlog took less);
  - end-to-end p99 under P99_MS in every second of the window (the worst second's p99 is an
    upper bound of the window's p99; the sink keeps no histogram per window);
  - the deliveries kept up: at least (1 - RATE_TOLERANCE) x RATE x F delivered/s over the
    window (a backlog drained after the load lowers it), and the sink held every expected
    delivery at most DRAIN_MS after the generator stopped (the report's `drain_ms`).
Why the start is left out: a run's start can deliver above the offered rate, working off a
backlog (before `hookline bench produce` waited for its producer id, about 500 ms, its first
sends were acknowledged in one burst at every start); those seconds measure the start and the
catch-up after it, not the sustained rate, so the run's own p99 is reported next to the
window's.
"""
import argparse
import json
import math
import os
import sys

P99_MS = float(os.environ.get("P99_MS", 250))
TOLERANCE = float(os.environ.get("RATE_TOLERANCE", 5)) / 100
DRAIN_MS = float(os.environ.get("DRAIN_MS", 1000))
CONVERGED = 0.10  # stop once the bracket is narrower than 10% of the highest sustainable rate


def load(history):
    try:
        return [json.loads(line) for line in open(history) if line.strip()]
    except FileNotFoundError:
        return []


def judge(report_path):
    r = json.load(open(report_path))
    gen = r["generator"]
    rate, fanout = r["offered_events_per_second"], r["fanout"]
    produced = gen.get("achieved_events_per_second") or 0
    drain = r.get("drain_ms")
    # The sink's timeline has no entry for a second without deliveries.
    seconds = {s["t"]: s for s in r["timeline"] if s["delivered"] > 0}
    first, end = (min(seconds), max(seconds)) if seconds else (0, 0)
    caught_up = lambda t: t not in seconds or seconds[t]["delivered"] <= (1 + TOLERANCE) * rate * fanout
    start = next((t for t in range(first + 1, end) if caught_up(t)), end)
    window = [seconds[t] for t in range(start, end) if t in seconds]
    delivered = round(sum(s["delivered"] for s in window) / (end - start), 1) if end > start else None
    p99 = max((s["p99_ms"] for s in window), default=None)
    why = []
    for field, value in [("loss", r["loss"]), ("invalid signatures", r["invalid_signatures"]),
                         ("failed", gen["failed"]), ("dropped arrivals", gen["dropped_arrivals"]),
                         ("generator exit", gen.get("exit_status", 0))]:
        if value:
            why.append(f"{field} {value}")
    if produced < (1 - TOLERANCE) * rate:
        why.append(f"produced {produced:.0f}/s < {1 - TOLERANCE:.0%} of {rate}")
    if end - start < gen["schedule_seconds"] / 2:
        why.append(f"window {end - start} s: still catching up with the start {start - first} s in")
    if window:
        if p99 >= P99_MS:
            why.append(f"a second's p99 {p99} ms >= {P99_MS:g}")
        if delivered < (1 - TOLERANCE) * rate * fanout:
            why.append(f"delivered {delivered}/s < {1 - TOLERANCE:.0%} of {rate * fanout}")
    if drain is None or drain > DRAIN_MS:
        why.append("never drained" if drain is None else f"drain {drain} ms > {DRAIN_MS:g}")
    return {
        "rate": rate, "fanout": fanout, "source": r["source"], "duration": r["duration"], "report": report_path, "produced_per_second": round(produced, 1),
        "delivered_per_second": delivered, "deliveries_offered_per_second": rate * fanout,
        "window_seconds": end - start, "window_from_second": start - first, "p99_ms_worst_second": p99, "p99_ms_run": (r.get("e2e_latency_ms") or {}).get("p99"), "loss": r["loss"], "drain_ms": drain, "sustainable": not why, "why_not": why,
    }


COLUMNS = (f"{'run':>3} {'events/s':>9} {'produced/s':>10} {'delivered/s':>11} {'of target':>9} "
           f"{'p99 run':>7} {'p99 win':>7} {'loss':>6} {'drain ms':>8}  sustainable")


def row(i, run):
    dash = lambda v: "-" if v is None else v
    d = run["delivered_per_second"]
    share = f"{d / run['deliveries_offered_per_second']:.1%}" if d is not None else "-"
    verdict = "yes" if run["sustainable"] else "no: " + "; ".join(run["why_not"])
    return (f"{i:>3} {run['rate']:>9} {run['produced_per_second']:>10.0f} {dash(d):>11} {share:>9} "
            f"{dash(run['p99_ms_run']):>7} {dash(run['p99_ms_worst_second']):>7} {run['loss']:>6} "
            f"{dash(run['drain_ms']):>8}  {verdict}")


def three_figures(x):
    """x rounded to three significant figures (the bisection's rates stay readable)."""
    if x < 100:
        return max(1, round(x))
    step = 10 ** (int(math.log10(x)) - 2)
    return int(round(x / step) * step)


def bracket(runs):
    """(highest sustainable rate, lowest unsustainable rate above it), either None if not seen yet."""
    ok = [r["rate"] for r in runs if r["sustainable"]]
    lo = max(ok) if ok else None
    bad = [r["rate"] for r in runs if not r["sustainable"] and (lo is None or r["rate"] > lo)]
    return lo, (min(bad) if bad else None)


def next_rate(runs, start, max_runs):
    """The next rate, or None (with the reason) when the search is over."""
    if not runs:
        return start, None
    lo, hi = bracket(runs)
    if hi is None:
        nxt = 2 * lo  # sustainable so far: double
    elif lo is None:
        nxt = three_figures(hi / 2)  # even the start was too much: halve
        if nxt >= hi:
            return None, "no sustainable rate down to 1 event/s"
    elif hi - lo < CONVERGED * lo:
        return None, f"converged: {lo} sustainable, {hi} not ({(hi - lo) / lo:.2%} apart)"
    else:
        nxt = three_figures((lo + hi) / 2)
        if not lo < nxt < hi:
            return None, f"converged: {lo} sustainable, {hi} not (no rate between at three figures)"
    if len(runs) >= max_runs:
        return None, f"MAX_RUNS ({max_runs}) runs done"
    return nxt, None


def summary(runs, start, max_runs, base):
    _, reason = next_rate(runs, start, max_runs)
    reason = reason or "before the search was over (a run wrote no report)"
    lo, hi = bracket(runs)
    first = runs[0] if runs else {}
    fanout, source, duration = (first.get(k, os.environ.get(k.upper())) for k in ("fanout", "source", "duration"))
    best = next((r for r in runs if r["sustainable"] and r["rate"] == lo), None)
    notes = []
    if lo is not None and hi is None:
        notes.append(f"no unsustainable rate reached: the ceiling is above {lo} events/s")
    elif lo is not None and hi - lo >= CONVERGED * lo:
        notes.append(f"not converged: the ceiling is between {lo} and {hi} events/s")
    below = sorted(r["rate"] for r in runs if not r["sustainable"] and lo is not None and r["rate"] < lo)
    if below:
        notes.append(f"noise: {', '.join(map(str, below))} events/s failed below the sustained {lo}")
    result = {
        "fanout": fanout,
        "source": source,
        "duration": duration,
        "rule": {"p99_ms_under": P99_MS, "p99_of": "every second of the window", "rate_tolerance": TOLERANCE, "drain_ms_at_most": DRAIN_MS,
                 "converged_when_bracket_under": CONVERGED},
        "start": start,
        "max_runs": max_runs,
        "runs": runs,
        "highest_sustainable_events_per_second": lo,
        "highest_sustainable_deliveries_per_second": lo * fanout if lo is not None else None,
        "highest_sustainable_delivered_per_second_measured": best["delivered_per_second"] if best else None,
        "lowest_unsustainable_events_per_second": hi,
        "stopped": reason,
        "notes": notes,
    }
    lines = [f"search: fan-out {fanout}, source {source}, runs of {duration}; sustainable = zero loss, produced and delivered within {TOLERANCE:.0%} "
             f"of the offered rate and p99 < {P99_MS:g} ms in every second once caught up with the start, drained within {DRAIN_MS:g} ms",
             COLUMNS] + [row(i, r) for i, r in enumerate(runs, 1)]
    if lo is None:
        lines.append(f"highest sustainable rate: none found (lowest tried {min(r['rate'] for r in runs) if runs else '-'} events/s)")
    else:
        lines.append(f"highest sustainable rate: {lo} events/s = {lo * fanout} deliveries/s "
                     f"(measured {result['highest_sustainable_delivered_per_second_measured']}/s)"
                     + (f"; {hi} events/s was not" if hi is not None else ""))
    lines.append(f"stopped: {reason}")
    lines += [f"note: {n}" for n in notes]
    text = "\n".join(lines)
    json.dump(result, open(f"{base}.json", "w"), indent=1)
    open(f"{base}.txt", "w").write(text + "\n")
    print(text)
    print(f"summary: {base}.json, {base}.txt")
    return lo


def main():
    p = argparse.ArgumentParser()
    p.add_argument("command", choices=["judge", "next", "summary"])
    p.add_argument("--history", required=True)
    p.add_argument("--report")
    p.add_argument("--out")
    args = p.parse_args()
    start, max_runs = int(os.environ.get("START", 5000)), int(os.environ.get("MAX_RUNS", 7))
    runs = load(args.history)
    if args.command == "judge":
        run = judge(args.report)
        open(args.history, "a").write(json.dumps(run) + "\n")
        if not runs:
            print(COLUMNS)
        print(row(len(runs) + 1, run))
    elif args.command == "next":
        rate, _ = next_rate(runs, start, max_runs)
        if rate is not None:
            print(rate)
    else:
        lo = summary(runs, start, max_runs, args.out)
        sys.exit(0 if lo is not None else 1)


if __name__ == "__main__":
    main()
