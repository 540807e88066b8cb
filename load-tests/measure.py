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


def cpu_of(stat_path):
    return sum(times_of(stat_path))


def jit_seconds(pid):
    """CPU of a JVM's JIT compiler threads ("C1/C2 CompilerThread"), None for other processes:
    a broker still compiling during a run is a broker still warming up."""
    total, found = 0.0, False
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                if "CompilerThre" not in f.read():
                    continue
            total, found = total + cpu_of(f"/proc/{pid}/task/{tid}/stat"), True
        except OSError:
            continue
    return round(total, 2) if found else None


def proc(pid):
    peak_kib = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                peak_kib = int(line.split()[1])
    user, system = times_of(f"/proc/{pid}/stat")
    # Every live thread's switches, voluntary (it waited) and not (it was preempted).
    switches = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                switches += sum(int(l.split()[1]) for l in f if l.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")))
        except OSError:
            continue
    out = {"cpu_seconds": round(user + system, 2), "system_seconds": round(system, 2),
           "context_switches": switches, "peak_rss_mib": round(peak_kib / 1024, 1)}
    jit = jit_seconds(pid)
    if jit is not None:
        out["jit_cpu_seconds"] = jit
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
