# shim_helpers.bash - run the matching server under liburingshim.so for the
# shim suites (shim_digest.bats, shim_ops.bats).
#
# shim_server ENV... -- ARGS... starts $BUILD/matching_server with the
# environment assignments ENV (e.g. LD_PRELOAD=... URINGSHIM_SEND=direct)
# and server ARGS, through helpers.bash's PID bookkeeping, so teardown
# kills exactly the servers this file started.

load helpers

SHIM_LIB=$BUILD_DIR/liburingshim.so
LOADGEN_BIN=$BUILD_DIR/loadgen
# A command the server runs under (e.g. deny_uring --), empty by default.
SHIM_WRAP=()

shim_server() {
	local envs=()

	while [ $# -gt 0 ] && [ "$1" != "--" ]; do
		envs+=("$1")
		shift
	done
	[ "${1:-}" = "--" ] && shift
	launch_server env "${envs[@]}" "${SHIM_WRAP[@]}" "$SERVER_BIN" \
		--port 0 --quiet "$@"
}

# loadgen_digest CONNS ORDERS - deterministic run against the started
# server; prints the digest (fails when loadgen fails or prints none).
loadgen_digest() {
	local out

	out=$(timeout -k 5 120 "$LOADGEN_BIN" --host 127.0.0.1 \
		--port "$SERVER_PORT" --connections "$1" --orders "$2" \
		--deterministic 2>&1) || { echo "$out" >&2; return 1; }
	out=$(grep -m1 -oE 'digest: [0-9a-f]+' <<<"$out") ||
		{ echo "no digest" >&2; return 1; }
	echo "${out#digest: }"
}

# digest_of ENV... -- CONNS ORDERS [SERVER ARGS...] - fresh server, one
# deterministic run, stop; sets DIGEST. A server under the shim (ENV sets
# LD_PRELOAD) must first show that it served through the ring, or, with
# SHIM_EXPECT=none, that the shim was active and took no socket. Call it
# directly, not in $(...): where io_uring is refused it skips the test.
digest_of() {
	local envs=() conns orders

	while [ "$1" != "--" ]; do
		envs+=("$1")
		shift
	done
	shift
	conns=$1 orders=$2
	shift 2
	DIGEST=
	shim_server "${envs[@]}" -- "$@" || return 1
	DIGEST=$(loadgen_digest "$conns" "$orders") || return 1
	if [[ " ${envs[*]} " == *" LD_PRELOAD="* ]]; then
		if [ "${SHIM_EXPECT:-ring}" = none ]; then
			assert_not_accelerated --state active "$SERVER_PID"
		else
			assert_accelerated --traffic "$SERVER_PID"
		fi
	fi
	stop_server INT
	[ "$SERVER_STATUS" -eq 0 ] || { echo "server exit $SERVER_STATUS" >&2
					return 1; }
}

# stat_field PID NAME - one counter from uringshim-stat.
stat_field() {
	"$SHIM_STAT" "$1" | sed -n "s/^$2: //p"
}

# ring_fds PID - how many io_uring fds the process holds.
ring_fds() {
	ls -l "/proc/$1/fd" 2>/dev/null | grep -c 'io_uring' || true
}
