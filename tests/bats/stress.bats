#!/usr/bin/env bats
# stress.bats - the demo server under the shim loses and reorders nothing
# under load and faults. Every test runs build/loadgen --deterministic
# --orders against a plain server and against the shimmed one while the
# disturbance goes on, and requires loadgen's exit status 0 (it verifies
# every response) and the same digest (every connection got the same
# bytes). Disturbances: 10,000 connections, connect/disconnect storms,
# slow consumers the server must cut off, peers resetting mid-batch,
# SIGUSR1 every millisecond, io_uring denied by seccomp, injected ring
# faults (URINGSHIM_FAULT). Each shimmed server must show, from its stats,
# that it served through the ring (passthrough where io_uring is denied).
# Longer runs: `make soak`.

load real_helpers

setup() {
	[ -x "$BUILD_DIR/matching_server" ] || skip "matching_server not built"
	[ -x "$BUILD_DIR/loadgen" ] || skip "loadgen not built"
	require_cmd python3
	peers=$BATS_TEST_DIRNAME/stress_peers.py
	# Raise the soft limit to the hard one: 10,000 connections.
	ulimit -n "$(ulimit -Hn)"
}

teardown() {
	stop_started
}

# start_ms MODE [ENV=VALUE...] [-- SERVER ARGS...] - a matching server on a
# free port; sets ms_pid, ms_port, ms_err (its stderr file).
start_ms() {
	local mode=$1 envs=()
	shift
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		envs+=("$1")
		shift
	done
	[ "${1:-}" = -- ] && shift
	[ "$mode" = shim ] && require_shim
	# A fresh name per start: a stale listening line must never be read.
	ms_starts=$((${ms_starts:-0} + 1))
	ms_out=$BATS_TEST_TMPDIR/ms.$ms_starts.$mode.out
	ms_err=$BATS_TEST_TMPDIR/ms.$ms_starts.$mode.err
	# shellcheck disable=SC2046
	env $(mode_env "$mode") ${ms_wrap:+"${ms_wrap[@]}"} "${envs[@]}" \
		"$BUILD_DIR/matching_server" --port 0 "$@" \
		>"$ms_out" 2>"$ms_err" 3>&- &
	ms_pid=$!
	echo "$ms_pid" >>"$BATS_TEST_TMPDIR/pids"
	wait_listening "$ms_out" "$ms_pid" ||
		{ cat "$ms_err"; fail "no server"; }
	ms_port=$LISTEN_PORT
}

# stop_ms - SIGTERM; the server must exit 0 with its summary line within
# 20 s (a hang guard: it is SIGKILLed and the test fails otherwise).
stop_ms() {
	local status=0 i
	kill -TERM "$ms_pid"
	for i in $(seq 400); do
		kill -0 "$ms_pid" 2>/dev/null || break
		sleep 0.05
	done
	if kill -0 "$ms_pid" 2>/dev/null; then
		kill -KILL "$ms_pid"
		wait "$ms_pid" 2>/dev/null
		fail "server ignored SIGTERM for 20 s"
	fi
	wait "$ms_pid" || status=$?
	[ "$status" -eq 0 ] || { cat "$ms_err"; fail "server exit $status"; }
	grep -q '^summary: ' "$ms_out" || fail "no summary line"
}

# scale_args ARGS... - ARGS with every --orders count multiplied by
# STRESS_SCALE (make soak), in the array scaled.
scale_args() {
	local prev= arg
	scaled=()
	for arg in "$@"; do
		[ "$prev" = --orders ] && arg=$((arg * ${STRESS_SCALE:-1}))
		scaled+=("$arg")
		prev=$arg
	done
}

# lg ARGS... - loadgen --deterministic against the started server; must
# exit 0 with "errors 0"; sets digest.
lg() {
	scale_args "$@"
	run timeout $((120 * ${STRESS_SCALE:-1})) "$BUILD_DIR/loadgen" \
		--host 127.0.0.1 --port "$ms_port" --deterministic --quiet \
		"${scaled[@]}"
	[ "$status" -eq 0 ] || { echo "$output"; fail "loadgen exit $status"; }
	assert_output --regexp 'errors +0'
	digest=$(sed -n 's/^digest: //p' <<<"$output")
	[ -n "$digest" ] || fail "loadgen printed no digest"
}

# plain_digest ARGS... - the digest of a plain server for loadgen ARGS.
plain_digest() {
	start_ms plain -- --quiet
	lg "$@"
	stop_ms
	want=$digest
}

@test "stress: 10,000 concurrent connections, shim digest equals plain" {
	require_shim
	[ "$(ulimit -n)" -ge 10200 ] || skip "RLIMIT_NOFILE hard limit too low"
	local args=(--connections 10000 --inflight 1 --orders 3)
	plain_digest "${args[@]}"
	start_ms shim -- --quiet
	lg "${args[@]}"
	assert_equal "$digest" "$want"
	assert_shim_mapped "$ms_pid"
	assert_accelerated --traffic "$ms_pid"
	[ "$ACCEL" -ge 10000 ] || fail "fewer than 10000 accelerated sockets"
	stop_ms
}

@test "stress: connect/disconnect storm beside a verified load" {
	require_shim
	local args=(--connections 32 --inflight 8 --orders 1500)
	plain_digest "${args[@]}"
	start_ms shim -- --quiet
	python3 "$peers" storm "$ms_port" 2000 >"$BATS_TEST_TMPDIR/storm" &
	local storm=$!
	lg "${args[@]}"
	wait "$storm" || fail "storm client failed"
	assert_equal "$digest" "$want"
	assert_alive "$ms_pid"
	# After the storm, the server still accepts and serves.
	lg "${args[@]}" --symbol-base 100
	assert_accelerated --traffic "$ms_pid"
	stop_ms
}

@test "stress: slow consumers are cut off, the others lose nothing" {
	require_shim
	local args=(--connections 32 --inflight 8 --orders 1500) mode slow
	for mode in plain shim; do
		start_ms "$mode" -- --max-outbuf 262144
		python3 "$peers" slow "$ms_port" 8 100000 15 \
			>"$BATS_TEST_TMPDIR/slow.$mode" &
		slow=$!
		lg "${args[@]}"
		wait "$slow" || fail "$mode: slow client failed"
		[ "$mode" = plain ] && want=$digest
		assert_equal "$digest" "$want"
		[ "$(grep -c 'output backlog' "$ms_err")" -eq 8 ] ||
			fail "$mode: server did not log 8 backlog disconnects"
		[ "$mode" = plain ] || assert_accelerated --traffic "$ms_pid"
		stop_ms
		run cat "$BATS_TEST_TMPDIR/slow.$mode"
		assert_output "slow: 8 of 8 cut off"
	done
}

@test "stress: peers resetting in the middle of a batch" {
	require_shim
	local args=(--connections 32 --inflight 8 --orders 1500)
	plain_digest "${args[@]}"
	start_ms shim -- --quiet
	python3 "$peers" reset "$ms_port" 300 64 >"$BATS_TEST_TMPDIR/reset" &
	local resetter=$!
	lg "${args[@]}"
	wait "$resetter" || fail "reset client failed"
	assert_equal "$digest" "$want"
	lg "${args[@]}" --symbol-base 100
	assert_accelerated --traffic "$ms_pid"
	stop_ms
}

@test "stress: SIGUSR1 every millisecond (EINTR paths), digest unchanged" {
	require_shim
	[ -f "$BUILD_DIR/tests/harden/libsigcount.so" ] ||
		skip "libsigcount.so not built (make test)"
	local args=(--connections 64 --inflight 4 --orders 3000) mode sig pre
	local sigcount=$BUILD_DIR/tests/harden/libsigcount.so
	plain_digest "${args[@]}"
	for mode in plain shim; do
		# The later LD_PRELOAD= wins over the one the mode sets.
		pre=$sigcount
		[ "$mode" = shim ] &&
			pre=${SHIM_PRELOAD_PREFIX:+$SHIM_PRELOAD_PREFIX:}$SHIM_LIB:$sigcount
		start_ms "$mode" LD_PRELOAD="$pre" -- --quiet
		if [ "$mode" = shim ]; then
			assert_shim_mapped "$ms_pid"
		fi
		python3 "$peers" signals "$ms_pid" 10 1 3 \
			>"$BATS_TEST_TMPDIR/sig.$mode" &
		sig=$!
		lg "${args[@]}"
		assert_equal "$digest" "$want"
		lg "${args[@]}" --symbol-base 100
		wait "$sig"
		[ "$mode" = plain ] || assert_accelerated --traffic "$ms_pid"
		stop_ms
		n=$(sed -n 's/^sigcount: \([0-9]*\) SIGUSR1.*/\1/p' "$ms_err")
		[ "${n:-0}" -ge 100 ] || fail "$mode: only '$n' signals handled"
	done
}

@test "stress: io_uring denied by seccomp (EPERM, ENOSYS): passthrough, one log line" {
	require_shim
	local deny=$BUILD_DIR/tests/deny_uring e
	[ -x "$deny" ] || skip "deny_uring not built"
	local args=(--connections 64 --inflight 4 --orders 1000)
	plain_digest "${args[@]}"
	for e in EPERM ENOSYS; do
		ms_wrap=("$deny" --errno "$e" -- env)
		start_ms shim -- --quiet
		lg "${args[@]}"
		assert_equal "$digest" "$want"
		assert_passthrough "$ms_pid"
		stop_ms
		[ "$(grep -c uringshim "$ms_err")" -eq 1 ] ||
			{ cat "$ms_err"; fail "$e: not exactly one uringshim line"; }
		grep uringshim "$ms_err" | grep -q passthrough ||
			fail "$e: the line does not say passthrough"
		unset ms_wrap
	done
}

@test "stress: injected ring faults (URINGSHIM_FAULT) lose nothing" {
	require_shim
	grep -q 'sq-full' "$SHIM_LIB" || skip "shim has no URINGSHIM_FAULT"
	local args=(--connections 64 --inflight 8 --orders 1500) spec idle
	plain_digest "${args[@]}"
	# eagain:1 fails EVERY ring send/recv with -EAGAIN before it runs:
	# the shim must retry boundedly, then take the plain syscalls, and
	# still deliver everything.
	for spec in sq-full cq-overflow enomem:3 enobufs:2 eagain:5 eagain:1; do
		start_ms shim URINGSHIM_FAULT=$spec URINGSHIM_ADAPTIVE=0 \
			URINGSHIM_RING_ENTRIES=8 -- --quiet
		if [ "$spec" = eagain:1 ]; then
			scale_args "${args[@]}"
			run timeout 120 "$BUILD_DIR/loadgen" --host 127.0.0.1 \
				--port "$ms_port" --deterministic --quiet \
				"${scaled[@]}"
			[ "$status" -eq 0 ] || fail "FAULT=$spec: $output"
			digest=$(sed -n 's/^digest: //p' <<<"$output")
			# Idle once the clients are gone: no retry loop spins
			# on (an EOF once became a retryable error for ever).
			sleep 0.5
			idle=$(shim_stat_field "$ms_pid" fallbacks)
			sleep 0.5
			[ "$(shim_stat_field "$ms_pid" fallbacks)" -eq "$idle" ] ||
				fail "FAULT=$spec: still retrying while idle"
		else
			lg "${args[@]}"
		fi
		[ "$digest" = "$want" ] || fail "FAULT=$spec: digest $digest != $want"
		assert_accelerated --traffic "$ms_pid"
		# The injected completion errors really happened (the shim
		# counts each retried transient error as a fallback).
		if [[ $spec == *:* ]]; then
			[ "$(shim_stat_field "$ms_pid" fallbacks)" -gt 0 ] ||
				fail "FAULT=$spec: no injected error seen"
		fi
		stop_ms
		! grep -q 'bad value' "$ms_err" || fail "FAULT=$spec not accepted"
	done
}
