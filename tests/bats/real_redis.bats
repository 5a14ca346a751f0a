#!/usr/bin/env bats
# real_redis.bats - an unmodified Debian redis-server (single-threaded, epoll)
# plainly and under the shim: replies, redis-benchmark with many clients
# (pipelined and not) losing no increment, 1-8 MiB values read back
# bit-exact, MULTI/EXEC, and pub-sub delivering every message in order.
# Each check runs once per mode; the shim run also proves the library was
# mapped and, from uringshim-stat, that redis served through the ring.

load real_helpers

setup() {
	require_cmd redis-server redis-cli redis-benchmark python3
}

teardown() {
	stop_started
}

# start_redis MODE - a throwaway redis on a free port, no persistence.
start_redis() {
	port=$(free_port)
	start_real "$1" "$BATS_TEST_TMPDIR/redis.log" env ${redis_env:-} \
		redis-server --port "$port" --bind 127.0.0.1 --save '' \
		--appendonly no --dir "$BATS_TEST_TMPDIR" --maxclients 1000 \
		--protected-mode no
	redis_pid=$started_pid
}

# finish_redis - the server survived and, under the shim, used the ring.
finish_redis() {
	assert_served_as "$mode" "$redis_pid"
}

rcli() {
	timeout 60 redis-cli -h 127.0.0.1 -p "$port" "$@"
}

check_replies() {
	run rcli PING
	assert_output PONG
	run rcli SET greeting hello
	assert_output OK
	run rcli GET greeting
	assert_output hello
	run rcli INCRBY n 41
	assert_output 41
	run rcli INCR n
	assert_output 42
	rcli RPUSH l a b c >/dev/null
	run rcli LRANGE l 0 -1
	assert_output "$(printf 'a\nb\nc')"
	run rcli GET missing
	assert_output ''
	run rcli NOSUCHCOMMAND x
	assert_output --partial 'unknown command'
	# Many commands on one connection, answered in order.
	run bash -c "for i in \$(seq 500); do echo \"INCR seq\"; done |
		timeout 60 redis-cli -h 127.0.0.1 -p $port | tail -n 1"
	assert_output 500
}

check_benchmark() {
	local p out
	for p in 1 16; do
		run timeout 120 redis-benchmark -h 127.0.0.1 -p "$port" \
			-c 100 -n 4000 -P "$p" -t set,get,incr,lpush,lpop -q
		assert_success
		refute_output --partial rror
		for t in SET GET INCR LPUSH LPOP; do
			assert_output --regexp "$t: [0-9.]+ requests per second"
		done
	done
	# Every INCR of both runs landed exactly once (the key keeps the
	# literal placeholder without -r).
	run rcli GET 'counter:__rand_int__'
	assert_output 8000
	run rcli LLEN mylist
	assert_output 0
}

check_large_values() {
	local mib f readers=()
	for mib in 1 3 8; do
		f=$BATS_TEST_TMPDIR/v$mib
		head -c $((mib << 20)) /dev/urandom >"$f"
		run rcli -x SET "big$mib" <"$f"
		assert_output OK
		run rcli STRLEN "big$mib"
		assert_output $((mib << 20))
		# --raw appends one newline after the bulk string.
		rcli --raw GET "big$mib" | head -c -1 >"$f.got"
		[ "$(sha_of "$f.got")" = "$(sha_of "$f")" ] ||
			fail "GET big$mib: sha256 differs from what was SET"
	done
	# Several large values in flight on different connections at once.
	for mib in 1 3 8; do
		rcli --raw GET "big$mib" |
			head -c -1 >"$BATS_TEST_TMPDIR/par$mib" &
		readers+=($!)
	done
	wait "${readers[@]}"
	for mib in 1 3 8; do
		[ "$(sha_of "$BATS_TEST_TMPDIR/par$mib")" = \
		  "$(sha_of "$BATS_TEST_TMPDIR/v$mib")" ] ||
			fail "parallel GET big$mib differs"
	done
}

check_multi_exec() {
	run bash -c "printf 'MULTI\nINCR c\nINCR c\nSET k v\nGET k\nEXEC\n' |
		timeout 60 redis-cli -h 127.0.0.1 -p $port"
	assert_success
	assert_output "$(printf 'OK\nQUEUED\nQUEUED\nQUEUED\nQUEUED\n1\n2\nOK\nv')"
	# DISCARD drops the queue; WATCH aborts on a concurrent change.
	run bash -c "printf 'MULTI\nINCR d\nDISCARD\nGET d\n' |
		timeout 60 redis-cli -h 127.0.0.1 -p $port"
	assert_output "$(printf 'OK\nQUEUED\nOK\n')"
}

check_pubsub() {
	local n=3000 sub=$BATS_TEST_TMPDIR/sub.out i
	timeout 120 redis-cli -h 127.0.0.1 -p "$port" SUBSCRIBE chan >"$sub" &
	echo $! >>"$BATS_TEST_TMPDIR/pids"
	for i in $(seq 200); do
		[ "$(rcli PUBSUB NUMSUB chan | tail -n 1)" = 1 ] && break
		sleep 0.05
	done
	# Publish everything pipelined on one connection (--pipe writes as
	# fast as the socket takes it).
	run bash -c "for i in \$(seq $n); do echo \"PUBLISH chan m\$i-\$RANDOM\"; done |
		tee $BATS_TEST_TMPDIR/pub.in |
		timeout 60 redis-cli -h 127.0.0.1 -p $port --pipe"
	assert_success
	assert_output --partial "errors: 0, replies: $n"
	for i in $(seq 200); do
		[ "$(grep -c '^m' "$sub")" -ge "$n" ] && break
		sleep 0.05
	done
	# The subscriber prints message / chan / payload per message.
	awk 'prev2 == "message" && prev1 == "chan" { print }
	     { prev2 = prev1; prev1 = $0 }' "$sub" >"$sub.payloads"
	cut -d' ' -f3 "$BATS_TEST_TMPDIR/pub.in" >"$sub.expected"
	cmp "$sub.payloads" "$sub.expected" ||
		fail "subscriber did not receive every message in order"
}

@test "redis plain: replies" {
	start_redis plain; check_replies; finish_redis
}

@test "redis shim: replies" {
	start_redis shim; check_replies; finish_redis
}

@test "redis plain: redis-benchmark 100 clients, -P 1 and 16, no lost INCR" {
	start_redis plain; check_benchmark; finish_redis
}

@test "redis shim: redis-benchmark 100 clients, -P 1 and 16, no lost INCR" {
	start_redis shim; check_benchmark; finish_redis
}

@test "redis plain: 1-8 MiB values read back bit-exact" {
	start_redis plain; check_large_values; finish_redis
}

@test "redis shim: 1-8 MiB values read back bit-exact" {
	start_redis shim; check_large_values; finish_redis
}

@test "redis plain: MULTI/EXEC and DISCARD" {
	start_redis plain; check_multi_exec; finish_redis
}

@test "redis shim: MULTI/EXEC and DISCARD" {
	start_redis shim; check_multi_exec; finish_redis
}

@test "redis plain: pub-sub delivers every message in order" {
	start_redis plain; check_pubsub; finish_redis
}

@test "redis shim: pub-sub delivers every message in order" {
	start_redis shim; check_pubsub; finish_redis
}

@test "redis shim: injected ring faults, redis-benchmark loses no INCR" {
	local spec
	require_shim
	grep -q 'sq-full' "$SHIM_LIB" || skip "shim has no URINGSHIM_FAULT"
	for spec in sq-full enomem:3 enobufs:2 eagain:5; do
		redis_env="URINGSHIM_FAULT=$spec URINGSHIM_ADAPTIVE=0 URINGSHIM_RING_ENTRIES=8"
		start_redis shim
		check_benchmark
		finish_redis
		if [[ $spec == *:* ]]; then
			[ "$(shim_stat_field "$redis_pid" fallbacks)" -gt 0 ] ||
				fail "FAULT=$spec: no injected error seen"
		fi
		stop_pid "$redis_pid"
	done
}
