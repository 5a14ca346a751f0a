"""ab_plots.py - the gnuplot PNGs of the A/B report.

Each function writes its data file under OUT/plots/, runs gnuplot and
returns "plots/<name>.png", or an error text starting "gnuplot failed",
or None when there is nothing to plot.
"""

import os
import subprocess


def gnuplot(script, cwd):
    try:
        p = subprocess.run(["gnuplot"], input=script, text=True, cwd=cwd,
                           capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "gnuplot failed: %s" % e
    if p.returncode != 0:
        return "gnuplot failed: %s" % p.stderr.strip()[-300:]
    return None


def quote(text):
    """A string for a gnuplot single-quoted literal."""
    return str(text).replace("'", "''")


def _finish(out, name, script):
    err = gnuplot(script, out)
    return err or "plots/%s.png" % name


def _remove_stale(out, name):
    stale = os.path.join(out, "plots", name + ".png")
    if os.path.exists(stale):
        os.remove(stale)


def bar_plot(out, table, conditions, key, title, ylabel, name, label,
             source="values"):
    """Bars per scenario and condition, median with min-max error bars."""
    scenarios = [s for s in table if table[s] and s != "digest"]
    conds = [c for c in conditions
             if any(c in table[s] for s in scenarios)]
    if source == "ratios":
        conds = [c for c in conds if c != "baseline"]
    if not any(table[s].get(c, {}).get(source, {}).get(key)
               for s in scenarios for c in conds):
        _remove_stale(out, name)
        return None
    data = os.path.join("plots", name + ".dat")
    with open(os.path.join(out, data), "w") as f:
        f.write("# scenario, then per condition: median min max\n")
        for s in scenarios:
            cols = []
            for c in conds:
                v = table[s].get(c, {}).get(source, {}).get(key)
                cols += (["NaN"] * 3 if not v else
                         ["%g" % v["median"], "%g" % v["min"],
                          "%g" % v["max"]])
            f.write('"%s" %s\n' % (label(s).replace('"', "'"),
                                   " ".join(cols)))
    plots = ", ".join(
        "'%s' using %d:%d:%d:xtic(1) title '%s'"
        % (data, 2 + 3 * i, 3 + 3 * i, 4 + 3 * i, quote(c))
        for i, c in enumerate(conds))
    script = """set terminal pngcairo size 1100,500 noenhanced
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
    return _finish(out, name, script)


def latency_plot(out, table, conditions, scenario, percentiles, label):
    """Latency by percentile for one scenario, a line per condition (the
    A/A copy of the baseline left out)."""
    conds = [c for c in conditions
             if c in table.get(scenario, {}) and c != "aa"]
    lines = []
    for i, c in enumerate(conds):
        vals = table[scenario][c]["values"]
        pts = [(1 / (1 - p), vals[k]["median"]) for k, p in percentiles
               if vals.get(k)]
        if not pts:
            continue
        data = os.path.join("plots", "latency_%s_%d.dat" % (scenario, i))
        with open(os.path.join(out, data), "w") as f:
            f.write("# 1/(1-percentile) latency_us (median over reps)\n")
            for x, y in pts:
                f.write("%g %g\n" % (x, y))
        lines.append("'%s' using 1:2 with linespoints title '%s'"
                     % (data, quote(c)))
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
""" % (name, quote(label(scenario)), ", ".join(lines))
    return _finish(out, name, script)


def latency_load_plot(out, name, title, series):
    """Latency against offered load: series is [(condition, [(rate,
    p50, p99)])]; p50 solid, p99 dashed, one colour per condition."""
    series = [(c, sorted(p)) for c, p in series if p]
    if not series:
        _remove_stale(out, name)
        return None
    lines = []
    for i, (c, pts) in enumerate(series):
        data = os.path.join("plots", "%s_%d.dat" % (name, i))
        with open(os.path.join(out, data), "w") as f:
            f.write("# offered requests/s, p50 us, p99 us\n")
            for rate, p50, p99 in pts:
                f.write("%g %s %s\n" % (rate, "NaN" if p50 is None
                                        else "%g" % p50,
                                        "NaN" if p99 is None
                                        else "%g" % p99))
        lines.append("'%s' using 1:2 with linespoints lc %d dt 1 pt 7 "
                     "title '%s p50'" % (data, i + 1, quote(c)))
        lines.append("'%s' using 1:3 with linespoints lc %d dt 2 pt 5 "
                     "title '%s p99'" % (data, i + 1, quote(c)))
    script = """set terminal pngcairo size 1000,550 noenhanced
set output 'plots/%s.png'
set title '%s'
set logscale y
set xlabel 'offered load (requests/s)'
set ylabel 'round trip (us), median over repetitions'
set xrange [0:*]
set grid
set key outside right top
set offsets 0, graph 0.1, 0, 0
plot %s
""" % (name, quote(title), ", ".join(lines))
    return _finish(out, name, script)


def model_curve_plot(out, name, title, curves, host_x):
    """Predicted CPU ratio against the null syscall's cost: curves is
    [(condition, [(x_ns, ratio)], measured_ratio_or_None)], host_x this
    host's null syscall cost, marked with a vertical line and the measured
    ratios as points."""
    curves = [c for c in curves if c[1]]
    if not curves:
        _remove_stale(out, name)
        return None
    lines = []
    for i, (c, pts, measured) in enumerate(curves):
        data = os.path.join("plots", "%s_%d.dat" % (name, i))
        with open(os.path.join(out, data), "w") as f:
            f.write("# null syscall ns, predicted CPU ratio\n")
            for x, r in pts:
                f.write("%g %g\n" % (x, r))
        lines.append("'%s' using 1:2 with lines lw 2 lc %d title "
                     "'%s, predicted'" % (data, i + 1, quote(c)))
        if measured is not None and host_x is not None:
            lines.append("'-' using 1:2 with points pt 7 ps 1.5 lc %d "
                         "title '%s, measured here'" % (i + 1, quote(c)))
    inline = ""
    for c, pts, measured in curves:
        if measured is not None and host_x is not None:
            inline += "%g %g\ne\n" % (host_x, measured)
    arrow = ""
    if host_x is not None:
        arrow = ("set arrow from %g, graph 0 to %g, graph 1 nohead dt 3\n"
                 "set label 'this host (%.0f ns)' at %g, graph 0.95 "
                 "offset 1,0\n" % (host_x, host_x, host_x, host_x))
    script = """set terminal pngcairo size 900,550 noenhanced
set output 'plots/%s.png'
set title '%s'
set xlabel 'null syscall cost (ns)'
set ylabel 'server CPU per request, ratio to the baseline'
set grid
set key left bottom
set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2
%splot %s
%s""" % (name, quote(title), arrow, ", ".join(lines), inline)
    return _finish(out, name, script)
