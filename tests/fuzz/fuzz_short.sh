#!/usr/bin/env bash
# fuzz_short - a short bounded libFuzzer run of every fuzz target (part of
# `make test`): FUZZ_RUNS inputs each (default 3000; fuzz_shim_io, whose
# inputs are socket I/O, a third of it), seeded by the
# committed corpus tests/fuzz/corpus/<target>/, new inputs kept in a
# temporary directory (the committed corpus is never written). Exit 0 when
# every target ran and none crashed, 1 when one crashed, 77 when none did
# but a target is missing or could not run what it fuzzes (fuzz_shim_io
# where io_uring is refused or the shim is sanitizer-built: the last line
# says why). `make fuzz` is the long run.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=${TOP:-$(cd "$here/../../.." && pwd)}
runs=${FUZZ_RUNS:-3000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rc=0
skipped=""
for target in fuzz_frames fuzz_shim_io; do
	bin=$here/$target
	[ -x "$bin" ] || { echo "$target not built"; exit 77; }
	# A shim built with gcc's sanitizers (make test-sanitize) cannot be
	# dlopen()ed by a clang-ASan binary: two ASan runtimes.
	if [ "$target" = fuzz_shim_io ] &&
	   readelf -d "$here/../../liburingshim.so" 2>/dev/null |
		grep -qE 'lib(asan|tsan|ubsan)'; then
		skipped="skip $target: the shim is sanitizer-built"
		echo "$skipped"
		continue
	fi
	mkdir -p "$work/$target"
	n=$runs
	[ "$target" = fuzz_shim_io ] && n=$((runs / 3))
	status=0
	"$bin" -runs="$n" -artifact_prefix="$work/" \
		"$work/$target" "$top/tests/fuzz/corpus/$target" \
		>"$work/$target.log" 2>&1 || status=$?
	if [ "$status" -eq 77 ]; then
		skipped=$(grep -m1 "^skip $target" "$work/$target.log" ||
			  echo "skip $target: exit 77")
		echo "$skipped"
	elif [ "$status" -ne 0 ]; then
		echo "FAIL $target:"
		tail -n 40 "$work/$target.log"
		cp "$work"/crash-* "$work"/leak-* "$top/${BUILD:-build}/" \
			2>/dev/null
		rc=1
	else
		echo "ok $target: $(grep -E '^Done' "$work/$target.log")"
	fi
done
if [ "$rc" -eq 0 ] && [ -n "$skipped" ]; then
	echo "$skipped"
	exit 77
fi
exit $rc
