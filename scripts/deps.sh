#!/usr/bin/env bash
# deps.sh GROUP... - install the Debian packages a build group needs, only
# when some are missing, so a fresh Debian machine needs nothing by hand.
set -euo pipefail

pkgs_for() {
	case "$1" in
	build)	echo gcc make liburing-dev libseccomp-dev libjansson-dev pkg-config ;;
	test)	echo bats bats-assert bats-support clang valgrind iproute2 \
		     gnuplot-nox python3 \
		     linux-perf procps psmisc man-db ;;
	bench)	echo gnuplot-nox linux-perf util-linux procps python3 iproute2 ;;
	real)	echo redis-server redis-tools nginx-light memcached \
		     libmemcached-tools wrk curl python3 ;;
	pkg)	echo dpkg-dev man-db ;;
	*)	echo "deps.sh: unknown group '$1'" >&2; exit 2 ;;
	esac
}

missing=()
for group in "$@"; do
	for p in $(pkgs_for "$group"); do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
			grep -q 'install ok installed' || missing+=("$p")
	done
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps.sh: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
# Packaged daemons (redis, nginx, memcached) must not start on install.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
	$sudo chmod 755 "$policy"
	made_policy=1
fi
trap '[ $made_policy -eq 1 ] && $sudo rm -f "$policy"' EXIT
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
