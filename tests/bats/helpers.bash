# helpers.bash - start and stop the matching server for the server suites.
#
# start_server spawns $BUILD/matching_server on --port 0, waits for its
# first stdout line "listening on ADDR:PORT" and records its PID in
# $BATS_FILE_TMPDIR/server.pids; kill_started_servers (call it from
# teardown) kills exactly those PIDs, never anything by name. The
# conversation scripts (*_SCRIPT) and checks (check_*) at the end are run
# by both server suites: server.bats (epoll) and server_uring.bats.

load common

SERVER_BIN=$BUILD_DIR/matching_server
CLIENT_BIN=$BUILD_DIR/tests/proto_client

# launch_server CMD... - run the server command line CMD (which ends in
# "matching_server ARGS...") in the background and wait for its listening
# line. Sets SERVER_PID, SERVER_PORT, SERVER_OUT (its stdout file) and
# SERVER_LOG (its stderr file); records the PID for kill_started_servers.
# Fails, showing the server's stderr, if no listening line comes.
launch_server() {
	local dir=${BATS_TEST_TMPDIR:-$BATS_FILE_TMPDIR}

	SERVER_OUT=$(mktemp "$dir/server.out.XXXXXX")
	SERVER_LOG=$(mktemp "$dir/server.log.XXXXXX")
	# fd 3 is bats' own: a background child must not hold it.
	"$@" >"$SERVER_OUT" 2>"$SERVER_LOG" 3>&- &
	SERVER_PID=$!
	echo "$SERVER_PID" >>"$BATS_FILE_TMPDIR/server.pids"
	if ! wait_listening "$SERVER_OUT" "$SERVER_PID"; then
		echo "server did not start; stderr:" >&2
		cat "$SERVER_LOG" >&2
		return 1
	fi
	SERVER_PORT=$LISTEN_PORT
}

# start_server [ARGS...] - start the server with ARGS (plus --port 0 unless
# ARGS has a --port), as launch_server does.
start_server() {
	local port_args=(--port 0)

	[[ " $* " == *" --port "* ]] && port_args=()
	launch_server "$SERVER_BIN" "${port_args[@]}" "$@"
}

# stop_server [SIGNAL] - signal the server (TERM by default) and wait for
# it; sets SERVER_STATUS to its exit status.
stop_server() {
	local sig=${1:-TERM}

	kill -"$sig" "$SERVER_PID" 2>/dev/null
	SERVER_STATUS=0
	# wait cannot hang: the server exits on TERM/INT/KILL. Quietly: no
	# "Killed" line from the shell.
	{ wait "$SERVER_PID"; } 2>/dev/null || SERVER_STATUS=$?
}

# kill_started_servers - teardown: SIGKILL every server this file started
# that is still alive.
kill_started_servers() {
	local pid

	[ -f "$BATS_FILE_TMPDIR/server.pids" ] || return 0
	while read -r pid; do
		kill -0 "$pid" 2>/dev/null || continue
		kill -KILL "$pid"
		# Reap it here, quietly, so the shell prints no "Killed" line.
		{ wait "$pid"; } 2>/dev/null
	done <"$BATS_FILE_TMPDIR/server.pids"
	: >"$BATS_FILE_TMPDIR/server.pids"
	return 0
}

# no_sanitizer_reports - fail if any server log of this test holds an
# ASan/UBSan/LSan report (meaningful with SAN= builds; cheap otherwise).
no_sanitizer_reports() {
	local dir=${BATS_TEST_TMPDIR:-$BATS_FILE_TMPDIR} f

	for f in "$dir"/server.log.*; do
		[ -e "$f" ] || continue
		if grep -E -q "Sanitizer|runtime error" "$f"; then
			echo "sanitizer report in $f:" >&2
			cat "$f" >&2
			return 1
		fi
	done
}

# client [ARGS...] - run proto_client against the started server, with a
# hang guard.
client() {
	timeout -k 2 60 "$CLIENT_BIN" --port "$SERVER_PORT" "$@"
}

# run_script TEXT [ARGS...] - run a script given as text; output in $output.
run_script() {
	local text=$1

	shift
	run client "$@" <<<"$text"
}

# wait_for_line FILE REGEX [SECONDS] - wait until FILE has a line matching
# REGEX (a background client reached a point), at most SECONDS (default 20).
wait_for_line() {
	local file=$1 regex=$2 i

	for ((i = 0; i < ${3:-20} * 20; i++)); do
		grep -qE -- "$regex" "$file" 2>/dev/null && return 0
		sleep 0.05
	done
	echo "timed out waiting for /$regex/ in $file" >&2
	return 1
}

# check_slow_consumer_cut_off - with a server started with --max-outbuf
# 65536: a subscriber that stops reading (small receive window) while a
# flood of trades runs on its symbol is cut off once its backlog passes the
# limit; the server logs it and keeps serving others.  200,000 orders make
# ~9 MB of market data, far beyond what the kernel buffers, so the
# server's own backlog passes the limit whatever the timing.
check_slow_consumer_cut_off() {
	local slow

	client --rcvbuf 4096 >"$BATS_TEST_TMPDIR/slow.out" <<'EOF' &
hello
sub 1
stall 5000
drain
EOF
	slow=$!
	# The flood must start after the subscription took effect.
	wait_for_line "$BATS_TEST_TMPDIR/slow.out" "^a: tob sym=1 "
	run client --flood 200000 --symbol 1 --cross --window 500
	assert_success
	assert_output "flood: sent=200000 accepted=200000 rejected=0 eof=0"
	wait "$slow" || { cat "$BATS_TEST_TMPDIR/slow.out" "$SERVER_LOG"; false; }
	run grep -c "slow consumer: conn 1 .*exceeds --max-outbuf 65536" \
		"$SERVER_LOG"
	assert_output "1"
	run cat "$BATS_TEST_TMPDIR/slow.out"
	assert_line --index 0 "a: hello_ack version=1"
	assert_line --regexp '^a: eof after [0-9]+ bytes$'
	run_script "hello"
	assert_output "a: hello_ack version=1"
}

# Scripted sessions both server suites run: server.bats checks their exact
# output, server_uring.bats that --io uring gives the same bytes as epoll.
CROSS_SCRIPT="conn maker
hello
new 3 S L G 101 5 cl=1
new 3 S L G 100 5 cl=2
conn taker
hello
new 3 B L G 102 7 cl=9"
FANOUT_SCRIPT="conn s1
hello
sub 5
conn s2
hello
sub 5
sub 6
conn t
hello
new 5 S L G 50 4 cl=1
new 5 B L I 50 1 cl=2
new 6 B L G 10 1 cl=3"
REPLACE_SCRIPT="hello
new 1 B L G 100 10 cl=1
new 1 B L G 100 10 cl=2
replace cl=1 new=3 12 100
replace cl=2 new=4 6 100
new 1 S L I 100 7 cl=5"
IOC_SCRIPT="hello
new 2 S L G 10 3 cl=1
new 2 B M I 0 5 cl=2
new 2 B L I 9 4 cl=3"
# For a server with --symbols 100 --max-orders 2: one order per reject code.
REJECT_SCRIPT="new 1 B L G 10 1 cl=1
hello
new 100 B L G 10 1 cl=2
new 1 B L G 0 1 cl=3
new 1 B L G 1000000001 1 cl=4
new 1 B M I 5 1 cl=5
new 1 B L G 10 0 cl=6
new 1 B L G 10 1000000001 cl=7
new 1 Q L G 10 1 cl=8
new 1 B Z G 10 1 cl=9
new 1 B L Z 10 1 cl=10
new 1 B L G 10 1 cl=11
new 1 B L G 10 1 cl=11
new 1 B L G 10 1 cl=0
cancel cl=99
replace cl=98 new=12 1 10
new 1 B L G 10 1 cl=13
new 1 B L G 10 1 cl=14
sub 100
hello"
# Unknown type 'Z'; then a known type with a wrong length; then an outbound
# type sent inbound. The "ok" session is served before and after.
MALFORMED_SCRIPT="conn ok
hello
conn bad1
raw 0400 5a00
conn bad2
hello
raw 1000 4f00 0000 0000 0000 0000 0000 0000
conn bad3
raw 0800 6c00 0100 0000
conn ok
new 4 B L G 10 1 cl=1"

# check_split_frames_match_whole [SERVER_ARGS...] - a script sent whole to
# a plain epoll server, then split into 1-byte and 5-byte writes to fresh
# servers started with SERVER_ARGS, gives the same output: framing survives
# any split.
check_split_frames_match_whole() {
	local script="hello
sub 9
new 9 S L G 10 5 cl=1
new 9 B L G 10 2 cl=2
replace cl=1 new=3 2 11
cancel cl=3" whole chunk

	start_server
	run_script "$script"
	assert_success
	whole=$output
	[ "$(grep -c . <<<"$whole")" -ge 10 ]
	stop_server
	for chunk in 1 5; do
		start_server "$@"
		run_script "$script" --chunk "$chunk" --chunk-delay-us 200
		assert_success
		assert_output "$whole"
		stop_server
	done
}

# check_term_summary - with a server started with --quiet: a trade and a
# flood of 100 crossing orders, then SIGTERM; the server exits 0 and its
# stdout is the listening line and the summary that counts them.
check_term_summary() {
	run_script "hello
new 7 S L G 10 5 cl=1
new 7 B L G 10 5 cl=2"
	assert_success
	run client --flood 100 --symbol 3 --cross
	assert_success
	stop_server TERM
	[ "$SERVER_STATUS" -eq 0 ]
	run cat "$SERVER_OUT"
	# In: 3 frames + 3 sync markers, then Hello + 100 orders. Out: 5
	# responses + 3 sync replies, then HelloAck, 100 Accepted and two
	# Executed for each of the 50 trades.
	assert_line --index 1 "summary: msgs_in=107 msgs_out=209 trades=51 connections=2"
	[ "${#lines[@]}" -eq 2 ]
}

# check_int_summary - with an idle server started with --quiet: SIGINT is a
# clean shutdown too, exit 0 with an all-zero summary.
check_int_summary() {
	stop_server INT
	[ "$SERVER_STATUS" -eq 0 ]
	run cat "$SERVER_OUT"
	assert_line --index 1 "summary: msgs_in=0 msgs_out=0 trades=0 connections=0"
}

# check_many_connections - 1200 concurrent connections each log in and
# place an order, then a new session is still answered.
check_many_connections() {
	run client --many 1200 --symbols 1200
	assert_success
	assert_output "many: conns=1200 hello_acks=1200 accepted=1200"
	run_script "hello"
	assert_output "a: hello_ack version=1"
}

# check_max_conns_refused - with a server started with --max-conns 5: the
# sixth connection is refused, and the server logs it once.
check_max_conns_refused() {
	run client --many 6
	assert_failure
	assert_output --partial "hello_acks=5"
	run grep -c -- "--max-conns reached" "$SERVER_LOG"
	assert_output "1"
}

# check_ipv6_hello [SERVER_ARGS...] - a server started with SERVER_ARGS on
# --bind ::1 says so and answers a hello over IPv6; skips the test where
# there is no IPv6 loopback.
check_ipv6_hello() {
	if ! start_server "$@" --bind ::1; then
		skip "no IPv6 loopback here"
	fi
	run head -n 1 "$SERVER_OUT"
	assert_output --regexp '^listening on \[::1\]:[0-9]+$'
	run client --host ::1 <<<"hello"
	assert_success
	assert_output "a: hello_ack version=1"
}

# check_slow_reader_catches_up - with a server started with --quiet
# --max-outbuf 64M: a subscriber stalls while ~9.6 MB of market data is
# produced for it (more than the kernel buffers hold, so the server must
# wait until it can send again), then reads and gets every message; the
# server then stops with exit 0.
check_slow_reader_catches_up() {
	local out=$BATS_TEST_TMPDIR/slow.out slow

	client --rcvbuf 4096 >"$out" <<'SCRIPT' &
hello
sub 1
stall 1500
count
SCRIPT
	slow=$!
	sleep 0.3
	run client --flood 200000 --symbol 1 --cross --window 500
	assert_success
	wait "$slow"
	run cat "$out"
	assert_output "a: hello_ack version=1
a: tob sym=1 bid=0x0 ask=0x0
a: counted hello_ack=0 accepted=0 rejected=0 executed=0 canceled=0 replaced=0 trade=100000 tob=200000"
	stop_server
	[ "$SERVER_STATUS" -eq 0 ]
}
