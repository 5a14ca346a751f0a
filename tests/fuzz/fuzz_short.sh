#!/usr/bin/env bash
# fuzz_short - a short bounded libFuzzer run of every fuzz target (part of
# `make test`): FUZZ_RUNS inputs each (default 3000; fuzz_shim_io, whose
# inputs are socket I/O, a third of it), seeded by the
# committed corpus tests/fuzz/corpus/<target>/, new inputs kept in a
# temporary directory (the committed corpus is never written). Exit 0 when
# no target crashed, 1 otherwise, 77 when a target is missing. `make fuzz`
# is the long run.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=${TOP:-$(cd "$here/../../.." && pwd)}
runs=${FUZZ_RUNS:-3000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rc=0

# run_target BIN RUNS TARGET - one bounded run.  LeakSanitizer's exit-time
# tracer now and then dies itself ("Tracer caught signal 11", "LeakSanitizer
# has encountered a fatal error") while suspending the threads of a process
# that has io_uring rings; that says nothing about the target, so such a
# run is made once more.  A leak, a crash or a sanitizer report is never
# retried.
run_target() {
	local try

	for try in 1 2; do
		"$1" -runs="$2" -artifact_prefix="$work/" "$work/$3" \
			"$top/tests/fuzz/corpus/$3" >"$work/$3.log" 2>&1 &&
			return 0
		grep -q 'LeakSanitizer has encountered a fatal error' \
			"$work/$3.log" || return 1
		grep -qE 'ERROR: (Address|Leak|Undefined)Sanitizer|deadly signal' \
			"$work/$3.log" && return 1
		echo "note $3: LeakSanitizer's tracer failed, run again"
		rm -f "$work"/crash-* "$work"/leak-*
	done
	return 1
}

for target in fuzz_frames fuzz_shim_io; do
	bin=$here/$target
	[ -x "$bin" ] || { echo "$target not built"; exit 77; }
	# A shim built with gcc's sanitizers (make test-sanitize) cannot be
	# dlopen()ed by a clang-ASan binary: two ASan runtimes.
	if [ "$target" = fuzz_shim_io ] &&
	   readelf -d "$here/../../liburingshim.so" 2>/dev/null |
		grep -qE 'lib(asan|tsan|ubsan)'; then
		echo "skip $target: the shim is sanitizer-built"
		continue
	fi
	mkdir -p "$work/$target"
	n=$runs
	[ "$target" = fuzz_shim_io ] && n=$((runs / 3))
	if ! run_target "$bin" "$n" "$target"; then
		echo "FAIL $target:"
		tail -n 40 "$work/$target.log"
		cp "$work"/crash-* "$work"/leak-* "$top/${BUILD:-build}/" \
			2>/dev/null
		rc=1
	else
		echo "ok $target: $(grep -E '^Done' "$work/$target.log")"
	fi
done
exit $rc
