#!/usr/bin/env bats
# shim_layers.bats - the shim's files call only downwards.
#
# shim/module.mk lists the shim's sources in layer order (base, ring,
# the semantics files, wrappers, setup; shim/DESIGN.md, "Layers").  No
# object may use a symbol, function or data, that an object listed after
# it defines: the only way up is the tables init.c fills in, which the
# linker does not see as a reference.  A call upwards fails this suite
# naming both files and the symbol.

load common

LAYERS=$BUILD_DIR/shim/layers.list

# layer_violations - "user -> definer: symbol" for every upward reference.
layer_violations() {
	local -A rank def
	local i=0 o sym

	while read -r o; do
		rank[$o]=$i
		i=$((i + 1))
		for sym in $(nm --defined-only -g "$o" | awk '{print $3}'); do
			def[$sym]=$o
		done
	done <"$LAYERS"
	while read -r o; do
		for sym in $(nm -u "$o" | awk '{print $2}'); do
			local d=${def[$sym]:-}

			[ -n "$d" ] || continue
			if [ "${rank[$d]}" -gt "${rank[$o]}" ]; then
				echo "$(basename "$o" .o) -> $(basename "$d" .o): $sym"
			fi
		done
	done <"$LAYERS"
}

@test "layers: every shim object calls only objects below it" {
	[ -s "$LAYERS" ] || fail "no $LAYERS: build the shim first"
	run layer_violations
	assert_success
	assert_output ""
}

@test "layers: the check sees an upward call (ring.o using the loop)" {
	local -A rank
	[ -s "$LAYERS" ] || fail "no $LAYERS: build the shim first"
	# The table is real: ring.o defines ring_enter, loop.o uses it, and
	# loop.o comes after ring.o, so swapping the two must be caught.
	grep -q 'ring\.o$' "$LAYERS" && grep -q 'loop\.o$' "$LAYERS"
	nm -u "$BUILD_DIR/shim/loop.o" | grep -qw ring_enter
	sed 's#/ring\.o$#/RING#; s#/loop\.o$#/ring.o#; s#/RING$#/loop.o#' \
		"$LAYERS" >"$BATS_TEST_TMPDIR/swapped"
	LAYERS=$BATS_TEST_TMPDIR/swapped run layer_violations
	assert_output --partial "loop -> ring: ring_enter"
}
