#!/usr/bin/env bats
# ab.bats - the A/B harness (bench/ab): a tiny real run produces the report,
# the JSON, the raw runs and the plots, with the verdict as the last line;
# a condition whose digest differs, or whose load generator fails, is a
# loud correctness failure with a non-zero exit. Never asserts that any
# ratio is good: the figures are the harness's output, not its contract.

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
load 'ab_helpers'
load 'common'

setup_file() {
	ab_require_binaries || return 0
	export QUICK_OUT=$BATS_FILE_TMPDIR/quick
	# One quick run shared by the tests below (about 10-20 s).
	timeout -k 5 180 "$TOP/bench/ab" --quick --out "$QUICK_OUT" \
		>"$BATS_FILE_TMPDIR/quick.log" 2>&1
	echo $? >"$BATS_FILE_TMPDIR/quick.rc"
}

needs_binaries() {
	ab_require_binaries || skip "$AB_SKIP_REASON"
}

@test "ab: --quick run succeeds and writes report.md, report.json, meta" {
	needs_binaries
	# A failure here may be the harness or what it measured (a digest
	# mismatch under the shim): the log says which.
	run tail -n 25 "$BATS_FILE_TMPDIR/quick.log"
	echo "$output"
	assert_equal "$(cat "$BATS_FILE_TMPDIR/quick.rc")" 0
	assert [ -s "$QUICK_OUT/report.md" ]
	assert [ -s "$QUICK_OUT/report.json" ]
	assert [ -s "$QUICK_OUT/meta.json" ]
	run grep -c '^## ' "$QUICK_OUT/report.md"
	assert [ "$output" -ge 4 ]
}

@test "ab: the verdict is the last line printed and is in the report" {
	needs_binaries
	run tail -n 1 "$BATS_FILE_TMPDIR/quick.log"
	assert_output --regexp '^verdict: '
	verdict=$output
	run grep -F -- "$verdict" "$QUICK_OUT/report.md"
	assert_success
}

@test "ab: raw JSON for every scenario, repetition and condition" {
	needs_binaries
	run ab_json "$QUICK_OUT/report.json" '
conds = d["meta"]["conditions"].split()
assert conds[:2] == ["baseline", "aa"], conds
scope = {}
for line in d["meta"]["condition_table"].splitlines():
    f = line.split("\t")
    scope[f[0]] = f[4]
for s in ("c16", "digest"):
    want = [c for c in conds if scope[c] == "all" and
            not (s == "digest" and c == "aa")]
    for rep in (1, 2):
        for c in want:
            raw = "%s/raw/%s-r%d-%s.json" % (out, s, rep, c)
            r = json.load(open(raw))
            assert r["scenario"] == s and r["condition"] == c, raw
            json.load(open("%s/raw/%s" % (out, r["loadgen_file"])))
    # the spinning conditions run only in the latency scenarios
    assert sorted(d["summary"][s]) == sorted(want), (s, d["summary"][s])
print(len(conds))'
	assert_success
	assert [ "$output" -ge 2 ]
}

@test "ab: per-request figures are positive and reported with their spread" {
	needs_binaries
	run ab_json "$QUICK_OUT/report.json" '
assert d["correct"] is True
for cond, e in d["summary"]["c16"].items():
    for key in ("throughput", "cpu_us_per_req", "ctxsw_per_req", "p99",
                "segs_out_per_req", "segs_in_per_req"):
        v = e["values"][key]
        assert v["n"] == 2, (cond, key, v)
        assert 0 < v["min"] <= v["median"] <= v["max"], (cond, key, v)
    if cond != "baseline":
        r = e["ratios"]["cpu_us_per_req"]
        assert r["n"] == 2 and r["ci"][0] <= r["median"] <= r["ci"][1], r
perf = d["meta"]["perf"]
s = d["summary"]["c16"]["baseline"]["values"]["syscalls_per_req"]
assert (s is not None and s["min"] > 0) if perf else s is None, (perf, s)
print("ok")'
	assert_success
	assert_output ok
}

@test "ab: host profile, A/A band and predicted ratios are numbers" {
	needs_binaries
	run ab_json "$QUICK_OUT/report.json" '
hp = d["host_profile"]
assert hp["cpu_model"] and hp["kernel"], hp
assert "io_uring_disabled_sysctl" in hp and "seccomp" in hp, hp
keys = ["null_syscall_ns", "ctx_switch_ns", "wakeup_us",
        "epoll_sleep_cpu_ns", "loopback_oneway_us", "tcp_segment_ns",
        "tcp_ack_ns", "wake_remote_ns"]
if "io_uring_setup" not in hp["errors"]:
    keys += ["uring_enter_1op_ns", "uring_op_ns", "uring_wakeup_us"]
for k in keys:
    v = hp[k]
    assert v["n"] >= 1 and v["min"] <= v["q1"] <= v["median"], (k, v)
    assert v["median"] <= v["q3"] <= v["max"], (k, v)
assert hp["null_syscall_ns"]["median"] > 0
# the shim calls were measured, and its counters confirm them
assert hp["shim_calls_verified"] is True, hp
assert hp["shim_write_call_ns"]["median"] > 0
band = d["aa"]["c16"]["band"]["cpu_us_per_req"]
assert 0 < band["lo"] <= 1 <= band["hi"], band
assert d["aa"]["c16"]["ratios"]["cpu_us_per_req"]["n"] == 2
for c, e in d["summary"]["c16"].items():
    if c == "baseline":
        continue
    for k in ("cpu_ratio", "predicted_cpu_ratio"):
        assert isinstance(e[k], float) and e[k] > 0, (c, k, e[k])
    assert set(e["model"]["terms"]) >= {"syscalls", "segments", "acks"}, \
        e["model"]
print("ok")'
	assert_success
	assert_output ok
}

@test "ab: the report opens with the answer, the host profile and the model" {
	needs_binaries
	# The first paragraph after the title is the answer, in numbers.
	run sed -n 3p "$QUICK_OUT/report.md"
	assert_output --regexp '^\*\*Is io_uring a deep improvement .* null syscall [0-9.]+ ns\)\? (Yes|No)\.\*\*'
	assert_output --partial 'A/A band'
	assert_output --partial 'cost model'
	run grep -c -e '^## Host profile' -e '^## CPU per request: measured against the cost model' "$QUICK_OUT/report.md"
	assert_output 2
	run head -c 4 "$QUICK_OUT/plots/model_syscall_cost.png"
	assert_output --partial PNG
}

@test "ab: every condition of the digest run matched the baseline" {
	needs_binaries
	run ab_json "$QUICK_OUT/report.json" '
runs = [r for r in d["runs"] if r["scenario"] == "digest"]
assert runs and all(r["digest"] for r in runs)
for rep in (1, 2):
    assert len({r["digest"] for r in runs if r["rep"] == rep}) == 1
print(len(d["digests"]))'
	assert_success
	run grep -c 'identical to baseline' "$QUICK_OUT/report.md"
	# One line per repetition when anything besides the baseline ran.
	ncond=$(ab_json "$QUICK_OUT/report.json" \
		'print(len(d["meta"]["conditions"].split()))')
	if [ "$ncond" -gt 1 ]; then
		assert_output 2
	fi
}

@test "ab: the shim condition ran the shim, serving through the ring" {
	needs_binaries
	local rep f saved=()
	# The stats bench/ab saved during each measured window of "shim".
	for rep in 1 2; do
		f=$(ab_json "$QUICK_OUT/raw/c16-r$rep-shim.json" \
			'print(d["shim_stats_file"] or "")')
		[ -n "$f" ] || fail "c16 rep $rep of shim: no shim stats saved"
		saved+=("$QUICK_OUT/raw/$f")
	done
	assert_accelerated -j --traffic "${saved[@]}"
}

@test "ab: epoll-spin spins with no ring, and the verdict says so calmly" {
	needs_binaries
	local out=$BATS_TEST_TMPDIR/es f
	run timeout -k 5 120 "$TOP/bench/ab" --quick --scenarios lat1 \
		--conditions baseline,epoll-spin --out "$out"
	assert_success
	refute_line --partial "not active"
	f=$(ab_json "$out/raw/lat1-r1-epoll-spin.json" \
		'print(d["shim_stats_end_file"] or "")')
	[ -n "$f" ] || fail "lat1 rep 1 of epoll-spin: no shim stats saved"
	run ab_json "$out/raw/$f" '
assert d["state"] == "init" and "SPIN_RING=0" in d["reason"], d["reason"]
assert d["spin_hits"] > 0 and d["enters"] == 0, d
print("ok")'
	assert_output ok
}

@test "ab: the plots are PNG files" {
	needs_binaries
	for png in throughput cpu_per_request latency_c16; do
		run head -c 4 "$QUICK_OUT/plots/$png.png"
		assert_output --partial PNG
	done
	perf=$(ab_json "$QUICK_OUT/report.json" 'print(d["meta"]["perf"])')
	if [ "$perf" = 1 ]; then
		run head -c 4 "$QUICK_OUT/plots/syscalls_per_request.png"
		assert_output --partial PNG
	fi
}

@test "ab: a condition with a different digest is a loud failure" {
	needs_binaries
	# "odd" runs the real load generator with another seed, "same" with
	# the same one: only "odd" may be reported.
	ab_fake_loadgen odd seed
	run timeout -k 5 120 "$TOP/bench/ab" --scenarios digest --reps 1 \
		--orders 50 --conditions baseline --loadgen "$FAKE_LOADGEN" \
		--condition odd:NOSHIM=1 --condition same:NOSHIM=1 \
		--out "$BATS_TEST_TMPDIR/out"
	assert_equal "$status" 3
	assert_output --partial 'DIGEST MISMATCH in digest rep 1: odd gave'
	refute_output --partial 'same gave'
	assert_line --index -1 --regexp '^verdict: CORRECTNESS FAILURE'
	run grep -F '**FAILED**' "$BATS_TEST_TMPDIR/out/report.md"
	assert_success
	run ab_json "$BATS_TEST_TMPDIR/out/report.json" 'print(d["correct"])'
	assert_output False
}

@test "ab: a failing load generator makes the run fail, not vanish" {
	needs_binaries
	ab_fake_loadgen broken exit
	run timeout -k 5 120 "$TOP/bench/ab" --scenarios c16 --reps 1 \
		--duration 0.5 --warmup 0.1 --conditions baseline \
		--loadgen "$FAKE_LOADGEN" --condition broken:NOSHIM=1 \
		--out "$BATS_TEST_TMPDIR/out"
	assert_equal "$status" 3
	assert_output --partial 'c16-r1-broken: FAILED (load generator exit'
	assert_line --index -1 --regexp '^verdict: CORRECTNESS FAILURE'
}

@test "ab: bad options and a missing server fail at once" {
	needs_binaries
	run timeout 10 "$TOP/bench/ab" --scenarios nosuch
	assert_failure 1
	assert_output --partial "unknown scenario 'nosuch'"
	run timeout 10 "$TOP/bench/ab" --server /nonexistent/server
	assert_failure 1
	assert_output --partial 'no server at /nonexistent/server'
	run timeout 10 "$TOP/bench/ab" --condition 'x:bad setting'
	assert_failure 1
	run timeout 10 "$TOP/bench/ab" --net lo,wifi
	assert_failure 1
	assert_output --partial "unknown network path 'wifi'"
	# --client-spin needs a load generator that knows --spin.
	printf '#!/bin/sh\necho "usage: loadgen --host ADDR"\n' \
		>"$BATS_TEST_TMPDIR/old_loadgen"
	chmod +x "$BATS_TEST_TMPDIR/old_loadgen"
	run timeout 10 "$TOP/bench/ab" --client-spin \
		--loadgen "$BATS_TEST_TMPDIR/old_loadgen"
	assert_failure 1
	assert_output --partial 'has no --spin option'
}

@test "ab_report: per-request arithmetic and paired ratios on known samples" {
	# Two conditions, two repetitions, figures chosen by hand: 100000
	# requests arrive in each window (3.2 MB at 32 bytes per request).
	out=$BATS_TEST_TMPDIR/synthetic
	mkdir -p "$out/raw/logs"
	echo '{"conditions": "baseline cheap", "scenarios": "c16",
	       "reps": 2, "perf": 1}' >"$out/meta.json"
	for rep in 1 2; do
		ab_synthetic_run "$out" baseline "$rep" 100 300000 0
		ab_synthetic_run "$out" cheap "$rep" $((40 + 10 * rep)) 20000 0
	done
	run python3 "$TOP/bench/ab_report.py" report "$out"
	assert_success
	# baseline: 100 ticks = 1 s of CPU / 100000 requests = 10 us, and
	# 300000 syscalls over the same count = 3 per request; cheap: 5 and
	# 6 us (ratios 0.5 and 0.6, median 0.55), 0.2 syscalls.
	expected='verdict: cheap CPU/request 0.55x baseline (0.5-0.6, real) at'
	expected+=' N=16, syscalls/request 0.2 vs 3'
	assert_line --index -1 "$expected"
	run ab_json "$out/report.json" '
v = d["summary"]["c16"]["baseline"]["values"]
assert abs(v["cpu_us_per_req"]["median"] - 10) < 1e-9, v
assert abs(v["syscalls_per_req"]["median"] - 3) < 1e-9, v
assert abs(v["ctxsw_per_req"]["median"] - 0.01) < 1e-9, v
r = d["summary"]["c16"]["cheap"]["ratios"]["cpu_us_per_req"]
assert (r["min"], r["max"]) == (0.5, 0.6), r
assert r["ci"] == [0.5, 0.6], r
v = d["summary"]["c16"]["cheap"]["values"]
assert abs(v["segs_out_per_req"]["median"] - 2) < 1e-9, v
assert abs(v["acks_out_per_req"]["median"] - 0.5) < 1e-9, v
print("ok")'
	assert_output ok
}

@test "ab_report: a condition costing more is listed as a loss" {
	out=$BATS_TEST_TMPDIR/loss
	mkdir -p "$out/raw/logs"
	echo '{"conditions": "baseline dear", "scenarios": "c16",
	       "reps": 1, "perf": 1}' >"$out/meta.json"
	ab_synthetic_run "$out" baseline 1 100 300000 0
	ab_synthetic_run "$out" dear 1 130 300000 0
	run python3 "$TOP/bench/ab_report.py" report "$out"
	assert_success
	assert_line --index -1 --partial '; loses: dear at N=16 (1.3x)'
}

@test "ab: a condition named a\"b is reported in valid JSON" {
	needs_binaries
	run timeout -k 5 120 "$TOP/bench/ab" --scenarios c16 --reps 1 \
		--duration 1 --warmup 0.1 --conditions baseline \
		--condition 'a"b:NOSHIM=1' --out "$BATS_TEST_TMPDIR/out"
	assert_success
	assert_line --index -1 --regexp '^verdict: a"b CPU/request '
	run ab_json "$BATS_TEST_TMPDIR/out/report.json" '
assert d["meta"]["conditions"].split() == ["baseline", "aa", "a\"b"]
e = d["summary"]["c16"]["a\"b"]
# a number (on a machine busy with other work it may be 0)
assert isinstance(e["values"]["cpu_us_per_req"]["median"], float), e
print([r["tag"] for r in d["runs"] if r["condition"] == "a\"b"][0])'
	assert_success
	# Files use a safe slug of the name.
	assert_output 'c16-r1-a_b-2'
}

@test "ab: a server that does not start under a condition is a failure" {
	needs_binaries
	run timeout -k 5 60 "$TOP/bench/ab" --scenarios c16 --reps 1 \
		--duration 0.5 --warmup 0.1 --conditions baseline \
		--condition 'nostart:NOSHIM=1,SERVER_ARGS=--no-such-option' \
		--out "$BATS_TEST_TMPDIR/out"
	assert_equal "$status" 3
	assert_output --partial 'c16-r1-nostart: FAILED (server did not start)'
	assert_line --index -1 --regexp '^verdict: CORRECTNESS FAILURE'
}

# ab_namespaces - the network namespaces bench/ab names ab<PID>h<N>.
ab_namespaces() {
	ip netns list 2>/dev/null | awk '$1 ~ /^ab[0-9]+h[0-9]$/ { print $1 }' |
		sort
}

needs_netns() {
	needs_binaries
	ip netns add "abprobe$$" 2>/dev/null ||
		skip "cannot create network namespaces here"
	ip netns del "abprobe$$"
}

@test "ab: --net veth,veth-rps run beside loopback, namespaces removed" {
	needs_netns
	before=$(ab_namespaces)
	run timeout -k 5 180 "$TOP/bench/ab" --scenarios c16 --reps 1 \
		--max-reps 1 --duration 0.5 --warmup 0.1 \
		--conditions baseline --net lo,veth,veth-rps \
		--out "$BATS_TEST_TMPDIR/out"
	assert_success
	assert_equal "$(ab_namespaces)" "$before"
	run ab_json "$BATS_TEST_TMPDIR/out/report.json" '
assert {"c16", "c16.veth", "c16.veth-rps"} <= set(d["summary"]), d["summary"]
for s, net in (("c16", "lo"), ("c16.veth", "veth"),
               ("c16.veth-rps", "veth-rps")):
    r = json.load(open("%s/raw/%s-r1-baseline.json" % (out, s)))
    assert r["net"] == net, r
    # the server on veth listened on its namespace address
    assert ("127.0.0.1" in r["args"]) == (net == "lo"), r["args"]
print("ok")'
	assert_output ok
	run grep -c '^## Network paths' "$BATS_TEST_TMPDIR/out/report.md"
	assert_output 1
}

@test "ab: a --net veth run stopped midway removes its namespaces" {
	needs_netns
	before=$(ab_namespaces)
	"$TOP/bench/ab" --scenarios c16 --reps 3 --duration 5 \
		--conditions baseline --net veth \
		--out "$BATS_TEST_TMPDIR/out" >"$BATS_TEST_TMPDIR/log" 2>&1 3>&- &
	pid=$!
	for _ in $(seq 100); do
		[ "$(ab_namespaces)" != "$before" ] && break
		sleep 0.1
	done
	refute [ "$(ab_namespaces)" = "$before" ]
	sleep 1
	kill -TERM "$pid"
	wait "$pid" || true
	assert_equal "$(ab_namespaces)" "$before"
	run grep -c 'interrupted' "$BATS_TEST_TMPDIR/log"
	assert_output 1
	# no server or load generator of the run is left
	run pgrep -f "$BATS_TEST_TMPDIR/out"
	assert_failure
}
