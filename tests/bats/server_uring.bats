#!/usr/bin/env bats
# server_uring.bats - the matching server's native io_uring backend
# (--io uring): the scripted sessions of server.bats give byte-identical
# output under both backends, and the uring backend alone handles many
# connections and slot reuse, malformed frames, floods, slow consumers,
# shutdown, the journal, and refuses to start where io_uring is denied.
# Every test skips when this kernel cannot run the backend.

load helpers
load loadgen_helpers

# One probe for the file: does --io uring start here? It refuses before
# listening, with the reason, where the kernel cannot run it.
setup_file() {
	if start_server --io uring --quiet 2>/dev/null; then
		stop_server
	elif grep -q "io_uring unavailable" "$SERVER_LOG"; then
		sed -n 's/.*io_uring unavailable: //p' "$SERVER_LOG" \
			>"$BATS_FILE_TMPDIR/uring.skip"
	fi
	kill_started_servers
}

setup() {
	if [ -f "$BATS_FILE_TMPDIR/uring.skip" ]; then
		skip "io_uring unavailable: $(<"$BATS_FILE_TMPDIR/uring.skip")"
	fi
}

teardown() {
	kill_started_servers
}

# no_backend_errors - the uring server's log shows no completion it could
# not place, no request left over at shutdown, no sanitizer report.
no_backend_errors() {
	run grep -E -e "stale|did not finish|io_uring_(enter|submit)" \
		-e "Sanitizer|runtime error" "$SERVER_LOG"
	assert_failure 1
}

# same_output SERVER_ARGS SCRIPT [CLIENT_ARGS...] - run SCRIPT against a
# fresh epoll server and a fresh uring server (both with SERVER_ARGS),
# fail unless the outputs are identical; leaves the output in $output.
same_output() {
	local server_args=$1 script=$2 epoll_out

	shift 2
	# shellcheck disable=SC2086
	start_server $server_args
	run_script "$script" "$@"
	assert_success
	epoll_out=$output
	stop_server
	# shellcheck disable=SC2086
	start_server --io uring $server_args
	run_script "$script" "$@"
	assert_success
	assert_output "$epoll_out"
	stop_server
	[ "$SERVER_STATUS" -eq 0 ]
	no_backend_errors
	run echo "$epoll_out"	# for the caller's assert_line
}

@test "server_uring: the server says which backend runs and how" {
	start_server --io uring
	run_script "hello"
	assert_success
	assert_output "a: hello_ack version=1"
	run grep -c "io_uring backend:.*provided buffers" "$SERVER_LOG"
	assert_output "1"
	run "$SERVER_BIN" --help
	assert_output --partial "--io epoll|uring"
}

@test "server_uring: orders and a cross on both sides match epoll" {
	same_output "" "$CROSS_SCRIPT"
	assert_line "taker: executed sym=3 cl=9 mid=3:2 px=101 qty=2 leaves=0 side=B liq=R"
}

@test "server_uring: market data fan-out matches epoll" {
	same_output "" "$FANOUT_SCRIPT"
	assert_line "s2: tob sym=6 bid=10x1 ask=0x0"
	[ "${#lines[@]}" -eq 18 ]
}

@test "server_uring: replace, IOC and market remainders match epoll" {
	same_output "" "$REPLACE_SCRIPT"
	assert_line "a: replaced orig=2 new=4 oid=1:2 px=100 qty=6"
	same_output "" "$IOC_SCRIPT"
	assert_line "a: canceled cl=3 qty=4 reason=IOC_REMAINDER"
}

@test "server_uring: every reject code matches epoll" {
	same_output "--symbols 100 --max-orders 2" "$REJECT_SCRIPT"
	assert_line --index 0 "a: rejected reason=NOT_LOGGED_IN ref=O cl=1"
	assert_line "a: rejected reason=CAPACITY ref=O cl=14"
	[ "${#lines[@]}" -eq 20 ]
}

@test "server_uring: malformed frames are rejected and closed as with epoll" {
	same_output "" "$MALFORMED_SCRIPT"
	assert_line "bad1: rejected reason=MALFORMED ref=Z cl=0"
	assert_line "bad1: closed"
	assert_line "bad3: closed"
	assert_line "ok: accepted sym=4 cl=1 oid=4:1 px=10 qty=1 side=B type=L tif=G"
}

@test "server_uring: frames split into 1- and 5-byte writes match epoll whole" {
	check_split_frames_match_whole --io uring
}

@test "server_uring: SIGTERM and SIGINT give the summary and exit 0" {
	start_server --io uring --quiet
	check_term_summary
	no_backend_errors

	start_server --io uring --quiet
	check_int_summary
}

# A stop while clients are still connected and one send is stuck on a
# consumer that does not read: cancelled, drained, exit 0.
@test "server_uring: SIGTERM with open and stalled connections exits cleanly" {
	start_server --io uring
	client --rcvbuf 4096 >/dev/null 2>&1 <<'EOF' &
hello
sub 1
stall 4000
EOF
	local slow=$!
	sleep 0.3
	run client --flood 20000 --symbol 1 --cross --window 500
	assert_success
	stop_server TERM
	[ "$SERVER_STATUS" -eq 0 ]
	run grep -c "^summary: msgs_in=" "$SERVER_OUT"
	assert_output "1"
	no_backend_errors
	wait "$slow" || true
}

@test "server_uring: 1200 connections twice (slots reused), more than the buffers" {
	start_server --io uring --quiet
	check_many_connections
	check_many_connections
	stop_server
	[ "$SERVER_STATUS" -eq 0 ]
	run cat "$SERVER_OUT"
	# Two rounds of 1200, each followed by one hello session.
	assert_line --index 1 --regexp "connections=2402$"
	no_backend_errors
}

@test "server_uring: --max-conns refuses connections beyond it" {
	start_server --io uring --max-conns 5
	check_max_conns_refused
}

@test "server_uring: a pipelined flood of 60000 crossing orders is all served" {
	start_server --io uring --quiet
	run client --flood 60000 --symbol 2 --cross --window 2000
	assert_success
	assert_output "flood: sent=60000 accepted=60000 rejected=0 eof=0"
	stop_server
	run cat "$SERVER_OUT"
	assert_line --index 1 "summary: msgs_in=60001 msgs_out=120001 trades=30000 connections=1"
	no_backend_errors
}

@test "server_uring: a consumer that stops reading is disconnected, others served" {
	start_server --io uring --max-outbuf 65536
	check_slow_consumer_cut_off
	no_backend_errors
}

# See check_slow_reader_catches_up in helpers.bash: sends go short and are
# continued, in order, until the reader has every message.
@test "server_uring: a slow reader that catches up gets every message" {
	start_server --io uring --quiet --max-outbuf 64M
	check_slow_reader_catches_up
	no_backend_errors
}

@test "server_uring: --edge-triggered is accepted and ignored, IPv6 works" {
	start_server --io uring --edge-triggered
	run_script "hello"
	assert_output "a: hello_ack version=1"
	stop_server
	check_ipv6_hello --io uring
}

# --fsync batch: a uring run's journal replays into the same book an epoll
# server then continues from.
@test "server_uring: the journal with --fsync batch replays under epoll" {
	local journal=$BATS_TEST_TMPDIR/journal
	start_server --io uring --journal "$journal" --fsync batch
	run_script "hello
new 4 S L G 10 5 cl=1
new 4 S L G 11 5 cl=2"
	assert_success
	assert_line "a: accepted sym=4 cl=2 oid=4:2 px=11 qty=5 side=S type=L tif=G"
	stop_server
	start_server --journal "$journal"
	run grep -c "replayed 4 records, 2 resting orders" "$SERVER_LOG"
	assert_output "1"
	run_script "hello
new 4 B L G 11 6 cl=1"
	assert_success
	assert_line "a: accepted sym=4 cl=1 oid=4:3 px=11 qty=6 side=B type=L tif=G"
	assert_line "a: executed sym=4 cl=1 mid=4:1 px=10 qty=5 leaves=1 side=B liq=R"
}

@test "server_uring: loadgen --deterministic digest equals epoll's" {
	[ -x "$LOADGEN_BIN" ] || skip "no $LOADGEN_BIN"
	local epoll uring journaled
	SERVER_ARGS=
	epoll=$(fresh_digest --connections 16 --inflight 4 --orders 500)
	[ -n "$epoll" ]
	SERVER_ARGS="--io uring"
	uring=$(fresh_digest --connections 16 --inflight 4 --orders 500)
	SERVER_ARGS="--io uring --fsync batch --journal $BATS_TEST_TMPDIR/j"
	journaled=$(fresh_digest --connections 16 --inflight 4 --orders 500)
	echo "epoll $epoll uring $uring journaled $journaled"
	[ "$uring" = "$epoll" ]
	[ "$journaled" = "$epoll" ]
}

# The opt-in completion model and the single-shot fallback paths (what a
# kernel before 5.19/6.0 gets) serve the same conversation and volume.
@test "server_uring: DEFER_TASKRUN and single-shot accept/recv also match epoll" {
	local script="conn s
hello
sub 3
conn m
hello
new 3 S L G 10 5 cl=1
conn t
hello
new 3 B L G 10 7 cl=2
conn bad
raw 0400 5a00" epoll_out mode
	start_server
	run_script "$script"
	assert_success
	epoll_out=$output
	assert_line "bad: closed"
	stop_server
	for mode in MATCHING_SERVER_TASKRUN=defer \
		    MATCHING_SERVER_NO_MULTISHOT=1; do
		export "${mode?}"
		start_server --io uring
		run grep -c "io_uring backend:" "$SERVER_LOG"
		assert_output "1"
		if [[ $mode == *defer ]]; then
			run grep -c "defer-taskrun," "$SERVER_LOG"
		else
			run grep -c "single-shot accept and recv" "$SERVER_LOG"
		fi
		assert_output "1"
		run_script "$script"
		assert_success
		assert_output "$epoll_out"
		run client --flood 20000 --symbol 2 --cross --window 1000
		assert_success
		assert_output "flood: sent=20000 accepted=20000 rejected=0 eof=0"
		run client --many 300 --symbols 300
		assert_output "many: conns=300 hello_acks=300 accepted=300"
		stop_server
		[ "$SERVER_STATUS" -eq 0 ]
		no_backend_errors
		unset "${mode%%=*}"
	done
}

# One provided buffer for all: recvs run out of buffers (-ENOBUFS) all the
# time and must be re-armed without losing or reordering a byte.
@test "server_uring: with a single receive buffer nothing is lost (-ENOBUFS)" {
	local pids=() i
	MATCHING_SERVER_RECV_BUFS=1 start_server --io uring
	for i in 1 2 3 4; do
		client --flood 5000 --symbol "$i" --cross --window 200 \
			>"$BATS_TEST_TMPDIR/flood.$i" &
		pids+=($!)
	done
	run client --many 200 --symbols 200
	assert_output "many: conns=200 hello_acks=200 accepted=200"
	for i in 1 2 3 4; do
		wait "${pids[i - 1]}"
		run cat "$BATS_TEST_TMPDIR/flood.$i"
		assert_output "flood: sent=5000 accepted=5000 rejected=0 eof=0"
	done
	stop_server
	[ "$SERVER_STATUS" -eq 0 ]
	run grep -E "io_uring: [1-9][0-9]* recvs found no provided buffer" \
		"$SERVER_LOG"
	assert_success
	run grep -c "backend:.*provided buffers 1x" "$SERVER_LOG"
	assert_output "1"
	no_backend_errors
}

@test "server_uring: refused before listening where io_uring is denied" {
	local deny=$BUILD_DIR/tests/deny_uring
	[ -x "$deny" ] || skip "no $deny (tests/shim)"
	for err in EPERM ENOSYS; do
		run timeout -k 2 10 "$deny" --errno "$err" -- "$SERVER_BIN" \
			--io uring --port 0
		assert_failure 1
		refute_output --partial "listening on"
		assert_output --partial "--io uring: io_uring unavailable: io_uring_setup"
	done
}
