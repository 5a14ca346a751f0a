#!/usr/bin/env bats
# ops_tools.bats - uringshim-rollback (the kill file it writes, --undo,
# --wait on processes without the shim) and uringshim-collect (what it
# records about a process, with a stand-in load command).

load ops_helpers

setup() {
	tmp=$(mktemp -d "$BATS_TMPDIR/ops_tools.XXXXXX")
	unset URINGSHIM_KILLFILE
}

teardown() {
	[ -z "${sleeper:-}" ] || kill "$sleeper" 2>/dev/null || true
	rm -rf "$tmp"
}

# start_sleeper - a process to point the tools at; sets $sleeper.
start_sleeper() {
	sleep 30 3>&- &
	sleeper=$!
}

@test "rollback creates the kill file whole, with who and when; --undo removes it" {
	run "$ROLLBACK" --kill-file "$tmp/run/uringshim/kill"
	assert_success
	assert_output "uringshim-rollback: created $tmp/run/uringshim/kill"
	run cat "$tmp/run/uringshim/kill"
	assert_output --regexp "^rolled back by $(id -un) on .* at 20[0-9-]+T[0-9:]+Z$"
	# Nothing half-written left beside it.
	run ls -A "$tmp/run/uringshim"
	assert_output "kill"
	URINGSHIM_KILLFILE=$tmp/run/uringshim/kill run "$ROLLBACK" --undo
	assert_success
	[ ! -e "$tmp/run/uringshim/kill" ]
}

@test "rollback refuses what it cannot do" {
	run "$ROLLBACK" --wait notapid
	assert_failure 2
	run "$ROLLBACK" --kill-file /proc/no/such/dir/kill
	assert_failure 2
}

@test "rollback --wait: a process gone is fine, one that never switches times out" {
	[ -x "$OPS_BUILD/uringshim-stat" ] || skip "uringshim-stat not built yet"
	sh -c 'exit 0' &
	gone=$!
	wait "$gone"
	run "$ROLLBACK" --kill-file "$tmp/kill" --wait "$gone" --timeout 1
	assert_success
	assert_line "uringshim-rollback: $gone: process gone"
	start_sleeper
	run "$ROLLBACK" --kill-file "$tmp/kill" --wait "$sleeper" --timeout 1
	assert_failure 1
	assert_output --partial "$sleeper: still 'unknown' after 1s"
}

@test "collect records the host, what ran, CPU time and the command's status" {
	start_sleeper
	# A stand-in load generator: writes its JSON where it is told.
	cat > "$tmp/fake-loadgen" <<-'FAKE'
	#!/bin/sh
	while [ $# -gt 0 ]; do
		[ "$1" = --json ] && echo '{"requests": 10}' > "$2"
		shift
	done
	exit 3
	FAKE
	chmod +x "$tmp/fake-loadgen"
	run "$COLLECT" --out "$tmp/res" --host gw-1 --cohort control \
		--pid "$sleeper" -- "$tmp/fake-loadgen" --duration 1
	assert_failure 3
	run cat "$tmp/res/meta"
	assert_line "host=gw-1"
	assert_line "cohort=control"
	assert_line "shim=off"
	assert_line "pid=$sleeper"
	assert_line --regexp '^cpu_seconds=[0-9]+\.[0-9]{3}$'
	assert_line "loadgen_status=3"
	assert_equal "$(cat "$tmp/res/loadgen.json")" '{"requests": 10}'
	[ ! -e "$tmp/res/stat.json" ]
}

@test "collect sees the library in a shim process and saves its counters" {
	require_shim_lib
	[ -x "$OPS_BUILD/uringshim-stat" ] || skip "uringshim-stat not built yet"
	"$RUN" -- sleep 30 3>&- &
	sleeper=$!
	for _ in $(seq 50); do
		[ -e "/dev/shm/uringshim.$sleeper" ] && break
		sleep 0.05
	done
	run "$COLLECT" --out "$tmp/res" --host gw-2 --pid "$sleeper" -- \
		sh -c 'shift $(($# - 1)); echo "{}" > "$1"' x
	assert_success
	run cat "$tmp/res/meta"
	assert_line "shim=on"
	python3 -c 'import json, sys
for name in ("stat-before.json", "stat.json"):
	s = json.load(open(sys.argv[1] + "/" + name))
	assert s["pid"] == int(sys.argv[2]) and "state" in s, s' \
		"$tmp/res" "$sleeper"
}

@test "collect refuses a process that is not there" {
	run "$COLLECT" --out "$tmp/res" --host x --pid 999999999 -- true
	assert_failure 2
	run "$COLLECT" --out "$tmp/res" --host x -- true
	assert_failure 2
}
