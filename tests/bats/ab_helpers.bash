# ab_helpers.bash - helpers of tests/bats/ab.bats (the A/B harness).
# shellcheck disable=SC2034 # variables are used by ab.bats

TOP=${TOP:-$(cd "$BATS_TEST_DIRNAME/../.." && pwd)}
BUILD=${BUILD:-build}
export TOP BUILD
AB_BUILD=$BUILD
[[ $AB_BUILD = /* ]] || AB_BUILD=$TOP/$AB_BUILD

# ab_require_binaries - true when the server and the load generator are
# built; otherwise false with the reason in AB_SKIP_REASON.
ab_require_binaries() {
	local bin
	for bin in matching_server loadgen; do
		if [ ! -x "$AB_BUILD/$bin" ]; then
			AB_SKIP_REASON="$AB_BUILD/$bin not built"
			return 1
		fi
	done
}

# ab_json FILE CODE - run python CODE with d = the JSON in FILE and out =
# its directory; an assert in CODE fails the command.
ab_json() {
	python3 -c "import json, os, sys
out = os.path.dirname(sys.argv[1])
d = json.load(open(sys.argv[1]))
$2" "$1"
}

# ab_fake_loadgen CONDITION MODE - write $FAKE_LOADGEN, a stand-in that runs
# the real load generator except under CONDITION (bench/ab exports
# AB_CONDITION), where MODE "seed" shifts --seed (so its digest differs)
# and MODE "exit" fails with status 1 without running it.
ab_fake_loadgen() {
	FAKE_LOADGEN=$BATS_TEST_TMPDIR/fake_loadgen
	cat >"$FAKE_LOADGEN" <<SCRIPT
#!/usr/bin/env bash
real=$AB_BUILD/loadgen
[ "\${AB_CONDITION:-}" = "$1" ] || exec "\$real" "\$@"
case $2 in
exit)	echo "fake loadgen: failing on purpose" >&2; exit 1 ;;
seed)	args=()
	while [ \$# -gt 0 ]; do
		if [ "\$1" = --seed ]; then
			args+=(--seed \$((\$2 + 1000))); shift 2
		else
			args+=("\$1"); shift
		fi
	done
	exec "\$real" "\${args[@]}" ;;
esac
SCRIPT
	chmod +x "$FAKE_LOADGEN"
}

# ab_synthetic_run OUT COND REP TICKS SYSCALLS LOADGEN_STATUS - write the
# raw files bench/ab would write for one c16 run with known figures: a 1 s
# CPU window with TICKS clock ticks (100 per s, all system time, and as
# many schedstat nanoseconds), a 1 s perf window counting SYSCALLS, 3.2 MB
# received in each window at 32 bytes per request, 1000 context switches
# and 200000 segments sent, 150000 of them with data.
ab_synthetic_run() {
	local out=$1 tag=c16-r$3-$2
	cat >"$out/raw/$tag.loadgen.json" <<JSON
{"requests": 500000, "errors": 0, "throughput": 100000, "bytes_out": 16000000,
 "latency_us": {"p50": 10, "p90": 20, "p99": 30, "p99_9": 40, "p99_99": 50,
 "max": 60}, "digest": null, "duration_s": 5, "md_bytes": 0}
JSON
	printf ' Performance counter stats for process id 1:\n\n' \
		>"$out/raw/logs/$tag.perf"
	printf '%16d      raw_syscalls:sys_enter\n' "$5" \
		>>"$out/raw/logs/$tag.perf"
	printf '\n       1.000000000 seconds time elapsed\n' \
		>>"$out/raw/logs/$tag.perf"
	cat >"$out/raw/$tag.json" <<JSON
{"tag": "$tag", "scenario": "c16", "condition": "$2", "rep": $3,
 "kind": "closed", "net": "lo", "wait": "epoll", "args": "", "rate": null,
 "clk_tck": 100, "utime": [0, 0], "stime": [1000, $((1000 + $4))],
 "run_ns": [0, $(($4 * 10000000))], "vol_ctxsw": [5000, 5900],
 "invol_ctxsw": [10, 110], "client_run_ns": [null, null],
 "cpu_window_s": 1.0, "perf_outer_s": 1.0,
 "rx_bytes": [0, 3200000, 4000000, 7200000],
 "segs_out": [0, 200000], "segs_in": [0, 100000],
 "data_segs_out": [0, 150000],
 "snmp_in_segs": [null, null], "snmp_out_segs": [null, null],
 "snmp_retrans_segs": [null, null],
 "cpu_window_covered": true, "perf_window_covered": true,
 "loadgen_status": $6, "server_status": 0,
 "perf_file": "logs/$tag.perf", "server_summary": "",
 "shim_stats_file": null, "shim_stats_end_file": null,
 "loadgen_file": "$tag.loadgen.json", "error": null}
JSON
}
