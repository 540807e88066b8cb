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


def proc(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICK  # utime + stime
    peak_kib = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                peak_kib = int(line.split()[1])
    return {"cpu_seconds": round(cpu, 2), "peak_rss_mib": round(peak_kib / 1024, 1)}


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
