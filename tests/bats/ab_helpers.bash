# ab_helpers.bash - helpers of tests/bats/ab.bats (the A/B harness).
# shellcheck disable=SC2034 # variables are used by ab.bats

TOP=${TOP:-$(cd "$BATS_TEST_DIRNAME/../.." && pwd)}
BUILD=${BUILD:-build}
export TOP BUILD
AB_BUILD=$BUILD
[[ $AB_BUILD = /* ]] || AB_BUILD=$TOP/$AB_BUILD

# ab_require_binaries - true when the server and the load generator are
# built; otherwise false with the reason in AB_SKIP_REASON.
ab_require_binaries() {
	local bin
	for bin in matching_server loadgen; do
		if [ ! -x "$AB_BUILD/$bin" ]; then
			AB_SKIP_REASON="$AB_BUILD/$bin not built"
			return 1
		fi
	done
}

# ab_json FILE CODE - run python CODE with d = the JSON in FILE and out =
# its directory; an assert in CODE fails the command.
ab_json() {
	python3 -c "import json, os, sys
out = os.path.dirname(sys.argv[1])
d = json.load(open(sys.argv[1]))
$2" "$1"
}

# ab_fake_loadgen CONDITION MODE - write $FAKE_LOADGEN, a stand-in that runs
# the real load generator except under CONDITION (bench/ab exports
# AB_CONDITION), where MODE "seed" shifts --seed (so its digest differs)
# and MODE "exit" fails with status 1 without running it.
ab_fake_loadgen() {
	FAKE_LOADGEN=$BATS_TEST_TMPDIR/fake_loadgen
	cat >"$FAKE_LOADGEN" <<SCRIPT
#!/usr/bin/env bash
real=$AB_BUILD/loadgen
[ "\${AB_CONDITION:-}" = "$1" ] || exec "\$real" "\$@"
case $2 in
exit)	echo "fake loadgen: failing on purpose" >&2; exit 1 ;;
seed)	args=()
	while [ \$# -gt 0 ]; do
		if [ "\$1" = --seed ]; then
			args+=(--seed \$((\$2 + 1000))); shift 2
		else
			args+=("\$1"); shift
		fi
	done
	exec "\$real" "\${args[@]}" ;;
esac
SCRIPT
	chmod +x "$FAKE_LOADGEN"
}
