#!/usr/bin/env python3
"""ab_real_report.py DIR - real.md and real.json from DIR/raw/*.json.

Per server: the median and range of each figure per mode, and the paired
shim/baseline ratios (same repetition) with their median and min-max.
"""
import glob
import json
import os
import statistics
import sys

FIGS = [("cpu_us_per_req", "server CPU us/request", "%.2f"),
        ("syscalls_per_req", "server syscalls/request", "%.3f"),
        ("throughput", "throughput req/s", "%.0f")]


def spread(vals, fmt):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "n/a"
    return (fmt + " (" + fmt + "-" + fmt + ")") % (
        statistics.median(vals), min(vals), max(vals))


def main():
    out = sys.argv[1]
    runs = [json.load(open(f))
            for f in sorted(glob.glob(os.path.join(out, "raw", "*.json")))]
    servers = sorted({r["server"] for r in runs})
    report = {}
    lines = ["# Real servers: baseline vs shim", "",
             "Interleaved ABAB; server on CPU 0, load on CPU 1. "
             "Median (min-max) over repetitions; ratios are shim/baseline "
             "paired by repetition.", ""]
    for srv in servers:
        by = {(r["mode"], r["rep"]): r for r in runs if r["server"] == srv}
        reps = sorted({rep for _, rep in by})
        report[srv] = {}
        lines += ["## %s" % srv, "",
                  "| figure | baseline | shim | ratio shim/baseline |",
                  "|---|---|---|---|"]
        for key, label, fmt in FIGS:
            base = [by[("baseline", r)].get(key) for r in reps
                    if ("baseline", r) in by]
            shim = [by[("shim", r)].get(key) for r in reps
                    if ("shim", r) in by]
            ratios = []
            for r in reps:
                b = by.get(("baseline", r), {}).get(key)
                s = by.get(("shim", r), {}).get(key)
                if b and s is not None:
                    ratios.append(s / b)
            report[srv][key] = {"baseline": base, "shim": shim,
                                "ratios": ratios}
            lines.append("| %s | %s | %s | %s |" % (
                label, spread(base, fmt), spread(shim, fmt),
                spread(ratios, "%.2fx")))
        lines.append("")
    with open(os.path.join(out, "real.json"), "w") as f:
        json.dump(report, f, indent=1)
    with open(os.path.join(out, "real.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    print("ab_real: report in %s/real.md" % out)


main()
