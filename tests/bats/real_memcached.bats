#!/usr/bin/env bats
# real_memcached.bats - an unmodified Debian memcached -t 4 (4 worker
# threads; the listener thread hands each connection to a worker) plainly
# and under the shim: many connections set random binary values (1 B to
# 200 KB) and read every one back byte-exact (real_memcached_client.py),
# plus a memcslap load whose errors must be zero.

load real_helpers

setup() {
	require_cmd memcached python3
}

teardown() {
	stop_started
}

# start_memcached MODE - memcached -t 4 on a free port; sets mc_pid.
start_memcached() {
	port=$(free_port)
	start_real "$1" "$BATS_TEST_TMPDIR/memcached.log" \
		memcached -t 4 -l 127.0.0.1 -p "$port" -U 0 -m 256 -c 2048 \
		-u root
	mc_pid=$started_pid
}

finish_memcached() {
	assert_served_as "$mode" "$mc_pid"
}

check_values() {
	run timeout 120 python3 "$BATS_TEST_DIRNAME/real_memcached_client.py" \
		"$port" 32 40 "$RANDOM"
	echo "$output"
	assert_success
	assert_output --regexp 'values verified [0-9]+, .* failures 0'
	# memcached counted as many sets as the client made (none lost).
	run bash -c "printf 'stats\r\nquit\r\n' |
		timeout 10 python3 -c 'import socket,sys
s = socket.create_connection((\"127.0.0.1\", $port))
s.sendall(sys.stdin.buffer.read())
d = b\"\"
while not d.endswith(b\"END\r\n\"):
    d += s.recv(65536)
sys.stdout.write(d.decode())'"
	assert_success
	assert_output --regexp 'STAT curr_connections [0-9]+'
	assert_output --regexp 'STAT threads 4'
}

check_memcslap() {
	require_cmd memcslap
	run timeout 60 memcslap --servers="127.0.0.1:$port" --concurrency=16 \
		--execute-number=2000 --binary
	echo "$output"
	assert_success
	refute_output --regexp '[Ff]ail|[Ee]rror'
	assert_output --regexp 'Time to set +32000 keys'
}

@test "memcached plain: 32 connections, every random value read back" {
	start_memcached plain; check_values; finish_memcached
}

@test "memcached shim: 32 connections, every random value read back" {
	start_memcached shim; check_values; finish_memcached
}

@test "memcached plain: memcslap 16 clients without errors" {
	start_memcached plain; check_memcslap; finish_memcached
}

@test "memcached shim: memcslap 16 clients without errors" {
	start_memcached shim; check_memcslap; finish_memcached
}
