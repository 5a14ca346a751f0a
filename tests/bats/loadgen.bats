#!/usr/bin/env bats
# loadgen.bats - build/loadgen against a real matching_server on --port 0:
# an --orders run verifies every response and writes every JSON figure;
# --deterministic digests agree across thread layouts and change with the
# seed; an open-loop run keeps to its schedule at low rates on 1 and 16
# connections and counts latency from the intended send time even while
# the server is stopped; --spin never sleeps; a --label of any text
# round-trips through the JSON; subscribers count market data; a
# missing, dead, stalled or lying server gives a clear error and a
# non-zero exit instead of a hang; SIGINT ends a run cleanly. Every run is
# short (2 s at most).

load 'helpers'
load 'loadgen_helpers'

setup() {
	[ -x "$LOADGEN_BIN" ] || skip "build/loadgen not built"
	[ -x "$SERVER_BIN" ] || skip "build/matching_server not built"
}

teardown() {
	kill_started_servers
}

@test "loadgen: --orders run verifies every response, JSON has every figure" {
	start_server --quiet
	run loadgen --connections 4 --inflight 4 --orders 500 \
		--json "$BATS_TEST_TMPDIR/run.json"
	assert_success
	assert_line 'errors     0'
	assert_line --regexp '^digest: [0-9a-f]{16}$'
	f=$BATS_TEST_TMPDIR/run.json
	for key in requests errors throughput latency_us.p50 latency_us.p90 \
		   latency_us.p99 latency_us.p99_9 latency_us.p99_99 \
		   latency_us.max digest connections duration_s bytes_in \
		   bytes_out md_bytes trades; do
		run json_get "$f" "$key"
		assert_success
		refute_output ''
	done
	run json_get "$f" requests
	assert_output 2000
	run json_get "$f" errors
	assert_output 0
	run json_get "$f" connections
	assert_output 4
	run json_get "$f" spin
	assert_output False
	# A closed loop sends when a response comes: no schedule to lag.
	run json_get "$f" send_lag_us
	assert_output None
	for key in cpu_s cpu_busy voluntary_switches sleeping_waits; do
		run json_get "$f" "$key"
		assert_output --regexp '^[0-9.]+$'
	done
	# The server counted the same matches the load generator verified.
	trades=$(json_get "$f" trades)
	assert [ "$trades" -gt 0 ]
	stop_server
	run tail -n 1 "$SERVER_OUT"
	assert_output --regexp "^summary: .* trades=$trades "
	# every order ended in exactly one outcome: new + market orders
	# = filled + canceled + IOC remainders + rejected
	new=$(json_get "$f" sent.new)
	market=$(json_get "$f" sent.market)
	ended=$(python3 -c 'import json,sys; o=json.load(open(sys.argv[1]))["outcomes"]; print(o["filled"]+o["canceled"]+o["ioc_canceled"]+o["rejected"])' "$f")
	assert_equal "$ended" $((new + market))
}

@test "loadgen: --deterministic digest is equal across threads and interleavings" {
	one=$(fresh_digest --connections 6 --inflight 3 --orders 400 \
		--threads 1)
	two=$(fresh_digest --connections 6 --inflight 3 --orders 400 \
		--threads 3 --subscribers 2)
	other=$(fresh_digest --connections 6 --inflight 3 --orders 400 \
		--threads 2 --seed 2)
	assert [ -n "$one" ]
	assert_equal "$two" "$one"
	# The digest does depend on what was received.
	assert [ "$other" != "$one" ]
}

@test "loadgen: frames split at every boundary give the same digest" {
	direct=$(fresh_digest --connections 2 --inflight 4 --orders 300)
	start_server --quiet
	start_chunking_proxy "$SERVER_PORT"
	run timeout -k 2 30 "$LOADGEN_BIN" --port "$PROXY_PORT" --quiet \
		--deterministic --connections 2 --inflight 4 --orders 300
	assert_success
	assert_line 'errors     0'
	assert_line "digest: $direct"
}

@test "loadgen: the digest is the same with an edge-triggered server" {
	level=$(fresh_digest --connections 4 --inflight 8 --orders 300)
	SERVER_ARGS=--edge-triggered
	edge=$(fresh_digest --connections 4 --inflight 8 --orders 300)
	assert [ -n "$level" ]
	assert_equal "$edge" "$level"
}

@test "loadgen: open loop --rate keeps to its schedule and measures latency" {
	start_server --quiet
	run loadgen --connections 4 --rate 4000 --orders 200 \
		--json "$BATS_TEST_TMPDIR/open.json"
	assert_success
	assert_line --partial 'open loop'
	f=$BATS_TEST_TMPDIR/open.json
	run json_get "$f" requests
	assert_output 800
	run json_get "$f" mode
	assert_output open
	# 800 requests at 4000/s: the last is intended at 0.1998 s, so the
	# run cannot end earlier (a lower bound only, never a timing bet).
	run python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if j["duration_s"] >= 0.199 and j["latency_us"]["p50"] > 0 else 1)' "$f"
	assert_success
}

@test "loadgen: a --label with quotes, backslashes and control characters round-trips through the JSON" {
	start_server --quiet
	# Every control character, quote, backslash, slash, DEL, non-ASCII
	# up to 4 UTF-8 bytes; python passes it as one argv string.
	run timeout -k 2 30 python3 - "$LOADGEN_BIN" "$SERVER_PORT" \
		"$BATS_TEST_TMPDIR/label.json" <<'PY'
import json, subprocess, sys
loadgen, port, path = sys.argv[1:]
label = 'q"uo\\te\\"/' + "".join(map(chr, range(1, 32))) + "\x7f é € \U0001d11e"
subprocess.run([loadgen, "--port", port, "--quiet", "--orders", "5",
                "--json", path, "--label", label],
               check=True, stdout=subprocess.DEVNULL, timeout=25)
got = json.load(open(path))["label"]
print("same" if got == label else "differs: %r != %r" % (got, label))
PY
	assert_success
	assert_output same
	# Without --label the key is there, as null.
	run loadgen --orders 5 --json "$BATS_TEST_TMPDIR/nolabel.json"
	assert_success
	run json_get "$BATS_TEST_TMPDIR/nolabel.json" label
	assert_output None
	# JSON strings are UTF-8: other bytes are refused, not mangled.
	run "$LOADGEN_BIN" --port 1 --label $'bad \xff byte'
	assert_equal "$status" 2
	assert_output --partial 'not valid UTF-8'
}

@test "loadgen: a low fixed rate on 1 and 16 connections: every percentile, never ahead of schedule" {
	start_server --quiet
	for conns in 1 16; do
		f=$BATS_TEST_TMPDIR/low$conns.json
		run loadgen --connections "$conns" --rate 5000 \
			--orders $((800 / conns)) --json "$f"
		assert_success
		assert_line --regexp '^send lag   us p50 '
		# 800 sends at 5000/s: the last is intended at 0.1598 s, so
		# the achieved rate cannot exceed 5000 * 800 / 799 (a bound
		# only the schedule sets, whatever the machine's speed).
		run python3 - "$f" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
lat, lag = j["latency_us"], j["send_lag_us"]
keys = ["p50", "p90", "p99", "p99_9", "p99_99", "max"]
assert j["requests"] == 800 and j["errors"] == 0, j
assert j["mode"] == "open" and j["rate"] == 5000, j
assert 0 < lat["p50"] and all(lat[a] <= lat[b] for a, b in zip(keys, keys[1:])), lat
assert all(lag[a] <= lag[b] for a, b in zip(keys, keys[1:])), lag
assert j["duration_s"] >= 0.1598, j["duration_s"]
assert j["throughput"] <= 5000 * 800 / 799 + 0.1, j["throughput"]
print("ok")
PY
		assert_output ok
	done
}

@test "loadgen: open-loop latency counts from the intended send time while the server is stopped" {
	start_server --quiet
	# 4000 requests at 2000/s over 2 s, at most 1 in flight. The server
	# stops for 0.4 s at about 0.5 s: the ~800 requests due meanwhile
	# wait, and that wait is their latency. Measured from the actual
	# write (coordinated omission) only one request would be slow.
	"$LOADGEN_BIN" --port "$SERVER_PORT" --quiet --rate 2000 \
		--inflight 1 --orders 4000 --json "$BATS_TEST_TMPDIR/co.json" \
		>"$BATS_TEST_TMPDIR/co.out" 2>&1 3>&- &
	lg=$!
	sleep 0.5
	kill -STOP "$SERVER_PID"
	sleep 0.4
	kill -CONT "$SERVER_PID"
	run timeout 20 tail --pid="$lg" -f /dev/null
	wait "$lg" && rc=0 || rc=$?
	assert_equal "$rc" 0
	# The 40 slowest (p99) include the 200 due in the first half of
	# the stop: each waited 200 ms or more.
	run python3 - "$BATS_TEST_TMPDIR/co.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
assert j["requests"] == 4000 and j["errors"] == 0, j
assert j["latency_us"]["p99"] >= 150000, j["latency_us"]
assert j["latency_us"]["max"] >= 300000, j["latency_us"]
# They were written late, not early: the lag shows the same wait.
assert j["send_lag_us"]["p99"] >= 150000, j["send_lag_us"]
print("ok")
PY
	assert_output ok
}

@test "loadgen: --spin polls without ever sleeping" {
	start_server --quiet
	run loadgen --connections 2 --rate 2000 --orders 200 --spin \
		--json "$BATS_TEST_TMPDIR/spin.json"
	assert_success
	assert_line --partial 'spinning'
	assert_line 'errors     0'
	run loadgen --connections 2 --rate 2000 --orders 200 \
		--json "$BATS_TEST_TMPDIR/sleep.json"
	assert_success
	# The kernel's count of the worker's sleeps (voluntary context
	# switches): none while spinning; a paced run without --spin waits
	# 500 us between sends and sleeps in those waits.
	run python3 - "$BATS_TEST_TMPDIR/spin.json" \
		"$BATS_TEST_TMPDIR/sleep.json" <<'PY'
import json, sys
spin, sleep = (json.load(open(p)) for p in sys.argv[1:])
assert spin["spin"] is True and sleep["spin"] is False
assert spin["requests"] == 400 and spin["errors"] == 0, spin
assert spin["sleeping_waits"] == 0, spin["sleeping_waits"]
assert spin["voluntary_switches"] * 10 < spin["requests"], spin
assert sleep["sleeping_waits"] > 0 and sleep["voluntary_switches"] > 0, sleep
print("ok")
PY
	assert_output ok
	# A closed loop spins as well, and stays correct.
	run fresh_digest --connections 2 --inflight 2 --orders 300
	assert_success
	plain=$output
	run fresh_digest --connections 2 --inflight 2 --orders 300 --spin
	assert_success
	assert_equal "$output" "$plain"
}

@test "loadgen: subscribers count market data bytes, reproducibly" {
	start_server --quiet
	run loadgen --deterministic --connections 3 --inflight 2 --orders 300 \
		--subscribers 2 --json "$BATS_TEST_TMPDIR/md1.json"
	assert_success
	stop_server
	start_server --quiet
	run loadgen --deterministic --connections 3 --inflight 2 --orders 300 \
		--subscribers 2 --threads 2 --json "$BATS_TEST_TMPDIR/md2.json"
	assert_success
	md1=$(json_get "$BATS_TEST_TMPDIR/md1.json" md_bytes)
	md2=$(json_get "$BATS_TEST_TMPDIR/md2.json" md_bytes)
	trades=$(json_get "$BATS_TEST_TMPDIR/md1.json" trades)
	assert [ "$trades" -gt 0 ]
	# each subscriber saw at least one 32-byte Trade per match
	assert [ "$md1" -ge $((2 * trades * 32)) ]
	assert_equal "$md2" "$md1"
}

@test "loadgen: no server -> clear error, non-zero exit, quickly" {
	hold_dead_port
	port=$DEAD_PORT
	run timeout 5 "$LOADGEN_BIN" --port "$port" --orders 10
	assert_equal "$status" 1
	assert_output --partial "cannot connect to 127.0.0.1:$port"
	assert_output --partial 'Connection refused'
}

@test "loadgen: server killed mid-run -> non-zero exit" {
	start_server --quiet
	"$LOADGEN_BIN" --port "$SERVER_PORT" --connections 4 --inflight 2 \
		--duration 2 --quiet >"$BATS_TEST_TMPDIR/lg.out" 2>&1 3>&- &
	lg=$!
	sleep 0.4
	stop_server KILL
	run timeout 10 tail --pid="$lg" -f /dev/null
	wait "$lg" && rc=0 || rc=$?
	assert_equal "$rc" 1
	run cat "$BATS_TEST_TMPDIR/lg.out"
	assert_output --partial 'lost the server'
}

@test "loadgen: SIGINT stops sending, cleans up, summarises, exits 1" {
	start_server --quiet
	"$LOADGEN_BIN" --port "$SERVER_PORT" --connections 4 --inflight 4 \
		--orders 100000000 --subscribers 1 --quiet \
		--json "$BATS_TEST_TMPDIR/int.json" \
		>"$BATS_TEST_TMPDIR/int.out" 2>&1 3>&- &
	lg=$!
	sleep 0.5
	kill -INT "$lg"
	run timeout 10 tail --pid="$lg" -f /dev/null
	wait "$lg" && rc=0 || rc=$?
	assert_equal "$rc" 1
	run cat "$BATS_TEST_TMPDIR/int.out"
	assert_output --partial 'interrupted'
	# Every order still ended once, and the subscriber saw empty books.
	assert_line 'errors     0'
	run json_get "$BATS_TEST_TMPDIR/int.json" requests
	assert [ "$output" -gt 0 ]
}

@test "loadgen: a stalled server is reported, not waited for forever" {
	start_server --quiet
	kill -STOP "$SERVER_PID"
	run loadgen --orders 10 --stall-timeout 0.5
	kill -CONT "$SERVER_PID"
	assert_equal "$status" 1
	assert_output --partial 'no response from the server'
}

@test "loadgen: a wrong response is a verification error (exit 1)" {
	start_fake_server wrong-id
	run loadgen --orders 1 --stall-timeout 0.5
	assert_equal "$status" 1
	assert_output --partial 'error: connection 0: Accepted for cl_ord_id'
}

@test "loadgen: a malformed frame is a verification error (exit 1)" {
	start_fake_server bad-frame
	run loadgen --orders 1 --stall-timeout 0.5
	assert_equal "$status" 1
	assert_output --partial 'bad frame'
}

@test "loadgen: bad usage exits 2 with a message" {
	run "$LOADGEN_BIN" --port 1 --duration 1 --orders 5
	assert_equal "$status" 2
	assert_output --partial 'exclude each other'
	run "$LOADGEN_BIN" --port 1 --mix new=1,bogus=2
	assert_equal "$status" 2
	assert_output --partial "unknown kind 'bogus'"
	run "$LOADGEN_BIN" --help
	assert_success
	assert_output --partial '--deterministic'
}
