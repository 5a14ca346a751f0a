# real_helpers.bash - helpers shared by the hardening suites (real_*.bats,
# stress.bats, hostile_env.bats, memcheck.bats).
#
# Every server these suites start is started here, recorded by PID in
# $BATS_TEST_TMPDIR/pids, and killed by that PID in stop_started; nothing is
# ever killed by name. A "mode" is `plain` (no preload) or `shim`
# (LD_PRELOAD=$SHIM_LIB only on the server command). SHIM_PRELOAD_PREFIX
# (e.g. the ASan runtime, set by `make test-sanitize`) is preloaded first.

load common

# Absolute (BUILD_DIR): nginx and redis change directory before the loader
# would look.
SHIM_LIB=$BUILD_DIR/liburingshim.so

# require_cmd CMD... - skip the test when a tool is missing.
require_cmd() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null ||
			skip "$c not installed (scripts/deps.sh real)"
	done
}

# require_shim - skip the shim run while the library does not exist yet.
require_shim() {
	[ -f "$SHIM_LIB" ] || skip "shim not built ($SHIM_LIB)"
}

# free_port - print a TCP port of 127.0.0.1 that was free a moment ago.
free_port() {
	python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# wait_port PORT - wait (at most 10 s) until something accepts on PORT.
wait_port() {
	local i
	for i in $(seq 200); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.05
	done
	echo "nothing listens on port $1 after 10 s" >&2
	return 1
}

# mode_env MODE - the env(1) arguments that put MODE into effect.
mode_env() {
	case $1 in
	plain)	echo "-u LD_PRELOAD" ;;
	shim)	echo "LD_PRELOAD=${SHIM_PRELOAD_PREFIX:+$SHIM_PRELOAD_PREFIX:}$SHIM_LIB" ;;
	*)	echo "unknown mode $1" >&2; return 1 ;;
	esac
}

# start_bg MODE LOG CMD... - start CMD in the background under MODE, record
# its PID in $started_pid and in the per-test PID list.
start_bg() {
	local mode=$1 log=$2
	shift 2
	# shellcheck disable=SC2046
	env $(mode_env "$mode") "$@" >"$log" 2>&1 3>&- &
	started_pid=$!
	echo "$started_pid" >>"$BATS_TEST_TMPDIR/pids"
}

# stop_pid PID - SIGTERM, then SIGKILL after 5 s.
stop_pid() {
	local pid=$1 i
	kill -TERM "$pid" 2>/dev/null || return 0
	for i in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# stop_started - stop every process this test started (teardown).
stop_started() {
	local pid
	[ -f "$BATS_TEST_TMPDIR/pids" ] || return 0
	while read -r pid; do
		stop_pid "$pid"
	done <"$BATS_TEST_TMPDIR/pids"
	rm -f "$BATS_TEST_TMPDIR/pids"
}

# assert_alive PID - the process still runs (it did not crash under test).
assert_alive() {
	kill -0 "$1" 2>/dev/null || fail "process $1 died"
}

# assert_shim_mapped PID - the preload really took: the library is mapped.
assert_shim_mapped() {
	grep -q 'liburingshim\.so' "/proc/$1/maps" ||
		fail "liburingshim.so not mapped in process $1"
}

# assert_shim_absent PID - the library is not mapped.
assert_shim_absent() {
	! grep -q 'liburingshim\.so' "/proc/$1/maps" ||
		fail "liburingshim.so unexpectedly mapped in process $1"
}

# assert_preload_as MODE PID - the library is mapped in PID under mode
# shim, absent under plain.
assert_preload_as() {
	if [ "$1" = shim ]; then
		assert_shim_mapped "$2"
	else
		assert_shim_absent "$2"
	fi
}

# start_real MODE LOG CMD... - start the real server CMD, which listens on
# $port, under MODE with its output in LOG; wait until it accepts there and
# check the preload took as MODE says. Sets mode and started_pid.
start_real() {
	local log=$2

	mode=$1
	shift 2
	[ "$mode" = shim ] && require_shim
	start_bg "$mode" "$log" "$@"
	wait_port "$port" || { cat "$log"; false; }
	assert_preload_as "$mode" "$started_pid"
}

# assert_served_as MODE PID - PID survived and, under mode shim, served
# through the ring (common.bash's assert_accelerated).
assert_served_as() {
	assert_alive "$2"
	[ "$1" != shim ] || assert_accelerated --traffic "$2"
}

# shim_stat_field PID FIELD - one numeric field of `uringshim-stat --json`,
# empty when the tool or the field does not exist.
shim_stat_field() {
	[ -x "$SHIM_STAT" ] || return 0
	timeout 10 "$SHIM_STAT" --json "$1" 2>/dev/null |
		python3 -c 'import json, sys
def find(o, k):
    if isinstance(o, dict):
        if k in o:
            return o[k]
        for v in o.values():
            r = find(v, k)
            if r is not None:
                return r
    return None
try:
    v = find(json.load(sys.stdin), sys.argv[1])
except ValueError:
    v = None
if v is not None:
    print(v)' "$2"
}


# children_of PID - the direct children of PID (nginx workers).
children_of() {
	cat /proc/"$1"/task/*/children 2>/dev/null | tr ' ' '\n' | grep .
}

# sha_of FILE - the sha256 of FILE alone.
sha_of() {
	sha256sum "$1" | cut -d' ' -f1
}
