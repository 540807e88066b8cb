#!/usr/bin/env python3
"""Instructions per delivery of `hookline dev`, from the two callgrind dumps that
`INSTRUCTIONS=1 load-tests/run.sh` takes: `idle` (a window with no load) and `load` (from the
generator's start until the sink held every delivery).

Callgrind counts the instructions a process executes in user space, the same for the same
binary and input whatever else the machine is doing, where CPU seconds on this shared VM
vary by a fifth or more between identical runs (docs/performance.md). It does not count the
kernel (the loopback TCP path, scheduling), and what depends on elapsed time (timers,
librdkafka's statistics, polls) runs about fifty times as often per delivery under it; so
the idle window's rate is subtracted for the load window's length. Valgrind's CPU has no
SHA extensions, so SHA-256 runs in software here (natively, with SHA-NI, a signature is a
fraction of what is counted): signing is reported, and the total without it too.
"""
import argparse
import pathlib
import re
import subprocess

# Inclusive cost of each part (a function and everything it calls); parts nest, so they
# do not add up.
PARTS = [
    ("tokio threads: Hookline's own async code", r"tokio::runtime::blocking::pool::Inner::run$"),
    ("sender: a record's delivery, to its end", r"hookline_sender::workers::delivery::\{\{closure\}\}"),
    # The HMAC itself: the function around it (`signature_header`) is inlined in some builds.
    ("  signing (software SHA-256 here)", r"hookline_core::signing::SigningKey::sign$"),
    ("  HTTP request and response (hyper)", r"hyper_util::client::legacy::client::Client<C,B>::send_request::\{\{closure\}\}"),
    # Adding to the batch: `AttemptLog::record` around it is inlined in some builds.
    ("  attempt record (into its batch)", r"hookline_sender::attempt_log::Batches::push$"),
    ("attempt batches written", r"hookline_sender::attempt_log::write"),
    ("offset tracking (complete)", r"hookline_runtime::offsets::OffsetTracker::complete"),
    ("router: consume, route, produce", r"hookline_router::run::\{\{closure\}\}"),
    ("API history follower", r"hookline_api::history::apply_attempt"),
    ("librdkafka broker threads (per batch and per poll: more of it under callgrind)", r"rd_kafka_broker_thread_main"),
    ("  LZ4 compression", r"rd_kafka_lz4_compress"),
    ("  LZ4 decompression", r"rd_kafka_lz4_decompress"),
    ("librdkafka main thread", r"rd_kafka_thread_main"),
    ("  statistics", r"rd_kafka_stats_emit_tmr_cb"),
    ("allocation (Rust, mimalloc)", r"__rustc::__rust_alloc$"),
    ("SipHash (std HashMap keys)", r"sip.rs:<core::hash::sip::Hasher<S> as core::hash::Hasher>::write"),
]
LINE = re.compile(r"^\s*([\d,]+) \([^)]*\)\s+(?:\*\s+)?(\S.*?)(?: \[[^\]]*\])?$")


def header(path):
    """The dump's trigger and its total instructions."""
    trigger, total = "", None
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("desc: Trigger:"):
                trigger = line.split(":", 2)[2].strip()
            elif line.startswith(("summary:", "totals:")):
                total = int(line.split()[1])
                break
    return trigger, total


def functions(path, inclusive):
    out = subprocess.run(
        ["callgrind_annotate", f"--inclusive={'yes' if inclusive else 'no'}", "--threshold=100", str(path)],
        capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        m = LINE.match(line)
        if m and "PROGRAM TOTALS" not in line:
            rows.append((int(m.group(1).replace(",", "")), m.group(2)))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--idle-ns", type=int, required=True)
    ap.add_argument("--load-ns", type=int, required=True)
    ap.add_argument("--deliveries", type=int, required=True)
    ap.add_argument("--fanout", required=True)
    ap.add_argument("--source", required=True)
    a = ap.parse_args()
    dumps = {}
    for path in pathlib.Path(a.dir).glob("callgrind.out.*"):
        trigger, total = header(path)
        for name in ("idle", "load"):
            if trigger.endswith(name):
                dumps[name] = (path, total)
    if set(dumps) != {"idle", "load"} or a.deliveries <= 0:
        raise SystemExit(f"instructions: need the idle and load dumps and some deliveries (found {sorted(dumps)}, {a.deliveries} deliveries)")
    idle_s, load_s = a.idle_ns / 1e9, a.load_ns / 1e9
    idle_rate = dumps["idle"][1] / idle_s
    load_total = dumps["load"][1]
    background = idle_rate * load_s
    net = load_total - background
    per = lambda n: n / a.deliveries
    inclusive = functions(dumps["load"][0], True)
    parts = [(label, max((n for n, f in inclusive if re.search(pattern, f)), default=0)) for label, pattern in PARTS]
    tokio, signing = parts[0][1], parts[2][1]
    print(f"instructions (callgrind) of hookline dev: fan-out {a.fanout}, source {a.source}, {a.deliveries} deliveries")
    print(f"  load window {load_s:.1f} s: {load_total:,} instructions; idle rate {idle_rate:,.0f}/s "
          f"({dumps['idle'][1]:,} in {idle_s:.1f} s), so {background:,.0f} of the window is background")
    print(f"  per delivery: {per(net):,.0f} instructions; without signing {per(net - signing):,.0f} "
          f"(signing {per(signing):,.0f}, software SHA-256 under valgrind)")
    print(f"  Hookline's own async code (the tokio threads) per delivery: {per(tokio):,.0f}; "
          f"without signing {per(tokio - signing):,.0f}")
    print("  parts, inclusive, per delivery (parts nest; time-driven parts include the background):")
    for label, n in parts:
        print(f"    {per(n):>9,.0f}  {label}")
    print("  most instructions by function (self), per delivery:")
    # Thread entry frames show the whole thread's cost as their own: not a function's.
    own = [(n, f) for n, f in functions(dumps["load"][0], False) if n < load_total / 2]
    for n, f in own[:15]:
        print(f"    {per(n):>9,.0f}  {f.split(':', 1)[-1][:110]}")


if __name__ == "__main__":
    main()
