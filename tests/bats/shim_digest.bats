#!/usr/bin/env bats
# shim_digest.bats - the shim changes syscall counts, never the bytes:
# matching_server under liburingshim.so gives loadgen the same digest as
# without it (LT and ET, 1 and 1000 connections), URINGSHIM_DISABLE=1
# leaves no ring behind, and the stats show the ring working under load.
# Every shimmed run must have served through the ring (digest_of checks
# it), so a shim that fell back cannot pass for one that worked.

load shim_helpers

setup_file() {
	[ -x "$BUILD_DIR/loadgen" ] || skip "loadgen not built"
}

teardown() {
	kill_started_servers
}

# same_digest CONNS ORDERS [SERVER ARGS...] - the same digest plainly and
# under the shim, which served through the ring.
same_digest() {
	local plain

	digest_of -- "$@"
	plain=$DIGEST
	digest_of LD_PRELOAD="$SHIM_LIB" -- "$@"
	echo "plain $plain shim $DIGEST"
	[ -n "$plain" ]
	[ "$plain" = "$DIGEST" ]
}

@test "digest: level-triggered, 1 connection" {
	require_io_uring
	same_digest 1 3000
}

@test "digest: edge-triggered, 1 connection" {
	require_io_uring
	same_digest 1 3000 --edge-triggered
}

@test "digest: level-triggered, 1000 connections" {
	require_io_uring
	same_digest 1000 8
}

@test "digest: edge-triggered, 1000 connections" {
	require_io_uring
	same_digest 1000 8 --edge-triggered
}

@test "digest: every mechanism switched to direct gives the same bytes" {
	require_io_uring
	local plain expect

	digest_of -- 16 300
	plain=$DIGEST
	for mode in URINGSHIM_SEND=direct URINGSHIM_WAIT=direct \
		    URINGSHIM_RECV=single URINGSHIM_RECV=direct \
		    URINGSHIM_ADAPTIVE=0 URINGSHIM_FAULT=eagain:7 \
		    URINGSHIM_FAULT=sq-full URINGSHIM_SEND_MAX_FD=4096; do
		# RECV=direct leaves every socket to the kernel: the shim
		# is on, accelerating nothing.
		expect=ring
		[ "$mode" != URINGSHIM_RECV=direct ] || expect=none
		SHIM_EXPECT=$expect digest_of LD_PRELOAD="$SHIM_LIB" "$mode" \
			-- 16 300
		echo "$mode: $DIGEST (plain $plain)"
		[ "$DIGEST" = "$plain" ]
	done
}

@test "URINGSHIM_DISABLE=1: no ring, state disabled, same digest" {
	local plain d

	digest_of -- 4 500
	plain=$DIGEST
	shim_server LD_PRELOAD="$SHIM_LIB" URINGSHIM_DISABLE=1 --
	d=$(loadgen_digest 4 500)
	[ "$d" = "$plain" ]
	[ "$(ring_fds "$SERVER_PID")" -eq 0 ]
	assert_not_accelerated --state disabled "$SERVER_PID"
	run stat_field "$SERVER_PID" enters
	assert_output 0
}

@test "stats: io_uring_enter count grows under load, ring present" {
	require_io_uring
	local before after accel

	shim_server LD_PRELOAD="$SHIM_LIB" --
	before=$(stat_field "$SERVER_PID" enters)
	loadgen_digest 8 500 >/dev/null
	after=$(stat_field "$SERVER_PID" enters)
	accel=$(stat_field "$SERVER_PID" accel_total)
	echo "enters $before -> $after, accelerated $accel"
	[ "$after" -gt "$before" ]
	[ "$accel" -eq 8 ]
	run stat_field "$SERVER_PID" state
	assert_output active
	[ "$(ring_fds "$SERVER_PID")" -eq 1 ]
	[ "$(stat_field "$SERVER_PID" bytes_sent)" -gt 0 ]
	[ "$(stat_field "$SERVER_PID" served_from_buffer)" -gt 0 ]
	assert_accelerated --traffic "$SERVER_PID"
}
