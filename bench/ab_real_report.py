#!/usr/bin/env python3
"""ab_real_report.py DIR - real.md and real.json from DIR/raw/*.json.

Per server: the median and range of each figure per mode, and the paired
shim/baseline ratios (same repetition) with their median and min-max.
The host profile (DIR/host_profile.json, build/hostprof) goes first, as
in bench/ab's report.
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


def profile_lines(profile):
    """The host profile's headline figures, as in bench/ab's report."""
    if not profile:
        return ["No host profile (build/hostprof missing or failed).", ""]
    vul = "; ".join("%s: %s" % (k, v) for k, v in
                    sorted((profile.get("vulnerabilities") or {}).items())
                    if v and v != "Not affected") or "none reported"

    def num(x):
        return "%.0f" % x if abs(x) >= 1000 else "%.3g" % x

    def med(key, unit):
        v = profile.get(key)
        if not isinstance(v, dict):
            return "-"
        return "%s %s (q1-q3 %s-%s)" % (num(v["median"]), unit,
                                        num(v["q1"]), num(v["q3"]))
    lines = ["## Host profile", "",
             "%s, %s; mitigations: %s; io_uring_disabled sysctl %s, "
             "Seccomp %s." % (profile.get("cpu_model"),
                              profile.get("kernel"), vul,
                              profile.get("io_uring_disabled_sysctl"),
                              profile.get("seccomp")), "",
             "| unit cost | median (spread) |", "|---|---|"]
    for key, text, unit in (
            ("null_syscall_ns", "null syscall", "ns"),
            ("uring_enter_1op_ns", "io_uring_enter, one NOP", "ns"),
            ("uring_op_ns", "each further op in one enter", "ns"),
            ("ctx_switch_ns", "context switch", "ns"),
            ("wakeup_us", "wake-up through a socket (epoll_wait)", "us"),
            ("loopback_oneway_us", "loopback one-way", "us")):
        lines.append("| %s | %s |" % (text, med(key, unit)))
    return lines + [""]


def main():
    out = sys.argv[1]
    profile = None
    try:
        with open(os.path.join(out, "host_profile.json")) as f:
            profile = json.load(f)
    except (OSError, ValueError):
        pass
    runs = [json.load(open(f))
            for f in sorted(glob.glob(os.path.join(out, "raw", "*.json")))]
    servers = sorted({r["server"] for r in runs})
    report = {"host_profile": profile}
    lines = ["# Real servers: baseline vs shim", "",
             "Interleaved ABAB; server on CPU 0, load on CPU 1. "
             "Median (min-max) over repetitions; ratios are shim/baseline "
             "paired by repetition.", ""] + profile_lines(profile)
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
