"""ab_stats.py - the statistics of the A/B harness: spreads, intervals and
the A/A band a difference must lie outside to be called real.

Ratios are paired: a condition's figure over the baseline's in the same
repetition, run next to it, so drift of the machine cancels. The baseline
also runs against itself (the A/A condition "aa"); the spread of those
ratios is the noise of this machine at this moment, measured rather than
assumed. A condition's ratio is judged by the bootstrap interval of its
median against that band.

Python standard library only.
"""

import random
import statistics

CI_LEVEL = 0.95
RESAMPLES = 4000


def spread(values):
    """n, min, q1, median, q3, max of the values that are not None."""
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return None
    if len(vals) >= 2:
        q1, _, q3 = statistics.quantiles(vals, n=4, method="inclusive")
    else:
        q1 = q3 = vals[0]
    return {"n": len(vals), "min": vals[0], "q1": q1,
            "median": statistics.median(vals), "q3": q3, "max": vals[-1]}


def bootstrap_median_ci(values, level=CI_LEVEL, resamples=RESAMPLES):
    """Percentile bootstrap interval of the median, (lo, hi).

    Deterministic (a fixed seed), so a report can be regenerated from the
    same raw files. With few values the interval is coarse: with 3 it is
    close to their range; that is why undecided ratios get more
    repetitions.
    """
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return None
    if len(vals) == 1:
        return (vals[0], vals[0])
    rng = random.Random(20261125)
    n = len(vals)
    meds = sorted(statistics.median(rng.choice(vals) for _ in range(n))
                  for _ in range(resamples))
    tail = (1 - level) / 2
    lo = meds[int(tail * (resamples - 1))]
    hi = meds[int(round((1 - tail) * (resamples - 1)))]
    return (lo, hi)


def ratio_summary(values):
    """spread() plus the bootstrap interval of the median, or None."""
    s = spread(values)
    if s is None:
        return None
    s["ci"] = list(bootstrap_median_ci(values))
    return s


def aa_band(aa_ratios):
    """The A/A band: the interval of the median A/A ratio, widened to
    contain 1 (a band that excludes 1 means the order of the runs
    itself matters; it is reported as it is measured).
    Returns {"lo", "hi", "median", "n"} or None."""
    s = ratio_summary(aa_ratios)
    if s is None:
        return None
    lo, hi = s["ci"]
    return {"lo": min(lo, 1.0), "hi": max(hi, 1.0),
            "median": s["median"], "n": s["n"]}


def judge(summary, band):
    """Where a ratio's interval lies against the A/A band:
    "lower" or "higher" (entirely outside: a real difference), "same"
    (entirely inside: no difference this machine can see), "undecided"
    (overlapping an edge: more repetitions may decide), or None."""
    if not summary:
        return None
    lo, hi = summary.get("ci") or (summary["min"], summary["max"])
    if band is None:
        band = {"lo": 1.0, "hi": 1.0}
    if hi < band["lo"]:
        return "lower"
    if lo > band["hi"]:
        return "higher"
    if band["lo"] <= lo and hi <= band["hi"]:
        return "same"
    return "undecided"
