#!/usr/bin/env bats
# shim_spin.bats - URINGSHIM_SPIN_US, waits that watch before they sleep.
#
# What the setting promises (tests/shim/spin_wait): a spinning wait with
# no traffic sleeps once its budget is spent (the process's CPU over an
# idle wait is bounded; spinning for ever, it is not); a handler that runs
# meanwhile ends it with EINTR, as it ends a sleeping wait; a timeout
# shorter than the budget is kept; without the setting nothing spins.
# And every conformance corner prints the same transcript while spinning,
# on the ring (spin) and on plain epoll_wait(..., 0) (spin_epoll).

load shim_semantics_helpers

# spin_run ENV... -- ARGS - spin_wait ARGS under the shim with ENV; its
# stats file is kept in $BATS_TEST_TMPDIR/spin.stats.
spin_run() {
	local envs=() dir=$BATS_TEST_TMPDIR/spin.stats

	while [ "$1" != -- ]; do envs+=("$1"); shift; done
	shift
	require_shim
	mkdir -p "$dir"
	run env "${envs[@]}" URINGSHIM_STATS_DIR="$BATS_TEST_TMPDIR" \
		CONFORM_KEEP_STATS="$dir" LD_PRELOAD="$SHIM_LIB" \
		timeout 60 "$CORNER_DIR/spin_wait" "$@"
}

# cpu_of OUTPUT - the cpu_us figure spin_wait budget printed.
cpu_of() {
	sed -n 's/^cpu_us \([0-9]*\) .*/\1/p' <<<"$1"
}

# The lower bounds are loose: the budget is wall time, and on a shared
# machine the spinning thread may be preempted for part of it; an idle
# wait that does not spin costs some tens of microseconds.
@test "budget: an idle 1 s wait spins 20 ms, then sleeps" {
	spin_run URINGSHIM_SPIN_US=20000 -- budget 1000
	assert_success
	assert_accelerated -d "$BATS_TEST_TMPDIR/spin.stats" \
		$(stats_pids "$BATS_TEST_TMPDIR/spin.stats")
	echo "cpu over the idle second: $(cpu_of "$output") us"
	[ "$(cpu_of "$output")" -ge 5000 ]
	[ "$(cpu_of "$output")" -lt 200000 ]
	run "$SHIM_STAT" --json -d "$BATS_TEST_TMPDIR/spin.stats" \
		$(stats_pids "$BATS_TEST_TMPDIR/spin.stats")
	assert_success
	python3 -c 'import json,sys; d=json.loads(sys.argv[1]);
assert d["spin_misses"] >= 1 and d["spin_ns"] >= 15e6, d' "$output"
}

@test "budget: spinning for ever (-1) keeps the core busy" {
	spin_run URINGSHIM_SPIN_US=-1 -- budget 500
	assert_success
	echo "cpu over the idle half second: $(cpu_of "$output") us"
	[ "$(cpu_of "$output")" -ge 250000 ]
}

@test "budget: without the setting, an idle wait costs no CPU" {
	spin_run -- budget 500
	assert_success
	assert_accelerated -d "$BATS_TEST_TMPDIR/spin.stats" \
		$(stats_pids "$BATS_TEST_TMPDIR/spin.stats")
	echo "cpu over the idle half second: $(cpu_of "$output") us"
	[ "$(cpu_of "$output")" -lt 20000 ]
	run "$SHIM_STAT" --json -d "$BATS_TEST_TMPDIR/spin.stats" \
		$(stats_pids "$BATS_TEST_TMPDIR/spin.stats")
	python3 -c 'import json,sys; d=json.loads(sys.argv[1]);
assert d["spin_ns"] == 0 and d["spin_hits"] == 0, d' "$output"
}

@test "budget: spinning on plain epoll also sleeps after its budget" {
	spin_run URINGSHIM_SPIN_US=20000 URINGSHIM_SPIN_RING=0 -- budget 1000
	assert_success
	[ "$(cpu_of "$output")" -ge 5000 ]
	[ "$(cpu_of "$output")" -lt 200000 ]
}

@test "a signal ends a spinning wait with EINTR (ring)" {
	spin_run URINGSHIM_SPIN_US=-1 -- eintr
	assert_success
	assert_output --partial "epoll_wait: ret=-1 EINTR"
	assert_output --partial "poll: ret=-1 EINTR"
}

@test "a signal ends a spinning wait with EINTR (plain epoll)" {
	spin_run URINGSHIM_SPIN_US=-1 URINGSHIM_SPIN_RING=0 -- eintr
	assert_success
	assert_output --partial "epoll_wait: ret=-1 EINTR"
}

@test "timeouts shorter than the spin budget are kept" {
	spin_run URINGSHIM_SPIN_US=-1 -- timeout
	assert_success
	spin_run URINGSHIM_SPIN_US=500000 -- timeout
	assert_success
	spin_run URINGSHIM_SPIN_US=-1 URINGSHIM_SPIN_RING=0 -- timeout
	assert_success
}

@test "hostile values of the spin settings: a warning and the default" {
	require_shim
	for v in "" "-2" "abc" "99999999999999999999" "%n%n" "1e3"; do
		run env URINGSHIM_SPIN_US="$v" LD_PRELOAD="$SHIM_LIB" \
			timeout 60 "$CORNER_DIR/spin_wait" budget 100
		assert_success
		assert_output --partial "URINGSHIM_SPIN_US"
		[ "$(cpu_of "$(grep cpu_us <<<"$output")")" -lt 20000 ]
	done
	run env URINGSHIM_SPIN_RING=maybe LD_PRELOAD="$SHIM_LIB" \
		timeout 60 "$CORNER_DIR/spin_wait" budget 100
	assert_success
	assert_output --partial "URINGSHIM_SPIN_RING"
}

@test "backpressure: shim spin" {
	check_shim backpressure spin
}

@test "backpressure: shim spin_epoll" {
	check_shim backpressure spin_epoll
}

@test "blocking: shim spin" {
	check_shim blocking spin
}

@test "blocking: shim spin_epoll" {
	check_shim blocking spin_epoll
}

@test "close_flush: shim spin" {
	check_shim close_flush spin
}

@test "close_flush: shim spin_epoll" {
	check_shim close_flush spin_epoll
}

@test "connect: shim spin" {
	check_shim connect spin
}

@test "connect: shim spin_epoll" {
	check_shim connect spin_epoll
}

@test "dup: shim spin" {
	check_shim dup spin
}

@test "dup: shim spin_epoll" {
	check_shim dup spin_epoll
}

@test "efault: shim spin" {
	check_shim efault spin
}

@test "efault: shim spin_epoll" {
	check_shim efault spin_epoll
}

@test "eintr: shim spin" {
	check_shim eintr spin
}

@test "eintr: shim spin_epoll" {
	check_shim eintr spin_epoll
}

@test "epoll_nested: shim spin" {
	check_shim epoll_nested spin
}

@test "epoll_nested: shim spin_epoll" {
	check_shim epoll_nested spin_epoll
}

@test "errors: shim spin" {
	check_shim errors spin
}

@test "errors: shim spin_epoll" {
	check_shim errors spin_epoll
}

@test "et: shim spin" {
	check_shim et spin
}

@test "et: shim spin_epoll" {
	check_shim et spin_epoll
}

@test "fd_reuse: shim spin" {
	check_shim fd_reuse spin
}

@test "fd_reuse: shim spin_epoll" {
	check_shim fd_reuse spin_epoll
}

@test "fionread_peek: shim spin" {
	check_shim fionread_peek spin
}

@test "fionread_peek: shim spin_epoll" {
	check_shim fionread_peek spin_epoll
}

@test "fork: shim spin" {
	check_shim fork spin
}

@test "fork: shim spin_epoll" {
	check_shim fork spin_epoll
}

@test "fortify: shim spin" {
	check_shim fortify spin
}

@test "fortify: shim spin_epoll" {
	check_shim fortify spin_epoll
}

@test "handoff: shim spin" {
	check_shim handoff spin
}

@test "handoff: shim spin_epoll" {
	check_shim handoff spin_epoll
}

@test "ipv6: shim spin" {
	check_shim ipv6 spin
}

@test "ipv6: shim spin_epoll" {
	check_shim ipv6 spin_epoll
}

@test "loop_threads: shim spin" {
	check_shim loop_threads spin
}

@test "loop_threads: shim spin_epoll" {
	check_shim loop_threads spin_epoll
}

@test "lt: shim spin" {
	check_shim lt spin
}

@test "lt: shim spin_epoll" {
	check_shim lt spin_epoll
}

@test "mixed_set: shim spin" {
	check_shim mixed_set spin
}

@test "mixed_set: shim spin_epoll" {
	check_shim mixed_set spin_epoll
}

@test "nonblock_toggle: shim spin" {
	check_shim nonblock_toggle spin
}

@test "nonblock_toggle: shim spin_epoll" {
	check_shim nonblock_toggle spin_epoll
}

@test "oneshot: shim spin" {
	check_shim oneshot spin
}

@test "oneshot: shim spin_epoll" {
	check_shim oneshot spin_epoll
}

@test "peer_reset: shim spin" {
	check_shim peer_reset spin
}

@test "peer_reset: shim spin_epoll" {
	check_shim peer_reset spin_epoll
}

@test "poll_select: shim spin" {
	check_shim poll_select spin
}

@test "poll_select: shim spin_epoll" {
	check_shim poll_select spin_epoll
}

@test "rdhup: shim spin" {
	check_shim rdhup spin
}

@test "rdhup: shim spin_epoll" {
	check_shim rdhup spin_epoll
}

@test "sendfile_order: shim spin" {
	check_shim sendfile_order spin
}

@test "sendfile_order: shim spin_epoll" {
	check_shim sendfile_order spin_epoll
}

@test "shutdown_flush: shim spin" {
	check_shim shutdown_flush spin
}

@test "shutdown_flush: shim spin_epoll" {
	check_shim shutdown_flush spin_epoll
}

@test "signal_write: shim spin" {
	check_shim signal_write spin
}

@test "signal_write: shim spin_epoll" {
	check_shim signal_write spin_epoll
}

@test "threads: shim spin" {
	check_shim threads spin
}

@test "threads: shim spin_epoll" {
	check_shim threads spin_epoll
}

@test "writev_large: shim spin" {
	check_shim writev_large spin
}

@test "writev_large: shim spin_epoll" {
	check_shim writev_large spin_epoll
}

@test "bad_args: shim spin" {
	check_shim bad_args spin
}

@test "bad_args: shim spin_epoll" {
	check_shim bad_args spin_epoll
}

@test "poll_array: shim spin" {
	check_shim poll_array spin
}

@test "poll_array: shim spin_epoll" {
	check_shim poll_array spin_epoll
}

@test "epoll_del_closed: shim spin" {
	check_shim epoll_del_closed spin
}

@test "epoll_del_closed: shim spin_epoll" {
	check_shim epoll_del_closed spin_epoll
}
