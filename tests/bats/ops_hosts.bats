#!/usr/bin/env bats
# ops_hosts.bats - the rollout on four "hosts": network namespaces, each
# with a veth link to the root namespace (10.99.X.4i+1/30 here, .4i+2
# there) and its own matching_server. uringshim-canary picks two hosts (by
# hash with fixed host ids, and by list), uringshim-run starts each server
# as decided, loadgen drives all four from the root namespace through
# uringshim-collect, uringshim-cohort reports canary against control; then
# the rollback by restart leaves no host with the library mapped, and the
# kill file switches a live canary host to passthrough under load.
#
# Every namespace, link and process is removed in teardown_file, whatever
# happened; names carry this run's PID so parallel runs never clash.

load ops_helpers
source "$TOP/scripts/fleet-hosts.sh"

SERVER=$OPS_BUILD/matching_server
LOADGEN=$OPS_BUILD/loadgen
STAT=$OPS_BUILD/uringshim-stat
HOSTS=(host-a host-b host-c host-d)
# With no salt, sha256 puts host-b (40) and host-c (11) below 50 and
# host-a (55) and host-d (79) above: 50 percent picks exactly two.
CANARY_HOSTS="host-b host-c"

setup_file() {
	local tag=us$$ subnet

	export OPS_STATE=$BATS_FILE_TMPDIR/state
	mkdir -p "$OPS_STATE"
	echo "$tag" > "$OPS_STATE/tag"
	: > "$OPS_STATE/pids"
	if ! ip netns add "${tag}probe" 2>/dev/null; then
		echo "cannot create network namespaces here (needs" \
		     "CAP_SYS_ADMIN and ip netns)" > "$OPS_STATE/skip"
		return 0
	fi
	ip netns del "${tag}probe"
	subnet=$(fleet_free_subnet)
	echo "$subnet" > "$OPS_STATE/subnet"
	fleet_up "$tag" 4 "$subnet" 2> "$OPS_STATE/up.err" || {
		echo "setting up the namespaces failed:" \
		     "$(head -n 1 "$OPS_STATE/up.err")" > "$OPS_STATE/skip"
	}
}

teardown_file() {
	local pid

	while read -r pid; do
		kill -KILL "$pid" 2>/dev/null || true
	done < "$OPS_STATE/pids"
	fleet_down "$(cat "$OPS_STATE/tag")" 4
}

setup() {
	tag=$(cat "$OPS_STATE/tag")
	subnet=$(cat "$OPS_STATE/subnet" 2>/dev/null)
	work=$BATS_TEST_TMPDIR
	printf 'percent = 50\n' > "$work/rollout.conf"
}

teardown() {
	stop_hosts
}

# require_hosts [loadgen] - skip unless the namespaces exist and the server
# (and the load generator) are built.
require_hosts() {
	[ ! -s "$OPS_STATE/skip" ] || skip "$(cat "$OPS_STATE/skip")"
	[ -x "$SERVER" ] || skip "$SERVER not built yet"
	[ "${1:-}" != loadgen ] || [ -x "$LOADGEN" ] ||
		skip "$LOADGEN not built yet"
}

# host_addr I - the server address of host I.
host_addr() {
	fleet_addr "$subnet" "$1"
}

# start_host I CONFIG [ENV=VALUE...] - start host I's server in its
# namespace through uringshim-run, as the canary decides with CONFIG.
# Sets pid[I] and port[I]; the PID is the server's (exec all the way).
start_host() {
	local i=$1 config=$2 out
	shift 2
	local args
	mapfile -t args < <("$CANARY" --config "$config" \
		--host-id "${HOSTS[$i]}" --emit run-args 2>/dev/null)
	# A fresh file per start: a restarted host must not be read from the
	# previous server's listening line.
	starts=$(( ${starts:-0} + 1 ))
	out=$work/host$i.$starts.out
	err=$work/host$i.$starts.err
	: > "$out"
	# fd 3 closed: bats waits for it to close before it ends a test.
	env "$@" ip netns exec "${tag}h$i" "$RUN" "${args[@]}" -- \
		"$SERVER" --bind "$(host_addr "$i")" --port 0 \
		> "$out" 2> "$err" 3>&- &
	pid[$i]=$!
	echo "${pid[$i]}" >> "$OPS_STATE/pids"
	for _ in $(seq 200); do
		grep -q '^listening on ' "$out" && break
		kill -0 "${pid[$i]}" 2>/dev/null ||
			fail "host $i server died: $(cat "$err")"
		sleep 0.05
	done
	port[$i]=$(sed -n '1s/^listening on .*:\([0-9]*\)$/\1/p' "$out")
	[ -n "${port[$i]}" ] || fail "host $i printed no listening line" \
		"(stderr: $(cat "$err"); $(ps -o stat=,args= -p "${pid[$i]}"))"
}

# start_hosts CONFIG [ENV=VALUE...] - all four.
start_hosts() {
	for i in 0 1 2 3; do
		start_host "$i" "$@"
	done
}

# stop_hosts - SIGTERM every server started by this test, then wait.
stop_hosts() {
	local i
	for i in "${!pid[@]}"; do
		kill -TERM "${pid[$i]}" 2>/dev/null || true
	done
	for i in "${!pid[@]}"; do
		for _ in $(seq 100); do
			kill -0 "${pid[$i]}" 2>/dev/null || break
			sleep 0.05
		done
		kill -KILL "${pid[$i]}" 2>/dev/null || true
		# A shim process that execs a program without the shim (ip
		# netns exec under LD_PRELOAD, then uringshim-run --off) leaves
		# its stats file behind: remove the dead server's.
		[ -d "/proc/${pid[$i]}" ] ||
			rm -f "/dev/shm/uringshim.${pid[$i]}"
	done
	pid=()
}

# maps_shim I - "on" when host I's server has the library mapped.
maps_shim() {
	if grep -q '/liburingshim\.so' "/proc/${pid[$1]}/maps"; then
		echo on
	else
		echo off
	fi
}

# canary_set CONFIG - the hosts the canary turns on, space separated.
canary_set() {
	local h on=""
	for h in "${HOSTS[@]}"; do
		case $("$CANARY" --config "$1" --host-id "$h") in
		on:*) on="$on $h" ;;
		esac
	done
	echo "${on# }"
}

@test "hosts: the canary picks exactly two hosts by hash, and by list" {
	assert_equal "$(canary_set "$work/rollout.conf")" "$CANARY_HOSTS"
	printf 'percent = 0\nallow = host-a, host-d, host-c\ndeny = host-c\n' \
		> "$work/list.conf"
	assert_equal "$(canary_set "$work/list.conf")" "host-a host-d"
}

@test "hosts: canary hosts run the shim, the others do not, all serve; by list too" {
	require_hosts
	require_shim_lib
	start_hosts "$work/rollout.conf"
	for i in 0 1 2 3; do
		# Reachable from the root namespace over its own link.
		timeout 5 bash -c "exec 5<>/dev/tcp/$(host_addr "$i")/${port[$i]}" ||
			fail "cannot connect to host $i"
		case " $CANARY_HOSTS " in
		*" ${HOSTS[$i]} "*) want=on ;;
		*) want=off ;;
		esac
		assert_equal "${HOSTS[$i]}:$(maps_shim "$i")" "${HOSTS[$i]}:$want"
	done
	# The same fleet chosen by list: host-a and host-d, not host-c (deny).
	stop_hosts
	printf 'percent = 0\nallow = host-a, host-c, host-d\ndeny = host-c\n' \
		> "$work/list.conf"
	start_hosts "$work/list.conf"
	got=""
	for i in 0 1 2 3; do
		got+="${HOSTS[$i]}:$(maps_shim "$i") "
	done
	assert_equal "$got" "host-a:on host-b:off host-c:off host-d:on "
}

@test "hosts: loadgen drives all four; the cohort report shows who ran the shim" {
	require_hosts loadgen
	require_shim_lib
	start_hosts "$work/rollout.conf"
	for i in 0 1 2 3; do
		run "$COLLECT" --out "$work/res/${HOSTS[$i]}" \
			--host "${HOSTS[$i]}" --pid "${pid[$i]}" -- \
			timeout 30 "$LOADGEN" --host "$(host_addr "$i")" \
			--port "${port[$i]}" --connections 4 --inflight 8 \
			--duration 1 --quiet
		assert_success
		grep -q '"errors": *0[,}]' "$work/res/${HOSTS[$i]}/loadgen.json" ||
			fail "loadgen errors on ${HOSTS[$i]}"
		# A canary host's server really served through the ring: a
		# report comparing a passthrough "canary" proves nothing.
		case " $CANARY_HOSTS " in
		*" ${HOSTS[$i]} "*) assert_accelerated --traffic "${pid[$i]}" ;;
		esac
	done
	run "$COHORT" --config "$work/rollout.conf" --out "$work/report" \
		"$work"/res/*
	assert_success
	assert_line --regexp '^verdict: (promote|hold|rollback)$'
	for h in "${HOSTS[@]}"; do
		case " $CANARY_HOSTS " in
		*" $h "*) row="| $h | canary | on |" ;;
		*) row="| $h | control | off |" ;;
		esac
		grep -qF "$row" "$work/report/report.md" ||
			fail "no row '$row' in the report"
	done
	[ -s "$work/report/plot.png" ]
	# Kept for people reading the test logs.
	rm -rf "$OPS_BUILD/test-logs/ops_hosts_report"
	mkdir -p "$OPS_BUILD/test-logs"
	cp -r "$work/report" "$OPS_BUILD/test-logs/ops_hosts_report"
}

@test "hosts: rollback by restart without the shim leaves no host with it mapped" {
	require_hosts loadgen
	require_shim_lib
	start_hosts "$work/rollout.conf"
	[ "$(maps_shim 1)" = on ]
	stop_hosts
	# The rollback: percentage back to 0, and the unit's inherited
	# LD_PRELOAD (as a drop-in would leave it) is stripped by --off.
	printf 'percent = 0\n' > "$work/rollback.conf"
	start_hosts "$work/rollback.conf" "LD_PRELOAD=$SHIM_LIB"
	for i in 0 1 2 3; do
		assert_equal "${HOSTS[$i]}:$(maps_shim "$i")" "${HOSTS[$i]}:off"
		run timeout 30 "$LOADGEN" --host "$(host_addr "$i")" \
			--port "${port[$i]}" --connections 2 --inflight 4 \
			--orders 200 --quiet --json "$work/after$i.json"
		assert_success
	done
}

@test "hosts: the kill file switches a live canary host to passthrough, no loadgen error" {
	require_hosts loadgen
	require_shim_lib
	[ -x "$STAT" ] || skip "$STAT not built yet (shim/)"
	kill_file=$work/kill
	printf 'percent = 50\nURINGSHIM_KILLFILE = %s\n' "$kill_file" \
		> "$work/kill.conf"
	start_host 1 "$work/kill.conf"
	[ "$(maps_shim 1)" = on ]
	timeout 30 "$LOADGEN" --host "$(host_addr 1)" --port "${port[1]}" \
		--connections 8 --inflight 8 --duration 3 --quiet \
		--json "$work/kill-load.json" > "$work/kill-load.out" 2>&1 3>&- &
	load=$!
	sleep 1
	# Something to switch off: the canary serves through the ring.
	assert_accelerated --traffic "${pid[1]}"
	before=$(shim_state "${pid[1]}")
	run "$ROLLBACK" --kill-file "$kill_file" --wait "${pid[1]}" --timeout 3
	after=$(shim_state "${pid[1]}")
	wait "$load"
	load_status=$?
	if [ "$after" = active ]; then
		skip "the shim lacks URINGSHIM_KILLFILE: stats state stayed" \
		     "'$after' with the kill file present under load"
	fi
	assert_equal "$before" active
	assert_equal "$after" killed
	[ "$load_status" -eq 0 ] || fail "loadgen failed: $(cat "$work/kill-load.out")"
	grep -q '"errors": *0[,}]' "$work/kill-load.json"
	# The library stays mapped: the kill file cannot unmap it.
	[ "$(maps_shim 1)" = on ]
}

# shim_state PID - the state name uringshim-stat reports.
shim_state() {
	"$STAT" --json "$1" 2>/dev/null | python3 -c '
import json, sys
try:
	s = json.load(sys.stdin).get("state", "")
except ValueError:
	s = ""
print(s if isinstance(s, str) else s.get("name", ""))'
}
