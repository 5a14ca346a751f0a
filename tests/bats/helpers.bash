# helpers.bash - start and stop the matching server for the server suites.
#
# start_server spawns $BUILD/matching_server on --port 0, waits for its
# first stdout line "listening on ADDR:PORT" and records its PID in
# $BATS_FILE_TMPDIR/server.pids; kill_started_servers (call it from
# teardown) kills exactly those PIDs, never anything by name.

bats_require_minimum_version 1.5.0

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'

TOP=${TOP:-$(cd "$BATS_TEST_DIRNAME/../.." && pwd)}
BUILD=${BUILD:-build}
case $BUILD in /*) BUILD_DIR=$BUILD ;; *) BUILD_DIR=$TOP/$BUILD ;; esac
SERVER_BIN=$BUILD_DIR/matching_server
CLIENT_BIN=$BUILD_DIR/tests/proto_client

# start_server [ARGS...] - start the server with ARGS (plus --port 0 unless
# ARGS has a --port). Sets SERVER_PID, SERVER_PORT, SERVER_OUT (its stdout
# file) and SERVER_LOG (its stderr file). Fails if no listening line comes.
start_server() {
	local dir=${BATS_TEST_TMPDIR:-$BATS_FILE_TMPDIR} line i
	local port_args=(--port 0)

	[[ " $* " == *" --port "* ]] && port_args=()
	SERVER_OUT=$(mktemp "$dir/server.out.XXXXXX")
	SERVER_LOG=$(mktemp "$dir/server.log.XXXXXX")
	# fd 3 is bats' own: a background child must not hold it.
	"$SERVER_BIN" "${port_args[@]}" "$@" >"$SERVER_OUT" 2>"$SERVER_LOG" 3>&- &
	SERVER_PID=$!
	echo "$SERVER_PID" >>"$BATS_FILE_TMPDIR/server.pids"
	for ((i = 0; i < 200; i++)); do
		line=$(head -n 1 "$SERVER_OUT")
		[[ $line == "listening on "* ]] && break
		kill -0 "$SERVER_PID" 2>/dev/null || break
		sleep 0.05
	done
	if [[ $line != "listening on "* ]]; then
		echo "server did not start; stderr:" >&2
		cat "$SERVER_LOG" >&2
		return 1
	fi
	SERVER_PORT=${line##*:}
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
