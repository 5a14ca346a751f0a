#!/usr/bin/env python3
"""ab_report.py - statistics, report and verdict of the A/B harness (bench/ab).

bench/ab gathers raw figures per run (raw/<tag>.json: /proc samples, the
perf output file, the load generator's JSON); this file turns them into
per-request figures, spreads across repetitions, paired ratios against the
baseline, report.md, report.json, gnuplot PNGs and the one-line verdict.

  ab_report.py line RAW.json            one progress line for a run
  ab_report.py capacity RAW.json        throughput of a capacity probe
  ab_report.py report OUTDIR            everything; exit 3 on a correctness
                                        failure (digest mismatch, errors)

Python standard library only.
"""

import json
import math
import os
import re
import statistics
import subprocess
import sys

# Scenarios the verdict headline prefers, most telling first: many
# connections, one request each in flight, is where per-call batching
# should pay off if it pays off anywhere.
HEADLINE_ORDER = ["c256", "c256k8", "c1000", "c16", "md", "open80",
                  "open50", "c1"]

SCENARIO_LABEL = {
    "c1": "N=1",
    "c16": "N=16",
    "c256": "N=256",
    "c1000": "N=1000",
    "c256k8": "N=256 K=8",
    "open50": "open loop 50%",
    "open80": "open loop 80%",
    "md": "market-data fan-out",
    "digest": "deterministic digest run",
}

PERCENTILES = [("p50", 0.5), ("p90", 0.9), ("p99", 0.99),
               ("p99_9", 0.999), ("p99_99", 0.9999)]

# A condition "loses" when its median paired CPU/request ratio exceeds this.
LOSS_THRESHOLD = 1.02


def label(scenario):
    return SCENARIO_LABEL.get(scenario, scenario)


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def parse_perf(path):
    """Counts and elapsed seconds from `perf stat -o` human output."""
    counts, elapsed = {}, None
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    for line in text.splitlines():
        m = re.match(r"\s*([\d,.]+)\s+(\S+)", line)
        if m and not line.strip().startswith("#"):
            name = m.group(2)
            if name == "seconds":
                if "time elapsed" in line:
                    elapsed = float(m.group(1).replace(",", ""))
                continue
            try:
                counts[name] = int(m.group(1).replace(",", "")
                                   .split(".")[0])
            except ValueError:
                pass
    if elapsed is None or "raw_syscalls:sys_enter" not in counts:
        return None
    return {"elapsed_s": elapsed, "counts": counts}


def shim_state(stats):
    """"active", or the state and reason the stats tool gave."""
    state = stats.get("state")
    if state in ("active", 1):
        return "active"
    reason = stats.get("reason")
    return "%s%s" % (state, " (%s)" % reason if reason else "")


def derive(raw, raw_dir):
    """Per-request figures of one run, plus its failures."""
    run = {k: raw.get(k) for k in ("tag", "scenario", "condition", "rep",
                                   "kind", "rate", "args")}
    failures = []
    if raw.get("error"):
        failures.append(raw["error"])
        run["failures"] = failures
        return run
    lg = None
    if raw.get("loadgen_file"):
        lg = load_json(os.path.join(raw_dir, raw["loadgen_file"]))
    if raw.get("loadgen_status"):
        failures.append("load generator exit status %d"
                        % raw["loadgen_status"])
    if lg is None:
        failures.append("no load generator JSON")
        lg = {}
    if lg.get("errors"):
        failures.append("load generator counted %d errors" % lg["errors"])
    if raw.get("server_status"):
        failures.append("server exit status %d after SIGTERM"
                        % raw["server_status"])

    requests = lg.get("requests")
    throughput = lg.get("throughput")
    run.update(requests=requests, throughput=throughput,
               digest=lg.get("digest"), errors=lg.get("errors"),
               latency_us=lg.get("latency_us") or {},
               duration_s=lg.get("duration_s"))
    if lg.get("md_bytes") is not None and lg.get("duration_s"):
        run["md_mb_per_s"] = lg["md_bytes"] / lg["duration_s"] / 1e6

    # Requests in a window. A digest run is measured whole, so the load
    # generator's count is exact. Otherwise the bytes the server's sockets
    # received in the window (ss bytes_received) divided by the load
    # generator's bytes per request; the run's mean throughput times the
    # window only when that is missing (it hides stalls inside a run).
    bytes_out = lg.get("bytes_out")
    bytes_per_req = bytes_out / requests if bytes_out and requests else None
    rx = raw.get("rx_bytes") or [None] * 4

    def window_requests(first, last, seconds):
        if raw.get("kind") == "digest":
            return requests
        if bytes_per_req and rx[first] is not None and \
           rx[last] is not None and rx[last] > rx[first]:
            run["requests_source"] = "rx_bytes"
            return (rx[last] - rx[first]) / bytes_per_req
        run["requests_source"] = "mean_throughput"
        return throughput * seconds if throughput and seconds else None

    def per(count, reqs):
        return count / reqs if count is not None and reqs else None

    ticks = raw.get("cpu_ticks") or [None, None]
    window = raw.get("cpu_window_s")
    run["notes"] = []
    if raw.get("cpu_window_covered") is False:
        run["notes"].append("load ended inside the CPU window: CPU dropped")
        ticks = [None, None]
    # Clock ticks are 10 ms: a short digest run cannot give CPU figures.
    if raw.get("kind") == "digest" and None not in ticks and \
       ticks[1] - ticks[0] < 20:
        ticks = [None, None]
    if None not in ticks:
        cpu_us = (ticks[1] - ticks[0]) * 1e6 / raw["clk_tck"]
        reqs = window_requests(0, 1, window)
        run["window_requests"] = reqs
        run["cpu_us_per_req"] = per(cpu_us, reqs)
        ns = raw.get("run_ns") or [None, None]
        if None not in ns:
            run["cpu_us_per_req_schedstat"] = per((ns[1] - ns[0]) / 1e3,
                                                  reqs)
        if window:
            run["server_cpu_util"] = cpu_us / 1e6 / window
        sw = raw.get("ctx_switches") or [None, None]
        if None not in sw:
            run["ctxsw_per_req"] = per(sw[1] - sw[0], reqs)
    run["syscalls_per_req"] = None
    if raw.get("rate") and throughput and throughput < 0.95 * raw["rate"]:
        run["notes"].append("open loop reached %.0f of the %d requests/s "
                            "asked: overloaded, latency is queueing"
                            % (throughput, raw["rate"]))
    if raw.get("perf_window_covered") is False:
        run["notes"].append("load ended inside the perf window: "
                            "syscalls dropped")
    elif raw.get("perf_file"):
        perf = parse_perf(os.path.join(raw_dir, raw["perf_file"]))
        outer = raw.get("perf_outer_s")
        if perf:
            # rx bytes were sampled just outside perf's counting; scale
            # the requests to the part perf counted.
            reqs = window_requests(2, 3, perf["elapsed_s"])
            if run.get("requests_source") == "rx_bytes" and outer:
                reqs *= min(1.0, perf["elapsed_s"] / outer)
            run["syscalls_per_req"] = per(
                perf["counts"]["raw_syscalls:sys_enter"], reqs)
            run["perf_window_s"] = perf["elapsed_s"]
    if raw.get("shim_stats_file"):
        stats = load_json(os.path.join(raw_dir, raw["shim_stats_file"]))
        if isinstance(stats, dict):
            run["shim_state"] = shim_state(stats)
    if raw.get("server_summary"):
        run["server_summary"] = raw["server_summary"]
    run["failures"] = failures
    return run


def fmt(v, digits=3):
    if v is None:
        return "-"
    if isinstance(v, float) and math.isnan(v):
        return "-"
    if abs(v) >= 1000:
        return "%.0f" % v
    return ("%%.%dg" % digits) % v


def spread(values):
    """min, q1, median, q3, max of the values that are not None."""
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return None
    if len(vals) >= 2:
        q1, _, q3 = statistics.quantiles(vals, n=4, method="inclusive")
    else:
        q1 = q3 = vals[0]
    return {"n": len(vals), "min": vals[0], "q1": q1,
            "median": statistics.median(vals), "q3": q3, "max": vals[-1]}


def fmt_spread(s, digits=3):
    if not s:
        return "-"
    if s["n"] == 1:
        return fmt(s["median"], digits)
    return "%s (%s-%s)" % (fmt(s["median"], digits), fmt(s["min"], digits),
                           fmt(s["max"], digits))


METRICS = ["throughput", "cpu_us_per_req", "syscalls_per_req",
           "ctxsw_per_req", "md_mb_per_s", "server_cpu_util"]
LAT_KEYS = [k for k, _ in PERCENTILES] + ["max"]


def metric(run, key):
    if key in LAT_KEYS:
        return run.get("latency_us", {}).get(key)
    return run.get(key)


def load_runs(out):
    raw_dir = os.path.join(out, "raw")
    runs = []
    for name in sorted(os.listdir(raw_dir)):
        if not name.endswith(".json") or name.endswith(".loadgen.json"):
            continue
        raw = load_json(os.path.join(raw_dir, name))
        if raw is not None:
            runs.append(derive(raw, raw_dir))
    return runs


def check_digests(runs, conditions):
    """Every condition of a deterministic run must give the baseline's
    digest for the same repetition (the same seed)."""
    notes, failures = [], []
    groups = {}
    for r in runs:
        if r.get("kind") == "digest" and not r.get("failures"):
            groups.setdefault((r["scenario"], r["rep"]), []).append(r)
    for (scenario, rep), rs in sorted(groups.items()):
        ref = [r for r in rs if r["condition"] == "baseline"] or rs
        ref_digest = ref[0].get("digest")
        if ref_digest is None:
            failures.append("%s rep %d: the load generator printed no "
                            "digest" % (scenario, rep))
            continue
        same = []
        for r in rs:
            if r is ref[0]:
                continue
            if r.get("digest") == ref_digest:
                same.append(r["condition"])
            else:
                failures.append("DIGEST MISMATCH in %s rep %d: %s gave %s, "
                                "%s gave %s" % (scenario, rep,
                                                r["condition"],
                                                r.get("digest"),
                                                ref[0]["condition"],
                                                ref_digest))
        if same:
            notes.append("%s rep %d: %s identical to %s (digest %s)"
                         % (scenario, rep, ", ".join(same),
                            ref[0]["condition"], ref_digest))
    return notes, failures


def summarize(runs, conditions, scenarios):
    """Spreads per scenario and condition, and paired ratios to baseline."""
    table = {}
    for scenario in scenarios:
        table[scenario] = {}
        base = {r["rep"]: r for r in runs
                if r["scenario"] == scenario and
                r["condition"] == "baseline" and not r["failures"]}
        for cond in conditions:
            rs = [r for r in runs if r["scenario"] == scenario and
                  r["condition"] == cond and not r["failures"]]
            if not rs:
                continue
            entry = {"runs": len(rs), "values": {}, "ratios": {}}
            for key in METRICS + LAT_KEYS:
                entry["values"][key] = spread(metric(r, key) for r in rs)
            # Paired: a condition against the baseline of the same
            # repetition, run next to it, so machine drift cancels.
            if cond != "baseline":
                for key in METRICS + LAT_KEYS:
                    ratios = []
                    for r in rs:
                        b = base.get(r["rep"])
                        if b is None:
                            continue
                        x, y = metric(r, key), metric(b, key)
                        if x is not None and y:
                            ratios.append(x / y)
                    entry["ratios"][key] = spread(ratios)
            table[scenario][cond] = entry
    return table


def headline_scenario(table):
    for s in HEADLINE_ORDER:
        if table.get(s, {}).get("baseline"):
            return s
    for s, conds in table.items():
        if conds.get("baseline") and s != "digest":
            return s
    return None


def make_verdict(table, conditions, failures, skipped, runs):
    if failures:
        return ("verdict: CORRECTNESS FAILURE - %d check(s) failed (%s); "
                "the figures are not a valid comparison"
                % (len(failures), failures[0]))
    head = headline_scenario(table)
    if head is None:
        if table.get("digest", {}).get("baseline"):
            return ("verdict: same digest under %s; no performance "
                    "scenario ran" % ", ".join(c for c in conditions
                                               if c in table["digest"]))
        return "verdict: no successful baseline run - nothing to compare"
    entries = table[head]
    base = entries["baseline"]["values"]
    others = [c for c in conditions if c != "baseline" and c in entries]
    if not others:
        return ("verdict: only the baseline ran (%s): baseline CPU/request "
                "%s us, syscalls/request %s at %s; no comparison"
                % (skipped or "no other condition",
                   fmt(base["cpu_us_per_req"]["median"]
                       if base["cpu_us_per_req"] else None),
                   fmt(base["syscalls_per_req"]["median"]
                       if base["syscalls_per_req"] else None),
                   label(head)))
    parts = []
    for i, cond in enumerate(others):
        ratio = entries[cond]["ratios"].get("cpu_us_per_req")
        if i == 0:
            text = "%s CPU/request %s at %s" % (
                cond, ratio_text(ratio, " baseline"), label(head))
        else:
            text = "%s %s" % (cond, ratio_text(ratio))
        mine = entries[cond]["values"].get("syscalls_per_req")
        theirs = base.get("syscalls_per_req")
        if mine and theirs:
            text += ", syscalls/request %s vs %s" % (
                fmt(mine["median"]), fmt(theirs["median"]))
        elif i == 0:
            text += ", syscalls not measured"
        parts.append(text)
    losses = []
    for cond in others:
        lost, compared = [], 0
        for scenario, conds in table.items():
            r = conds.get(cond, {}).get("ratios", {}).get("cpu_us_per_req")
            if scenario == "digest" or not r:
                continue
            compared += 1
            if r["median"] > LOSS_THRESHOLD:
                lost.append((r["median"], label(scenario)))
        lost.sort()
        if len(lost) == 1:
            losses.append("%s at %s (%sx)" % (cond, lost[0][1],
                                              fmt(lost[0][0])))
        elif lost:
            losses.append("%s in %d/%d scenarios (%sx at %s to %sx at %s)"
                          % (cond, len(lost), compared, fmt(lost[0][0]),
                             lost[0][1], fmt(lost[-1][0]), lost[-1][1]))
    inactive = sorted({"%s: %s" % (r["condition"], r["shim_state"])
                       for r in runs if r.get("shim_state") not in
                       (None, "active")})
    if inactive:
        parts.append("WARNING shim not active in some runs (%s)"
                     % ", ".join(inactive))
    line = "verdict: " + "; ".join(parts)
    if losses:
        line += "; loses: " + ", ".join(losses)
    return line


def ratio_text(r, against=""):
    """"0.81x (0.78-0.84)": median and range of paired ratios, marked
    when the range spans 1 (no difference beyond the noise)."""
    if not r:
        return "-"
    if r["n"] == 1:
        return "%sx%s" % (fmt(r["median"]), against)
    noise = ", spans 1" if r["min"] <= 1 <= r["max"] else ""
    return "%sx%s (%s-%s%s)" % (fmt(r["median"]), against, fmt(r["min"]),
                                fmt(r["max"]), noise)


# ---- plots ----

def gnuplot(script, cwd):
    try:
        p = subprocess.run(["gnuplot"], input=script, text=True, cwd=cwd,
                           capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "gnuplot failed: %s" % e
    if p.returncode != 0:
        return "gnuplot failed: %s" % p.stderr.strip()[-300:]
    return None


def bar_plot(out, table, conditions, key, title, ylabel, name,
             source="values"):
    scenarios = [s for s in table if table[s] and s != "digest"]
    conds = [c for c in conditions
             if any(c in table[s] for s in scenarios)]
    if source == "ratios":
        conds = [c for c in conds if c != "baseline"]
    if not any(table[s].get(c, {}).get(source, {}).get(key)
               for s in scenarios for c in conds):
        stale = os.path.join(out, "plots", name + ".png")
        if os.path.exists(stale):
            os.remove(stale)
        return None
    data = os.path.join("plots", name + ".dat")
    with open(os.path.join(out, data), "w") as f:
        f.write("# scenario " + " ".join("%s_med %s_min %s_max" % (c, c, c)
                                         for c in conds) + "\n")
        for s in scenarios:
            cols = []
            for c in conds:
                v = table[s].get(c, {}).get(source, {}).get(key)
                cols += (["NaN"] * 3 if not v else
                         ["%g" % v["median"], "%g" % v["min"],
                          "%g" % v["max"]])
            f.write('"%s" %s\n' % (label(s), " ".join(cols)))
    plots = ", ".join(
        "'%s' using %d:%d:%d:xtic(1) title '%s'" % (data, 2 + 3 * i,
                                                    3 + 3 * i, 4 + 3 * i, c)
        for i, c in enumerate(conds))
    script = """set terminal pngcairo size 1000,500 noenhanced
set output 'plots/%s.png'
set title '%s (median, bars: min-max over repetitions)'
set ylabel '%s'
set style data histogram
set style histogram errorbars gap 2 lw 1
set style fill solid 0.6 border -1
set yrange [0:*]
%s
set key outside right top
set xtics rotate by -20
set grid ytics
plot %s
""" % (name, title, ylabel,
       "set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2"
       if source == "ratios" else "", plots)
    err = gnuplot(script, out)
    return err or "plots/%s.png" % name


def latency_plot(out, table, conditions, scenario):
    conds = [c for c in conditions if c in table.get(scenario, {})]
    lines = []
    for c in conds:
        vals = table[scenario][c]["values"]
        pts = [(1 / (1 - p), vals[k]["median"]) for k, p in PERCENTILES
               if vals.get(k)]
        if not pts:
            continue
        data = os.path.join("plots", "latency_%s_%s.dat" % (scenario, c))
        with open(os.path.join(out, data), "w") as f:
            f.write("# 1/(1-percentile) latency_us (median over reps)\n")
            for x, y in pts:
                f.write("%g %g\n" % (x, y))
        lines.append("'%s' using 1:2 with linespoints title '%s'"
                     % (data, c))
    if not lines:
        return None
    name = "latency_%s" % scenario
    script = """set terminal pngcairo size 900,500 noenhanced
set output 'plots/%s.png'
set title 'latency by percentile, %s (median over repetitions)'
set logscale x
set logscale y
set xlabel 'percentile'
set ylabel 'latency (us)'
set xtics ('50%%%%' 2, '90%%%%' 10, '99%%%%' 100, '99.9%%%%' 1000, \\
           '99.99%%%%' 10000)
set grid
set key left top
plot %s
""" % (name, label(scenario), ", ".join(lines))
    err = gnuplot(script, out)
    return err or "plots/%s.png" % name


def make_plots(out, table, conditions):
    os.makedirs(os.path.join(out, "plots"), exist_ok=True)
    results = [
        bar_plot(out, table, conditions, "throughput", "throughput",
                 "requests/s", "throughput"),
        bar_plot(out, table, conditions, "cpu_us_per_req",
                 "server CPU per request", "us/request", "cpu_per_request"),
        bar_plot(out, table, conditions, "cpu_us_per_req",
                 "server CPU per request against the baseline (paired)",
                 "ratio (below 1: cheaper)", "cpu_ratio", "ratios"),
        bar_plot(out, table, conditions, "syscalls_per_req",
                 "server syscalls per request", "syscalls/request",
                 "syscalls_per_request"),
    ]
    for s in table:
        if s != "digest":
            results.append(latency_plot(out, table, conditions, s))
    pngs = [r for r in results if r and r.endswith(".png")]
    errors = [r for r in results if r and not r.endswith(".png")]
    return pngs, errors


# ---- report ----

def write_markdown(out, meta, table, conditions, runs, probes,
                   digest_notes, failures, pngs, plot_errors, verdict):
    md = []
    w = md.append
    w("# A/B report: does io_uring make the epoll server cheaper?\n")
    w("Started %s on %s (kernel %s, %s CPUs) at commit %s (%s uncommitted "
      "paths in the tree); pinning %s. Conditions: %s. %s repetitions of "
      "%ss measured runs after %ss warm-up."
      % (meta.get("started"), meta.get("host"), meta.get("kernel"),
         meta.get("cpus"), meta.get("commit") or "?",
         meta.get("tree_changes", "?"), meta.get("pinning"),
         ", ".join(conditions), meta.get("reps"), meta.get("duration_s"),
         meta.get("warmup_s")))
    if meta.get("skipped"):
        w("\nSkipped conditions: %s." % meta["skipped"])
    w("\n%s.\n" % meta.get("perf_note", ""))
    w("## Verdict\n")
    w("    " + verdict + "\n")
    w("## Correctness\n")
    if failures:
        w("**FAILED** - these results are not a valid comparison:\n")
        for f in failures:
            w("- **%s**" % f)
        w("")
    else:
        w("No load generator errors, every server exited cleanly.")
    for n in digest_notes:
        w("- " + n)
    if not digest_notes and not any(f for f in failures if "digest" in f):
        w("- no deterministic digest run in this invocation")
    w("")
    states = {}
    for r in runs:
        if r.get("shim_state"):
            states.setdefault(r["condition"], set()).add(r["shim_state"])
    if states:
        w("Shim state seen by uringshim-stat during the measured windows: "
          + "; ".join("%s: %s" % (c, ", ".join(sorted(v)))
                      for c, v in sorted(states.items())) + ".\n")
    w("## Ratios against the baseline\n")
    w("Paired per repetition (each condition against the baseline run next "
      "to it), median (min-max). Below 1 means less than the baseline: "
      "better for CPU, syscalls and latency, worse for throughput.\n")
    w("| scenario | condition | CPU/request | syscalls/request | "
      "throughput | p50 | p99 |")
    w("|---|---|---|---|---|---|---|")
    for s, conds in table.items():
        for c in conditions:
            if c == "baseline" or c not in conds:
                continue
            r = conds[c]["ratios"]
            w("| %s | %s | %s | %s | %s | %s | %s |" % (
                label(s), c, ratio_text(r.get("cpu_us_per_req")),
                ratio_text(r.get("syscalls_per_req")),
                ratio_text(r.get("throughput")), ratio_text(r.get("p50")),
                ratio_text(r.get("p99"))))
    w("")
    w("## Figures per scenario\n")
    w("Median (min-max) over repetitions. CPU is the server's utime+stime "
      "over a window with no perf attached; syscalls come from perf over a "
      "separate window; both are divided by the requests that arrived in "
      "their window (bytes the server's sockets received, from ss, over "
      "the load generator's bytes per request). report.json also holds "
      "cpu_us_per_req_schedstat, the same CPU from per-thread schedstat "
      "nanoseconds, as a cross-check of the 10 ms clock ticks.\n")
    for s, conds in table.items():
        if not conds:
            continue
        w("### %s\n" % label(s))
        w("| condition | runs | throughput/s | server CPU us/req | "
          "syscalls/req | ctx switches/req | server CPU util | p50 us | "
          "p99 us | p99.9 us | max us | md MB/s |")
        w("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for c in conditions:
            if c not in conds:
                continue
            v = conds[c]["values"]
            w("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |"
              % (c, conds[c]["runs"], fmt_spread(v["throughput"]),
                 fmt_spread(v["cpu_us_per_req"]),
                 fmt_spread(v["syscalls_per_req"]),
                 fmt_spread(v["ctxsw_per_req"]),
                 fmt_spread(v["server_cpu_util"], 2),
                 fmt_spread(v["p50"]), fmt_spread(v["p99"]),
                 fmt_spread(v["p99_9"]), fmt_spread(v["max"]),
                 fmt_spread(v["md_mb_per_s"])))
        w("")
    w("## Plots\n")
    for p in pngs:
        w("- [%s](%s)" % (os.path.basename(p), p))
    for e in plot_errors:
        w("- plot error: %s" % e)
    w("")
    if probes:
        w("## Capacity probes\n")
        w("Open-loop rates are fractions of the baseline's throughput in a "
          "saturating open loop of the same shape, measured right before "
          "each repetition:\n")
        for r in probes:
            w("- %s: %s requests/s" % (r["tag"], fmt(r.get("throughput"))))
        w("")
    noted = [r for r in runs if r.get("notes")]
    if noted:
        w("## Notes on runs\n")
        for r in noted:
            w("- %s: %s" % (r["tag"], "; ".join(r["notes"])))
        w("")
    failed_runs = [r for r in runs if r["failures"]]
    if failed_runs:
        w("## Failed runs\n")
        for r in failed_runs:
            w("- %s: %s" % (r["tag"], "; ".join(r["failures"])))
        w("")
    w("Raw per-run figures: raw/*.json (harness samples) and "
      "raw/*.loadgen.json (load generator); logs in raw/logs/.")
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write("\n".join(md) + "\n")


def print_summary(table, conditions):
    for s, conds in table.items():
        if not conds:
            continue
        print("%s:" % label(s))
        for c in conditions:
            if c not in conds:
                continue
            v, r = conds[c]["values"], conds[c]["ratios"]
            line = "  %-10s thr %s/s  cpu %s us/req  sys %s/req  p99 %s us" % (
                c, fmt_spread(v["throughput"]),
                fmt_spread(v["cpu_us_per_req"]),
                fmt_spread(v["syscalls_per_req"]), fmt_spread(v["p99"]))
            if r.get("cpu_us_per_req"):
                line += "  cpu ratio %s" % ratio_text(r["cpu_us_per_req"])
            print(line)


def cmd_report(out):
    meta = load_json(os.path.join(out, "meta.json")) or {}
    conditions = meta.get("conditions", "baseline").split()
    runs = load_runs(out)
    probes = [r for r in runs if r.get("kind") == "capacity"]
    runs = [r for r in runs if r.get("kind") != "capacity"]
    scenarios = [s for s in meta.get("scenarios", "").split(",") if s]
    for r in runs:
        if r["scenario"] not in scenarios:
            scenarios.append(r["scenario"])
        if r["condition"] not in conditions:
            conditions.append(r["condition"])
    digest_notes, failures = check_digests(runs, conditions)
    for r in runs:
        for f in r["failures"]:
            failures.append("%s: %s" % (r["tag"], f))
    table = summarize(runs, conditions, scenarios)
    verdict = make_verdict(table, conditions, failures, meta.get("skipped"),
                           runs)
    pngs, plot_errors = make_plots(out, table, conditions)
    write_markdown(out, meta, table, conditions, runs, probes,
                   digest_notes, failures, pngs, plot_errors, verdict)
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump({"meta": meta, "verdict": verdict,
                   "correct": not failures, "failures": failures,
                   "digests": digest_notes, "summary": table,
                   "plots": pngs, "runs": runs,
                   "capacity_probes": probes}, f, indent=1)
    print_summary(table, conditions)
    for e in plot_errors:
        print("ab: " + e, file=sys.stderr)
    for f in failures:
        print("ab: FAILURE: " + f)
    if failures:
        print("ab: " + "!" * 60)
        print("ab: CORRECTNESS FAILURE: %d check(s) failed, see %s"
              % (len(failures), os.path.join(out, "report.md")))
        print("ab: " + "!" * 60)
    print("ab: report in %s" % os.path.join(out, "report.md"))
    print(verdict)
    return 3 if failures else 0


def cmd_line(path):
    raw = load_json(path) or {}
    run = derive(raw, os.path.dirname(path))
    if run["failures"]:
        print("  %s: FAILED (%s)" % (run.get("tag"),
                                     "; ".join(run["failures"])))
        return 0
    text = "  %-22s thr %s/s  cpu %s us/req  sys %s/req  p99 %s us" % (
        run["tag"], fmt(run.get("throughput")),
        fmt(run.get("cpu_us_per_req")), fmt(run.get("syscalls_per_req")),
        fmt(run.get("latency_us", {}).get("p99")))
    if run.get("digest"):
        text += "  digest %s" % run["digest"]
    print(text)
    return 0


def cmd_capacity(path):
    """The throughput of one capacity probe run, or nothing."""
    run = derive(load_json(path) or {}, os.path.dirname(path))
    if not run["failures"] and run.get("throughput"):
        print("%d" % run["throughput"])
    return 0


def main(argv):
    if len(argv) == 3 and argv[1] == "line":
        return cmd_line(argv[2])
    if len(argv) == 3 and argv[1] == "capacity":
        return cmd_capacity(argv[2])
    if len(argv) == 3 and argv[1] == "report":
        return cmd_report(argv[2])
    print(__doc__, file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
