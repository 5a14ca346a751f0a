#!/usr/bin/env bats
# shim_fallback.bats - the shim without io_uring: passthrough, one line, and
# the same behaviour.
#
# tests/deny_uring makes io_uring_setup/enter/register fail with EPERM (as a
# container's seccomp profile does) or ENOSYS (a kernel without io_uring).
# Under it the shim must keep the process running in passthrough, print
# exactly one stderr line naming "uringshim" and "passthrough", and serve
# the demo server's traffic with the same outcome digest as without the
# shim; every conformance program must print its plain transcript (and at
# most one such line: the ring is made lazily, maybe never). Each process's
# stats must say passthrough for want of io_uring, nothing accelerated. When
# /proc/sys/kernel/io_uring_disabled is writable the same holds with it set
# to 2 (restored in teardown, always; the window is kept to a few seconds
# because the setting is machine-wide; URINGSHIM_TEST_NO_SYSCTL=1 skips it).

load shim_semantics_helpers

SERVER_BIN=$BUILD_DIR/matching_server
LOADGEN_BIN=$BUILD_DIR/loadgen
SYSCTL=/proc/sys/kernel/io_uring_disabled
CORNERS=(backpressure blocking close_flush connect dup efault eintr
	 epoll_nested errors et fd_reuse fionread_peek fork fortify handoff ipv6
	 loop_threads lt mixed_set nonblock_toggle oneshot peer_reset
	 poll_select rdhup sendfile_order shutdown_flush signal_write threads
	 writev_large bad_args poll_array epoll_del_closed)

setup() {
	[ -x "$DENY_URING" ] || fail "$DENY_URING not built"
}

teardown() {
	local pid

	if [ -f "$BATS_TEST_TMPDIR/sysctl.saved" ]; then
		cat "$BATS_TEST_TMPDIR/sysctl.saved" >"$SYSCTL"
		rm -f "$BATS_TEST_TMPDIR/sysctl.saved"
	fi
	[ -f "$BATS_TEST_TMPDIR/pids" ] || return 0
	while read -r pid; do
		kill -0 "$pid" 2>/dev/null || continue
		kill -KILL "$pid"
		wait "$pid" 2>/dev/null
	done <"$BATS_TEST_TMPDIR/pids"
	return 0
}

require_server() {
	[ -x "$SERVER_BIN" ] || skip "matching_server not built"
	[ -x "$LOADGEN_BIN" ] || skip "loadgen not built"
}

# start_server_with PREFIX... - start "PREFIX... matching_server --port 0";
# sets SERVER_PID, SERVER_PORT, SERVER_ERR.
start_server_with() {
	local out

	# Fresh files made before the start: never read a previous server's
	# line, nor a file the background child has not created yet.
	out=$(mktemp "$BATS_TEST_TMPDIR/server.out.XXXXXX")
	SERVER_ERR=$(mktemp "$BATS_TEST_TMPDIR/server.err.XXXXXX")
	"$@" "$SERVER_BIN" --port 0 >"$out" 2>"$SERVER_ERR" 3>&- &
	SERVER_PID=$!
	echo "$SERVER_PID" >>"$BATS_TEST_TMPDIR/pids"
	wait_listening "$out" "$SERVER_PID" ||
		fail "server did not start: $(cat "$SERVER_ERR")"
	SERVER_PORT=$LISTEN_PORT
}

stop_server() {
	kill -TERM "$SERVER_PID"
	wait "$SERVER_PID" || true
}

# server_digest PREFIX... - the loadgen outcome digest of a fresh server
# started with PREFIX; a deterministic run, so it depends only on what the
# server did. A server under the shim (its stats file in BATS_TEST_TMPDIR)
# has the file kept for after it exits: KEPT is that directory.
server_digest() {
	start_server_with "$@"
	run timeout -k 2 60 "$LOADGEN_BIN" --host 127.0.0.1 \
		--port "$SERVER_PORT" --connections 4 --orders 300 \
		--deterministic --quiet
	if [ "$status" -ne 0 ]; then
		echo "loadgen exit $status: $output"
		echo "server stderr:"
		tail -n 20 "$SERVER_ERR"
		fail "loadgen failed against: $*"
	fi
	assert_line --regexp '^errors +0$'
	DIGEST=$(grep '^digest: ' <<<"$output")
	[ -n "$DIGEST" ] || fail "no digest line: $output"
	if [ -e "$BATS_TEST_TMPDIR/uringshim.$SERVER_PID" ]; then
		KEPT=$(keep_stats "$SERVER_PID" "$BATS_TEST_TMPDIR")
	fi
	stop_server
}

# one_passthrough_line FILE - exactly one fallback line on that stderr.
one_passthrough_line() {
	local n

	n=$(passthrough_lines "$1")
	[ "$n" -eq 1 ] || {
		cat "$1"
		fail "expected one 'uringshim ... passthrough' line, got $n"
	}
}

server_falls_back() {
	local plain

	require_shim
	require_server
	server_digest
	plain=$DIGEST
	server_digest "$DENY_URING" --errno "$1" -- env \
		URINGSHIM_STATS_DIR="$BATS_TEST_TMPDIR" LD_PRELOAD="$SHIM_LIB"
	[ "$DIGEST" = "$plain" ] ||
		fail "digest without io_uring: $DIGEST, plain: $plain"
	one_passthrough_line "$SERVER_ERR"
	assert_passthrough -d "$KEPT" "$SERVER_PID"
}

# corners_fall_back PREFIX... - every conformance program, under the shim
# with PREFIX in front, prints its plain transcript, exits 0, prints one
# passthrough line at most, and its stats say passthrough for want of
# io_uring with no socket accelerated. All corners run; the failures are
# listed together.
corners_fall_back() {
	local corner plain out lines bad=()

	require_shim
	for corner in "${CORNERS[@]}"; do
		plain=$BATS_FILE_TMPDIR/$corner.plain
		(plain_transcript "$corner" >/dev/null) || true
		# Skipped (77) or failing on its own: not this suite's
		# business, shim_semantics.bats reports it.
		[ "$(cat "$plain.status")" -eq 0 ] || continue
		out=$BATS_TEST_TMPDIR/$corner.denied
		shim_run "$out" "$corner" default "$@"
		if ! (compare_transcripts "$plain" "$out" "$corner"); then
			bad+=("$corner (transcript or exit status)")
			continue
		fi
		# The ring is made lazily: a program whose sockets never need it
		# prints no line, but never more than one (threads, fork).
		lines=$(passthrough_lines "$out.err")
		[ "$lines" -le 1 ] || bad+=("$corner ($lines fallback lines)")
		(assert_passthrough -d "$out.stats" "$(corner_pid "$out")") ||
			bad+=("$corner (stats: not passthrough)")
	done
	[ ${#bad[@]} -eq 0 ] ||
		fail "not equivalent without io_uring: ${bad[*]}"
}

@test "deny_uring: usage errors exit 2" {
	run -2 "$DENY_URING"
	run -2 "$DENY_URING" --errno EBOGUS -- true
}

@test "deny_uring: io_uring_setup fails with the chosen errno, others work" {
	command -v python3 >/dev/null || skip "python3 not installed"
	local probe='import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
params = ctypes.create_string_buffer(120)
fd = libc.syscall(425, 4, params)
err = os.strerror(ctypes.get_errno()) if fd < 0 else "ok"
print("io_uring_setup", fd, err)'
	run -0 "$DENY_URING" --errno EPERM -- python3 -c "$probe"
	assert_output "io_uring_setup -1 Operation not permitted"
	run -0 "$DENY_URING" --errno ENOSYS -- python3 -c "$probe"
	assert_output "io_uring_setup -1 Function not implemented"
	run -0 "$DENY_URING" -- sh -c 'echo child ok; exit 0'
	assert_output "child ok"
	run -3 "$DENY_URING" -- sh -c 'exit 3'
}

@test "server under the shim, io_uring denied (EPERM): same digest, one line" {
	server_falls_back EPERM
}

@test "server under the shim, io_uring denied (ENOSYS): same digest, one line" {
	server_falls_back ENOSYS
}

@test "conformance programs under the shim, io_uring denied (EPERM)" {
	corners_fall_back "$DENY_URING" --errno EPERM --
}

@test "conformance programs under the shim, io_uring denied (ENOSYS)" {
	corners_fall_back "$DENY_URING" --errno ENOSYS --
}

@test "io_uring_disabled=2: server and two corners fall back" {
	local plain sysctl_lock out

	[ -w "$SYSCTL" ] || skip "$SYSCTL not writable"
	[ "${URINGSHIM_TEST_NO_SYSCTL:-0}" = 1 ] &&
		skip "URINGSHIM_TEST_NO_SYSCTL=1: machine-wide knob left alone"
	require_shim
	require_server
	server_digest
	plain=$DIGEST
	for corner in errors lt; do
		plain_transcript "$corner" >/dev/null
	done
	# Machine-wide: one run at a time (a second concurrent run would
	# save 2 and restore it), only from the default 0, for the shortest
	# time that proves the point.
	exec {sysctl_lock}>/tmp/uringshim-io_uring_disabled.lock
	flock -w 60 "$sysctl_lock" || skip "another run holds $SYSCTL"
	[ "$(cat "$SYSCTL")" = 0 ] ||
		skip "$SYSCTL is $(cat "$SYSCTL") already, not 0"
	echo 0 >"$BATS_TEST_TMPDIR/sysctl.saved"
	echo 2 >"$SYSCTL"
	server_digest env URINGSHIM_STATS_DIR="$BATS_TEST_TMPDIR" \
		LD_PRELOAD="$SHIM_LIB"
	for corner in errors lt; do
		shim_run "$BATS_TEST_TMPDIR/$corner.disabled" "$corner" default
	done
	cat "$BATS_TEST_TMPDIR/sysctl.saved" >"$SYSCTL"
	rm -f "$BATS_TEST_TMPDIR/sysctl.saved"

	[ "$DIGEST" = "$plain" ] || fail "digest $DIGEST, plain $plain"
	one_passthrough_line "$SERVER_ERR"
	assert_passthrough -d "$KEPT" "$SERVER_PID"
	for corner in errors lt; do
		out=$BATS_TEST_TMPDIR/$corner.disabled
		compare_transcripts "$BATS_FILE_TMPDIR/$corner.plain" "$out" \
			"$corner"
		one_passthrough_line "$out.err"
		assert_passthrough -d "$out.stats" "$(corner_pid "$out")"
	done
}
