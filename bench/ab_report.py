#!/usr/bin/env python3
"""ab_report.py - figures, report and verdict of the A/B harness (bench/ab).

bench/ab gathers raw figures per run (raw/<tag>.json: /proc, ss and perf
samples, the shim's stats, the load generator's JSON) and the host's unit
costs (host_profile.json, from build/hostprof); this file turns them into
per-request figures, paired ratios against the baseline with bootstrap
intervals, the A/A band (ab_stats.py), the cost model's predictions
(ab_model.py), report.md (its first paragraph the answer), report.json,
gnuplot PNGs (ab_plots.py) and the one-line verdict.

  ab_report.py record FILE KEY=VALUE...  write a JSON object (bench/ab's
                                         raw files): KEY=text, KEY:n=number,
                                         KEY:l=n,n,..., KEY:b=true|false,
                                         KEY:p=path (null unless the file,
                                         relative to FILE, has content);
                                         a raw run also gets a progress line
  ab_report.py capacity RAW.json         throughput of a capacity probe
  ab_report.py undecided OUTDIR SCENARIO exit 0 (and say why) when a CPU
                                         ratio of SCENARIO cannot yet be told
                                         from the A/A band
  ab_report.py report OUTDIR             everything; exit 3 on a correctness
                                         failure (digest mismatch, errors)

Python standard library only.
"""

import json
import math
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ab_model  # noqa: E402
import ab_plots  # noqa: E402
from ab_stats import (aa_band, judge, ratio_summary,  # noqa: E402
                      spread)

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

# "Deep" improvement: at least this much less CPU per request, or this
# much less latency, beyond the A/A band.
DEEP_RATIO = 0.8

# The null syscall cost of the other host of issue 13 (an AMD EPYC with
# more mitigations), where the answer is shown too.
OTHER_HOST_NULL_NS = 250

# perf event -> per-request key
PERF_KEYS = {
    "raw_syscalls:sys_enter": "syscalls_per_req",
    "syscalls:sys_enter_io_uring_enter": "enters_per_req",
    "io_uring:io_uring_submit_req": "sqes_per_req",
    "io_uring:io_uring_complete": "cqes_per_req",
    "sched:sched_waking": "wakes_per_req",
    "ipi:ipi_send_cpu": "ipis_per_req",
    "context-switches": "perf_ctxsw_per_req",
}

METRICS = ["throughput", "cpu_us_per_req", "cpu_us_per_req_ticks",
           "user_us_per_req", "syscalls_per_req", "enters_per_req",
           "sqes_per_req", "cqes_per_req", "wakes_per_req", "ipis_per_req",
           "ctxsw_per_req", "vol_ctxsw_per_req", "invol_ctxsw_per_req",
           "segs_out_per_req", "data_segs_out_per_req",
           "acks_out_per_req", "segs_in_per_req", "snmp_out_per_req",
           "snmp_in_per_req", "shim_enters_per_req", "shim_sqes_per_req",
           "md_mb_per_s", "server_cpu_util", "client_cpu_util",
           "other_cpu_util", "steal_util"]
LAT_KEYS = [k for k, _ in PERCENTILES] + ["max"]
COUNT_KEYS = ["syscalls_per_req", "enters_per_req", "sqes_per_req",
              "cqes_per_req", "vol_ctxsw_per_req", "invol_ctxsw_per_req",
              "wakes_per_req", "ipis_per_req", "data_segs_out_per_req",
              "acks_out_per_req", "segs_in_per_req"]
RATIO_KEYS = ["cpu_us_per_req", "syscalls_per_req", "throughput",
              "segs_out_per_req", "p50", "p99", "p99_9"]


def label(scenario):
    base, _, net = scenario.partition(".")
    m = re.match(r"^lat(\d+)(?:@(\d+)(k?))?$", base)
    if m:
        rate = int(m.group(2) or 10) * (1000 if m.group(3) or
                                        not m.group(2) else 1)
        text = "%s conn%s at %s/s" % (
            m.group(1), "" if m.group(1) == "1" else "s",
            "%gk" % (rate / 1000) if rate % 1000 == 0 else rate)
    else:
        text = SCENARIO_LABEL.get(base, base)
    return "%s (%s)" % (text, net) if net else text


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


def delta(raw, key):
    v = raw.get(key) or [None, None]
    if len(v) < 2 or v[0] is None or v[1] is None:
        return None
    return v[1] - v[0]


def derive(raw, raw_dir):
    """Per-request figures of one run, plus its failures."""
    run = {k: raw.get(k) for k in ("tag", "scenario", "condition", "rep",
                                   "kind", "rate", "args", "net", "wait")}
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

    window = raw.get("cpu_window_s")
    run["notes"] = []
    covered = raw.get("cpu_window_covered") is not False
    if not covered:
        run["notes"].append("load ended inside the CPU window: CPU dropped")
    d_ns, d_ut, d_st = (delta(raw, "run_ns"), delta(raw, "utime"),
                        delta(raw, "stime"))
    if covered and (d_ns is not None or d_ut is not None):
        reqs = window_requests(0, 1, window)
        run["window_requests"] = reqs
        clk = raw.get("clk_tck") or 100
        ticks_us = None
        if d_ut is not None and d_st is not None:
            ticks_us = (d_ut + d_st) * 1e6 / clk
            run["cpu_us_per_req_ticks"] = per(ticks_us, reqs)
        # schedstat nanoseconds; clock ticks (10 ms) only without them.
        cpu_us = d_ns / 1e3 if d_ns is not None else ticks_us
        run["cpu_us_per_req"] = per(cpu_us, reqs)
        if ticks_us and cpu_us is not None:
            run["user_us_per_req"] = per(cpu_us * d_ut * 1e6 / clk /
                                         ticks_us, reqs)
        if window and cpu_us is not None:
            run["server_cpu_util"] = cpu_us / 1e6 / window
        # What else kept the server's CPU busy, and what the hypervisor
        # took from it (steal), over the same window.
        c0, c1 = raw.get("server_cpu_stat0"), raw.get("server_cpu_stat1")
        if window and c0 and c1 and len(c0) == len(c1) == 8 and \
           None not in c0 + c1 and cpu_us is not None:
            d = [b - a for a, b in zip(c0, c1)]
            busy_s = (d[0] + d[1] + d[2] + d[5] + d[6]) / clk
            run["other_cpu_util"] = max(0.0, busy_s - cpu_us / 1e6) / window
            run["steal_util"] = d[7] / clk / window
        d_client = delta(raw, "client_run_ns")
        if window and d_client is not None:
            run["client_cpu_util"] = d_client / 1e9 / window
        vol, inv = delta(raw, "vol_ctxsw"), delta(raw, "invol_ctxsw")
        run["vol_ctxsw_per_req"] = per(vol, reqs)
        run["invol_ctxsw_per_req"] = per(inv, reqs)
        if vol is not None and inv is not None:
            run["ctxsw_per_req"] = per(vol + inv, reqs)
        d_segs, d_data = delta(raw, "segs_out"), delta(raw, "data_segs_out")
        if d_segs is not None and d_data is not None:
            run["data_segs_out_per_req"] = per(d_data, reqs)
            run["acks_out_per_req"] = per(d_segs - d_data, reqs)
        for key, name in (("segs_out", "segs_out_per_req"),
                          ("segs_in", "segs_in_per_req"),
                          ("snmp_out_segs", "snmp_out_per_req"),
                          ("snmp_in_segs", "snmp_in_per_req"),
                          ("snmp_retrans_segs", "retrans_per_req")):
            run[name] = per(delta(raw, key), reqs)
        stats0 = stats1 = None
        if raw.get("shim_stats_file"):
            stats0 = load_json(os.path.join(raw_dir,
                                            raw["shim_stats_file"]))
        if raw.get("shim_stats_end_file"):
            stats1 = load_json(os.path.join(raw_dir,
                                            raw["shim_stats_end_file"]))
        if isinstance(stats0, dict) and isinstance(stats1, dict):
            for key in ("enters", "sqes"):
                if key in stats0 and key in stats1:
                    run["shim_%s_per_req" % key] = per(
                        stats1[key] - stats0[key], reqs)
        for stats in (stats1, stats0):
            if isinstance(stats, dict):
                run["shim_state"] = shim_state(stats)
                break
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
            for event, key in PERF_KEYS.items():
                if event in perf["counts"]:
                    run[key] = per(perf["counts"][event], reqs)
            run["perf_window_s"] = perf["elapsed_s"]
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


def fmt_spread(s, digits=3):
    if not s:
        return "-"
    if s["n"] == 1:
        return fmt(s["median"], digits)
    return "%s (%s-%s)" % (fmt(s["median"], digits), fmt(s["min"], digits),
                           fmt(s["max"], digits))


def fmt_pct(v):
    return "-" if v is None else "%.0f%%" % (100 * v)


def metric(run, key):
    if key in LAT_KEYS:
        return run.get("latency_us", {}).get(key)
    return run.get(key)


def median_of(entry, key):
    v = entry["values"].get(key) if entry else None
    return v["median"] if v else None


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


def check_digests(runs):
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


# ---- statistics and the model ----

def paired_ratios(runs, scenario, cond, key):
    base = {r["rep"]: r for r in runs
            if r["scenario"] == scenario and r["condition"] == "baseline"
            and not r["failures"]}
    out = []
    for r in runs:
        if r["scenario"] != scenario or r["condition"] != cond or \
           r["failures"]:
            continue
        b = base.get(r["rep"])
        if b is None:
            continue
        x, y = metric(r, key), metric(b, key)
        if x is not None and y:
            out.append(x / y)
    return out


def model_input(entry, wait):
    """The cost model's view of a condition: median figures."""
    def m(key, fallback=None):
        v = median_of(entry, key)
        return v if v is not None or fallback is None else \
            median_of(entry, fallback)
    return {"cpu_us": m("cpu_us_per_req"),
            "throughput": m("throughput"),
            "wait": wait,
            "counts": ab_model.counts(
                syscalls=m("syscalls_per_req"),
                enters=m("enters_per_req", "shim_enters_per_req"),
                sqes=m("sqes_per_req", "shim_sqes_per_req"),
                sleeps=m("vol_ctxsw_per_req"),
                preemptions=m("invol_ctxsw_per_req"),
                data_segs=m("data_segs_out_per_req"),
                acks=m("acks_out_per_req"),
                ipis=m("ipis_per_req"))}


def summarize(runs, conditions, scenarios, units):
    """Spreads per scenario and condition, paired ratios to the baseline
    with their intervals, the A/A band per scenario and the model's
    prediction beside every CPU ratio. Returns (table, bands)."""
    table, bands = {}, {}
    waits = {}
    for r in runs:
        waits.setdefault(r["condition"], r.get("wait"))
    for scenario in scenarios:
        table[scenario] = {}
        for cond in conditions:
            rs = [r for r in runs if r["scenario"] == scenario and
                  r["condition"] == cond and not r["failures"]]
            if not rs:
                continue
            entry = {"runs": len(rs), "values": {}, "ratios": {},
                     "judgement": {}}
            for key in METRICS + LAT_KEYS:
                entry["values"][key] = spread(metric(r, key) for r in rs)
            # Paired: a condition against the baseline of the same
            # repetition, run next to it, so machine drift cancels.
            if cond != "baseline":
                for key in RATIO_KEYS:
                    entry["ratios"][key] = ratio_summary(
                        paired_ratios(runs, scenario, cond, key))
            table[scenario][cond] = entry
        aa = table[scenario].get("aa")
        bands[scenario] = {key: aa_band(paired_ratios(runs, scenario, "aa",
                                                      key))
                           for key in RATIO_KEYS} if aa else {}
        base = table[scenario].get("baseline")
        for cond, entry in table[scenario].items():
            # A digest run's length is set by its order count, not its
            # load: its CPU figures are not judged or modelled.
            if cond == "baseline" or scenario == "digest":
                continue
            for key in RATIO_KEYS:
                if cond != "aa":
                    entry["judgement"][key] = judge(
                        entry["ratios"].get(key), bands[scenario].get(key))
            r = entry["ratios"].get("cpu_us_per_req")
            entry["cpu_ratio"] = r["median"] if r else None
            entry["predicted_cpu_ratio"] = None
            if base is None or units is None or \
               table[scenario][cond]["values"]["cpu_us_per_req"] is None:
                continue
            b = model_input(base, waits.get("baseline"))
            c = model_input(entry, waits.get(cond))
            if entry["cpu_ratio"] is not None:
                # The remainder against the paired median ratio.
                c["cpu_us"] = entry["cpu_ratio"] * b["cpu_us"] \
                    if b["cpu_us"] else None
            p = ab_model.predict(b, c, units)
            if p:
                entry["predicted_cpu_ratio"] = p["ratio"]
                entry["model"] = p
    return table, bands


def undecided_ratios(table, bands, scenario):
    """[(condition, summary, band)] whose CPU ratio is undecided."""
    out = []
    for cond, entry in table.get(scenario, {}).items():
        if cond in ("baseline", "aa"):
            continue
        if entry["judgement"].get("cpu_us_per_req") == "undecided":
            out.append((cond, entry["ratios"]["cpu_us_per_req"],
                        bands.get(scenario, {}).get("cpu_us_per_req")))
    return out


def headline_scenario(table):
    for s in HEADLINE_ORDER:
        if table.get(s, {}).get("baseline"):
            return s
    for s, conds in table.items():
        if conds.get("baseline") and s != "digest":
            return s
    return None


JUDGEMENT_WORD = {"lower": "real", "higher": "real", "same": "within noise",
                  "undecided": "undecided", None: "no A/A"}


def ratio_text(r, against="", band=None, verdict=None):
    """"0.81x (0.78-0.84)": median and bootstrap interval of the paired
    ratios (the range when there is no interval), with the judgement
    against the A/A band when given."""
    if not r:
        return "-"
    if r["n"] == 1:
        return "%sx%s" % (fmt(r["median"]), against)
    lo, hi = r.get("ci") or (r["min"], r["max"])
    text = "%sx%s (%s-%s" % (fmt(r["median"]), against, fmt(lo), fmt(hi))
    if verdict is not None or band is not None:
        text += ", %s" % JUDGEMENT_WORD.get(verdict, verdict)
    return text + ")"


def band_text(band):
    if not band:
        return "-"
    return "%s-%s" % (fmt(band["lo"]), fmt(band["hi"]))


def make_verdict(table, bands, conditions, failures, skipped, runs):
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
    others = [c for c in conditions
              if c not in ("baseline", "aa") and c in entries]
    if not others:
        return ("verdict: only the baseline ran (%s): baseline CPU/request "
                "%s us, syscalls/request %s at %s; no comparison"
                % (skipped or "no other condition",
                   fmt(base["cpu_us_per_req"]["median"]
                       if base["cpu_us_per_req"] else None),
                   fmt(base["syscalls_per_req"]["median"]
                       if base["syscalls_per_req"] else None),
                   label(head)))
    band = bands.get(head, {}).get("cpu_us_per_req")
    parts = []
    for i, cond in enumerate(others):
        e = entries[cond]
        ratio = e["ratios"].get("cpu_us_per_req")
        verdict = e["judgement"].get("cpu_us_per_req")
        if i == 0:
            text = "%s CPU/request %s at %s" % (
                cond, ratio_text(ratio, " baseline", band, verdict),
                label(head))
        else:
            text = "%s %s" % (cond, ratio_text(ratio, "", band, verdict))
        if e.get("predicted_cpu_ratio") is not None:
            text += ", model %sx" % fmt(e["predicted_cpu_ratio"])
        mine = e["values"].get("syscalls_per_req")
        theirs = base.get("syscalls_per_req")
        if mine and theirs:
            text += ", syscalls/request %s vs %s" % (
                fmt(mine["median"]), fmt(theirs["median"]))
        elif i == 0:
            text += ", syscalls not measured"
        parts.append(text)
    if band:
        parts.append("A/A band %s" % band_text(band))
    losses = []
    for cond in others:
        lost, compared = [], 0
        for scenario, conds in table.items():
            e = conds.get(cond)
            if scenario == "digest" or not e or \
               not e["ratios"].get("cpu_us_per_req"):
                continue
            compared += 1
            if e["judgement"].get("cpu_us_per_req") == "higher":
                lost.append((e["ratios"]["cpu_us_per_req"]["median"],
                             label(scenario)))
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


def top_terms(model, n=3):
    terms = sorted(model["terms"].items(), key=lambda kv: -abs(kv[1]))
    labels = {t[0]: t[3] for t in ab_model.TERMS}
    labels["spinning"] = "spinning (a busy core)"
    return ", ".join("%s %+.2f us" % (labels.get(k, k), v)
                     for k, v in terms[:n] if abs(v) >= 0.005)


def latency_scenario(table):
    lats = [s for s in table if s.startswith("lat1") and "." not in s]
    if "lat1" in lats:
        return "lat1"
    return lats[0] if lats else None


def make_answer(table, bands, profile, units, failures):
    """The first paragraph of report.md: the answer in numbers."""
    if failures:
        return ("**No answer: the run failed its correctness checks** "
                "(see Correctness); its figures are not a valid "
                "comparison.")
    head = headline_scenario(table)
    if head is None or not any(c in table[head]
                               for c in ("shim", "native")):
        return ("No answer: the run had no shim or native condition in a "
                "performance scenario.")
    cpu_model = (profile or {}).get("cpu_model") or "unknown CPU"
    null_ns = units.get("null_syscall") if units else None
    host = "%s, %s, null syscall %s ns" % (
        cpu_model, (profile or {}).get("kernel", "?"), fmt(null_ns))
    e = table[head]
    band = bands.get(head, {}).get("cpu_us_per_req")
    cond = "shim" if "shim" in e else "native"
    r = e[cond]["ratios"].get("cpu_us_per_req")
    verdict = e[cond]["judgement"].get("cpu_us_per_req")
    deep = False
    for c in ("shim", "native"):
        x = e.get(c, {}).get("ratios", {}).get("cpu_us_per_req")
        if x and x["median"] <= DEEP_RATIO and \
           e[c]["judgement"].get("cpu_us_per_req") == "lower":
            deep = True
    lat = latency_scenario(table)
    lat_text = ""
    if lat and "shim" in table[lat]:
        le = table[lat]
        p50 = le["shim"]["ratios"].get("p50")
        p99 = le["shim"]["ratios"].get("p99")
        b50 = median_of(le["baseline"], "p50")
        s50 = median_of(le["shim"], "p50")
        if p50 and p50["median"] <= DEEP_RATIO and \
           le["shim"]["judgement"].get("p50") == "lower":
            deep = True
        lat_text = (" Latency at %s: shim p50 %s us against %s us (%s), "
                    "p99 %s" % (label(lat), fmt(s50), fmt(b50),
                                ratio_text(p50, "", bands[lat].get("p50"),
                                           le["shim"]["judgement"]
                                           .get("p50")),
                                ratio_text(p99, "", bands[lat].get("p99"),
                                           le["shim"]["judgement"]
                                           .get("p99"))))
        for c in ("shim+spin", "epoll-spin", "native"):
            x = le.get(c, {}).get("ratios", {}).get("p50")
            if x:
                lat_text += "; %s p50 %sx" % (c, fmt(x["median"]))
        lat_text += "."
    words = {"lower": "cheaper", "higher": "dearer",
             "same": "no different beyond the noise",
             "undecided": "not decided by this run"}
    text = ["**Is io_uring a deep improvement for this server on this host "
            "(%s)? %s.**" % (host, "Yes" if deep else "No")]
    text.append(" At %s the shim costs %s the baseline's server CPU per "
                "request, %s (A/A band %s)"
                % (label(head), ratio_text(r, "", band, verdict),
                   words.get(verdict, "unjudged"), band_text(band))
                if cond == "shim" else "")
    if "native" in e and cond == "shim":
        n = e["native"]["ratios"].get("cpu_us_per_req")
        text.append("; native io_uring %s" % ratio_text(
            n, "", band, e["native"]["judgement"].get("cpu_us_per_req")))
    text.append(". \"Deep\" here means at least %d%% less CPU per request "
                "or latency, beyond the A/A band." % round(
                    100 * (1 - DEEP_RATIO)))
    text.append(lat_text)
    model = e[cond].get("model")
    base_cpu = median_of(e["baseline"], "cpu_us_per_req")
    if model:
        text.append(" Where it comes from (cost model, against the "
                    "baseline's %s us/request): %s; predicted %sx, "
                    "unexplained %+.2f."
                    % (fmt(base_cpu), top_terms(model) or "no term moves",
                       fmt(model["ratio"]), model["remainder"] or 0.0))
        b = model_input(e["baseline"], "epoll")
        c = model_input(e[cond], "uring")
        c["cpu_us"] = None
        pts = ab_model.syscall_curve(b, c, units, [OTHER_HOST_NULL_NS])
        even = ab_model.break_even_null_ns(b, c, units)
        if pts:
            text.append(" On a host whose null syscall costs %d ns the "
                        "model predicts %sx%s (plots/model_syscall_cost.png)."
                        % (OTHER_HOST_NULL_NS, fmt(pts[0][1]),
                           "; the shim breaks even where it costs %s ns"
                           % fmt(even) if even else ""))
    return "".join(text)


# ---- plots ----

def make_plots(out, table, conditions, units):
    os.makedirs(os.path.join(out, "plots"), exist_ok=True)
    results = [
        ab_plots.bar_plot(out, table, conditions, "throughput",
                          "throughput", "requests/s", "throughput", label),
        ab_plots.bar_plot(out, table, conditions, "cpu_us_per_req",
                          "server CPU per request", "us/request",
                          "cpu_per_request", label),
        ab_plots.bar_plot(out, table, conditions, "cpu_us_per_req",
                          "server CPU per request against the baseline "
                          "(paired)", "ratio (below 1: cheaper)",
                          "cpu_ratio", label, "ratios"),
        ab_plots.bar_plot(out, table, conditions, "syscalls_per_req",
                          "server syscalls per request", "syscalls/request",
                          "syscalls_per_request", label),
    ]
    for s in table:
        if s != "digest":
            results.append(ab_plots.latency_plot(out, table, conditions, s,
                                                 PERCENTILES, label))
    # Latency against offered load, per connection count and path.
    groups = {}
    for s, conds in table.items():
        m = re.match(r"^lat(\d+)(?:@\d+k?)?(\..*)?$", s)
        if not m:
            continue
        key = (m.group(1), m.group(2) or "")
        for c, e in conds.items():
            rate = e.get("rate")
            groups.setdefault(key, {}).setdefault(c, []).append(
                (rate, median_of(e, "p50"), median_of(e, "p99")))
    for (conns, net), by_cond in sorted(groups.items()):
        series = [(c, [p for p in by_cond[c] if p[0]])
                  for c in conditions if c in by_cond]
        results.append(ab_plots.latency_load_plot(
            out, "latency_load_lat%s%s" % (conns, net.replace(".", "_")),
            "round trip against offered load, %s connection%s%s"
            % (conns, "" if conns == "1" else "s",
               " (%s)" % net[1:] if net else ""), series))
    head = headline_scenario(table)
    if head and units and units.get("null_syscall"):
        xs = list(range(25, 625, 25))
        curves = []
        for c in ("shim", "native"):
            e = table[head].get(c)
            if not e or not e.get("model"):
                continue
            b = model_input(table[head]["baseline"], "epoll")
            ci = model_input(e, "uring")
            ci["cpu_us"] = None
            curves.append((c, ab_model.syscall_curve(b, ci, units, xs),
                           e.get("cpu_ratio")))
        results.append(ab_plots.model_curve_plot(
            out, "model_syscall_cost",
            "predicted server CPU per request against the null syscall's "
            "cost, %s" % label(head), curves, units["null_syscall"]))
    pngs = [r for r in results if r and r.endswith(".png")]
    errors = [r for r in results if r and not r.endswith(".png")]
    return pngs, errors


# ---- report ----

PROFILE_ROWS = [
    ("null_syscall_ns", "null syscall (getppid)", "ns"),
    ("uring_enter_1op_ns", "io_uring_enter with one NOP", "ns"),
    ("uring_op_ns", "each further op in one enter (NOP)", "ns"),
    ("ctx_switch_ns", "context switch (two threads, one CPU)", "ns"),
    ("wakeup_us", "wake-up through a socket, epoll_wait", "us"),
    ("uring_wakeup_us", "wake-up through a socket, io_uring_enter", "us"),
    ("epoll_sleep_cpu_ns", "CPU the sleeper pays per sleep, epoll_wait",
     "ns"),
    ("uring_sleep_cpu_ns", "CPU the sleeper pays per sleep, io_uring_enter",
     "ns"),
    ("uring_sleep_extra_ns", "io_uring_enter's sleep minus epoll_wait's "
     "(paired)", "ns"),
    ("loopback_oneway_us", "loopback one-way, blocking reads", "us"),
    ("loopback_oneway_spin_us", "loopback one-way, polling reads", "us"),
    ("tcp_segment_ns", "one more small TCP data segment (loopback)", "ns"),
    ("tcp_ack_ns", "one more pure ACK (loopback)", "ns"),
    ("syscall_indirect_ns", "a syscall's cost to the code around it "
     "(indirect)", "ns"),
    ("wake_remote_ns", "waking a sleeping peer on another CPU (sender)",
     "ns"),
]


def vulnerability_summary(profile):
    v = (profile or {}).get("vulnerabilities") or {}
    shown = ["%s: %s" % (k, val) for k, val in sorted(v.items())
             if val and val != "Not affected"]
    return "; ".join(shown) if shown else "none reported"


def write_profile(w, profile):
    w("## Host profile\n")
    if not profile:
        w("No host profile (build/hostprof missing or failed): no cost "
          "model.\n")
        return
    w("%s, %s, %s CPUs; measured by build/hostprof on CPU %s (peer CPU "
      "%s) at the start of the run. Mitigations: %s. io_uring: sysctl "
      "kernel.io_uring_disabled = %s, Seccomp: %s%s.\n"
      % (profile.get("cpu_model"), profile.get("kernel"),
         profile.get("cpus"), profile.get("cpu"), profile.get("peer_cpu"),
         vulnerability_summary(profile),
         profile.get("io_uring_disabled_sysctl"), profile.get("seccomp"),
         "; " + profile["errors"] if profile.get("errors") else ""))
    w("| unit cost | median | q1-q3 | min-max | samples |")
    w("|---|---|---|---|---|")
    for key, text, unit in PROFILE_ROWS:
        v = profile.get(key)
        if not isinstance(v, dict):
            w("| %s | - | | | |" % text)
            continue
        w("| %s | %s %s | %s-%s | %s-%s | %d |"
          % (text, fmt(v["median"]), unit, fmt(v["q1"]), fmt(v["q3"]),
             fmt(v["min"]), fmt(v["max"]), v["n"]))
    w("")


def missed_costs(entry, base):
    """Costs the model does not price, as measured, for a large
    remainder."""
    notes = []

    def d(key):
        a, b = median_of(entry, key), median_of(base, key)
        return None if a is None or b is None else a - b
    for key, text, unit in (
            ("user_us_per_req", "user-space CPU", "us/request"),
            ("segs_in_per_req", "segments received", "/request"),
            ("cqes_per_req", "ring completions", "/request"),
            ("wakes_per_req", "wake-ups caused", "/request")):
        v = d(key)
        if v is not None and abs(v) > 0.005:
            notes.append("%s %+.3g %s" % (text, v, unit))
    return ", ".join(notes) or "nothing the run counts"


def write_model(w, table, bands, conditions, units):
    w("## CPU per request: measured against the cost model\n")
    if not units:
        w("No host profile: no model.\n")
        return
    w("The measured ratio is the median of the paired per-repetition "
      "ratios with its 95% bootstrap interval; the A/A band is the same "
      "interval for the baseline against itself. A difference is real "
      "only outside the band. The model (bench/ab_model.py) prices each "
      "count that differs from the baseline with this host's unit cost; "
      "the remainder is what it does not explain. Unit costs used: "
      + ", ".join("%s %s ns" % (k, fmt(v)) for k, v in units.items()
                  if v is not None) + ".\n")
    w("| scenario | condition | measured | A/A band | predicted | "
      "remainder | largest terms (us/request) |")
    w("|---|---|---|---|---|---|---|")
    large = []
    for s, conds in table.items():
        if s == "digest":
            continue
        band = bands.get(s, {}).get("cpu_us_per_req")
        for c in conditions:
            e = conds.get(c)
            if c == "baseline" or not e:
                continue
            m = e.get("model")
            r = e["ratios"].get("cpu_us_per_req")
            w("| %s | %s | %s | %s | %s | %s | %s |"
              % (label(s), c,
                 ratio_text(r) if c == "aa" else
                 ratio_text(r, "", band,
                            e["judgement"].get("cpu_us_per_req")),
                 band_text(band), fmt(e.get("predicted_cpu_ratio")),
                 "%+.3f" % m["remainder"] if m and
                 m["remainder"] is not None else "-",
                 top_terms(m) if m else "-"))
            if m and m["remainder"] is not None and \
               abs(m["remainder"]) > 0.05:
                notes = missed_costs(e, conds.get("baseline"))
                busy = median_of(e, "server_cpu_util")
                if "spinning" in m["terms"] and busy is not None and \
                   busy < 0.9:
                    notes = ("the server was busy %s of the time: it did "
                             "not spin (does the shim know %s?)"
                             % (fmt_pct(busy), "URINGSHIM_SPIN_US"))
                large.append((s, c, m["remainder"], notes))
    w("")
    if large:
        w("Remainders above 0.05, with what the run measured that the "
          "model does not price:\n")
        for s, c, rem, notes in large:
            w("- %s, %s: %+.3f; %s" % (label(s), c, rem, notes))
        w("")


def write_latency(w, table, bands, conditions):
    lats = [s for s in table if s.split(".")[0].startswith("lat")]
    if not lats:
        return
    w("## Latency at a low fixed rate\n")
    w("Open loop at the offered rate (latency counted from the intended "
      "send time), median over repetitions; the ratio is paired against "
      "the baseline with its interval and A/A judgement. Busy is the "
      "share of a core the server and the load generator used over the "
      "window: a spinning condition buys its latency with a busy core.\n")
    w("| scenario | condition | p50 us | p90 us | p99 us | p99.9 us | "
      "max us | p50 ratio | p99 ratio | server busy | client busy |")
    w("|---|---|---|---|---|---|---|---|---|---|---|")
    for s in lats:
        for c in conditions:
            e = table[s].get(c)
            if not e:
                continue
            v = e["values"]
            w("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |"
              % (label(s), c, fmt_spread(v["p50"]), fmt(median_of(e, "p90")),
                 fmt_spread(v["p99"]), fmt(median_of(e, "p99_9")),
                 fmt(median_of(e, "max")),
                 ratio_text(e["ratios"].get("p50"), "",
                            bands[s].get("p50"), e["judgement"].get("p50"))
                 if c != "baseline" else "",
                 ratio_text(e["ratios"].get("p99"), "",
                            bands[s].get("p99"), e["judgement"].get("p99"))
                 if c != "baseline" else "",
                 fmt_pct(median_of(e, "server_cpu_util")),
                 fmt_pct(median_of(e, "client_cpu_util"))))
    w("")


def write_paths(w, table, conditions):
    nets = sorted({s.partition(".")[2] for s in table} - {""})
    if not nets:
        return
    w("## Network paths\n")
    w("The same scenarios over loopback and over the other paths: server "
      "CPU us/request of the baseline, and each condition's paired CPU "
      "ratio. veth: the server in a network namespace of its own, the "
      "load over a veth pair; veth-rps: receive processing of both ends "
      "steered by RPS to the load generator's CPU.\n")
    cols = ["lo"] + nets
    w("| scenario | condition | " + " | ".join(cols) + " |")
    w("|---|---|" + "---|" * len(cols))
    bases = sorted({s.partition(".")[0] for s in table if s != "digest"},
                   key=lambda b: list(table).index(b)
                   if b in table else 99)
    for b in bases:
        for c in conditions:
            cells, any_cell = [], False
            for n in cols:
                s = b if n == "lo" else "%s.%s" % (b, n)
                e = table.get(s, {}).get(c)
                if not e:
                    cells.append("-")
                    continue
                any_cell = True
                if c == "baseline":
                    cells.append("%s us" % fmt(median_of(e,
                                                         "cpu_us_per_req")))
                else:
                    cells.append(ratio_text(e["ratios"]
                                            .get("cpu_us_per_req")))
            if any_cell:
                w("| %s | %s | %s |" % (label(b), c, " | ".join(cells)))
    w("")


def machine_load_text(runs):
    """How busy the server's CPU was with other work during the windows:
    noise the ratios cannot show by themselves."""
    other = spread(r.get("other_cpu_util") for r in runs)
    steal = spread(r.get("steal_util") for r in runs)
    if not other:
        return "Other load on the server's CPU: not measured."
    text = ("Other work on the server's CPU during the CPU windows: median "
            "%s of the CPU (up to %s); hypervisor steal %s."
            % (fmt_pct(other["median"]), fmt_pct(other["max"]),
               fmt_pct(steal["median"]) if steal else "-"))
    if other["median"] > 0.1:
        text += (" **The machine was busy with other work: every figure "
                 "here is provisional**, the A/A band shows how much.")
    return text


def write_markdown(out, meta, profile, units, table, bands, conditions,
                   runs, probes, digest_notes, failures, pngs, plot_errors,
                   verdict, answer):
    md = []
    w = md.append
    w("# A/B report: does io_uring make the epoll server cheaper?\n")
    w(answer + "\n")
    w("Started %s on %s (kernel %s, %s CPUs) at commit %s (%s uncommitted "
      "paths in the tree); pinning %s. Conditions: %s. %s repetitions "
      "(up to %s where undecided) of %ss measured runs after %ss warm-up%s."
      % (meta.get("started"), meta.get("host"), meta.get("kernel"),
         meta.get("cpus"), meta.get("commit") or "?",
         meta.get("tree_changes", "?"), meta.get("pinning"),
         ", ".join(conditions), meta.get("reps"), meta.get("max_reps"),
         meta.get("duration_s"), meta.get("warmup_s"),
         "; the load generator spins" if meta.get("client_spin") else ""))
    if meta.get("skipped"):
        w("\nSkipped conditions: %s." % meta["skipped"])
    w("\n%s.\n" % meta.get("perf_note", ""))
    w(machine_load_text(runs) + "\n")
    write_profile(w, profile)
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
    write_model(w, table, bands, conditions, units)
    w("## Ratios against the baseline\n")
    w("Paired per repetition (each condition against the baseline run next "
      "to it): median (95% bootstrap interval of the median). Below 1 means "
      "less than the baseline: better for CPU, syscalls and latency, worse "
      "for throughput. The aa rows are the baseline against itself.\n")
    w("| scenario | condition | CPU/request | syscalls/request | "
      "segments/request | throughput | p50 | p99 |")
    w("|---|---|---|---|---|---|---|---|")
    for s, conds in table.items():
        for c in conditions:
            if c == "baseline" or c not in conds:
                continue
            r, j = conds[c]["ratios"], conds[c]["judgement"]
            band = bands.get(s, {})

            def cell(key):
                return ratio_text(r.get(key), "", band.get(key), j.get(key)) \
                    if c != "aa" else ratio_text(r.get(key))
            w("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
                label(s), c, cell("cpu_us_per_req"),
                cell("syscalls_per_req"), cell("segs_out_per_req"),
                cell("throughput"), cell("p50"), cell("p99")))
    w("")
    write_latency(w, table, bands, conditions)
    write_paths(w, table, conditions)
    w("## Figures per scenario\n")
    w("Median (min-max) over repetitions. CPU is the server's time on CPU "
      "(per-thread schedstat nanoseconds) over a window with no perf "
      "attached; user is its user-space part (from the utime/stime split). "
      "Switches, segments and the shim's ring counters come from the same "
      "window; syscalls, enters, SQEs, completions and IPIs from perf over "
      "a separate window; all are divided by the requests that arrived in "
      "their window (bytes the server's sockets received, from ss, over "
      "the load generator's bytes per request).\n")
    for s, conds in table.items():
        if not conds:
            continue
        w("### %s\n" % label(s))
        w("| condition | runs | throughput/s | server CPU us/req | user "
          "us/req | server busy | p50 us | p99 us | p99.9 us | max us | "
          "md MB/s |")
        w("|---|---|---|---|---|---|---|---|---|---|---|")
        for c in conditions:
            if c not in conds:
                continue
            v = conds[c]["values"]
            w("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |"
              % (c, conds[c]["runs"], fmt_spread(v["throughput"]),
                 fmt_spread(v["cpu_us_per_req"]),
                 fmt(median_of(conds[c], "user_us_per_req")),
                 fmt_pct(median_of(conds[c], "server_cpu_util")),
                 fmt_spread(v["p50"]), fmt_spread(v["p99"]),
                 fmt_spread(v["p99_9"]), fmt_spread(v["max"]),
                 fmt_spread(v["md_mb_per_s"])))
        w("")
        w("| condition | syscalls | enters | SQEs | completions | "
          "voluntary sw | involuntary sw | wake-ups | IPIs | data segs "
          "out | ACKs out | segs in |")
        w("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for c in conditions:
            if c not in conds:
                continue
            e = conds[c]
            w("| %s | %s |" % (c, " | ".join(
                fmt(median_of(e, k)) for k in COUNT_KEYS)))
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
      "raw/*.loadgen.json (load generator); logs in raw/logs/; the host "
      "profile in host_profile.json.")
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
            e = conds[c]
            v, r = e["values"], e["ratios"]
            line = "  %-10s thr %s/s  cpu %s us/req  sys %s/req  p99 %s us" % (
                c, fmt_spread(v["throughput"]),
                fmt_spread(v["cpu_us_per_req"]),
                fmt_spread(v["syscalls_per_req"]), fmt_spread(v["p99"]))
            if r.get("cpu_us_per_req"):
                line += "  cpu ratio %s" % ratio_text(r["cpu_us_per_req"])
            if e.get("predicted_cpu_ratio") is not None:
                line += " model %s" % fmt(e["predicted_cpu_ratio"])
            print(line)


def conditions_and_scenarios(meta, runs):
    conditions = meta.get("conditions", "baseline").split()
    scenarios = [s for s in meta.get("scenarios", "").split(",") if s]
    for r in runs:
        if r["scenario"] not in scenarios:
            scenarios.append(r["scenario"])
        if r["condition"] not in conditions:
            conditions.append(r["condition"])
    return conditions, scenarios


def load_everything(out):
    meta = load_json(os.path.join(out, "meta.json")) or {}
    profile = load_json(os.path.join(out, "host_profile.json"))
    units = ab_model.units(profile) if profile else None
    runs = load_runs(out)
    probes = [r for r in runs if r.get("kind") == "capacity"]
    runs = [r for r in runs if r.get("kind") != "capacity"]
    for r in runs:
        if r.get("kind") in ("lat", "open"):
            r.setdefault("rate", None)
    return meta, profile, units, runs, probes


def cmd_report(out):
    meta, profile, units, runs, probes = load_everything(out)
    conditions, scenarios = conditions_and_scenarios(meta, runs)
    digest_notes, failures = check_digests(runs)
    for r in runs:
        for f in r["failures"]:
            failures.append("%s: %s" % (r["tag"], f))
    table, bands = summarize(runs, conditions, scenarios, units)
    for s in table:
        for c, e in table[s].items():
            rates = [r.get("rate") for r in runs if r["scenario"] == s and
                     r["condition"] == c and r.get("rate")]
            e["rate"] = rates[0] if rates else None
    verdict = make_verdict(table, bands, conditions, failures,
                           meta.get("skipped"), runs)
    answer = make_answer(table, bands, profile, units, failures)
    pngs, plot_errors = make_plots(out, table, conditions, units)
    write_markdown(out, meta, profile, units, table, bands, conditions,
                   runs, probes, digest_notes, failures, pngs, plot_errors,
                   verdict, answer)
    aa = {s: {"band": b, "ratios": (table[s].get("aa") or {})
              .get("ratios")} for s, b in bands.items() if b}
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump({"meta": meta, "host_profile": profile,
                   "model_units_ns": units, "verdict": verdict,
                   "answer": answer, "correct": not failures,
                   "failures": failures, "digests": digest_notes,
                   "aa": aa, "summary": table, "plots": pngs, "runs": runs,
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


def cmd_undecided(out, scenario):
    meta, profile, units, runs, _ = load_everything(out)
    runs = [r for r in runs if r["scenario"] == scenario]
    conditions, _ = conditions_and_scenarios(meta, runs)
    table, bands = summarize(runs, conditions, [scenario], None)
    und = undecided_ratios(table, bands, scenario)
    if not und:
        return 1
    for cond, r, band in und:
        print("ab: %s: %s CPU ratio %s against the A/A band %s: one more "
              "repetition" % (label(scenario), cond, ratio_text(r),
                              band_text(band)))
    return 0


def cmd_line(run):
    if run["failures"]:
        print("  %s: FAILED (%s)" % (run.get("tag"),
                                     "; ".join(run["failures"])))
        return
    text = "  %-22s thr %s/s  cpu %s us/req  sys %s/req  p99 %s us" % (
        run["tag"], fmt(run.get("throughput")),
        fmt(run.get("cpu_us_per_req")), fmt(run.get("syscalls_per_req")),
        fmt(run.get("latency_us", {}).get("p99")))
    if run.get("digest"):
        text += "  digest %s" % run["digest"]
    print(text)


def parse_number(text):
    if text in ("", "-", None):
        return None
    try:
        v = float(text)
    except ValueError:
        return None
    if math.isnan(v) or math.isinf(v):
        return None
    return int(v) if v.is_integer() and "." not in text and \
        "e" not in text.lower() else v


def cmd_record(path, items):
    """Write FILE from KEY=VALUE items (typed by a :n, :l, :b or :p
    suffix on the key); print a progress line for a raw run."""
    obj = {}
    base = os.path.dirname(path)
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            print("ab_report: record: '%s' is not KEY=VALUE" % item,
                  file=sys.stderr)
            return 1
        name, _, kind = key.partition(":")
        if kind == "n":
            obj[name] = parse_number(value)
        elif kind == "l":
            obj[name] = [parse_number(v) for v in value.split(",")]
        elif kind == "b":
            obj[name] = value == "true"
        elif kind == "p":
            full = os.path.join(base, value)
            obj[name] = value if os.path.isfile(full) and \
                os.path.getsize(full) > 0 else None
        elif kind == "":
            obj[name] = value
        else:
            print("ab_report: record: unknown type '%s'" % kind,
                  file=sys.stderr)
            return 1
    if "tag" in obj:
        obj.setdefault("error", None)
    with open(path + ".tmp", "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(path + ".tmp", path)
    if "tag" in obj:
        cmd_line(derive(obj, base))
    return 0


def cmd_capacity(path):
    """The throughput of one capacity probe run, or nothing."""
    run = derive(load_json(path) or {}, os.path.dirname(path))
    if not run["failures"] and run.get("throughput"):
        print("%d" % run["throughput"])
    return 0


def main(argv):
    if len(argv) >= 3 and argv[1] == "record":
        return cmd_record(argv[2], argv[3:])
    if len(argv) == 3 and argv[1] == "capacity":
        return cmd_capacity(argv[2])
    if len(argv) == 4 and argv[1] == "undecided":
        return cmd_undecided(argv[2], argv[3])
    if len(argv) == 3 and argv[1] == "report":
        return cmd_report(argv[2])
    print(__doc__, file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
