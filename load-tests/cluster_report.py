#!/usr/bin/env python3
"""The cluster figures of a load-tests/cluster.sh run, added to the report report.py wrote.

  cluster_report.py --report RESULTS/NAME.json --work WORK_DIR
      reads the run's files in WORK_DIR (meta.json, endpoints.json, actions.jsonl, sink.json with
      the sink's pauses, the DLQ and deliveries end offsets, consumer-group snapshots, role logs),
      adds a "cluster" section to NAME.json and its lines to NAME.txt, prints them, and exits 1
      on loss (expected - unique - dead-lettered > 0), a failed produce or an invalid signature.
  cluster_report.py --table RESULTS/A.json RESULTS/B.json ...
      one Markdown table row per run.

Also a module: partition_of(key, partitions) is Kafka's default partitioner (murmur2, as Java
clients and librdkafka's murmur2_random use for keyed records).
"""
import argparse
import glob
import json
import os
import re
import sys


def murmur2(data: bytes) -> int:
    """org.apache.kafka.common.utils.Utils.murmur2, as an unsigned 32-bit value."""
    length = len(data)
    m, r = 0x5BD1E995, 24
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    for i in range(length // 4):
        k = int.from_bytes(data[i * 4:i * 4 + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    tail, extra = length & ~3, length % 4
    if extra == 3:
        h ^= data[tail + 2] << 16
    if extra >= 2:
        h ^= data[tail + 1] << 8
    if extra >= 1:
        h ^= data[tail]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def partition_of(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def end_offsets(path):
    """GetOffsetShell lines `topic:partition:offset` -> {partition: offset}."""
    out = {}
    if os.path.exists(path):
        for line in open(path):
            parts = line.strip().rsplit(":", 2)
            if len(parts) == 3 and parts[1].isdigit() and parts[2].lstrip("-").isdigit():
                out[int(parts[1])] = int(parts[2])
    return out


def group_owners(path, topic):
    """ConsumerGroupCommand --describe -> {partition: consumer id} for one topic."""
    owners = {}
    if not os.path.exists(path):
        return None
    for line in open(path):
        f = line.split()
        if len(f) >= 7 and f[1] == topic and f[2].isdigit():
            owners[int(f[2])] = f[6]
    return owners or None


def assignments(work, role, topic):
    """{process: [(t_ms, "assigned"|"revoked", {partitions of topic})]} in time order, from the
    "partitions assigned" / "partitions revoked" lines of <work>/<role>N.log. Deltas under
    cooperative rebalancing, the whole set under the eager protocol: replayed in order, both
    give what each process owned when."""
    import datetime
    out = {}
    for path in sorted(glob.glob(f"{work}/{role}[0-9]*.log")):
        events = []
        for line in open(path, errors="replace"):
            if "partitions assigned" not in line and "partitions revoked" not in line:
                continue
            try:
                m = json.loads(line)
            except ValueError:
                continue
            t = int(datetime.datetime.fromisoformat(m["timestamp"].replace("Z", "+00:00")).timestamp() * 1000)
            parts = {int(x) for x in re.findall(re.escape(topic) + r'\\?"?(?:/|, )(\d+)', m.get("partitions", ""))}
            events.append((t, "revoked" if m["message"] == "partitions revoked" else "assigned", parts))
        out[os.path.basename(path)[:-4]] = sorted(events, key=lambda e: e[0])
    return out


def owned_at(events, t_ms):
    """What one process owned at t_ms."""
    owned = set()
    for t, what, parts in events:
        if t > t_ms:
            break
        owned = (owned - parts) if what == "revoked" else (owned | parts)
    return owned


def partition_owners(work, role, topic, lo, hi):
    """{partition: set of role processes that owned it at some time in [lo, hi]}."""
    owners = {}
    for name, events in assignments(work, role, topic).items():
        seen = owned_at(events, lo)
        for t, _, _ in events:
            if lo < t <= hi:
                seen |= owned_at(events, t)
        for p in seen:
            owners.setdefault(p, set()).add(name)
    return owners


def busiest(work, role, topic):
    """The running role process that owns the most partitions of `topic` now."""
    pids = dict(line.split()[:2] for line in open(f"{work}/pids") if line.strip())
    running = {name: events for name, events in assignments(work, role, topic).items()
               if name in pids and os.path.exists(f"/proc/{pids[name]}")}
    return max(running, key=lambda name: len(owned_at(running[name], float("inf"))), default=None)


def in_window(gaps, lo, hi):
    return [g for g in gaps if lo <= g["from_ms"] <= hi]


def longest(stream, lo, hi, threshold):
    """The longest pause of a stream ({max, kept}) that began inside [lo, hi]: a gap dict, or
    None when every pause there was shorter than the sink's threshold."""
    cands = in_window(stream.get("kept", []), lo, hi)
    mx = stream.get("max")
    if mx and lo <= mx["from_ms"] <= hi:
        cands.append(mx)
    return max(cands, key=lambda g: g["ms"]) if cands else None


def fmt_pause(g, threshold, t0=None):
    if g is None:
        return f"< {threshold} ms"
    at = f" at +{(g['from_ms'] - t0) / 1000:.1f} s" if t0 is not None else ""
    return f"{g['ms'] / 1000:.2f} s{at}" if g["ms"] >= 1000 else f"{g['ms']} ms{at}"


KAFKA_LOG_LINE = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})\] \w+ (.*)$")


def kafka_events(cluster_dir, prefix, lo, hi):
    """What the brokers and controllers logged about the run: the active controller changing,
    brokers fenced and unfenced, and the run's consumer groups rebalancing (with the reason).
    Each node logs the controller's records it replays: the first line of each is kept."""
    import datetime
    found = {}
    patterns = [
        (re.compile(r"QuorumController id=(\d+)\] Becoming the active controller at epoch (\d+)"), lambda m: f"node {m.group(1)} becomes the active controller"),
        (re.compile(r"BrokerRegistrationChangeRecord\(brokerId=(\d+), brokerEpoch=(\d+), fenced=1"), lambda m: f"broker {m.group(1)} fenced"),
        (re.compile(r"BrokerRegistrationChangeRecord\(brokerId=(\d+), brokerEpoch=(\d+), fenced=-1"), lambda m: f"broker {m.group(1)} unfenced"),
        (re.compile(r"BrokerRegistrationChangeRecord\(brokerId=(\d+), brokerEpoch=(\d+), fenced=0, inControlledShutdown=1"), lambda m: f"broker {m.group(1)} in controlled shutdown"),
        (re.compile(r"Preparing to rebalance group " + re.escape(prefix) + r"\.(\w+) .*?with old generation (\d+) \(reason: ([^;)]*)"),
         lambda m: f"group {m.group(1)}: rebalance from generation {m.group(2)} ({m.group(3)[:90]})"),
        (re.compile(r"Stabilized group " + re.escape(prefix) + r"\.(\w+) generation (\d+) with (\d+) members"),
         lambda m: f"group {m.group(1)}: generation {m.group(2)} stable with {m.group(3)} members"),
    ]
    for path in sorted(glob.glob(f"{cluster_dir}/node*/logs/server.log*")):
        for line in open(path, errors="replace"):
            m = KAFKA_LOG_LINE.match(line)
            if not m or ("Becoming" not in line and "Broker" not in line and prefix not in line):
                continue
            t = int(datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").timestamp() * 1000) + int(m.group(2))
            for rx, what in patterns:
                mm = rx.search(m.group(3))
                if mm:
                    # A record is keyed by its epoch or generation: a node that starts again
                    # replays old records, which must not count as new events.
                    key = (what(mm), mm.group(2))
                    found[key] = min(found.get(key, t), t)
    return sorted(({"t_ms": t, "what": k[0]} for k, t in found.items() if lo <= t <= hi), key=lambda e: e["t_ms"])


def count_log_lines(path):
    errors = warns = 0
    for line in open(path, errors="replace"):
        if '"level":"ERROR"' in line or " ERROR " in line:
            errors += 1
        elif '"level":"WARN"' in line or " WARN " in line:
            warns += 1
    return errors, warns


def cluster_section(report, work):
    meta = json.load(open(f"{work}/meta.json"))
    sink = json.load(open(f"{work}/sink.json"))
    endpoints = json.load(open(f"{work}/endpoints.json"))
    actions = [json.loads(line) for line in open(f"{work}/actions.jsonl")] if os.path.exists(f"{work}/actions.jsonl") else []
    lo, hi, t0 = meta["load_start_ms"], meta["load_end_ms"], meta["load_start_ms"]
    pauses = sink.get("gaps") or {}
    threshold = pauses.get("threshold_ms", 100)
    prefix = meta["prefix"]

    produced = report["events_accepted"]
    expected = report["deliveries_expected"]
    unique = report["deliveries_unique"]
    dead = sum(end_offsets(f"{work}/dlq-offsets.txt").values())
    lost = expected - unique - dead

    # The longest pause overall while the load was on, and the next ones with what preceded them.
    all_stream = pauses.get("all", {})
    overall = longest(all_stream, lo, hi, threshold)
    top = sorted(in_window(all_stream.get("kept", []), lo, hi), key=lambda g: -g["ms"])[:5]

    def before(ms):
        prior = [a for a in actions if lo < a["t_ms"] <= ms and not a["what"].startswith(("load", "assignment snapshot"))]
        return prior[-1]["what"] if prior else None

    top_pauses = [{**g, "from_s": round((g["from_ms"] - t0) / 1000, 2), "after": before(g["from_ms"])} for g in top]

    # Per endpoint, i.e. per deliveries partition.
    per_partition = []
    for e in endpoints:
        stream = pauses.get("paths", {}).get(e["path"], {})
        g = longest(stream, lo, hi, threshold)
        per_partition.append({"path": e["path"], "endpoint_id": e["id"], "partition": e["partition"], "longest_pause": g})

    # Were the endpoints' partitions the ones with records? (checks partition_of against the router)
    delivered_parts = sorted(p for p, off in end_offsets(f"{work}/deliveries-offsets.txt").items() if off > 0)
    mapping_ok = sorted(e["partition"] for e in endpoints) == delivered_parts if delivered_parts else None

    section = {
        "kafka_nodes": meta["kafka_nodes"],
        "replication_factor": meta["replication_factor"],
        "min_insync_replicas": meta["min_insync_replicas"],
        "roles": {"routers": meta["routers"], "senders": meta["senders"], "apis": meta["apis"], "replay": 1},
        "events_produced": produced,
        "pairs_expected": expected,
        "delivered_unique": unique,
        "dead_lettered": dead,
        "lost": lost,
        "duplicates": report["duplicates"],
        "pause_threshold_ms": threshold,
        "longest_pause": overall,
        "top_pauses": top_pauses,
        "per_partition": per_partition,
        "partition_mapping_verified": mapping_ok,
        "deliveries_partitions_with_records": delivered_parts,
        "actions": [{"t_s": round((a["t_ms"] - t0) / 1000, 2), "what": a["what"]} for a in actions],
    }

    # Rebalances: who owned each partition when, from the roles' own "partitions assigned" /
    # "partitions revoked" log lines (deltas under cooperative rebalancing, the whole set under
    # the eager protocol: both replay the same way). A partition was not reassigned when one
    # process owned it through the whole window (under the eager protocol it is still revoked
    # and handed back to the same owner, so it pauses all the same: that is what this measures).
    role = "router" if meta["scenario"] == "scale-routers" else "sender"
    topic = f"{prefix}.events" if role == "router" else f"{prefix}.deliveries"
    moves = [a for a in actions if lo < a["t_ms"] <= hi and re.match(rf"(start {role}\d|SIG\w+ to {role}\d|{role}\d+ exited)", a["what"])]
    if moves and meta["scenario"] != "steady":
        w_lo = moves[0]["t_ms"]
        w_hi = min(moves[-1]["t_ms"] + 10000, hi)
        owners = partition_owners(work, role, topic, w_lo, w_hi)
        by_process = assignments(work, role, topic)
        # A process stopped or killed in the window did not keep its partitions, whether or not
        # they had a new owner by the window's end; nor did one that gave a partition up and
        # saw no new owner take it before the window's end (a cooperative rebalance revokes in
        # one round and assigns in the next, which a dead member can hold up).
        stopped = {m.group(1) for a in moves for m in [re.match(rf"SIG\w+ to ({role}\d+)", a["what"])] if m}
        owned_at_end = {p for events in by_process.values() for p in owned_at(events, w_hi)}
        for p, who in owners.items():
            if who & stopped:
                who.add("(stopped)")
            elif p not in owned_at_end:
                who.add("(no owner at the window's end)")
        partitions = meta["deliveries_partitions"] if role == "sender" else None
        stable = sorted(p for p, who in owners.items() if len(who) == 1)
        moved = sorted(p for p, who in owners.items() if len(who) != 1)
        # How the topic's partitions were spread over the processes once each move settled
        # (just before the next move, or at the window's end): a balanced group gives each
        # process its share of the real work.
        settle = [m["t_ms"] - 1 for m in moves[1:]] + [w_hi]
        spread = []
        for t in settle:
            owned = {name: len(owned_at(events, t)) for name, events in sorted(by_process.items())}
            spread.append({"t_s": round((t - t0) / 1000, 2), "owned": {name: n for name, n in owned.items() if n}})
        rb = {
            "role": role,
            "window_s": [round((w_lo - t0) / 1000, 2), round((w_hi - t0) / 1000, 2)],
            "spread": spread,
            "owners_in_window": {str(p): sorted(who) for p, who in sorted(owners.items())},
            "not_reassigned_partitions": stable,
            "reassigned_partitions": moved,
        }
        if partitions:
            def worst(parts_):
                rows = [r for r in per_partition if r["partition"] in parts_]
                gs = [longest(pauses.get("paths", {}).get(r["path"], {}), w_lo, w_hi, threshold) for r in rows]
                return rows, max((g for g in gs if g), key=lambda g: g["ms"], default=None)

            rows_stable, worst_stable = worst(stable)
            rows_moved, worst_moved = worst(moved)
            rb.update({
                "endpoints_on_not_reassigned": [r["path"] for r in rows_stable],
                "endpoints_on_reassigned": [r["path"] for r in rows_moved],
                "longest_pause_not_reassigned": worst_stable,
                "longest_pause_reassigned": worst_moved,
            })
        section["rebalance"] = rb

    if meta.get("cluster_dir"):
        drained = [a["t_ms"] for a in actions if a["what"].startswith("drained")]
        ev = kafka_events(meta["cluster_dir"], prefix, lo - 5000, drained[-1] if drained else hi + 60000)
        section["kafka_events"] = [{"t_s": round((e["t_ms"] - t0) / 1000, 2), "what": e["what"]} for e in ev]

    logs = {}
    for path in sorted(glob.glob(f"{work}/*.log")):
        name = os.path.basename(path)[:-4]
        if name in ("topics", "generator"):
            continue
        e, w = count_log_lines(path)
        logs[name] = {"error_lines": e, "warn_lines": w}
    section["log_lines"] = logs

    ok = lost <= 0 and report["invalid_signatures"] == 0 and report["generator"]["failed"] == 0 and report["generator"]["exit_status"] == 0
    section["ok"] = ok

    lines = [
        f"  cluster: {meta['kafka_nodes']} KRaft nodes, RF {meta['replication_factor']}, min ISR {meta['min_insync_replicas']}; "
        f"{meta['routers']} routers, {meta['senders']} senders, {meta['apis']} APIs, 1 replay (separate processes)",
        f"  ledger: {produced} events produced -> {expected} (event, endpoint) pairs expected, {unique} delivered unique, "
        f"{dead} dead-lettered, lost {lost}, duplicates {report['duplicates']} ({100 * report['duplicates'] / max(expected, 1):.2f}% of pairs)",
        f"  longest delivery pause while the load was on: {fmt_pause(overall, threshold, t0)}",
    ]
    for g in top_pauses[1:4]:
        lines.append(f"    next: {fmt_pause(g, threshold, t0)}" + (f" (after: {g['after']})" if g["after"] else ""))
    if top_pauses and top_pauses[0]["after"]:
        lines[-len(top_pauses[1:4]) - 1] += f" (after: {top_pauses[0]['after']})"
    worst_part = max((r for r in per_partition if r["longest_pause"]), key=lambda r: r["longest_pause"]["ms"], default=None)
    lines.append("  per partition (endpoint): " + ", ".join(
        f"p{r['partition']} {fmt_pause(r['longest_pause'], threshold)}" for r in sorted(per_partition, key=lambda r: r["partition"])))
    if worst_part is None:
        lines.append(f"    no partition paused {threshold} ms or more")
    if "rebalance" in section:
        rb = section["rebalance"]
        line = (f"  {rb['role']} rebalances, +{rb['window_s'][0]} s .. +{rb['window_s'][1]} s: partitions kept by one owner "
                f"{rb['not_reassigned_partitions'] or 'none'}, reassigned {rb['reassigned_partitions'] or 'none'}")
        if "endpoints_on_not_reassigned" in rb:
            line += ("; longest pause of a partition not reassigned: "
                     + (fmt_pause(rb["longest_pause_not_reassigned"], threshold, t0) if rb["endpoints_on_not_reassigned"] else "n/a (no endpoint on one)")
                     + "; of a reassigned one: "
                     + (fmt_pause(rb["longest_pause_reassigned"], threshold, t0) if rb["endpoints_on_reassigned"] else "n/a"))
        lines.append(line)
        lines.append(f"  {topic.rsplit('.', 1)[-1]} partitions per {rb['role']}: " + "; ".join(
            f"+{sp['t_s']} s " + " ".join(f"{n} {c}" for n, c in sp["owned"].items()) for sp in rb["spread"]))
    if mapping_ok is False:
        lines.append(f"  WARNING: deliveries partitions with records {delivered_parts} differ from the endpoints' computed partitions")
    noisy = ", ".join(f"{n} {v['error_lines']}/{v['warn_lines']}" for n, v in logs.items() if v["error_lines"] or v["warn_lines"])
    lines.append(f"  log lines ERROR/WARN: {noisy or 'none'}")
    lines.append("  timeline: " + "; ".join(f"+{a['t_s']} s {a['what']}" for a in section["actions"] if a["t_s"] >= 0))
    if section.get("kafka_events"):
        lines.append("  kafka (broker logs): " + "; ".join(f"+{e['t_s']} s {e['what']}" for e in section["kafka_events"]))
    return section, lines, ok


def table(paths):
    print("| scenario | events | pairs | delivered unique | dead-lettered | lost | duplicates | longest pause | longest pause of one partition | not-reassigned partition pause |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for path in paths:
        r = json.load(open(path))
        c = r["cluster"]
        th = c["pause_threshold_ms"]
        rb = c.get("rebalance")
        nr = (fmt_pause(rb["longest_pause_not_reassigned"], th) if rb.get("endpoints_on_not_reassigned") else "none kept its owner") if rb and "endpoints_on_not_reassigned" in rb else "n/a"
        part = max((p["longest_pause"] for p in c["per_partition"] if p["longest_pause"]), key=lambda g: g["ms"], default=None)
        print(f"| {r['scenario'].removeprefix('cluster-')} | {c['events_produced']} | {c['pairs_expected']} | {c['delivered_unique']} | {c['dead_lettered']} "
              f"| {c['lost']} | {c['duplicates']} | {fmt_pause(c['longest_pause'], th)} | {fmt_pause(part, th)} | {nr} |")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--report")
    p.add_argument("--work")
    p.add_argument("--table", nargs="+")
    a = p.parse_args()
    if a.table:
        table(a.table)
        return 0
    report = json.load(open(a.report))
    section, lines, ok = cluster_section(report, a.work)
    report["cluster"] = section
    json.dump(report, open(a.report, "w"), indent=1)
    txt = a.report[:-5] + ".txt"
    base = open(txt).read().splitlines() if os.path.exists(txt) else []
    # Run again on the same report: its earlier cluster lines go.
    base = base[:next((i for i, line in enumerate(base) if line.startswith("  cluster: ")), len(base))]
    # report.py's "loss" counts dead letters as lost; the cluster line says it exactly.
    text = "\n".join(base + lines)
    open(txt, "w").write(text + "\n")
    print(text)
    print(f"report: {a.report}, {txt}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
