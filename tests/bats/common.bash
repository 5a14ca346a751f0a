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
