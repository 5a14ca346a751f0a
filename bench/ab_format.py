"""ab_format.py - how the A/B report writes its figures: scenario labels,
numbers, spreads, ratios with their intervals and A/A judgement.

Python standard library only.
"""

import math
import re

import ab_model


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


def median_of(entry, key):
    v = entry["values"].get(key) if entry else None
    return v["median"] if v else None


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


def top_terms(model, n=3):
    terms = sorted(model["terms"].items(), key=lambda kv: -abs(kv[1]))
    labels = {t[0]: t[3] for t in ab_model.TERMS}
    labels["spinning"] = "spinning (a busy core)"
    return ", ".join("%s %+.2f us" % (labels.get(k, k), v)
                     for k, v in terms[:n] if abs(v) >= 0.005)
