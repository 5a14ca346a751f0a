#!/usr/bin/env bats
# ab_model.bats - the A/B cost model and statistics (bench/ab_model.py,
# bench/ab_stats.py) on fixed inputs: tests/py/test_ab_model.py, whose
# expected figures are worked out by hand; and the model's input, the host
# profile (build/hostprof), with io_uring allowed and denied. Seconds, no
# server.

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
load 'ab_helpers'

@test "ab_model: unit tests on fixed inputs pass" {
	run python3 -m unittest -v "$TOP/tests/py/test_ab_model.py"
	echo "$output"
	assert_success
	# The suite really ran its cases (an import error runs none).
	assert_output --regexp 'Ran [1-9][0-9]* tests'
	assert_line --index -1 OK
}

@test "ab_report record: a quote in a value still gives valid JSON" {
	f=$BATS_TEST_TMPDIR/r.json
	run python3 "$TOP/bench/ab_report.py" record "$f" 'name=a"b\c' \
		n:n=1.5 bad:n=nan l:l=1,-,3 b:b=true p:p=missing
	assert_success
	run ab_json "$f" '
assert d == {"name": "a\"b\\c", "n": 1.5, "bad": None,
             "l": [1, None, 3], "b": True, "p": None}, d
print("ok")'
	assert_output ok
}

@test "ab_real_report: the host profile heads real.md and real.json" {
	out=$BATS_TEST_TMPDIR/real
	mkdir -p "$out/raw"
	for rep in 1 2; do
		for mode in baseline shim; do
			echo "{\"server\": \"redis\", \"mode\": \"$mode\",
			  \"rep\": $rep, \"requests\": 1000, \"seconds\": 1,
			  \"throughput\": 1000, \"cpu_us_per_req\": 5,
			  \"syscalls_per_req\": 2}" >"$out/raw/redis-$mode-$rep.json"
		done
	done
	echo '{"cpu_model": "Test CPU", "kernel": "Linux 0",
	       "vulnerabilities": {"spectre_v2": "Mitigation: X",
				   "mds": "Not affected"},
	       "io_uring_disabled_sysctl": "0", "seccomp": "0",
	       "null_syscall_ns": {"median": 90, "q1": 85, "q3": 95,
				   "min": 80, "max": 99, "n": 5}}' \
		>"$out/host_profile.json"
	run python3 "$TOP/bench/ab_real_report.py" "$out"
	assert_success
	run grep -n -m1 '^## ' "$out/real.md"
	assert_output '5:## Host profile'
	run grep -F '| null syscall | 90 ns (q1-q3 85-95) |' "$out/real.md"
	assert_success
	run grep -F 'mitigations: spectre_v2: Mitigation: X;' "$out/real.md"
	assert_success
	run ab_json "$out/real.json" '
assert d["host_profile"]["cpu_model"] == "Test CPU"
assert d["redis"]["cpu_us_per_req"]["ratios"] == [1.0, 1.0]
print("ok")'
	assert_output ok
}

HOSTPROF=${AB_BUILD}/hostprof
FIGURES='null_syscall_ns ctx_switch_ns wakeup_us epoll_sleep_cpu_ns
loopback_oneway_us loopback_oneway_spin_us tcp_segment_ns tcp_ack_ns
wake_remote_ns syscall_indirect_ns epoll_event_ns'
RING_FIGURES='uring_enter_1op_ns uring_op_ns uring_wakeup_us
uring_sleep_cpu_ns uring_sleep_extra_ns'

@test "hostprof: every figure is a median inside its spread" {
	[ -x "$HOSTPROF" ] || skip "$HOSTPROF not built"
	run timeout 60 "$HOSTPROF" --quick
	assert_success
	echo "$output" >"$BATS_TEST_TMPDIR/p.json"
	run ab_json "$BATS_TEST_TMPDIR/p.json" '
keys = """'"$FIGURES"'""".split()
if "io_uring_setup" not in d["errors"]:
    keys += """'"$RING_FIGURES"'""".split()
for k in keys:
    v = d[k]
    assert v["n"] >= 1, (k, v)
    assert v["min"] <= v["q1"] <= v["median"] <= v["q3"] <= v["max"], (k, v)
assert 0 < d["null_syscall_ns"]["median"] < d["ctx_switch_ns"]["median"]
assert d["cpu"] == 0 and d["peer_cpu"] == 1
assert d["cpu_model"] and d["kernel"].startswith("Linux ")
print(len(keys))'
	assert_success
	assert [ "$output" -ge 11 ]
}

@test "hostprof: io_uring denied gives null ring figures and the reason" {
	[ -x "$HOSTPROF" ] || skip "$HOSTPROF not built"
	deny=$AB_BUILD/tests/deny_uring
	[ -x "$deny" ] || skip "$deny not built"
	run timeout 60 "$deny" --errno EPERM -- "$HOSTPROF" --quick
	assert_success
	echo "$output" >"$BATS_TEST_TMPDIR/p.json"
	run ab_json "$BATS_TEST_TMPDIR/p.json" '
for k in """'"$RING_FIGURES"'""".split():
    assert d[k] is None, (k, d[k])
assert "io_uring_setup: Operation not permitted" in d["errors"], d["errors"]
assert d["seccomp"] == "2", d["seccomp"]
assert d["null_syscall_ns"]["median"] > 0
print("ok")'
	assert_output ok
}

@test "hostprof: bad arguments exit 2 with the usage" {
	[ -x "$HOSTPROF" ] || skip "$HOSTPROF not built"
	run "$HOSTPROF" --cpu x
	assert_failure 2
	assert_output --partial 'usage: hostprof'
	run "$HOSTPROF" --bogus
	assert_failure 2
}

@test "hostprof --shim-calls: the calls are the shim's, its counters say" {
	[ -x "$HOSTPROF" ] || skip "$HOSTPROF not built"
	shim=$AB_BUILD/liburingshim.so
	[ -f "$shim" ] || skip "$shim not built"
	run timeout 60 env LD_PRELOAD="$shim" URINGSHIM_ADAPTIVE=0 \
		"$HOSTPROF" --shim-calls --quick
	assert_success
	echo "$output" >"$BATS_TEST_TMPDIR/s.json"
	run ab_json "$BATS_TEST_TMPDIR/s.json" '
n = d["calls"]
assert n > 0 and d["shim_sends_queued"] >= n, d
assert d["shim_served_from_buffer"] >= n, d
for k in ("write_call_ns", "read_call_ns"):
    assert 0 < d[k]["median"], (k, d[k])
print("ok")'
	assert_output ok
	# Without the shim the same calls are syscalls, and nothing says
	# otherwise, not even a stats file that a killed shimmed process
	# left under the pid this one reuses.
	stale=$BATS_TEST_TMPDIR/stale
	mkdir -p "$stale"
	env URINGSHIM_STATS_DIR="$stale" LD_PRELOAD="$shim" \
		bash -c 'kill -KILL $$' || true
	left=$(echo "$stale"/uringshim.*)
	[ -f "$left" ]
	run timeout 60 env URINGSHIM_STATS_DIR="$stale" bash -c \
		'mv "$1" "$URINGSHIM_STATS_DIR/uringshim.$$" &&
		 exec "$2" --shim-calls --quick' _ "$left" "$HOSTPROF"
	assert_success
	echo "$output" >"$BATS_TEST_TMPDIR/p.json"
	run ab_json "$BATS_TEST_TMPDIR/p.json" '
assert d["shim_sends_queued"] == -1 and d["shim_served_from_buffer"] == -1
print("ok")'
	assert_output ok
}
