"""ab_markdown.py - report.md of the A/B harness: the answer first, then
the host profile, the verdict, correctness, the cost model against the
measured CPU ratios, the ratios, latency, network paths and the figures
per scenario.

Python standard library only.
"""

import os

from ab_format import (band_text, fmt, fmt_pct, fmt_spread, label,
                       median_of, ratio_text, top_terms)
from ab_stats import spread


COUNT_KEYS = ["syscalls_per_req", "reads_per_req", "enters_per_req",
              "sqes_per_req", "cqes_per_req", "vol_ctxsw_per_req",
              "invol_ctxsw_per_req",
              "wakes_per_req", "ipis_per_req", "data_segs_out_per_req",
              "acks_out_per_req", "segs_in_per_req"]


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
    ("wake_remote_ns", "waking a sleeping peer on another CPU (sender)",
     "ns"),
    ("syscall_indirect_ns", "a syscall's cost to the code around it "
     "(indirect)", "ns"),
    ("epoll_event_ns", "each ready socket an epoll_wait reports", "ns"),
    ("shim_write_call_ns", "the shim: a 64-byte write it queues", "ns"),
    ("shim_read_call_ns", "the shim: a 64-byte read from its buffer", "ns"),
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
        w("| condition | syscalls | reads | enters | SQEs | completions | "
          "voluntary sw | involuntary sw | wake-ups | IPIs | data segs "
          "out | ACKs out | segs in |")
        w("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
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
