#!/usr/bin/env bats
# ops_run.bats - uringshim-run: where it finds the library (build tree,
# installed tree, through a symlink), what it exports, --off, exec keeping
# the PID, and the library really being mapped in the started program.

load ops_helpers

setup() {
	tmp=$(mktemp -d "$BATS_TMPDIR/ops_run.XXXXXX")
}

teardown() {
	rm -rf "$tmp"
}

# fake_tree DIR LIBDIR - a copy of uringshim-run in DIR and a placeholder
# library in LIBDIR (dry runs only check that the file is there).
fake_tree() {
	mkdir -p "$1" "$2"
	cp "$RUN" "$1/uringshim-run"
	echo placeholder > "$2/liburingshim.so"
}

@test "finds the library next to itself in a build tree" {
	fake_tree "$tmp/build" "$tmp/build"
	run "$tmp/build/uringshim-run" --print-library
	assert_success
	assert_output "$tmp/build/liburingshim.so"
}

@test "finds the library under lib/uringshim when installed, also via a symlink" {
	fake_tree "$tmp/usr/bin" "$tmp/usr/lib/uringshim"
	run "$tmp/usr/bin/uringshim-run" --print-library
	assert_success
	assert_output "$tmp/usr/lib/uringshim/liburingshim.so"
	mkdir "$tmp/elsewhere"
	ln -s "$tmp/usr/bin/uringshim-run" "$tmp/elsewhere/run"
	run "$tmp/elsewhere/run" -n -- true
	assert_success
	assert_output --partial "LD_PRELOAD=$tmp/usr/lib/uringshim/liburingshim.so"
}

@test "a missing library is an error and the command does not run" {
	mkdir -p "$tmp/bin"
	cp "$RUN" "$tmp/bin/"
	run "$tmp/bin/uringshim-run" -- touch "$tmp/ran"
	assert_failure 2
	assert_output --partial "library not found"
	[ ! -e "$tmp/ran" ]
}

@test "settings become URINGSHIM_ variables, the prefix being optional" {
	fake_tree "$tmp/b" "$tmp/b"
	run "$tmp/b/uringshim-run" -n --set SEND=batch \
		--set URINGSHIM_LOG=stderr --sqpoll 1 -- true
	assert_success
	assert_line "uringshim-run: URINGSHIM_SEND=batch"
	assert_line "uringshim-run: URINGSHIM_LOG=stderr"
	assert_line "uringshim-run: URINGSHIM_SQPOLL=1"
	assert_line "uringshim-run: LD_PRELOAD=$tmp/b/liburingshim.so"
	# Settings the environment already holds are shown, unless overridden.
	URINGSHIM_DISABLE=1 URINGSHIM_SEND=direct run "$tmp/b/uringshim-run" \
		-n --set SEND=batch -- true
	assert_line "uringshim-run: inherited URINGSHIM_DISABLE=1"
	refute_line --partial "inherited URINGSHIM_SEND"
}

@test "bad settings are refused, unknown names warned about" {
	fake_tree "$tmp/b" "$tmp/b"
	run "$tmp/b/uringshim-run" -n --set SEND -- true
	assert_failure 2
	run "$tmp/b/uringshim-run" -n --set 'send mode=x' -- true
	assert_failure 2
	run "$tmp/b/uringshim-run" -n --sqpoll cpu1 -- true
	assert_failure 2
	run "$tmp/b/uringshim-run" -n --set NO_SUCH_THING=1 -- true
	assert_success
	assert_output --partial "warning: URINGSHIM_NO_SUCH_THING is not a known"
}

@test "--off drops only the shim from an inherited LD_PRELOAD" {
	LD_PRELOAD="/old/liburingshim.so /opt/other.so" run "$RUN" -n --off \
		-- true
	assert_success
	assert_line "uringshim-run: shim off"
	assert_line "uringshim-run: LD_PRELOAD=/opt/other.so"
	# Entries are taken literally (no globbing), blanks and colons split.
	LD_PRELOAD="/a/x.so  /old/liburingshim.so:/c/*.so" run "$RUN" -n \
		--off -- true
	assert_line "uringshim-run: LD_PRELOAD=/a/x.so:/c/*.so"
	LD_PRELOAD=/old/liburingshim.so run "$RUN" --off -- \
		sh -c 'echo "preload=${LD_PRELOAD-unset}"'
	assert_line "preload=unset"
}

@test "the command is exec'd: same PID, its exit status returned" {
	"$RUN" --off -- sh -c "echo \$\$ > '$tmp/pid'" &
	pid=$!
	wait $pid
	[ "$(cat "$tmp/pid")" = "$pid" ]
	run "$RUN" --off -- sh -c 'exit 7'
	assert_failure 7
}

@test "with the shim the program maps the library and sees the settings" {
	require_shim_lib
	run "$RUN" -v --set STATS=0 -- sh -c \
		'grep -c liburingshim.so /proc/$$/maps; echo "stats=$URINGSHIM_STATS"'
	assert_success
	assert_line "stats=0"
	assert_line --partial "uringshim-run: exec sh -c"
	[ "${lines[-2]}" -ge 1 ]
	LD_PRELOAD=$SHIM_LIB run "$RUN" --off -- sh -c \
		'grep -c liburingshim.so /proc/$$/maps'
	assert_output "0"
}

@test "uringshim-run and uringshim(7) know exactly the settings the shim reads" {
	shim_vars=$(sed -n '/known_vars\[\] = {/,/};/p' "$TOP"/shim/*.c |
		grep -o '"[A-Z0-9_]*"' | tr -d '"' | sort)
	[ -n "$shim_vars" ] || skip "the shim has no known_vars list yet"
	run_vars=$(sed -n '/^known_settings="/,/"$/p' "$TOP/scripts/uringshim-run" |
		sed 's/known_settings=//; s/"//g' | tr -s ' \n' '\n' | sed '/^$/d' |
		sort)
	assert_equal "$run_vars" "$shim_vars"
	for name in $shim_vars; do
		grep -q "^\.B[IR]* URINGSHIM_$name\b" "$TOP/man/uringshim.7" ||
			fail "URINGSHIM_$name is missing from uringshim(7)"
	done
}
