"""test_ab_model.py - the A/B cost model and statistics on fixed inputs.

Run by tests/bats/ab_model.bats (python3 -m unittest). Every expected
figure below is worked out by hand from the inputs next to it.
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "bench"))
import ab_model  # noqa: E402
import ab_stats  # noqa: E402

PROFILE = {
    "null_syscall_ns": {"median": 100.0, "q1": 90, "q3": 110},
    "uring_enter_1op_ns": {"median": 250.0},
    "uring_op_ns": {"median": 50.0},
    "epoll_sleep_cpu_ns": {"median": 2000.0},
    "uring_sleep_cpu_ns": {"median": 3000.0},
    "ctx_switch_ns": {"median": 1000.0},
    "tcp_segment_ns": {"median": 2000.0},
    "tcp_ack_ns": {"median": 800.0},
    "syscall_indirect_ns": {"median": 20.0, "q1": 10.0},
    "epoll_event_ns": {"median": 100.0},
    "shim_write_call_ns": {"median": 50.0},
    "shim_read_call_ns": {"median": 40.0},
    "wake_remote_ns": {"median": 9000.0},
}


def base(**kw):
    c = dict(syscalls=3.0, enters=0.0, sqes=0.0, sleeps=0.0,
             preemptions=0.0, data_segs=2.0, acks=0.5, ipis=0.0,
             epoll_events=1.0, shim_writes=0.0, shim_reads=0.0)
    c.update(kw)
    return {"cpu_us": 5.0, "wait": "epoll", "counts": ab_model.counts(**c)}


def cond(wait="uring", cpu_us=None, throughput=None, **kw):
    c = dict(syscalls=0.5, enters=0.5, sqes=1.5, sleeps=0.0,
             preemptions=0.0, data_segs=2.2, acks=0.25, ipis=0.0,
             epoll_events=0.0, shim_writes=1.0, shim_reads=1.0)
    c.update(kw)
    return {"cpu_us": cpu_us, "wait": wait, "throughput": throughput,
            "counts": ab_model.counts(**c)}


class Units(unittest.TestCase):
    def test_medians_and_enter_fixed_cost(self):
        u = ab_model.units(PROFILE)
        self.assertEqual(u["null_syscall"], 100.0)
        # the enter's own cost: one enter with one NOP minus that NOP
        self.assertEqual(u["enter_fixed"], 200.0)
        self.assertEqual(u["ring_op"], 50.0)
        self.assertEqual(u["sleep_uring"], 3000.0)

    def test_a_ring_sleep_is_the_epoll_sleep_plus_the_paired_extra(self):
        p = dict(PROFILE)
        p["uring_sleep_extra_ns"] = {"median": 400.0}
        self.assertEqual(ab_model.units(p)["sleep_uring"], 2400.0)

    def test_an_indirect_cost_within_its_noise_counts_as_none(self):
        p = dict(PROFILE)
        p["syscall_indirect_ns"] = {"median": -30.0, "q1": -40.0}
        self.assertEqual(ab_model.units(p)["indirect"], 0.0)
        # a positive median whose first quartile is not: noise
        p["syscall_indirect_ns"] = {"median": 30.0, "q1": -5.0}
        self.assertEqual(ab_model.units(p)["indirect"], 0.0)
        self.assertEqual(ab_model.units(PROFILE)["indirect"], 20.0)

    def test_missing_unit_is_none(self):
        u = ab_model.units({"null_syscall_ns": {"median": 80}})
        self.assertEqual(u["null_syscall"], 80)
        self.assertIsNone(u["enter_fixed"])
        self.assertIsNone(u["segment"])


class Predict(unittest.TestCase):
    def setUp(self):
        self.u = ab_model.units(PROFILE)

    def test_counts_take_the_enters_out_of_the_syscalls(self):
        c = ab_model.counts(syscalls=2.0, enters=0.5)
        self.assertEqual(c["plain_syscalls"], 1.5)
        self.assertEqual(c["enters"], 0.5)

    def test_terms_by_hand(self):
        # syscalls: 0 plain against 3 -> -3 * 100 ns = -0.3 us
        # enters: +0.5 * 200 ns = +0.1 us; SQEs: +1.5 * 50 ns = +0.075 us
        # side effects: 0.5 entries against 3 -> -2.5 * 20 ns = -0.05 us
        # data segments: +0.2 * 2000 ns = +0.4 us
        # ACKs: -0.25 * 800 ns = -0.2 us
        # epoll events: -1 * 100 ns = -0.1 us
        # shim calls: one write (50 ns) and one read (40 ns): +0.09 us
        # total +0.015 us on 5 us
        p = ab_model.predict(base(), cond(cpu_us=5.5), self.u)
        self.assertAlmostEqual(p["terms"]["epoll_events"], -0.1)
        self.assertAlmostEqual(p["terms"]["shim_writes"], 0.05)
        self.assertAlmostEqual(p["terms"]["shim_reads"], 0.04)
        self.assertAlmostEqual(p["terms"]["syscalls"], -0.3)
        self.assertAlmostEqual(p["terms"]["enters"], 0.1)
        self.assertAlmostEqual(p["terms"]["ring_ops"], 0.075)
        self.assertAlmostEqual(p["terms"]["side_effects"], -0.05)
        self.assertAlmostEqual(p["terms"]["segments"], 0.4)
        self.assertAlmostEqual(p["terms"]["acks"], -0.2)
        self.assertAlmostEqual(p["terms"]["sleeps"], 0.0)
        self.assertAlmostEqual(p["cpu_us"], 5.015)
        self.assertAlmostEqual(p["ratio"], 1.003)
        # measured 5.5/5 = 1.1, predicted 1.003
        self.assertAlmostEqual(p["remainder"], 0.097)
        self.assertEqual(p["missing"], [])

    def test_a_sleep_costs_what_the_wait_kind_costs(self):
        # one sleep per request in both: epoll 2000 ns, ring 3000 ns
        p = ab_model.predict(base(sleeps=1.0),
                             cond(sleeps=1.0, syscalls=3.0, enters=0.0,
                                  sqes=0.0, data_segs=2.0, acks=0.5,
                                  epoll_events=1.0, shim_writes=0.0,
                                  shim_reads=0.0), self.u)
        self.assertAlmostEqual(p["terms"]["sleeps"], 1.0)
        self.assertAlmostEqual(p["ratio"], (5.0 + 1.0) / 5.0)

    def test_remote_wakeups_and_preemptions(self):
        p = ab_model.predict(base(ipis=0.5, preemptions=0.1),
                             cond(ipis=0.25, preemptions=0.2,
                                  syscalls=3.0, enters=0.0, sqes=0.0,
                                  data_segs=2.0, acks=0.5,
                                  epoll_events=1.0, shim_writes=0.0,
                                  shim_reads=0.0), self.u)
        self.assertAlmostEqual(p["terms"]["wakeups"], -0.25 * 9.0)
        self.assertAlmostEqual(p["terms"]["preemptions"], 0.1)

    def test_unknown_counts_leave_their_term_out(self):
        p = ab_model.predict(base(ipis=None), cond(), self.u)
        self.assertIn("wakeups", p["missing"])
        self.assertNotIn("wakeups", p["terms"])
        self.assertIsNone(p["remainder"])

    def test_a_spinning_server_keeps_its_core_busy(self):
        # 100000 requests/s on a busy core: 10 us each, twice the base
        p = ab_model.predict(base(), cond(wait="spin", throughput=1e5),
                             self.u)
        self.assertAlmostEqual(p["cpu_us"], 10.0)
        self.assertAlmostEqual(p["ratio"], 2.0)

    def test_no_baseline_cpu_no_prediction(self):
        b = base()
        b["cpu_us"] = None
        self.assertIsNone(ab_model.predict(b, cond(), self.u))


class SyscallCurve(unittest.TestCase):
    def setUp(self):
        self.u = ab_model.units(PROFILE)

    def test_this_host_is_the_prediction(self):
        pts = ab_model.syscall_curve(base(), cond(), self.u, [100])
        self.assertAlmostEqual(pts[0][1], 1.003)

    def test_dearer_syscalls_favour_the_condition(self):
        # at 300 ns: base 5 + 3 entries * 0.2 = 5.6, condition
        # 5.015 + 0.5 entries (its enters) * 0.2 = 5.115
        pts = ab_model.syscall_curve(base(), cond(), self.u, [300])
        self.assertAlmostEqual(pts[0][1], 5.115 / 5.6)

    def test_break_even(self):
        # 5 + 3 s = 5.015 + 0.5 s  ->  s = 0.006 us  ->  100 + 6 ns
        x = ab_model.break_even_null_ns(base(), cond(), self.u)
        self.assertAlmostEqual(x, 106.0)
        pts = ab_model.syscall_curve(base(), cond(), self.u, [x])
        self.assertAlmostEqual(pts[0][1], 1.0)

    def test_spinning_has_no_curve(self):
        c = cond(wait="spin", throughput=1e5)
        self.assertEqual(ab_model.syscall_curve(base(), c, self.u, [1]), [])


class Stats(unittest.TestCase):
    def test_spread(self):
        s = ab_stats.spread([3, None, 1, 2])
        self.assertEqual((s["n"], s["min"], s["median"], s["max"]),
                         (3, 1, 2, 3))
        self.assertIsNone(ab_stats.spread([None]))

    def test_bootstrap_interval(self):
        self.assertEqual(ab_stats.bootstrap_median_ci([1.0, 1.0, 1.0]),
                         (1.0, 1.0))
        self.assertEqual(ab_stats.bootstrap_median_ci([0.5]), (0.5, 0.5))
        lo, hi = ab_stats.bootstrap_median_ci([0.5, 0.6])
        self.assertEqual((lo, hi), (0.5, 0.6))
        # many close values: a narrow interval around their median
        vals = [1.0 + 0.001 * i for i in range(-10, 11)]
        lo, hi = ab_stats.bootstrap_median_ci(vals)
        self.assertTrue(0.99 < lo <= 1.0 <= hi < 1.01, (lo, hi))
        # deterministic
        self.assertEqual(ab_stats.bootstrap_median_ci(vals), (lo, hi))

    def test_aa_band_contains_one(self):
        band = ab_stats.aa_band([1.02, 1.03, 1.04])
        self.assertEqual(band["lo"], 1.0)
        self.assertEqual(band["hi"], 1.04)
        self.assertIsNone(ab_stats.aa_band([]))

    def test_judge(self):
        band = {"lo": 0.97, "hi": 1.03}

        def s(lo, hi):
            return {"ci": [lo, hi], "min": lo, "max": hi, "median": lo}
        self.assertEqual(ab_stats.judge(s(0.90, 0.95), band), "lower")
        self.assertEqual(ab_stats.judge(s(1.05, 1.10), band), "higher")
        self.assertEqual(ab_stats.judge(s(0.98, 1.02), band), "same")
        self.assertEqual(ab_stats.judge(s(0.95, 0.99), band), "undecided")
        self.assertIsNone(ab_stats.judge(None, band))
        # no A/A band: judged against 1 alone
        self.assertEqual(ab_stats.judge(s(0.9, 0.95), None), "lower")


if __name__ == "__main__":
    unittest.main()
