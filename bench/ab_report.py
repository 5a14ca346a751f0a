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
from ab_format import (band_text, fmt, fmt_spread, label,  # noqa: E402
                       median_of, ratio_text, top_terms)
from ab_markdown import write_markdown  # noqa: E402
from ab_stats import (aa_band, judge, ratio_summary,  # noqa: E402
                      spread)

# Scenarios the verdict headline prefers, most telling first: many
# connections, one request each in flight, is where per-call batching
# should pay off if it pays off anywhere.
HEADLINE_ORDER = ["c256", "c256k8", "c1000", "c16", "md", "open80",
                  "open50", "c1"]


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
    "syscalls:sys_enter_read": "reads_per_req",
    "io_uring:io_uring_submit_req": "sqes_per_req",
    "io_uring:io_uring_complete": "cqes_per_req",
    "sched:sched_waking": "wakes_per_req",
    "ipi:ipi_send_cpu": "ipis_per_req",
    "context-switches": "perf_ctxsw_per_req",
}


METRICS = ["throughput", "cpu_us_per_req", "cpu_us_per_req_ticks",
           "user_us_per_req", "syscalls_per_req", "enters_per_req",
           "reads_per_req",
           "sqes_per_req", "cqes_per_req", "wakes_per_req", "ipis_per_req",
           "ctxsw_per_req", "vol_ctxsw_per_req", "invol_ctxsw_per_req",
           "segs_out_per_req", "data_segs_out_per_req",
           "acks_out_per_req", "segs_in_per_req", "snmp_out_per_req",
           "snmp_in_per_req", "shim_enters_per_req", "shim_sqes_per_req",
           "shim_sends_queued_per_req", "shim_served_from_buffer_per_req",
           "md_mb_per_s", "server_cpu_util", "client_cpu_util",
           "other_cpu_util", "steal_util"]


LAT_KEYS = [k for k, _ in PERCENTILES] + ["max"]


RATIO_KEYS = ["cpu_us_per_req", "syscalls_per_req", "throughput",
              "segs_out_per_req", "p50", "p99", "p99_9"]


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
    if reason and "SPIN_RING=0" in reason:
        return "plain spin"     # epoll-spin: the shim without its ring
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
            for key in ("enters", "sqes", "sends_queued",
                        "served_from_buffer"):
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
                ipis=m("ipis_per_req"),
                epoll_events=m("reads_per_req"),
                # No shim, no shim calls.
                shim_writes=m("shim_sends_queued_per_req") or 0.0,
                shim_reads=m("shim_served_from_buffer_per_req") or 0.0)}


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
                       (None, "active", "plain spin")})
    if inactive:
        parts.append("WARNING shim not active in some runs (%s)"
                     % ", ".join(inactive))
    line = "verdict: " + "; ".join(parts)
    if losses:
        line += "; loses: " + ", ".join(losses)
    return line


def latency_scenario(table):
    lats = [s for s in table if s.startswith("lat1") and "." not in s]
    if "lat1" in lats:
        return "lat1"
    return lats[0] if lats else None


def judged(r, verdict):
    """"0.93x (interval 0.86-1.09, undecided)" for the answer."""
    if not r:
        return "not measured"
    lo, hi = r.get("ci") or (r["min"], r["max"])
    return "%sx (interval %s-%s, %s)" % (
        fmt(r["median"]), fmt(lo), fmt(hi),
        ANSWER_WORD.get(verdict, "no A/A band"))


ANSWER_WORD = {"lower": "really less", "higher": "really more",
               "same": "within the noise", "undecided": "undecided"}


def answer_latency(table, bands):
    """The latency sentence of the answer, and whether it is deep."""
    lat = latency_scenario(table)
    if not lat or "shim" not in table[lat] or \
       "baseline" not in table[lat]:
        return "", False
    le = table[lat]
    r50, r99 = (le["shim"]["ratios"].get(k) for k in ("p50", "p99"))
    j = le["shim"]["judgement"]
    deep = bool(r50 and r50["median"] <= DEEP_RATIO and
                j.get("p50") == "lower")
    text = (" The round trip at %s: the shim's p50 %s us against the "
            "baseline's %s us, %s; p99 %s"
            % (label(lat), fmt(median_of(le["shim"], "p50")),
               fmt(median_of(le["baseline"], "p50")), judged(r50,
                                                          j.get("p50")),
               judged(r99, j.get("p99"))))
    others = ["%s %sx" % (c, fmt(le[c]["ratios"]["p50"]["median"]))
              for c in ("native", "shim+spin", "epoll-spin")
              if le.get(c, {}).get("ratios", {}).get("p50")]
    if others:
        text += "; p50 of " + ", ".join(others)
    return text + ".", deep


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
    e = table[head]
    host = "%s, %s, null syscall %s ns" % (
        (profile or {}).get("cpu_model") or "unknown CPU",
        (profile or {}).get("kernel", "?"),
        fmt(units.get("null_syscall") if units else None))
    band = bands.get(head, {}).get("cpu_us_per_req")
    deep = any(
        c in e and e[c]["ratios"].get("cpu_us_per_req") and
        e[c]["ratios"]["cpu_us_per_req"]["median"] <= DEEP_RATIO and
        e[c]["judgement"].get("cpu_us_per_req") == "lower"
        for c in ("shim", "native"))
    lat_text, lat_deep = answer_latency(table, bands)
    text = ["**Is io_uring a deep improvement for this server on this "
            "host (%s)? %s.**" % (host, "Yes" if deep or lat_deep
                                  else "No")]
    cpu = ["%s %s" % ("the shim" if c == "shim" else "native io_uring",
                      judged(e[c]["ratios"].get("cpu_us_per_req"),
                             e[c]["judgement"].get("cpu_us_per_req")))
           for c in ("shim", "native") if c in e]
    text.append(" Server CPU per request at %s against the baseline: %s "
                "(A/A band %s; \"deep\" would be %s or less, outside the "
                "band)." % (label(head), "; ".join(cpu), band_text(band),
                            fmt(DEEP_RATIO)))
    text.append(lat_text)
    cond = "shim" if "shim" in e else "native"
    model = e[cond].get("model")
    if model:
        text.append(" Where the %s's difference comes from (cost model, "
                    "us per request against the baseline's %s): %s; it "
                    "predicts %sx, %+.2f unexplained."
                    % (cond, fmt(median_of(e["baseline"], "cpu_us_per_req")),
                       top_terms(model) or "no term moves",
                       fmt(model["ratio"]), model["remainder"] or 0.0))
        b = model_input(e["baseline"], "epoll")
        c = model_input(e[cond], "uring")
        c["cpu_us"] = None
        pts = ab_model.syscall_curve(b, c, units, [OTHER_HOST_NULL_NS])
        even = ab_model.break_even_null_ns(b, c, units)
        if pts:
            text.append(" On a host whose null syscall costs %d ns the "
                        "model predicts %sx"
                        % (OTHER_HOST_NULL_NS, fmt(pts[0][1])))
            if even:
                text.append(", and the %s costs the baseline's CPU where "
                            "a null syscall costs %s ns" % (cond,
                                                            fmt(even)))
            text.append(" (plots/model_syscall_cost.png).")
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
                  for c in conditions if c in by_cond and c != "aa"]
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
    shim = load_json(os.path.join(out, "host_profile_shim.json"))
    if profile and isinstance(shim, dict):
        # Only calls the shim's own counters confirm were the shim's.
        n = shim.get("calls") or 0
        mine = n > 0 and (shim.get("shim_sends_queued") or 0) >= n and \
            (shim.get("shim_served_from_buffer") or 0) >= n
        profile["shim_calls_verified"] = mine
        if mine:
            profile["shim_write_call_ns"] = shim.get("write_call_ns")
            profile["shim_read_call_ns"] = shim.get("read_call_ns")
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
