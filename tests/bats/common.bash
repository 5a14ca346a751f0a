# common.bash - what every helper file of the bats suites starts with: the
# bats libraries, the build paths, and waiting for a server's first line.
#
# BUILD_DIR is $BUILD made absolute (servers may change directory before
# the loader opens a preloaded library).

bats_require_minimum_version 1.5.0

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'

TOP=${TOP:-$(cd "$BATS_TEST_DIRNAME/../.." && pwd)}
BUILD=${BUILD:-build}
case $BUILD in /*) BUILD_DIR=$BUILD ;; *) BUILD_DIR=$TOP/$BUILD ;; esac

# wait_listening OUT PID [TRIES] - wait until the server PID writes its
# first stdout line "listening on ADDR:PORT" to the file OUT, polling every
# 50 ms at most TRIES times (default 200: 10 s). Sets LISTEN_PORT; returns
# 1 when PID exits first or the line does not come.
wait_listening() {
	local out=$1 pid=$2 tries=${3:-200} line= i

	LISTEN_PORT=
	for ((i = 0; i < tries; i++)); do
		line=$(head -n 1 "$out" 2>/dev/null) || true
		[[ $line == "listening on "* ]] && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	[[ $line == "listening on "* ]] || return 1
	LISTEN_PORT=${line##*:}
}

# ---- Was the shim on? ----
#
# A run under the shim that gives the same bytes as a plain run proves
# nothing when the shim passed every call through: a seccomp profile that
# denies io_uring, kernel.io_uring_disabled or an old kernel make it fall
# back quietly, and the test then compares plain with plain. So every test
# that claims the shim reads the shim's own counters (uringshim-stat --json
# on the process's stats file) and asserts one of:
#   assert_accelerated      its sockets went through the ring;
#   assert_not_accelerated  the shim was loaded and, as the test expects,
#                           took no socket (blocking sockets, RECV=direct);
#   assert_passthrough      io_uring was refused and the shim fell back.
# The stats file is removed when its process exits: read it before, or
# keep it (tests/shim/conform.c links it when CONFORM_KEEP_STATS is set).

SHIM_STAT=$BUILD_DIR/uringshim-stat
URING_PROBE=$BUILD_DIR/tests/uring_probe
# Held by shim_fallback.bats while it sets kernel.io_uring_disabled=2.
SYSCTL_LOCK=/tmp/uringshim-io_uring_disabled.lock

# uring_refused - when this process tree cannot use io_uring as the shim
# needs it, print why and return 0; return 1 when it can, 2 (saying why)
# when the probe cannot tell. Asks tests/uring_probe each time (a
# concurrent shim_fallback.bats may flip io_uring_disabled for a few
# seconds; while it holds its lock, io_uring counts as refused).
uring_refused() {
	local out status=0

	if [ ! -x "$URING_PROBE" ]; then
		echo "$URING_PROBE not built (make test builds it)"
		return 2
	fi
	out=$("$URING_PROBE" 2>&1) || status=$?
	case $status in
	0)	;;
	77)	echo "$out"; return 0 ;;
	*)	echo "$URING_PROBE exit $status: $out"; return 2 ;;
	esac
	if [ -e "$SYSCTL_LOCK" ] && ! flock -n "$SYSCTL_LOCK" true; then
		echo "kernel.io_uring_disabled is being toggled by another run"
		return 0
	fi
	return 1
}

# require_io_uring - skip the test, saying why, where io_uring is refused.
require_io_uring() {
	local why status=0

	why=$(uring_refused) || status=$?
	case $status in
	0)	skip "$why" ;;
	2)	fail "$why"; return 1 ;;
	esac
}

# shim_stats_json PID [DIR] - `uringshim-stat --json` of PID, its stats
# file in DIR (default $URINGSHIM_STATS_DIR, else /dev/shm). Fails, saying
# why, when there is none.
shim_stats_json() {
	local dir=${2:-${URINGSHIM_STATS_DIR:-/dev/shm}} out

	if [ ! -x "$SHIM_STAT" ]; then
		fail "$SHIM_STAT not built: cannot tell whether the shim was on"
		return 1
	fi
	if ! out=$(timeout 10 "$SHIM_STAT" --json -d "$dir" "$1" 2>&1); then
		fail "no shim stats for process $1 in $dir ($out): the shim" \
		     "was not loaded there, or its stats were turned off"
		return 1
	fi
	echo "$out"
}

# keep_stats PID [DIR] - link the live stats file of PID (in DIR, default
# $URINGSHIM_STATS_DIR or /dev/shm) into $BATS_TEST_TMPDIR/kept-stats, so
# the counters, final ones included, can be read after PID exits (the
# shim removes its file then; the link keeps it). Prints that directory.
keep_stats() {
	local dir=${2:-${URINGSHIM_STATS_DIR:-/dev/shm}}
	local kept=$BATS_TEST_TMPDIR/kept-stats

	mkdir -p "$kept"
	if ! ln -f "$dir/uringshim.$1" "$kept/uringshim.$1"; then
		fail "process $1 has no stats file in $dir (was the shim" \
		     "loaded there?)"
		return 1
	fi
	echo "$kept"
}

# stats_pids DIR - the PIDs that have (or kept) a stats file in DIR.
stats_pids() {
	local f

	for f in "$1"/uringshim.*; do
		[ -e "$f" ] && echo "${f##*.}"
	done
}

# shim_stats_sum [-d DIR | -j] ARG... - the stats of the processes ARG
# (PIDs, stats files in DIR; with -j, files holding a saved
# `uringshim-stat --json`) summed: sets STATES (the comma-separated
# "pid:state(reason)" of each, blanks as _), ACCEL, ENTERS, RECV and SENT
# (accel_total, enters, bytes_recv, bytes_sent).
shim_stats_sum() {
	local dir=${URINGSHIM_STATS_DIR:-/dev/shm} saved=0 arg all="" line

	case ${1:-} in
	-d)	dir=$2; shift 2 ;;
	-j)	saved=1; shift ;;
	esac
	[ $# -gt 0 ] ||
		{ fail "no process to read the shim's stats of"; return 1; }
	for arg in "$@"; do
		if [ "$saved" = 1 ]; then
			all+=$(cat "$arg") ||
				{ fail "no saved stats $arg"; return 1; }
		else
			all+=$(shim_stats_json "$arg" "$dir") || return 1
		fi
		all+=$'\n'
	done
	line=$(jq -rs '[
		(map("\(.pid):\(.state)" +
		     (if .reason != "" then "(\(.reason))" else "" end))
		 | join(",") | gsub(" "; "_")),
		(map(.accel_total) | add), (map(.enters) | add),
		(map(.bytes_recv) | add), (map(.bytes_sent) | add)]
		| map(tostring) | join(" ")' <<<"$all") ||
		{ fail "unreadable shim stats: $all"; return 1; }
	read -r STATES ACCEL ENTERS RECV SENT <<<"$line"
}

# stats_text - the figures of the last shim_stats_sum, for messages.
stats_text() {
	echo "$STATES: accel_total=$ACCEL enters=$ENTERS bytes_recv=$RECV" \
	     "bytes_sent=$SENT"
}

# require_stats_active - after shim_stats_sum: at least one process ran
# the shim active (it had a ring). Where all fell back to passthrough
# because io_uring is refused here (tests/uring_probe agrees), skip the
# test, saying so; anything else is a failure.
require_stats_active() {
	local why status=0

	[[ ",$STATES" != *:active* ]] || return 0
	if [[ ",$STATES" == *:passthrough* ]]; then
		why=$(uring_refused) || status=$?
		why+=": the shim ran in passthrough, so the run proves nothing"
		[ "$status" != 0 ] || skip "$why"
		[ "$status" != 2 ] || fail "$why"
	fi
	fail "the shim was not active: $(stats_text)"
	return 1
}

# assert_accelerated [-d DIR | -j] [--traffic] ARG... - the processes
# (as shim_stats_sum reads them) ran the shim active and their sockets
# went through the ring: at least one socket accelerated and one
# io_uring_enter in all, and with --traffic bytes received through the
# ring. Skips where io_uring is refused (require_stats_active). Leaves
# the sums in ACCEL, ENTERS, RECV, SENT.
assert_accelerated() {
	local args=() traffic=0

	while [ $# -gt 0 ]; do
		case $1 in
		-d)		args=(-d "$2"); shift 2 ;;
		-j)		args=(-j); shift ;;
		--traffic)	traffic=1; shift ;;
		*)		break ;;
		esac
	done
	shim_stats_sum "${args[@]}" "$@" || return 1
	echo "shim stats: $(stats_text)"
	require_stats_active || return 1
	if [ "$ACCEL" -eq 0 ] || [ "$ENTERS" -eq 0 ]; then
		fail "no socket went through the ring: $(stats_text)"
		return 1
	fi
	if [ "$traffic" = 1 ] && [ "$RECV" -eq 0 ]; then
		fail "no byte was received through the ring: $(stats_text)"
		return 1
	fi
}

# assert_not_accelerated [-d DIR | -j] [--state STATE] ARG... - the shim was
# loaded (its stats exist, in STATE when given) and took no socket: no
# socket accelerated, no byte through the ring. With --state active it
# skips where io_uring is refused (require_stats_active): the shim's
# choice to leave the sockets alone is then not under test.
assert_not_accelerated() {
	local args=() state=

	while [ $# -gt 0 ]; do
		case $1 in
		-d)		args=(-d "$2"); shift 2 ;;
		-j)		args=(-j); shift ;;
		--state)	state=$2; shift 2 ;;
		*)		break ;;
		esac
	done
	shim_stats_sum "${args[@]}" "$@" || return 1
	echo "shim stats: $(stats_text)"
	if [ "$state" = active ]; then
		require_stats_active || return 1
	fi
	if [ "$ACCEL" -ne 0 ] || [ "$RECV" -ne 0 ]; then
		fail "sockets were accelerated, none expected: $(stats_text)"
		return 1
	fi
	if [ -n "$state" ] &&
	   tr ',' '\n' <<<"$STATES" | grep -qvE ":$state(\(|$)"; then
		fail "not every process in state $state: $(stats_text)"
		return 1
	fi
}

# assert_passthrough [-d DIR | -j] ARG... - io_uring was refused and the
# shim fell back: every process in state passthrough saying io_uring is
# unavailable, no ring entered, no socket accelerated.
assert_passthrough() {
	local args=()

	case $1 in
	-d)	args=(-d "$2"); shift 2 ;;
	-j)	args=(-j); shift ;;
	esac
	shim_stats_sum "${args[@]}" "$@" || return 1
	echo "shim stats: $(stats_text)"
	if tr ',' '\n' <<<"$STATES" |
	   grep -qv ':passthrough(io_uring_unavailable'; then
		fail "not in passthrough for want of io_uring: $(stats_text)"
		return 1
	fi
	if [ "$ACCEL" -ne 0 ] || [ "$ENTERS" -ne 0 ]; then
		fail "the ring was used while io_uring was refused:" \
		     "$(stats_text)"
		return 1
	fi
}
