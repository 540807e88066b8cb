#!/usr/bin/env python3
"""CPU seconds and peak RSS of processes.

  measure.py OUT.json CMD ARGS...        run CMD, then write its rusage; exit with its status
  measure.py --procs OUT.json NAME=PID... read /proc for running processes
"""
import json
import os
import resource
import subprocess
import sys

TICK = os.sysconf("SC_CLK_TCK")


def times_of(stat_path):
    """(utime, stime) in seconds."""
    with open(stat_path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def threads(pid):
    """Per live thread: (switches, voluntary and not; the CPU seconds of a JVM's JIT compiler
    thread ("C1/C2 CompilerThread"), else None). One pass over /proc/PID/task."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        base = f"/proc/{pid}/task/{tid}"
        try:
            with open(f"{base}/status") as f:
                lines = f.readlines()
            switches = sum(int(l.split()[1]) for l in lines if l.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")))
            name = next((l.split(None, 1)[1] for l in lines if l.startswith("Name:")), "")
            yield switches, (sum(times_of(f"{base}/stat")) if "CompilerThre" in name else None)
        except OSError:
            continue  # the thread ended


def proc(pid):
    peak_kib = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                peak_kib = int(line.split()[1])
    user, system = times_of(f"/proc/{pid}/stat")
    seen = list(threads(pid))
    out = {"cpu_seconds": round(user + system, 2), "system_seconds": round(system, 2),
           "context_switches": sum(s for s, _ in seen), "peak_rss_mib": round(peak_kib / 1024, 1)}
    # A broker still compiling during a run is a broker still warming up.
    jit = [j for _, j in seen if j is not None]
    if jit:
        out["jit_cpu_seconds"] = round(sum(jit), 2)
    return out


def main():
    if sys.argv[1] == "--procs":
        out = {}
        for arg in sys.argv[3:]:
            name, pid = arg.split("=")
            try:
                out[name] = proc(int(pid))
            except (OSError, ValueError):
                out[name] = None
        json.dump(out, open(sys.argv[2], "w"))
        return 0
    status = subprocess.call(sys.argv[2:])
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    json.dump({"cpu_seconds": round(r.ru_utime + r.ru_stime, 2), "peak_rss_mib": round(r.ru_maxrss / 1024, 1)}, open(sys.argv[1], "w"))
    return status


sys.exit(main())
