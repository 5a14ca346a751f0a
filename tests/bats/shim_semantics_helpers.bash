# shim_semantics_helpers.bash - run the shim conformance programs
# (tests/shim/*.c) plainly and under the shim and compare their transcripts.
#
# A program's transcript is its stdout; its stderr (where the shim may log)
# is kept apart. The plain transcript of a corner is made once per file and
# reused by the shim runs of that corner. Each shim run must show, from the
# shim's stats, that the corner's sockets went through the ring (or, for
# the few corners listed with their reason, that none did).

load common

SHIM_LIB=$BUILD_DIR/liburingshim.so
CORNER_DIR=$BUILD_DIR/tests/shim
DENY_URING=$BUILD_DIR/tests/deny_uring
# Hang guard per run only; the programs bound their own waits.
RUN_TIMEOUT=120

# Corners whose sockets the shim rightly leaves to the kernel, and why.
# Under the shim these must accelerate nothing; every other corner must
# put at least one socket through the ring (check_shim), or its run
# proves nothing about the shim.
declare -gA CORNER_NOT_ACCELERATED=(
	[blocking]="blocking sockets are never accelerated: the corner \
proves they pass through unchanged"
	[connect]="its sockets join the epoll set before connect() completes, \
not established then, so they stay in the kernel's set (shim/DESIGN.md, \
bound epoll sets)"
)

# Settings under which the shim takes no socket at all, and why.
declare -gA SETTINGS_NOT_ACCELERATED=(
	[spin_epoll]="URINGSHIM_SPIN_RING=0 spins on plain epoll_wait(..., 0) \
and makes no ring: every socket stays with the kernel"
)

# settings_env NAME - the environment of a named shim settings combination.
settings_env() {
	case $1 in
	default)	echo "" ;;
	adaptive0)	echo "URINGSHIM_ADAPTIVE=0" ;;
	recv_single)	echo "URINGSHIM_ADAPTIVE=0 URINGSHIM_RECV=single" ;;
	send_sync)	echo "URINGSHIM_SEND=sync" ;;
	spin)		echo "URINGSHIM_SPIN_US=100" ;;
	spin_epoll)	echo "URINGSHIM_SPIN_US=100 URINGSHIM_SPIN_RING=0" ;;
	*)		echo "unknown settings $1" >&2; return 1 ;;
	esac
}

# plain_transcript CORNER - run the program without the shim once per file;
# prints the transcript path. Fails (with the output) when it does not pass,
# skips when it skips.
plain_transcript() {
	local corner=$1 out=$BATS_FILE_TMPDIR/$1.plain status

	[ -x "$CORNER_DIR/$corner" ] || fail "$CORNER_DIR/$corner not built"
	if [ ! -f "$out.status" ]; then
		status=0
		timeout -k 5 "$RUN_TIMEOUT" "$CORNER_DIR/$corner" \
			>"$out" 2>"$out.err" 3>&- || status=$?
		echo "$status" >"$out.status"
	fi
	status=$(cat "$out.status")
	if [ "$status" -eq 77 ]; then
		skip "$corner: $(tail -n 1 "$out")"
	elif [ "$status" -ne 0 ]; then
		cat "$out" "$out.err"
		fail "$corner exits $status without the shim"
	fi
	echo "$out"
}

# check_plain CORNER - the program passes on its own.
check_plain() {
	plain_transcript "$1" >/dev/null
}

require_shim() {
	[ -f "$SHIM_LIB" ] || skip "shim not built"
}

# shim_run OUT CORNER SETTINGS [PREFIX...] - run the program under the shim
# with the named settings, PREFIX (e.g. deny_uring) in front; stdout to OUT,
# stderr to OUT.err, exit status to OUT.status, and the shim's stats file
# of the program's process kept in the directory OUT.stats.
shim_run() {
	local out=$1 corner=$2 settings=$3 status=0
	local asan=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0

	shift 3
	rm -rf "$out.stats"
	mkdir "$out.stats"
	# ASAN_OPTIONS: with SAN=address the program's ASan runtime is not
	# first in the library list once the shim is preloaded; that is fine.
	# shellcheck disable=SC2046 # settings_env is a list of words
	timeout -k 5 "$RUN_TIMEOUT" "$@" env $(settings_env "$settings") \
		ASAN_OPTIONS="$asan" \
		URINGSHIM_STATS_DIR="$BATS_TEST_TMPDIR" \
		CONFORM_KEEP_STATS="$out.stats" \
		LD_PRELOAD="$SHIM_LIB" "$CORNER_DIR/$corner" \
		>"$out" 2>"$out.err" 3>&- || status=$?
	echo "$status" >"$out.status"
}

# compare_transcripts PLAIN SHIM CORNER - same bytes and both exit 0.
compare_transcripts() {
	local plain=$1 shim=$2 corner=$3 status

	status=$(cat "$shim.status")
	if ! cmp -s "$plain" "$shim"; then
		echo "transcripts differ (- plain, + shim):"
		diff -u "$plain" "$shim" | tail -n +3
		echo "shim stderr:"
		head -n 20 "$shim.err"
		fail "$corner: the shim changed what the application observed"
	fi
	if [ "$status" -ne 0 ]; then
		cat "$shim.err"
		fail "$corner exits $status under the shim"
	fi
}

# corner_pid OUT - the PID of the program shim_run ran into OUT, from the
# one stats file it kept; fails when it kept none (the shim never loaded).
corner_pid() {
	local pids

	pids=$(stats_pids "$1.stats")
	[ "$(wc -w <<<"$pids")" -eq 1 ] ||
		fail "expected one kept stats file in $1.stats, found:" \
		     "'$pids' (was the shim loaded?)"
	echo "$pids"
}

# check_corner_accel OUT CORNER - the corner's run into OUT put its sockets
# through the ring, or, for a corner of CORNER_NOT_ACCELERATED, none.
# Skips when the shim fell back because io_uring is refused here.
check_corner_accel() {
	local out=$1 corner=$2 settings=${3:-} pid

	pid=$(corner_pid "$out") || return 1
	if [ -n "${SETTINGS_NOT_ACCELERATED[$settings]:-}" ]; then
		echo "$settings accelerates nothing:" \
		     "${SETTINGS_NOT_ACCELERATED[$settings]}"
		assert_not_accelerated -d "$out.stats" --state init "$pid"
	elif [ -n "${CORNER_NOT_ACCELERATED[$corner]:-}" ]; then
		echo "$corner accelerates nothing:" \
		     "${CORNER_NOT_ACCELERATED[$corner]}"
		assert_not_accelerated -d "$out.stats" --state active "$pid"
	else
		assert_accelerated -d "$out.stats" "$pid"
	fi
}

# check_shim CORNER SETTINGS - the transcript under the shim equals the
# plain one, and the shim really took the corner's sockets (or, for the
# corners listed in CORNER_NOT_ACCELERATED, rightly none): a comparison
# with a shim that passed everything through would prove nothing.
check_shim() {
	local corner=$1 settings=$2 plain out

	require_shim
	plain=$(plain_transcript "$corner") || return
	out=$BATS_TEST_TMPDIR/$corner.$settings
	shim_run "$out" "$corner" "$settings"
	compare_transcripts "$plain" "$out" "$corner"
	check_corner_accel "$out" "$corner" "$settings"
}

# passthrough_lines FILE - how many stderr lines announce the fallback.
passthrough_lines() {
	grep -c 'uringshim.*passthrough' "$1" || true
}
