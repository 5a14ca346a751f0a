#!/usr/bin/env bats
# shim_ops.bats - operating liburingshim.so: the stats file and
# uringshim-stat, settings validation, the log file's safety rules, the
# kill file, and the fallback to passthrough when io_uring is refused.

load shim_helpers

setup() {
	export URINGSHIM_STATS_DIR=$BATS_TEST_TMPDIR
}

teardown() {
	kill_started_servers
}

@test "stats file: mode 0600, readable while running, removed at exit" {
	require_io_uring
	local f

	shim_server LD_PRELOAD="$SHIM_LIB" --
	f=$URINGSHIM_STATS_DIR/uringshim.$SERVER_PID
	[ -f "$f" ]
	[ "$(stat -c %a "$f")" = 600 ]
	run "$SHIM_STAT" "$SERVER_PID"
	assert_success
	assert_line --regexp '^state: (init|active)$'
	assert_line --regexp '^call\.epoll_wait: [0-9]+$'
	assert_line --regexp '^batch\.1: [0-9]+$'
	stop_server INT
	[ "$SERVER_STATUS" -eq 0 ]
	[ ! -e "$f" ]
	run "$SHIM_STAT" "$SERVER_PID"
	assert_failure 1
}

@test "uringshim-stat --json is valid JSON with the counters" {
	require_io_uring
	shim_server LD_PRELOAD="$SHIM_LIB" --
	[ -x "$LOADGEN_BIN" ] && loadgen_digest 2 200 >/dev/null
	run "$SHIM_STAT" --json "$SERVER_PID"
	assert_success
	run jq -e '.pid > 0 and (.enters >= 0) and (.calls.epoll_wait >= 1)
		   and (.batch_log2 | length) == 16' <<<"$output"
	assert_success
}

@test "uringshim-stat -w repeats until the process exits" {
	require_io_uring
	shim_server LD_PRELOAD="$SHIM_LIB" --
	(sleep 2.5; kill -INT "$SERVER_PID") &
	run timeout 20 "$SHIM_STAT" -w 1 "$SERVER_PID"
	assert_success
	[ "$(grep -c '^pid: ' <<<"$output")" -ge 2 ]
}

@test "uringshim-stat: usage errors and foreign files" {
	run "$SHIM_STAT"
	assert_failure 2
	run "$SHIM_STAT" notapid
	assert_failure 2
	echo junk >"$URINGSHIM_STATS_DIR/uringshim.4242"
	run "$SHIM_STAT" 4242
	assert_failure 1
}

@test "settings: unknown names and bad values warn once, defaults used" {
	shim_server LD_PRELOAD="$SHIM_LIB" URINGSHIM_BOGUS=1 \
		URINGSHIM_SEND=fast URINGSHIM_RING_ENTRIES=-4 --
	run cat "$SERVER_LOG"
	assert_line --partial 'unknown setting URINGSHIM_BOGUS ignored'
	assert_line --partial 'URINGSHIM_SEND=fast (bad value)'
	assert_line --partial 'URINGSHIM_RING_ENTRIES=-4 (bad value)'
	[ "$(grep -c BOGUS "$SERVER_LOG")" -eq 1 ]
	[ -x "$LOADGEN_BIN" ] || return 0
	run loadgen_digest 2 100
	assert_success
	# The defaults really are in use: the sockets go through the ring.
	assert_accelerated --traffic "$SERVER_PID"
}

@test "log: created 0600, never follows a symlink nor clobbers others" {
	local log=$BATS_TEST_TMPDIR/shim.log link=$BATS_TEST_TMPDIR/link.log
	local victim=$BATS_TEST_TMPDIR/victim

	shim_server LD_PRELOAD="$SHIM_LIB" URINGSHIM_LOG="$log" \
		URINGSHIM_LOG_LEVEL=2 --
	stop_server INT
	[ "$(stat -c %a "$log")" = 600 ]
	grep -q 'uringshim: loaded in pid' "$log"

	echo precious >"$victim"
	ln -s "$victim" "$link"
	shim_server LD_PRELOAD="$SHIM_LIB" URINGSHIM_LOG="$link" \
		URINGSHIM_LOG_LEVEL=2 --
	stop_server INT
	[ "$(cat "$victim")" = precious ]
	grep -q 'cannot open log' "$SERVER_LOG"
}

@test "kill file: the process switches to passthrough and keeps serving" {
	require_io_uring
	[ -x "$LOADGEN_BIN" ] || skip "loadgen not built"
	local kf=$BATS_TEST_TMPDIR/kill plain d

	# The same two runs on a plain server give the reference digest.
	shim_server --
	loadgen_digest 4 100 >/dev/null
	plain=$(loadgen_digest 4 400)
	stop_server INT
	shim_server LD_PRELOAD="$SHIM_LIB" URINGSHIM_KILLFILE="$kf" --
	loadgen_digest 4 100 >/dev/null
	# Something to switch off: the sockets went through the ring.
	assert_accelerated --traffic "$SERVER_PID"
	touch "$kf"
	d=$(loadgen_digest 4 400)
	run stat_field "$SERVER_PID" state
	assert_output killed
	stop_server INT
	[ "$SERVER_STATUS" -eq 0 ]
	grep -q "kill file $kf found" "$SERVER_LOG"
	# The run that crossed the switch served the same bytes.
	[ "$d" = "$plain" ]
}

@test "io_uring refused by seccomp: one stderr line, passthrough, same bytes" {
	local deny=$BUILD_DIR/tests/deny_uring plain d

	[ -x "$deny" ] || skip "deny_uring not built"
	[ -x "$LOADGEN_BIN" ] || skip "loadgen not built"
	digest_of -- 4 300
	plain=$DIGEST
	SHIM_WRAP=("$deny" --)
	shim_server LD_PRELOAD="$SHIM_LIB" --
	SHIM_WRAP=()
	d=$(loadgen_digest 4 300)
	[ "$d" = "$plain" ]
	assert_passthrough "$SERVER_PID"
	run stat_field "$SERVER_PID" reason
	assert_output --partial 'Operation not permitted'
	[ "$(grep -c 'uringshim: io_uring unavailable (Operation not permitted): passthrough' "$SERVER_LOG")" -eq 1 ]
	[ "$(ring_fds "$SERVER_PID")" -eq 0 ]
}

@test "fork: the child never touches the parent's ring" {
	require_io_uring
	local out kept=$BATS_TEST_TMPDIR/kept

	mkdir "$kept"
	out=$(LD_PRELOAD="$SHIM_LIB" URINGSHIM_LOG=stderr \
		URINGSHIM_LOG_LEVEL=2 CONFORM_KEEP_STATS="$kept" timeout 30 \
		"$BUILD_DIR/tests/shim/fork" 2>&1) || { echo "$out"; false; }
	echo "$out"
	grep -q PASS <<<"$out"
	# The parent's sockets went through its ring.
	# shellcheck disable=SC2046 # one PID a line
	assert_accelerated -d "$kept" $(stats_pids "$kept")
}

@test "rings per thread: each worker's epoll loop runs a ring of its own" {
	require_io_uring
	local log=$BATS_TEST_TMPDIR/shim.log tids

	run env LD_PRELOAD="$SHIM_LIB" URINGSHIM_LOG="$log" \
		URINGSHIM_LOG_LEVEL=3 "$BUILD_DIR/tests/shim/loop_threads"
	assert_success
	# Three workers, three rings, on three threads other than main.
	tids=$(sed -n 's/^uringshim: ring up on tid \([0-9]*\)$/\1/p' "$log" |
		sort -u)
	[ "$(wc -l <<<"$tids")" -eq 3 ]
	! grep -qx "uringshim: loaded in pid \\($tids\\)" "$log"
	# Each worker's thread ended and closed its ring.
	[ "$(grep -c 'exits: flushing [0-9]* bytes, closing its ring' \
		"$log")" -eq 3 ]
	# All 8 sockets (6 served, 1 streamed, 1 filled) were accelerated.
	grep -q 'exit pid [0-9]*: 8 fds accelerated' "$log"
}

# The stats file across exec (the pid survives it). Only shell builtins run
# between the checks, so no child of the shell makes a file of its own.
@test "exec into a program without the shim leaves no stats file behind" {
	local dir=$BATS_TEST_TMPDIR/stats

	mkdir "$dir"
	run env URINGSHIM_STATS_DIR="$dir" LD_PRELOAD="$SHIM_LIB" bash -c \
		'f=$URINGSHIM_STATS_DIR/uringshim.$$
		 [ -f "$f" ] && echo "before exec: file"
		 exec env -u LD_PRELOAD sleep 0.05'
	assert_success
	assert_output "before exec: file"
	run ls -A "$dir"
	assert_output ""
}

@test "a failed exec keeps the stats file, live; vfork and spawn leave it" {
	local dir=$BATS_TEST_TMPDIR/stats

	[ -x "$BUILD_DIR/tests/shim/exec_stats" ] || skip "exec_stats not built"
	mkdir "$dir"
	run env URINGSHIM_STATS_DIR="$dir" LD_PRELOAD="$SHIM_LIB" \
		"$BUILD_DIR/tests/shim/exec_stats" "$SHIM_STAT"
	assert_success
	refute_line --partial "file kept NO"
	assert_line "failed execve: file kept yes"
	assert_line "vfork child exec: file kept yes"
	# Counted before and after the file was put back (the vfork child's
	# execve counts in our memory too, where vfork shares it).
	if [[ $output == *"vfork shares memory: yes"* ]]; then
		assert_line "call.execve: 2"
	else
		assert_line "call.execve: 1"
	fi
	assert_line "call.execvp: 1"
	assert_line "call.dup: 5"
	assert_line PASS
	run ls -A "$dir"
	assert_output ""

	# bash under the shim: `exec` of a missing path (execfail keeps the
	# shell), the counters read from a child without the shim.
	run env URINGSHIM_STATS_DIR="$dir" LD_PRELOAD="$SHIM_LIB" bash -c \
		'shopt -s execfail
		 exec /nonexistent/prog 2>/dev/null
		 [ -f "$URINGSHIM_STATS_DIR/uringshim.$$" ] && echo "kept"
		 env -u LD_PRELOAD "$0" $$ | grep -x "call.execve: 1"
		 echo "pid $$"' "$SHIM_STAT"
	assert_success
	assert_line kept
	assert_line "call.execve: 1"
	run ls -A "$dir"
	assert_output ""
}

@test "exec into the shim again: exactly one working stats file for the pid" {
	local dir=$BATS_TEST_TMPDIR/stats pid

	mkdir "$dir"
	run env URINGSHIM_STATS_DIR="$dir" LD_PRELOAD="$SHIM_LIB" bash -c \
		'echo "pid $$"
		 exec bash -c "env -u LD_PRELOAD ls -A \"\$URINGSHIM_STATS_DIR\"
			       env -u LD_PRELOAD \"\$0\" \$\$ | grep ^pid:
			       echo done" "$0"' "$SHIM_STAT"
	assert_success
	pid=$(sed -n 's/^pid \([0-9]*\)$/\1/p' <<<"$output")
	[ -n "$pid" ]
	# ls runs without the shim in a child of the new image, whose own
	# file env removed before its exec: only the pid's file is listed.
	assert_line "uringshim.$pid"
	[ "$(grep -c '^uringshim\.' <<<"$output")" -eq 1 ]
	assert_line "pid: $pid"
	assert_line done
	run ls -A "$dir"
	assert_output ""
}
