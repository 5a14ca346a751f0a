#!/usr/bin/env bats
# hostile_env.bats - the shim in a hostile environment never crashes its
# host and never clobbers anything: every URINGSHIM_* setting given an
# empty, negative, 2^64, garbage or 100 KB value, and unknown URINGSHIM_*
# names, each give a warning and the default while the demo server still
# serves a verified load; log and stats paths pointing at existing files
# or symlinks leave their targets untouched; what the shim creates is mode
# 0600; and the loader ignores LD_PRELOAD for a setuid binary.

load real_helpers

SETTINGS="DISABLE SEND RECV WAIT SQPOLL ADAPTIVE SEND_MAX_FD SEND_MAX_TOTAL
RECV_BUF RING_ENTRIES LOG LOG_LEVEL STATS STATS_DIR KILLFILE FAULT TASKRUN
SPIN_US SPIN_RING"

setup() {
	require_shim
	[ -x "$BUILD_DIR/matching_server" ] || skip "matching_server not built"
	[ -x "$BUILD_DIR/loadgen" ] || skip "loadgen not built"
	# Relative LOG/STATS_DIR values land here, not in the source tree.
	cd "$BATS_TEST_TMPDIR"
}

teardown() {
	stop_started
	if [ -f "$BATS_TEST_TMPDIR/setuid_dir" ]; then
		rm -rf "$(cat "$BATS_TEST_TMPDIR/setuid_dir")"
	fi
}

# serve_with ENV=VALUE... - the shimmed server with that environment must
# serve a verified load and exit 0 on SIGTERM; sets err (its stderr). It
# must serve through the ring (bad values fall back to the defaults, which
# accelerate), except where the test is about files, not the ring
# (claim_ring=0), or the environment moves or turns off the stats
# (STATS_DIR, STATS): there is nothing to read them from then.
serve_with() {
	local out=$BATS_TEST_TMPDIR/ms.out status=0
	local stats=$BATS_TEST_TMPDIR/serve-stats
	err=$BATS_TEST_TMPDIR/ms.err
	rm -f "$out" "$err"
	mkdir -p "$stats"
	# The test's own URINGSHIM_STATS_DIR, if any, comes later and wins.
	env LD_PRELOAD="$SHIM_LIB" URINGSHIM_STATS_DIR="$stats" "$@" \
		"$BUILD_DIR/matching_server" --port 0 --quiet \
		>"$out" 2>"$err" 3>&- &
	local pid=$!
	echo "$pid" >>"$BATS_TEST_TMPDIR/pids"
	wait_listening "$out" "$pid" ||
		fail "with ${*:0:1}...: server did not start: $(head -c 300 "$err")"
	run timeout 60 "$BUILD_DIR/loadgen" --host 127.0.0.1 \
		--port "$LISTEN_PORT" --connections 4 --inflight 4 \
		--orders 200 --deterministic --quiet
	[ "$status" -eq 0 ] || fail "with $(echo "$@" | head -c 80): loadgen failed: $output"
	if [ "${claim_ring:-1}" = 1 ] &&
	   [[ " $* " != *" URINGSHIM_STATS"[=_]* ]]; then
		assert_accelerated --traffic -d "$stats" "$pid"
	fi
	kill -TERM "$pid"
	wait "$pid" || status=$?
	[ "$status" -eq 0 ] || fail "with $(echo "$@" | head -c 80): server exit $status"
}

# each_setting VALUE - every setting given VALUE alone: the server serves
# a verified load; a setting taking a number or a keyword says so in
# exactly one warning line (none of the values tried is valid for them,
# but SPIN_US=-1, spin for ever, which must not warn);
# a path setting (LOG, STATS_DIR, KILLFILE: "-1" is a valid file name)
# warns at most once. Never a flood.
each_setting() {
	local name lines
	for name in $SETTINGS; do
		serve_with "URINGSHIM_$name=$1"
		lines=$(grep -c uringshim "$err" || true)
		case $name=$1 in
		SPIN_US=-1)
			[ "$lines" -eq 0 ] ||
				fail "URINGSHIM_SPIN_US=-1 is valid: $(head -c 500 "$err")" ;;
		LOG=*|STATS_DIR=*|KILLFILE=*)
			[ "$lines" -le 1 ] ||
				fail "URINGSHIM_$name: $lines lines: $(head -c 500 "$err")" ;;
		*=*)
			[ "$lines" -eq 1 ] ||
				fail "URINGSHIM_$name: $lines warning lines, not 1: $(head -c 500 "$err")" ;;
		esac
	done
}

# A value invalid for every setting warns; check the numeric ones.
assert_warned() {
	grep -q uringshim "$err" || fail "no warning for $1"
}

@test "hostile: every setting empty" {
	each_setting ""
}

@test "hostile: every setting negative" {
	each_setting -1
	serve_with URINGSHIM_RING_ENTRIES=-1
	assert_warned RING_ENTRIES=-1
}

@test "hostile: every setting 2^64 and 2^64-1" {
	each_setting 18446744073709551616
	serve_with URINGSHIM_SEND_MAX_FD=18446744073709551616
	assert_warned SEND_MAX_FD=2^64
	serve_with URINGSHIM_RECV_BUF=18446744073709551615
	assert_warned RECV_BUF=2^64-1
}

@test "hostile: every setting garbage (format strings, control bytes)" {
	each_setting $'%n%s%s%x\x01\x7f garbage'
	serve_with URINGSHIM_SEND=$'%n%s\x01'
	assert_warned SEND=garbage
}

@test "hostile: every setting a 100 KB string" {
	local big
	big=$(head -c 102400 /dev/zero | tr '\0' 'A')
	each_setting "$big"
	serve_with URINGSHIM_LOG="$big"
	assert_warned LOG=100KB
}

@test "hostile: unknown URINGSHIM_ names warn once each and change nothing" {
	serve_with URINGSHIM_BOGUS=1 URINGSHIM_SEND_MAXFD=4096 URINGSHIM_=x
	[ "$(grep -c 'URINGSHIM_BOGUS' "$err")" -eq 1 ] ||
		fail "URINGSHIM_BOGUS: $(cat "$err")"
	[ "$(grep -c 'URINGSHIM_SEND_MAXFD' "$err")" -eq 1 ] ||
		fail "URINGSHIM_SEND_MAXFD: $(cat "$err")"
}

@test "hostile: a log path that is a symlink is never followed" {
	local d=$BATS_TEST_TMPDIR claim_ring=0
	echo precious >"$d/target"
	ln -s "$d/target" "$d/link"
	ln -s "$d/absent" "$d/dangling"
	serve_with URINGSHIM_LOG="$d/link" URINGSHIM_LOG_LEVEL=3
	assert_equal "$(cat "$d/target")" precious
	[ -L "$d/link" ] || fail "the symlink was replaced"
	serve_with URINGSHIM_LOG="$d/dangling" URINGSHIM_LOG_LEVEL=3
	[ ! -e "$d/absent" ] || fail "the dangling symlink's target was created"
}

@test "hostile: an existing log file is appended to, never truncated" {
	local d=$BATS_TEST_TMPDIR claim_ring=0
	echo "first line" >"$d/existing.log"
	serve_with URINGSHIM_LOG="$d/existing.log" URINGSHIM_LOG_LEVEL=3
	assert_equal "$(head -n 1 "$d/existing.log")" "first line"
}

@test "hostile: the shim creates its log and stats files mode 0600" {
	local d=$BATS_TEST_TMPDIR claim_ring=0
	mkdir "$d/stats"
	serve_with URINGSHIM_LOG="$d/new.log" URINGSHIM_LOG_LEVEL=3
	assert_equal "$(stat -c %a "$d/new.log")" 600
	# The stats file exists while the process runs.
	LD_PRELOAD=$SHIM_LIB URINGSHIM_STATS_DIR=$d/stats sleep 2 3>&- &
	local pid=$!
	echo "$pid" >>"$BATS_TEST_TMPDIR/pids"
	sleep 0.5
	local f
	for f in "$d"/stats/uringshim.*; do
		[ -e "$f" ] || fail "no stats file while pid $pid runs"
		assert_equal "$(stat -c %a "$f")" 600
	done
	wait "$pid"
}

@test "hostile: a stats path that is a symlink is never followed" {
	local d=$BATS_TEST_TMPDIR
	mkdir "$d/stats"
	echo precious >"$d/target"
	# The stats file is named after the PID: exec keeps the shell's.
	run timeout 20 bash -c "ln -s '$d/target' '$d/stats/uringshim.'\$\$ &&
		LD_PRELOAD='$SHIM_LIB' URINGSHIM_STATS_DIR='$d/stats' \
		exec '$BUILD_DIR/matching_server' --port 0 --quiet --help"
	assert_equal "$(cat "$d/target")" precious
	local links
	links=$(find "$d/stats" -type l | wc -l)
	assert_equal "$links" 1
}

@test "hostile: the loader ignores LD_PRELOAD for a setuid binary" {
	require_cmd setpriv
	local pid d
	# bats' own temp tree is not open to nobody: a directory of ours.
	d=$(mktemp -d /tmp/hostile-setuid.XXXXXX)
	echo "$d" >"$BATS_TEST_TMPDIR/setuid_dir"
	chmod 0755 "$d"
	cp /usr/bin/sleep "$d/sleep-setuid"
	cp /usr/bin/sleep "$d/sleep-plain"
	chmod 4755 "$d/sleep-setuid"
	# A copy nobody can reach wherever the checkout lives (a 0700 tree).
	cp "$SHIM_LIB" "$d/liburingshim.so"
	chmod 0755 "$d/liburingshim.so"
	# The control: an ordinary binary run by nobody maps the shim.
	setpriv --reuid=nobody --regid=nogroup --clear-groups \
		env LD_PRELOAD="$d/liburingshim.so" URINGSHIM_STATS=0 \
		"$d/sleep-plain" 3 3>&- &
	pid=$!
	echo "$pid" >>"$BATS_TEST_TMPDIR/pids"
	sleep 0.5
	assert_shim_mapped "$pid"
	# The same binary setuid root, run by nobody: AT_SECURE, preload
	# from a path ignored.
	setpriv --reuid=nobody --regid=nogroup --clear-groups \
		env LD_PRELOAD="$d/liburingshim.so" "$d/sleep-setuid" 3 3>&- &
	pid=$!
	echo "$pid" >>"$BATS_TEST_TMPDIR/pids"
	sleep 0.5
	kill -0 "$pid" || fail "the setuid copy did not run"
	[ "$(awk '/^Uid:/ { print $3 }' "/proc/$pid/status")" = 0 ] ||
		skip "setuid bit not honoured here (nosuid mount?)"
	assert_shim_absent "$pid"
}
