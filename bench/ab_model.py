"""ab_model.py - the cost model behind every CPU ratio of the A/B harness.

A condition's server CPU per request is predicted from the baseline's
measured CPU per request plus, for each kind of work whose count per
request differs between the two, the difference in count times the host's
unit cost of that work (measured by build/hostprof at the start of the
run):

  predicted CPU(cond) = CPU(base) + sum over terms of
                        (count(cond) - count(base)) * unit cost

  term              count per request (measured)        unit (hostprof)
  syscall entries   syscalls other than io_uring_enter   null_syscall_ns
  ring enters       io_uring_enter calls                 uring_enter_1op_ns
                                                         - uring_op_ns
  ring ops          SQEs submitted                       uring_op_ns
  epoll events      events epoll_wait reported (read     epoll_event_ns
                    syscalls: this level-triggered server
                    reads once per event)
  sleeps            voluntary context switches           epoll_sleep_cpu_ns
                                                         (a ring wait: plus
                                                         uring_sleep_extra_ns)
  side effects      syscalls and enters                  syscall_indirect_ns
                    (the caches each side refills when   (0 unless its first
                    user and kernel work alternate)      quartile is above 0)
  preemptions       involuntary context switches         ctx_switch_ns
  data segments     TCP data segments the server sent    tcp_segment_ns
  ACKs              pure ACKs the server sent            tcp_ack_ns
  remote wake-ups   IPIs the server sent (waking a       wake_remote_ns
                    sleeping peer on another CPU)
  shim calls        writes the shim queued, reads it     shim_write_call_ns,
                    served from its buffer (its stats)   shim_read_call_ns
                                                         (hostprof
                                                         --shim-calls)

Work that is the same in both (copying the bytes, TCP's receive side,
the matching engine) cancels. A condition that spins instead of sleeping
keeps its core busy: its CPU per request is one core-second per second
over its throughput, whatever it does.

The predicted ratio is predicted CPU(cond) / CPU(base); the remainder,
measured ratio - predicted ratio, is the work the model does not price.

The curve against the null syscall's cost: on a host whose null syscall
costs X instead of X0, every syscall (io_uring_enter included) costs
X - X0 more, in the baseline as in the condition.

Python standard library only; no I/O (tests/py/test_ab_model.py).
"""

# name, count key, unit key (in units()), label for the report
TERMS = [
    ("syscalls", "plain_syscalls", "null_syscall", "syscall entries"),
    ("enters", "enters", "enter_fixed", "ring enters"),
    ("ring_ops", "sqes", "ring_op", "ring ops (SQEs)"),
    ("epoll_events", "epoll_events", "epoll_event", "epoll events"),
    ("sleeps", "sleeps", None, "sleeps (voluntary switches)"),
    ("side_effects", "entries", "indirect", "syscall side effects"),
    ("preemptions", "preemptions", "ctx_switch", "preemptions"),
    ("segments", "data_segs", "segment", "TCP data segments sent"),
    ("acks", "acks", "ack", "pure ACKs sent"),
    ("wakeups", "ipis", "wake_remote", "remote wake-ups (IPIs)"),
    ("shim_writes", "shim_writes", "shim_write", "the shim's queued writes"),
    ("shim_reads", "shim_reads", "shim_read", "reads the shim served"),
]

WAIT_SLEEP_UNIT = {"epoll": "sleep_epoll", "uring": "sleep_uring",
                   "spin": "sleep_epoll"}


def _median(profile, key):
    v = profile.get(key) if profile else None
    if isinstance(v, dict):
        return v.get("median")
    return v


def units(profile):
    """Unit costs in nanoseconds from a hostprof JSON object; a unit the
    profile lacks is None (its term is then left out)."""
    enter_1op = _median(profile, "uring_enter_1op_ns")
    op = _median(profile, "uring_op_ns")
    sleep_epoll = _median(profile, "epoll_sleep_cpu_ns")
    sleep_uring = _median(profile, "uring_sleep_cpu_ns")
    extra = _median(profile, "uring_sleep_extra_ns")
    # The indirect cost is a small difference of two large times: it
    # counts only when its quartiles agree it is above 0 (batching has
    # small costs of its own, a longer socket queue, that can even make
    # it negative).
    indirect = _median(profile, "syscall_indirect_ns")
    q1 = (profile or {}).get("syscall_indirect_ns")
    q1 = q1.get("q1") if isinstance(q1, dict) else None
    if indirect is not None and (q1 is None or q1 <= 0):
        indirect = 0.0
    if sleep_epoll is not None and extra is not None:
        # The paired difference is steadier than two separate medians.
        sleep_uring = sleep_epoll + extra
    return {
        "null_syscall": _median(profile, "null_syscall_ns"),
        "enter_fixed": (enter_1op - op
                        if enter_1op is not None and op is not None
                        else None),
        "ring_op": op,
        "sleep_epoll": sleep_epoll,
        "sleep_uring": sleep_uring,
        "ctx_switch": _median(profile, "ctx_switch_ns"),
        "segment": _median(profile, "tcp_segment_ns"),
        "ack": _median(profile, "tcp_ack_ns"),
        "indirect": indirect,
        "epoll_event": _median(profile, "epoll_event_ns"),
        "shim_write": _median(profile, "shim_write_call_ns"),
        "shim_read": _median(profile, "shim_read_call_ns"),
        "wake_remote": _median(profile, "wake_remote_ns"),
    }


def counts(syscalls=None, enters=None, sqes=None, sleeps=None,
           preemptions=None, data_segs=None, acks=None, ipis=None,
           epoll_events=None, shim_writes=None, shim_reads=None):
    """Per-request counts in the model's terms. Syscalls are every entry
    (as perf counts them); the enters are taken out of them here."""
    plain = syscalls
    if syscalls is not None and enters is not None:
        plain = syscalls - enters
    return {"plain_syscalls": plain, "enters": enters, "sqes": sqes,
            "entries": syscalls, "sleeps": sleeps,
            "preemptions": preemptions, "data_segs": data_segs,
            "acks": acks, "ipis": ipis, "epoll_events": epoll_events,
            "shim_writes": shim_writes, "shim_reads": shim_reads}


def _unit_for(term, unit_key, wait, u):
    if term == "sleeps":
        return u.get(WAIT_SLEEP_UNIT.get(wait or "epoll", "sleep_epoll"))
    return u.get(unit_key)


def predict(base, cond, u):
    """Predict a condition's CPU per request from the baseline's.

    base, cond: {"cpu_us": measured CPU us/request (cond's only used for
    the remainder), "counts": counts(...), "wait": "epoll"|"uring"|"spin",
    "throughput": requests/s (spinning conditions)}. u: units(profile).

    Returns {"cpu_us", "ratio", "terms": {name: us}, "missing": [names],
    "remainder": measured ratio - predicted ratio or None} or None
    without a baseline CPU figure.
    """
    cpu_base = base.get("cpu_us")
    if not cpu_base:
        return None
    terms, missing = {}, []
    bc, cc = base.get("counts") or {}, cond.get("counts") or {}
    for name, key, unit_key, _ in TERMS:
        nb, nc = bc.get(key), cc.get(key)
        ub = _unit_for(name, unit_key, base.get("wait"), u)
        uc = _unit_for(name, unit_key, cond.get("wait"), u)
        if nb is None or nc is None or ub is None or uc is None:
            missing.append(name)
            continue
        terms[name] = (nc * uc - nb * ub) / 1e3
    cpu = cpu_base + sum(terms.values())
    if cond.get("wait") == "spin" and cond.get("throughput"):
        # A spinning server keeps its core busy.
        busy = 1e6 / cond["throughput"]
        terms["spinning"] = busy - cpu
        cpu = busy
    ratio = cpu / cpu_base
    remainder = None
    if cond.get("cpu_us") is not None:
        remainder = cond["cpu_us"] / cpu_base - ratio
    return {"cpu_us": cpu, "ratio": ratio, "terms": terms,
            "missing": missing, "remainder": remainder}


def syscall_curve(base, cond, u, null_ns_points):
    """Predicted ratio on hosts whose null syscall costs x ns instead of
    this host's, for each x: [(x, ratio)]. Every syscall entry, the ring
    enters' included, moves by x - x0 in both conditions."""
    x0 = u.get("null_syscall")
    p = predict(base, cond, u)
    if p is None or x0 is None or cond.get("wait") == "spin":
        return []
    bc, cc = base.get("counts") or {}, cond.get("counts") or {}

    def entries(c):
        return (c.get("plain_syscalls") or 0) + (c.get("enters") or 0)

    out = []
    for x in null_ns_points:
        shift = (x - x0) / 1e3
        b = base["cpu_us"] + entries(bc) * shift
        c = p["cpu_us"] + entries(cc) * shift
        if b > 0:
            out.append((x, c / b))
    return out


def break_even_null_ns(base, cond, u):
    """The null-syscall cost at which the condition would cost the same
    CPU per request as the baseline, or None (no crossing, or the
    syscall counts are equal)."""
    x0 = u.get("null_syscall")
    p = predict(base, cond, u)
    if p is None or x0 is None or cond.get("wait") == "spin":
        return None
    bc, cc = base.get("counts") or {}, cond.get("counts") or {}
    eb = (bc.get("plain_syscalls") or 0) + (bc.get("enters") or 0)
    ec = (cc.get("plain_syscalls") or 0) + (cc.get("enters") or 0)
    if eb == ec:
        return None
    # base + eb*s = pred + ec*s  ->  s = (pred - base) / (eb - ec)
    s = (p["cpu_us"] - base["cpu_us"]) / (eb - ec)
    x = x0 + s * 1e3
    return x if x > 0 else None
