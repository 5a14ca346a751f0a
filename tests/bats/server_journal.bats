#!/usr/bin/env bats
# server_journal.bats - the matching server's journal: crash (kill -9) under
# load and restart, replay with --fsync batch, per-session increasing ids
# through a replay, a torn last record.
#
# The state after a restart is checked through the protocol only: a new
# session sweeps the book with an IOC order and the prices it fills at
# identify the resting orders (the flood gives order i the price 1000+i).

load helpers

teardown() {
	kill_started_servers
	no_sanitizer_reports
}

# sweep_bids SYMBOL OUT - sell into every bid of SYMBOL, write the filled
# prices (one per line, best first) to OUT.
sweep_bids() {
	client <<<"hello
new $1 S L I 1 1000000000 cl=1" >"$2.raw"
	sed -n 's/^a: executed .* px=\([0-9]*\) .* liq=R$/\1/p' "$2.raw" >"$2"
}

# kill_mid_flood JOURNAL FLOOD_ARGS... - start a server journaling to
# JOURNAL, flood it (client --flood FLOOD_ARGS, the ids it saw acknowledged
# in $BATS_TEST_TMPDIR/acked, its result line in .../flood.out) and kill -9
# the server once 5000 orders are acknowledged (or after 8 s).
kill_mid_flood() {
	local journal=$1 dir=$BATS_TEST_TMPDIR flood i n

	shift
	start_server --journal "$journal" --quiet
	client --flood "$@" --acked "$dir/acked" >"$dir/flood.out" &
	flood=$!
	for ((i = 0; i < 400; i++)); do
		n=$(wc -l 2>/dev/null <"$dir/acked" || echo 0)
		[ "$n" -ge 5000 ] && break
		sleep 0.02
	done
	stop_server KILL
	wait "$flood" || true
}

@test "journal: kill -9 under load loses no acknowledged order" {
	local dir=$BATS_TEST_TMPDIR journal=$BATS_TEST_TMPDIR/j acked
	kill_mid_flood "$journal" 400000 --symbol 5 --window 256
	run cat "$dir/flood.out"
	# The client saw the connection die part way: not everything acked.
	assert_output --regexp '^flood: sent=[0-9]+ accepted=[0-9]+ rejected=0 eof=1$'
	acked=$(wc -l <"$dir/acked")
	[ "$acked" -ge 5000 ]

	start_server --journal "$journal"
	run grep -c "replayed" "$SERVER_LOG"
	assert_output "1"
	sweep_bids 5 "$dir/filled"
	# Every acknowledged order (price 1000+id) is in the book...
	awk '{ print 1000 + $1 }' "$dir/acked" | sort >"$dir/want"
	sort "$dir/filled" >"$dir/got"
	run comm -23 "$dir/want" "$dir/got"
	assert_output ""
	# ...each once, best price first, and nothing that was never sent.
	run sort -c -r -n "$dir/filled"
	assert_success
	[ "$(sort -u "$dir/got" | wc -l)" -eq "$(wc -l <"$dir/got")" ]
	local sent
	sent=$(sed 's/.*sent=\([0-9]*\).*/\1/' "$dir/flood.out")
	[ "$(head -n 1 "$dir/filled")" -le $((1000 + sent)) ]
	[ "$(wc -l <"$dir/got")" -ge "$acked" ]
}

# The flood --cross alternates buy (odd id) and sell (even id) at 1000, so
# every acknowledged sell traded. After the crash the symbol's order and
# match sequences must carry on past every acknowledged order and trade.
@test "journal: kill -9 mid trading: acknowledged trades are replayed" {
	local dir=$BATS_TEST_TMPDIR journal=$BATS_TEST_TMPDIR/j
	kill_mid_flood "$journal" 400000 --symbol 6 --cross --window 256
	local acked sells sent
	acked=$(wc -l <"$dir/acked")
	sells=$(awk '$1 % 2 == 0' "$dir/acked" | wc -l)
	sent=$(sed 's/.*sent=\([0-9]*\).*/\1/' "$dir/flood.out")
	[ "$acked" -ge 5000 ]

	start_server --journal "$journal" --quiet
	client <<<"hello
new 6 B L G 1 1 cl=1
new 6 S L I 1 1000000000 cl=2" >"$dir/after"
	local next_order first_match fills
	next_order=$(sed -n 's/^a: accepted .*cl=1 oid=6:\([0-9]*\) .*/\1/p' \
		"$dir/after")
	first_match=$(sed -n 's/^a: executed .*cl=2 mid=6:\([0-9]*\) .*/\1/p' \
		"$dir/after" | head -n 1)
	fills=$(grep -c "^a: executed .*cl=2 " "$dir/after")
	echo "acked=$acked sells=$sells sent=$sent next_order=$next_order" \
		"first_match=$first_match fills=$fills"
	# Orders: every acked one was replayed, none that was never sent.
	[ "$next_order" -gt "$acked" ]
	[ "$next_order" -le $((sent + 1)) ]
	# Trades: every acked sell traded before the crash, so the match
	# sequence is past them; all that rests is at most the flood's last
	# buy and our own bid at 1.
	[ "$first_match" -gt "$sells" ]
	[ "$fills" -ge 1 ] && [ "$fills" -le 2 ]
}

@test "journal: --fsync batch state survives a restart, ids continue" {
	local journal=$BATS_TEST_TMPDIR/j
	start_server --journal "$journal" --fsync batch --quiet
	run_script "hello
new 2 B L G 100 10 cl=1
new 2 B L G 101 5 cl=2
new 2 S L G 105 7 cl=3
new 2 S L I 101 2 cl=4
replace cl=1 new=5 4 100
new 2 B L G 99 1 cl=6
cancel cl=6
conn sub
hello
sub 2"
	assert_success
	assert_line "sub: tob sym=2 bid=101x3 ask=105x7"
	stop_server TERM

	start_server --journal "$journal" --fsync batch
	run grep -E "replayed [0-9]+ records, 3 resting orders" "$SERVER_LOG"
	assert_success
	# The same top of book, and order ids carry on from the journal.
	run_script "hello
sub 2
new 2 B L G 1 1 cl=1"
	assert_success
	assert_output "a: hello_ack version=1
a: tob sym=2 bid=101x3 ask=105x7
a: accepted sym=2 cl=1 oid=2:6 px=1 qty=1 side=B type=L tif=G"
	sweep_bids 2 "$BATS_TEST_TMPDIR/filled"
	run cat "$BATS_TEST_TMPDIR/filled"
	assert_output "101
100
1"
}

# Only accepted messages are journaled, and the replay must accept every one
# of them again: each session's last id is rebuilt as it was, whatever the
# other session's ids, and the rejected (out of order) ids left no trace.
@test "journal: replay keeps each session's increasing ids" {
	local journal=$BATS_TEST_TMPDIR/j
	start_server --journal "$journal" --quiet
	run_script "hello
new 4 B L G 100 1 cl=50
conn b
hello
new 4 B L G 101 1 cl=1
conn a
new 4 B L G 102 1 cl=40
replace cl=50 new=60 1 103
new 4 B L G 104 1 cl=55
new 4 B L G 0 1 cl=70
new 4 B L G 105 1 cl=61
conn b
new 4 B L G 106 1 cl=2
new 4 B L G 107 1 cl=2
conn sub
hello
sub 4"
	assert_success
	assert_line "a: rejected reason=DUPLICATE_ID ref=O cl=40"
	assert_line "a: rejected reason=DUPLICATE_ID ref=O cl=55"
	assert_line "a: accepted sym=4 cl=61 oid=4:4 px=105 qty=1 side=B type=L tif=G"
	assert_line "b: accepted sym=4 cl=2 oid=4:5 px=106 qty=1 side=B type=L tif=G"
	assert_line "b: rejected reason=DUPLICATE_ID ref=O cl=2"
	assert_line "sub: tob sym=4 bid=106x1 ask=0x0"
	stop_server TERM

	# 3 Hellos, 5 accepted orders and replaces, 3 session ends.
	start_server --journal "$journal"
	run grep -c "replayed 11 records, 4 resting orders" "$SERVER_LOG"
	assert_output "1"
	# The replace re-priced cl=50 to 103; the rejected ones never rested.
	sweep_bids 4 "$BATS_TEST_TMPDIR/filled"
	run cat "$BATS_TEST_TMPDIR/filled"
	assert_output "106
105
103
101"
}

@test "journal: a torn last record is dropped, the rest replayed" {
	local journal=$BATS_TEST_TMPDIR/j
	start_server --journal "$journal" --quiet
	run_script "hello
new 3 B L G 50 5 cl=1
new 3 B L G 51 5 cl=2"
	assert_success
	stop_server KILL
	# A record header announcing a 32-byte frame, and 10 of its bytes.
	printf '\001\000\000\000\001\040\000\000\000\000\000\000abcdefghij' \
		>>"$journal"
	local size
	size=$(stat -c %s "$journal")

	start_server --journal "$journal"
	run grep -c "dropped 22 bytes of torn tail" "$SERVER_LOG"
	assert_output "1"
	[ "$(stat -c %s "$journal")" -eq $((size - 22)) ]
	run_script "hello
sub 3"
	assert_output "a: hello_ack version=1
a: tob sym=3 bid=51x5 ask=0x0"
	stop_server TERM

	# Appends after the truncation replay cleanly too.
	start_server --journal "$journal"
	run grep -c "dropped 0 bytes" "$SERVER_LOG"
	assert_output "1"
	sweep_bids 3 "$BATS_TEST_TMPDIR/filled"
	run cat "$BATS_TEST_TMPDIR/filled"
	assert_output "51
50"
}

@test "journal: a file that is not a journal is refused, not truncated" {
	local journal=$BATS_TEST_TMPDIR/j
	echo "precious data, not a journal" >"$journal"
	run "$SERVER_BIN" --port 0 --journal "$journal"
	assert_failure
	assert_output --partial "Invalid argument"
	run cat "$journal"
	assert_output "precious data, not a journal"
}
