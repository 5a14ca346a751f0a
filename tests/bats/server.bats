#!/usr/bin/env bats
# server.bats - the matching server end to end through proto_client: login,
# orders, trades to both sides, market data, every reject, increasing
# client ids, framing, epoll modes, backpressure, shutdown summary, many
# connections. The scripts and checks server_uring.bats runs too (*_SCRIPT,
# check_*) are in helpers.bash.

load helpers

teardown() {
	kill_started_servers
	no_sanitizer_reports
}

@test "server: hello is acknowledged with the protocol version" {
	start_server
	run_script "hello"
	assert_success
	assert_output "a: hello_ack version=1"
}

@test "server: --help lists every flag, unknown --io is refused" {
	run "$SERVER_BIN" --help
	assert_success
	for flag in --port --bind --io --edge-triggered --symbols --max-orders \
		    --max-conns --max-outbuf --journal --fsync --quiet --help; do
		assert_output --partial -- "$flag"
	done
	run timeout 10 "$SERVER_BIN" --io bogus --port 0
	assert_failure
	assert_output --partial "unknown backend"
}

@test "server: an order is accepted with a per-symbol order id" {
	start_server
	run_script "hello
new 7 B L G 100 10 cl=1
new 7 S L G 105 3 cl=2
new 8 B L G 100 1 cl=3"
	assert_success
	assert_output "a: hello_ack version=1
a: accepted sym=7 cl=1 oid=7:1 px=100 qty=10 side=B type=L tif=G
a: accepted sym=7 cl=2 oid=7:2 px=105 qty=3 side=S type=L tif=G
a: accepted sym=8 cl=3 oid=8:1 px=100 qty=1 side=B type=L tif=G"
}

@test "server: a crossing order executes on both sides at the resting price" {
	start_server
	run_script "$CROSS_SCRIPT"
	assert_success
	# Best price first (100), then 101; the aggressor's leaves go down.
	assert_output "maker: hello_ack version=1
maker: accepted sym=3 cl=1 oid=3:1 px=101 qty=5 side=S type=L tif=G
maker: accepted sym=3 cl=2 oid=3:2 px=100 qty=5 side=S type=L tif=G
taker: hello_ack version=1
maker: executed sym=3 cl=2 mid=3:1 px=100 qty=5 leaves=0 side=S liq=A
maker: executed sym=3 cl=1 mid=3:2 px=101 qty=2 leaves=3 side=S liq=A
taker: accepted sym=3 cl=9 oid=3:3 px=102 qty=7 side=B type=L tif=G
taker: executed sym=3 cl=9 mid=3:1 px=100 qty=5 leaves=2 side=B liq=R
taker: executed sym=3 cl=9 mid=3:2 px=101 qty=2 leaves=0 side=B liq=R"
}

@test "server: trades and top of book fan out to every subscriber only" {
	start_server
	run_script "$FANOUT_SCRIPT"
	assert_success
	assert_output "s1: hello_ack version=1
s1: tob sym=5 bid=0x0 ask=0x0
s2: hello_ack version=1
s2: tob sym=5 bid=0x0 ask=0x0
s2: tob sym=6 bid=0x0 ask=0x0
t: hello_ack version=1
s1: tob sym=5 bid=0x0 ask=50x4
s2: tob sym=5 bid=0x0 ask=50x4
t: accepted sym=5 cl=1 oid=5:1 px=50 qty=4 side=S type=L tif=G
s1: trade sym=5 mid=5:1 px=50 qty=1 aggr=B
s1: tob sym=5 bid=0x0 ask=50x3
s2: trade sym=5 mid=5:1 px=50 qty=1 aggr=B
s2: tob sym=5 bid=0x0 ask=50x3
t: accepted sym=5 cl=2 oid=5:2 px=50 qty=1 side=B type=L tif=I
t: executed sym=5 cl=2 mid=5:1 px=50 qty=1 leaves=0 side=B liq=R
t: executed sym=5 cl=1 mid=5:1 px=50 qty=1 leaves=3 side=S liq=A
s2: tob sym=6 bid=10x1 ask=0x0
t: accepted sym=6 cl=3 oid=6:1 px=10 qty=1 side=B type=L tif=G"
}

@test "server: replace keeps priority when reducing, loses it otherwise" {
	start_server
	run_script "$REPLACE_SCRIPT"
	assert_success
	# cl=3 grew: new order id 1:3, behind cl=4, which kept 1:2 and its
	# place by shrinking; so cl=4 fills first.
	assert_output "a: hello_ack version=1
a: accepted sym=1 cl=1 oid=1:1 px=100 qty=10 side=B type=L tif=G
a: accepted sym=1 cl=2 oid=1:2 px=100 qty=10 side=B type=L tif=G
a: replaced orig=1 new=3 oid=1:3 px=100 qty=12
a: replaced orig=2 new=4 oid=1:2 px=100 qty=6
a: accepted sym=1 cl=5 oid=1:4 px=100 qty=7 side=S type=L tif=I
a: executed sym=1 cl=5 mid=1:1 px=100 qty=6 leaves=1 side=S liq=R
a: executed sym=1 cl=4 mid=1:1 px=100 qty=6 leaves=0 side=B liq=A
a: executed sym=1 cl=5 mid=1:2 px=100 qty=1 leaves=0 side=S liq=R
a: executed sym=1 cl=3 mid=1:2 px=100 qty=1 leaves=11 side=B liq=A"
}

@test "server: IOC and market remainders are canceled" {
	start_server
	run_script "$IOC_SCRIPT"
	assert_success
	assert_line "a: canceled cl=2 qty=2 reason=IOC_REMAINDER"
	assert_line "a: canceled cl=3 qty=4 reason=IOC_REMAINDER"
	assert_line "a: executed sym=2 cl=2 mid=2:1 px=10 qty=3 leaves=2 side=B liq=R"
}

@test "server: every reject code" {
	start_server --symbols 100 --max-orders 2
	run_script "$REJECT_SCRIPT"
	assert_success
	assert_output "a: rejected reason=NOT_LOGGED_IN ref=O cl=1
a: hello_ack version=1
a: rejected reason=UNKNOWN_SYMBOL ref=O cl=2
a: rejected reason=BAD_PRICE ref=O cl=3
a: rejected reason=BAD_PRICE ref=O cl=4
a: rejected reason=BAD_PRICE ref=O cl=5
a: rejected reason=BAD_QTY ref=O cl=6
a: rejected reason=BAD_QTY ref=O cl=7
a: rejected reason=BAD_SIDE ref=O cl=8
a: rejected reason=BAD_TYPE ref=O cl=9
a: rejected reason=BAD_TYPE ref=O cl=10
a: accepted sym=1 cl=11 oid=1:1 px=10 qty=1 side=B type=L tif=G
a: rejected reason=DUPLICATE_ID ref=O cl=11
a: rejected reason=DUPLICATE_ID ref=O cl=0
a: rejected reason=UNKNOWN_ORDER ref=X cl=99
a: rejected reason=UNKNOWN_ORDER ref=U cl=12
a: accepted sym=1 cl=13 oid=1:2 px=10 qty=1 side=B type=L tif=G
a: rejected reason=CAPACITY ref=O cl=14
a: rejected reason=UNKNOWN_SYMBOL ref=M cl=0
a: rejected reason=BAD_TYPE ref=L cl=0"
}

# Equal and lower ids are rejected, used or not; a rejected message leaves
# its id free; Replace's new id obeys the rule, Cancel's does not; each
# connection has its own sequence.
@test "server: client order ids must increase within a session" {
	start_server
	run_script "hello
new 1 B L G 10 1 cl=5
new 1 B L G 10 1 cl=5
new 1 B L G 10 1 cl=4
new 1 B L G 0 1 cl=9
new 1 B L G 10 1 cl=9
replace cl=5 new=9 2 10
replace cl=5 new=20 2 10
new 1 B L G 10 1 cl=19
cancel cl=5
cancel cl=9
conn b
hello
new 1 B L G 10 1 cl=1"
	assert_success
	assert_output "a: hello_ack version=1
a: accepted sym=1 cl=5 oid=1:1 px=10 qty=1 side=B type=L tif=G
a: rejected reason=DUPLICATE_ID ref=O cl=5
a: rejected reason=DUPLICATE_ID ref=O cl=4
a: rejected reason=BAD_PRICE ref=O cl=9
a: accepted sym=1 cl=9 oid=1:2 px=10 qty=1 side=B type=L tif=G
a: rejected reason=DUPLICATE_ID ref=U cl=9
a: replaced orig=5 new=20 oid=1:3 px=10 qty=2
a: rejected reason=DUPLICATE_ID ref=O cl=19
a: rejected reason=UNKNOWN_ORDER ref=X cl=5
a: canceled cl=9 qty=1 reason=USER
b: hello_ack version=1
b: accepted sym=1 cl=1 oid=1:4 px=10 qty=1 side=B type=L tif=G"
}

@test "server: a malformed frame is rejected, closed, and others still served" {
	start_server
	run_script "$MALFORMED_SCRIPT"
	assert_success
	assert_output "ok: hello_ack version=1
bad1: rejected reason=MALFORMED ref=Z cl=0
bad1: closed
bad2: hello_ack version=1
bad2: rejected reason=MALFORMED ref=O cl=0
bad2: closed
bad3: rejected reason=MALFORMED ref=l cl=0
bad3: closed
ok: accepted sym=4 cl=1 oid=4:1 px=10 qty=1 side=B type=L tif=G"
}

# See check_split_frames_match_whole in helpers.bash.
@test "server: frames split across reads give identical results" {
	check_split_frames_match_whole
}

@test "server: edge-triggered mode serves the same conversation" {
	start_server --edge-triggered
	run_script "conn a
hello
new 7 S L G 10 5 cl=1
conn b
hello
new 7 B L G 10 5 cl=1"
	assert_success
	assert_line "a: executed sym=7 cl=1 mid=7:1 px=10 qty=5 leaves=0 side=S liq=A"
	assert_line "b: executed sym=7 cl=1 mid=7:1 px=10 qty=5 leaves=0 side=B liq=R"
	run client --flood 3000 --symbol 1 --cross --window 200
	assert_success
	assert_output "flood: sent=3000 accepted=3000 rejected=0 eof=0"
}

@test "server: SIGTERM prints the summary line and exits 0" {
	start_server --quiet
	check_term_summary
}

@test "server: SIGINT is a clean shutdown too" {
	start_server --quiet
	check_int_summary
}

@test "server: listens on IPv6 when asked" {
	check_ipv6_hello
}

@test "server: 1200 concurrent connections each log in and trade" {
	start_server --quiet
	check_many_connections
}

@test "server: --max-conns refuses connections beyond it" {
	start_server --max-conns 5
	check_max_conns_refused
}

# See check_slow_consumer_cut_off in helpers.bash.
@test "server: a consumer that stops reading is disconnected, others served" {
	start_server --max-outbuf 65536
	check_slow_consumer_cut_off
}

# See check_slow_reader_catches_up in helpers.bash.
@test "server: a slow reader that catches up gets every message (LT and ET)" {
	local mode

	for mode in --max-outbuf=64M --edge-triggered; do
		start_server --quiet --max-outbuf 64M "$mode"
		check_slow_reader_catches_up
	done
}
