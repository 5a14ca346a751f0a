#!/usr/bin/env bats
# memcheck.bats - the demo server, plainly and under the shim, runs clean
# under valgrind memcheck through a short verified load: no invalid
# accesses, no definite or indirect leaks (--error-exitcode makes any of
# them the server's exit status), same digest as without valgrind.
#
# valgrind 3.19 passes io_uring_setup/enter through but cannot know that
# the kernel filled a receive buffer asynchronously through the ring, so
# every byte received that way looks uninitialised to it. The ring-receive
# run therefore turns off undefined-value tracking only
# (--undef-value-errors=no: invalid reads/writes, bad frees and leaks are
# still errors); the URINGSHIM_RECV=direct run keeps full checking.

load real_helpers

setup() {
	require_cmd valgrind
	[ -x "$BUILD_DIR/matching_server" ] || skip "matching_server not built"
	[ -x "$BUILD_DIR/loadgen" ] || skip "loadgen not built"
	# valgrind cannot run a binary built with ASan or TSan (their shadow
	# memory); `make valgrind` uses the plain build.
	! nm -D "$BUILD_DIR/matching_server" 2>/dev/null |
		grep -qE '__(asan|tsan)_init' ||
		skip "sanitizer build: valgrind cannot run it (use make valgrind)"
}

teardown() {
	stop_started
}

# vg_run MODE [VALGRIND OPTION...] [-- ENV=VALUE...] - the server under
# valgrind serves a verified load, then exits 0 on SIGTERM; sets digest.
# Under mode shim, VG_ACCEL says what its stats must show before the stop:
# "ring" (sockets went through the ring, the default) or "none" (the shim
# active, no socket taken).
vg_run() {
	local mode=$1 vgopts=() envs=() out err status=0 srv
	shift
	while [ $# -gt 0 ] && [ "$1" != -- ]; do vgopts+=("$1"); shift; done
	[ "${1:-}" = -- ] && shift
	envs=("$@")
	[ "$mode" = shim ] && require_shim
	out=$BATS_TEST_TMPDIR/vg.out
	err=$BATS_TEST_TMPDIR/vg.err
	rm -f "$out" "$err"
	# shellcheck disable=SC2046
	env $(mode_env "$mode") "${envs[@]}" timeout -s INT 300 valgrind -q \
		--error-exitcode=99 --leak-check=full \
		--errors-for-leak-kinds=definite,indirect \
		--show-leak-kinds=definite,indirect "${vgopts[@]}" \
		"$BUILD_DIR/matching_server" --port 0 --quiet \
		>"$out" 2>"$err" 3>&- &
	local pid=$!
	echo "$pid" >>"$BATS_TEST_TMPDIR/pids"
	# valgrind starts slowly: up to 30 s.
	wait_listening "$out" "$pid" 600 || { cat "$err"; fail "no server"; }
	run timeout 120 "$BUILD_DIR/loadgen" --host 127.0.0.1 \
		--port "$LISTEN_PORT" --connections 16 --inflight 4 \
		--orders 300 --deterministic --quiet
	[ "$status" -eq 0 ] || fail "loadgen: $output"
	digest=$(sed -n 's/^digest: //p' <<<"$output")
	# The server itself is timeout's child (valgrind runs it in-process).
	srv=$(cat /proc/"$pid"/task/*/children | tr -d ' ')
	if [ "$mode" = shim ] && [ "${VG_ACCEL:-ring}" = none ]; then
		assert_not_accelerated --state active "$srv"
	elif [ "$mode" = shim ]; then
		assert_accelerated --traffic "$srv"
	fi
	# SIGTERM to the server, then timeout exits with the server's status.
	kill -TERM "$srv"
	wait "$pid" || status=$?
	[ "$status" -eq 0 ] || { cat "$err"; fail "valgrind exit $status"; }
}

@test "memcheck: plain server clean (errors and leaks)" {
	vg_run plain
	[ -n "$digest" ]
}

@test "memcheck: shim with ring receives: no invalid access, no leak" {
	vg_run plain
	local want=$digest
	vg_run shim --undef-value-errors=no -- URINGSHIM_ADAPTIVE=0
	assert_equal "$digest" "$want"
}

@test "memcheck: shim with URINGSHIM_RECV=direct (no socket accelerated): fully clean" {
	vg_run plain
	local want=$digest
	VG_ACCEL=none vg_run shim -- URINGSHIM_RECV=direct URINGSHIM_ADAPTIVE=0
	assert_equal "$digest" "$want"
}
