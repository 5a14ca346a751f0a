#!/usr/bin/env bats
# ops_install.bats - `make install` / `make uninstall` into a staging
# DESTDIR, and `make deb`: the package's contents and metadata, then a real
# dpkg install and removal into a private dpkg root (never the system).
# The installed tools must find the installed library, and the man pages
# must render and list every setting the shim reads.

load ops_helpers

setup_file() {
	export VERSION_NUMBER=$(cat "$TOP/VERSION")
	export ARCH=$(dpkg --print-architecture)
}

setup() {
	require_shim_lib
	[ -x "$OPS_BUILD/uringshim-stat" ] ||
		skip "$OPS_BUILD/uringshim-stat not built yet (shim/)"
	tmp=$(mktemp -d "$BATS_TMPDIR/ops_install.XXXXXX")
}

teardown() {
	[ -z "${tmp:-}" ] || rm -rf "$tmp"
}

# mk TARGET [VAR=VALUE...] - the top-level make, quietly, on this BUILD.
mk() {
	# A make of its own: not the jobserver of a `make test` above us.
	env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS \
		make -s -C "$TOP" BUILD="$OPS_BUILD" "$@"
}

TOOLS="uringshim-run uringshim-canary uringshim-cohort uringshim-rollback
uringshim-collect uringshim-stat"
MANS="man7/uringshim.7.gz man1/uringshim-run.1.gz man1/uringshim-stat.1.gz
man1/uringshim-canary.1.gz man1/uringshim-cohort.1.gz"

@test "install puts everything under PREFIX; uninstall removes it all" {
	run mk install DESTDIR="$tmp" PREFIX=/usr/local
	assert_success
	p=$tmp/usr/local
	[ -f "$p/lib/uringshim/liburingshim.so" ]
	for t in $TOOLS; do
		[ -x "$p/bin/$t" ] || fail "$t not installed"
	done
	for m in $MANS; do
		[ -f "$p/share/man/$m" ] || fail "$m not installed"
	done
	[ -f "$p/share/doc/uringshim/examples/uringshim.conf.example" ]
	# The installed launcher finds the installed library and loads it.
	run "$p/bin/uringshim-run" --print-library
	assert_output "$p/lib/uringshim/liburingshim.so"
	run --separate-stderr "$p/bin/uringshim-canary" --host-id x \
		--percent 100 --emit env
	assert_output "LD_PRELOAD=$p/lib/uringshim/liburingshim.so"
	run "$p/bin/uringshim-run" --set STATS=0 -- sh -c \
		'grep -c "'"$p"'/lib/uringshim/liburingshim.so" /proc/$$/maps'
	assert_success
	[ "${lines[-1]}" -ge 1 ]
	run mk uninstall DESTDIR="$tmp" PREFIX=/usr/local
	assert_success
	run find "$tmp" -type f
	assert_output ""
}

@test "man pages render without warnings" {
	for page in "$TOP"/man/*.[17]; do
		run --separate-stderr man --warnings -l "$page"
		assert_success
		assert_equal "$stderr" ""
		[ "${#lines[@]}" -gt 10 ]
	done
}

@test "make deb: name, version, dependencies and contents" {
	run mk deb
	assert_success
	deb=$OPS_BUILD/uringshim_${VERSION_NUMBER}_$ARCH.deb
	[ -f "$deb" ]
	assert_equal "$(dpkg-deb -f "$deb" Package)" uringshim
	assert_equal "$(dpkg-deb -f "$deb" Version)" "$VERSION_NUMBER"
	dpkg-deb -f "$deb" Depends | grep -q 'libc6 (>= '
	run dpkg-deb -c "$deb"
	assert_success
	for f in ./usr/lib/uringshim/liburingshim.so \
		 ./usr/share/man/man7/uringshim.7.gz \
		 ./usr/share/doc/uringshim/copyright; do
		assert_output --partial " $f"
	done
	for t in $TOOLS; do
		assert_output --regexp "-rwxr-xr-x root/root .* \./usr/bin/$t"
	done
	refute_output --partial "/usr/local"
	refute_output --partial "$OPS_BUILD"
}

@test "the deb installs into a dpkg root and is removed without a trace" {
	run mk deb
	assert_success
	deb=$OPS_BUILD/uringshim_${VERSION_NUMBER}_$ARCH.deb
	root=$tmp/root
	mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates"
	: > "$root/var/lib/dpkg/status"
	# --force-depends: the private root has no libc6 package to satisfy.
	run dpkg --root="$root" --force-depends -i "$deb"
	assert_success
	run dpkg --root="$root" -s uringshim
	assert_output --partial "Status: install ok installed"
	run "$root/usr/bin/uringshim-run" --print-library
	assert_output "$root/usr/lib/uringshim/liburingshim.so"
	run dpkg --root="$root" --purge uringshim
	assert_success
	run dpkg --root="$root" -s uringshim
	assert_failure
	run find "$root" -path "$root/var" -prune -o -type f -print
	assert_output ""
}
