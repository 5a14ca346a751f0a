#!/usr/bin/env bats
# shim_send_sync.bats - URINGSHIM_SEND=sync, the setting that closes the
# SIGKILL window: every write goes to the kernel before it returns, so no
# byte a write reported lives only in the shim.  tests/shim/kill_window
# shows the window (batched sends lose what is queued when the writer is
# SIGKILLed) and that sync closes it; every conformance corner must also
# print the same transcript under sync as without the shim.

load shim_semantics_helpers

# kill_window_run SETTINGS... - run kill_window under the shim; sets
# status and output. The writer's socket must have gone through the ring:
# its stats file stays behind in the stats directory when SIGKILL ends it.
kill_window_run() {
	local dir=$BATS_TEST_TMPDIR/stats

	require_shim
	mkdir -p "$dir"
	run env "$@" URINGSHIM_STATS_DIR="$dir" LD_PRELOAD="$SHIM_LIB" \
		timeout 60 "$CORNER_DIR/kill_window"
	# shellcheck disable=SC2046 # one PID a line
	assert_accelerated -d "$dir" $(stats_pids "$dir")
}

@test "SIGKILL window: plainly, nothing written is lost" {
	run timeout 60 "$CORNER_DIR/kill_window"
	assert_success
	assert_output "written 6400 received 6400"
}

@test "SIGKILL window: URINGSHIM_SEND=sync loses nothing written" {
	kill_window_run URINGSHIM_SEND=sync URINGSHIM_ADAPTIVE=0
	assert_success
	assert_output --partial "written 6400 received 6400"
}

@test "SIGKILL window: batched sends lose what was queued (documented)" {
	kill_window_run URINGSHIM_SEND=batch URINGSHIM_ADAPTIVE=0
	assert_failure 1
	assert_output --regexp 'written 6400 received [0-9]+'
	[[ $output != *"received 6400"* ]]
}

@test "backpressure: shim send_sync" {
	check_shim backpressure send_sync
}

@test "blocking: shim send_sync" {
	check_shim blocking send_sync
}

@test "close_flush: shim send_sync" {
	check_shim close_flush send_sync
}

@test "connect: shim send_sync" {
	check_shim connect send_sync
}

@test "dup: shim send_sync" {
	check_shim dup send_sync
}

@test "efault: shim send_sync" {
	check_shim efault send_sync
}

@test "eintr: shim send_sync" {
	check_shim eintr send_sync
}

@test "epoll_nested: shim send_sync" {
	check_shim epoll_nested send_sync
}

@test "errors: shim send_sync" {
	check_shim errors send_sync
}

@test "et: shim send_sync" {
	check_shim et send_sync
}

@test "fd_reuse: shim send_sync" {
	check_shim fd_reuse send_sync
}

@test "fionread_peek: shim send_sync" {
	check_shim fionread_peek send_sync
}

@test "fork: shim send_sync" {
	check_shim fork send_sync
}

@test "fortify: shim send_sync" {
	check_shim fortify send_sync
}

@test "handoff: shim send_sync" {
	check_shim handoff send_sync
}

@test "ipv6: shim send_sync" {
	check_shim ipv6 send_sync
}

@test "loop_threads: shim send_sync" {
	check_shim loop_threads send_sync
}

@test "lt: shim send_sync" {
	check_shim lt send_sync
}

@test "mixed_set: shim send_sync" {
	check_shim mixed_set send_sync
}

@test "nonblock_toggle: shim send_sync" {
	check_shim nonblock_toggle send_sync
}

@test "oneshot: shim send_sync" {
	check_shim oneshot send_sync
}

@test "peer_reset: shim send_sync" {
	check_shim peer_reset send_sync
}

@test "poll_select: shim send_sync" {
	check_shim poll_select send_sync
}

@test "rdhup: shim send_sync" {
	check_shim rdhup send_sync
}

@test "sendfile_order: shim send_sync" {
	check_shim sendfile_order send_sync
}

@test "shutdown_flush: shim send_sync" {
	check_shim shutdown_flush send_sync
}

@test "signal_write: shim send_sync" {
	check_shim signal_write send_sync
}

@test "threads: shim send_sync" {
	check_shim threads send_sync
}

@test "writev_large: shim send_sync" {
	check_shim writev_large send_sync
}

@test "bad_args: shim send_sync" {
	check_shim bad_args send_sync
}

@test "poll_array: shim send_sync" {
	check_shim poll_array send_sync
}

@test "epoll_del_closed: shim send_sync" {
	check_shim epoll_del_closed send_sync
}
