#!/usr/bin/env bats
# shim_crash.bats - a process killed by SIGSEGV, SIGBUS, SIGFPE, SIGILL or
# SIGABRT still delivers every byte write() acknowledged, and dies the way
# it would without the shim (same signal, same core, its own handler run
# first).  tests/shim/crash_flush is the writer; shim_send_sync.bats has
# the SIGKILL window, which only URINGSHIM_SEND=sync closes.
#
# Before the flush (main at 6a8b4a0), with URINGSHIM_ADAPTIVE=0 (batched
# sends) every signal mode received 0 of the 6400 bytes written, the
# full and thread modes were about 190 KiB short, and only a handler that
# calls _exit delivered everything.
#
# Every shim run must show on stderr that the child's socket was
# accelerated with batched sends (read from its stats file before the
# crash), so nothing here can pass with the shim inactive.

load shim_semantics_helpers

# crash_plain MODE - the plain transcript of MODE, made once per file;
# prints its path.  Plainly nothing may be lost.
crash_plain() {
	local out=$BATS_FILE_TMPDIR/crash.$1.plain status=0

	[ -x "$CORNER_DIR/crash_flush" ] || fail "crash_flush not built"
	if [ ! -f "$out.status" ]; then
		timeout -k 5 "$RUN_TIMEOUT" "$CORNER_DIR/crash_flush" "$1" \
			>"$out" 2>"$out.err" 3>&- || status=$?
		echo "$status" >"$out.status"
	fi
	if [ "$(cat "$out.status")" -ne 0 ]; then
		cat "$out" "$out.err"
		fail "crash_flush $1 exits $(cat "$out.status") without the shim"
	fi
	echo "$out"
}

# crash_shim MODE ENV... - run MODE under the shim with ENV; stdout to
# $out, stderr to $out.err, exit status in $out_status.  Skips when
# io_uring is unavailable; fails unless the child's socket was
# accelerated with batched sends.
crash_shim() {
	local mode=$1 asan=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0

	shift
	require_shim
	out=$BATS_TEST_TMPDIR/crash.$mode.shim
	out_status=0
	timeout -k 5 "$RUN_TIMEOUT" env "$@" ASAN_OPTIONS="$asan" \
		URINGSHIM_STATS_DIR="$BATS_TEST_TMPDIR" \
		LD_PRELOAD="$SHIM_LIB" "$CORNER_DIR/crash_flush" "$mode" \
		>"$out" 2>"$out.err" 3>&- || out_status=$?
	if grep -q 'uringshim.*passthrough' "$out.err"; then
		skip "io_uring unavailable: $(grep -m1 uringshim "$out.err")"
	fi
	grep -q '^crash_flush: child accel_now 1 send_batch 1$' "$out.err" || {
		cat "$out" "$out.err"
		fail "the child's socket was not accelerated with batched sends"
	}
}

# crash_check MODE ENV... - under the shim with ENV, MODE prints the plain
# transcript byte for byte and exits 0 (every byte arrived).
crash_check() {
	local mode=$1 plain

	plain=$(crash_plain "$mode") || return
	crash_shim "$@"
	if ! cmp -s "$plain" "$out"; then
		diff -u "$plain" "$out" | tail -n +3
		cat "$out.err"
		fail "crash_flush $mode: the shim changed what happened"
	fi
	[ "$out_status" -eq 0 ] || { cat "$out.err"; fail "exit $out_status"; }
}

@test "crash abort: batched sends, every byte arrives, dies by SIGABRT" {
	crash_check abort URINGSHIM_ADAPTIVE=0
	assert_equal "$(head -n 1 "$out")" "child: signal ABRT core no"
}

@test "crash segv (NULL store): batched sends, every byte arrives" {
	crash_check segv URINGSHIM_ADAPTIVE=0
	assert_equal "$(head -n 1 "$out")" "child: signal SEGV core no"
}

@test "crash bus: batched sends, every byte arrives" {
	crash_check bus URINGSHIM_ADAPTIVE=0
}

@test "crash fpe: batched sends, every byte arrives" {
	crash_check fpe URINGSHIM_ADAPTIVE=0
}

@test "crash ill: batched sends, every byte arrives" {
	crash_check ill URINGSHIM_ADAPTIVE=0
}

@test "crash handler: the app's handler installed after acceleration runs, sees itself, then the flush" {
	crash_check handler URINGSHIM_ADAPTIVE=0
	grep -qx 'app handler: H' "$out"
}

@test "crash reraise: abort() with a handler that re-raises with SIG_DFL" {
	crash_check reraise URINGSHIM_ADAPTIVE=0
	grep -qx 'app handler: H' "$out"
}

@test "crash resethand: an SA_RESETHAND handler that returns" {
	crash_check resethand URINGSHIM_ADAPTIVE=0
	grep -qx 'app handler: H' "$out"
}

@test "crash exit: a handler that _exit()s keeps its exit status" {
	crash_check exit URINGSHIM_ADAPTIVE=0
	grep -qx 'child: exit 42' "$out"
}

@test "crash recover: a handler that longjmps out of a fault, then abort()" {
	crash_check recover URINGSHIM_ADAPTIVE=0
	grep -qx 'app handler: H' "$out"
}

@test "crash full: ring send waiting for room and bytes behind it" {
	crash_check full URINGSHIM_ADAPTIVE=0
}

@test "crash thread: another thread crashes while the loop thread is blocked" {
	crash_check thread URINGSHIM_ADAPTIVE=0
}

@test "crash full: URINGSHIM_TASKRUN=defer" {
	crash_check full URINGSHIM_ADAPTIVE=0 URINGSHIM_TASKRUN=defer
}

@test "crash abort and segv: default settings" {
	crash_check abort
	crash_check segv
}

@test "crash full: default settings" {
	crash_check full
}

@test "crash stuck: a peer that never reads cannot keep the process alive" {
	crash_plain stuck >/dev/null
	crash_shim stuck URINGSHIM_ADAPTIVE=0
	# What the kernel could not take within the bound is lost (exit 1);
	# the child must still die of its own signal, not hang (exit 2, 124).
	[ "$out_status" -eq 0 ] || [ "$out_status" -eq 1 ] ||
		{ cat "$out" "$out.err"; fail "exit $out_status"; }
	assert_equal "$(head -n 1 "$out")" "child: signal ABRT core no"
}

@test "crash segv and abort: a core is dumped as without the shim" {
	local hard plain

	[ "$(head -c 1 /proc/sys/kernel/core_pattern)" != "|" ] ||
		skip "core_pattern pipes cores to a helper"
	hard=$(ulimit -Hc)
	[ "$hard" != 0 ] || skip "hard RLIMIT_CORE is 0"
	! nm -D "$CORNER_DIR/crash_flush" 2>/dev/null |
		grep -qE '__(asan|tsan)_init' ||
		skip "sanitizer build: a core would hold its shadow memory"
	for mode in segv abort; do
		mkdir -p "$BATS_TEST_TMPDIR/plain.$mode" \
			"$BATS_TEST_TMPDIR/shim.$mode"
		plain=$BATS_TEST_TMPDIR/plain.$mode/out
		CRASH_CORE_DIR=$BATS_TEST_TMPDIR/plain.$mode \
			timeout 60 "$CORNER_DIR/crash_flush" "$mode" >"$plain"
		grep -q '^child: signal .* core yes$' "$plain" ||
			skip "no core plainly either: $(head -n 1 "$plain")"
		crash_shim "$mode" URINGSHIM_ADAPTIVE=0 \
			CRASH_CORE_DIR="$BATS_TEST_TMPDIR/shim.$mode"
		[ "$out_status" -eq 0 ] || { cat "$out.err"; fail "lost bytes"; }
		cmp "$plain" "$out"
		ls "$BATS_TEST_TMPDIR/shim.$mode" | grep -q '^core' ||
			fail "no core file written under the shim"
		rm -f "$BATS_TEST_TMPDIR"/*."$mode"/core*
	done
}

# sigaction_view: the application's own actions, before and after the
# shim takes the fatal signals, and its handlers run as the kernel runs
# them.  The log line proves a socket was accelerated (the shim armed).
@test "sigaction_view: plain" {
	check_plain sigaction_view
}

@test "sigaction_view: shim default, adaptive0, send_sync" {
	local s

	# TSan answers sigaction() from a table of its own (flags and masks
	# as given, handlers run with every signal blocked): the plain
	# transcript is TSan's, not the kernel's the shim reproduces.
	! nm -D "$CORNER_DIR/sigaction_view" 2>/dev/null |
		grep -q '__tsan_init' ||
		skip "TSan build: its own sigaction semantics are the plain run's"
	for s in default adaptive0 send_sync; do
		check_shim sigaction_view "$s"
	done
	run env URINGSHIM_LOG=stderr URINGSHIM_LOG_LEVEL=2 \
		LD_PRELOAD="$SHIM_LIB" "$CORNER_DIR/sigaction_view"
	assert_success
	assert_output --regexp 'exit pid [0-9]+: 1 fds accelerated'
}
