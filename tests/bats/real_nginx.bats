#!/usr/bin/env bats
# real_nginx.bats - an unmodified Debian nginx (a master and 2 forked
# workers; sendfile and writev paths) plainly and under the shim: small and
# 10 MiB files fetched with curl are byte-identical (sha256), many requests
# on keep-alive and parallel connections, and a short wrk run without
# errors. The config is generated in the test's temp dir (no system paths).

load real_helpers

setup() {
	require_cmd nginx curl wrk python3
}

teardown() {
	stop_started
}

# start_nginx MODE - nginx on a free port serving $www; sets nginx_pid.
start_nginx() {
	local d=$BATS_TEST_TMPDIR i
	[ "$1" = shim ] && require_shim
	mode=$1
	port=$(free_port)
	www=$d/www
	mkdir -p "$www" "$d/tmp"
	head -c 1000 /dev/urandom >"$www/small.bin"
	head -c $((10 << 20)) /dev/urandom >"$www/big.bin"
	head -c 70000 /dev/urandom >"$www/mid.bin"
	echo hello >"$www/index.html"
	cat >"$d/nginx.conf" <<-EOF
	daemon off;
	master_process on;
	worker_processes 2;
	user root;
	pid $d/nginx.pid;
	error_log $d/error.log info;
	events { worker_connections 1024; use epoll; }
	http {
		access_log $d/access.log;
		client_body_temp_path $d/tmp/body;
		proxy_temp_path $d/tmp/proxy;
		fastcgi_temp_path $d/tmp/fastcgi;
		uwsgi_temp_path $d/tmp/uwsgi;
		scgi_temp_path $d/tmp/scgi;
		default_type application/octet-stream;
		keepalive_requests 100000;
		server {
			listen 127.0.0.1:$port;
			root $www;
			sendfile on;
			location /nosendfile/ {
				alias $www/;
				sendfile off;
				output_buffers 2 32k;
			}
		}
	}
	EOF
	start_bg "$mode" "$d/nginx.out" nginx -p "$d" -c "$d/nginx.conf"
	nginx_pid=$started_pid
	wait_port "$port" || { cat "$d/nginx.out" "$d/error.log"; false; }
	# Both workers forked and ready.
	for i in $(seq 100); do
		[ "$(children_of "$nginx_pid" | wc -l)" -ge 2 ] && break
		sleep 0.05
	done
	workers=$(children_of "$nginx_pid")
	[ "$(echo "$workers" | wc -l)" -eq 2 ] || fail "workers: '$workers'"
	local p
	for p in $nginx_pid $workers; do
		assert_preload_as "$mode" "$p"
	done
}

# finish_nginx - master and workers alive, nothing alarming logged; under
# the shim the workers served through the ring (counted over both: which
# worker takes the connections is the kernel's choice).
finish_nginx() {
	local p
	assert_alive "$nginx_pid"
	for p in $workers; do
		assert_alive "$p"
	done
	! grep -E '\[(alert|emerg|crit)\]' "$BATS_TEST_TMPDIR/error.log" ||
		fail "nginx logged alerts"
	# shellcheck disable=SC2086 # one PID a word
	[ "$mode" = plain ] || assert_accelerated --traffic $workers
}

fetch() {
	timeout 60 curl -sS --fail -o "$2" "http://127.0.0.1:$port/$1"
}

check_files() {
	local f prefix got=$BATS_TEST_TMPDIR/got
	for prefix in "" nosendfile/; do
		for f in small.bin mid.bin big.bin; do
			fetch "$prefix$f" "$got"
			[ "$(sha_of "$got")" = "$(sha_of "$www/$f")" ] ||
				fail "/$prefix$f: sha256 differs"
		done
	done
	# Many requests on one keep-alive connection.
	local args=() i
	for i in $(seq 50); do
		args+=(-o "$got.ka$i" "http://127.0.0.1:$port/mid.bin")
	done
	timeout 60 curl -sS --fail "${args[@]}"
	for i in $(seq 50); do
		cmp -s "$got.ka$i" "$www/mid.bin" || fail "keep-alive #$i differs"
	done
	# Ten 10 MiB downloads at once, half of them without sendfile.
	local pids=()
	for i in $(seq 10); do
		prefix=""
		[ $((i % 2)) -eq 0 ] && prefix=nosendfile/
		fetch "${prefix}big.bin" "$got.par$i" &
		pids+=($!)
	done
	wait "${pids[@]}"
	for i in $(seq 10); do
		cmp -s "$got.par$i" "$www/big.bin" ||
			fail "parallel download #$i differs"
	done
}

check_wrk() {
	run timeout 60 wrk -t 2 -c 64 -d 2s "http://127.0.0.1:$port/mid.bin"
	assert_success
	refute_output --partial 'Socket errors'
	refute_output --partial 'Non-2xx'
	local n
	n=$(echo "$output" | sed -n 's/^ *\([0-9]*\) requests in.*/\1/p')
	[ "${n:-0}" -gt 100 ] || fail "wrk made only '$n' requests"
	# nginx logged exactly as many 200 responses as wrk counted (wrk
	# may count a few requests in flight at its stop).
	local logged
	logged=$(grep -c '" 200 ' "$BATS_TEST_TMPDIR/access.log")
	[ "$logged" -ge "$n" ] || fail "access.log has $logged < $n"
}

@test "nginx plain: small, 70 KB and 10 MiB files byte-identical (sendfile and writev)" {
	start_nginx plain; check_files; finish_nginx
}

@test "nginx shim: small, 70 KB and 10 MiB files byte-identical (sendfile and writev)" {
	start_nginx shim; check_files; finish_nginx
}

@test "nginx plain: wrk 64 connections 2 s without errors" {
	start_nginx plain; check_wrk; finish_nginx
}

@test "nginx shim: wrk 64 connections 2 s without errors" {
	start_nginx shim; check_wrk; finish_nginx
}

@test "nginx shim: the workers serve through the ring" {
	local p
	start_nginx shim
	timeout 60 wrk -t 2 -c 16 -d 1s "http://127.0.0.1:$port/mid.bin" \
		>/dev/null
	finish_nginx
	# Each worker runs the shim, whether or not it took a connection. A
	# worker forked on a busy machine may reach its event loop late: wait
	# for it (bounded), so only one that never gets there fails.
	for p in $workers; do
		for _ in $(seq 100); do
			[ "$(shim_stat_field "$p" state)" = active ] && break
			sleep 0.1
		done
		[ "$(shim_stat_field "$p" state)" = active ] ||
			fail "worker $p: $(shim_stats_json "$p"); wchan" \
				"$(cat "/proc/$p/wchan" 2>&1); syscall" \
				"$(cat "/proc/$p/syscall" 2>&1)"
	done
}

# check_signals - SIGUSR1 (reopen logs: a handled signal, so epoll_wait
# returns EINTR) to every worker each millisecond while files download.
check_signals() {
	local p senders=()
	for p in $workers; do
		python3 "$BATS_TEST_DIRNAME/stress_peers.py" signals "$p" 10 1 3 \
			>"$BATS_TEST_TMPDIR/sig.$p" &
		senders+=($!)
	done
	check_files
	wait "${senders[@]}"
	for p in $workers; do
		grep -qE 'signals: [0-9]{3,} sent' "$BATS_TEST_TMPDIR/sig.$p" ||
			fail "worker $p: too few signals: $(cat "$BATS_TEST_TMPDIR/sig.$p")"
	done
}

@test "nginx plain: SIGUSR1 to the workers every ms, files still identical" {
	start_nginx plain; check_signals; finish_nginx
}

@test "nginx shim: SIGUSR1 to the workers every ms, files still identical" {
	start_nginx shim; check_signals; finish_nginx
}
