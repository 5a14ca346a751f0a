#!/usr/bin/env bats
# ops_canary.bats - uringshim-canary: the decision is stable per host, a
# higher percentage only adds hosts, allow/deny lists (deny wins), where
# the percentage and host id come from, and the three emit formats.

load ops_helpers

setup() {
	tmp=$(mktemp -d "$BATS_TMPDIR/ops_canary.XXXXXX")
	unset URINGSHIM_CANARY_PERCENT
}

teardown() {
	rm -rf "$tmp"
}

# decision ID PERCENT [ARGS...] - "on" or "off" for that host.
decision() {
	local id=$1 percent=$2
	shift 2
	"$CANARY" --host-id "$id" --percent "$percent" "$@" | cut -d: -f1
}

@test "the decision for a host is stable and names its reason" {
	run "$CANARY" --host-id trade-gw-1 --percent 50
	assert_success
	assert_output --regexp '^(on|off): host trade-gw-1 bucket [0-9]+ '
	first=$output
	for i in 1 2 3; do
		run "$CANARY" --host-id trade-gw-1 --percent 50
		assert_output "$first"
	done
}

@test "raising the percentage only ever adds hosts" {
	local id p prev cur on50=0
	for i in $(seq 1 40); do
		id=host-$i
		prev=off
		for p in 0 1 20 50 80 99 100; do
			cur=$(decision "$id" "$p")
			[ "$p" -ne 0 ] || [ "$cur" = off ] ||
				fail "$id on at 0%"
			[ "$p" -ne 100 ] || [ "$cur" = on ] ||
				fail "$id off at 100%"
			[ "$prev" = off ] || [ "$cur" = on ] ||
				fail "$id on below $p% but off at $p%"
			[ "$p" -ne 50 ] || [ "$cur" = off ] || on50=$((on50 + 1))
			prev=$cur
		done
	done
	# The hash spreads hosts: half the fleet at 50% (loose bounds, 40 ids).
	[ "$on50" -ge 8 ] && [ "$on50" -le 32 ] ||
		fail "$on50 of 40 hosts on at 50%"
}

@test "allow turns a host on, deny turns it off and wins over allow" {
	cat > "$tmp/conf" <<-CONF
	percent = 0
	allow = gw-a, gw-b  # comment
	allow = gw-c
	deny = gw-b
	CONF
	run "$CANARY" --config "$tmp/conf" --host-id gw-a
	assert_output "on: host gw-a in the allow list"
	run "$CANARY" --config "$tmp/conf" --host-id gw-c
	assert_output "on: host gw-c in the allow list"
	run "$CANARY" --config "$tmp/conf" --host-id gw-b
	assert_output "off: host gw-b in the deny list"
	run "$CANARY" --config "$tmp/conf" --host-id gw-d
	assert_output --partial "off: host gw-d bucket"
	# Deny wins at 100% too.
	run "$CANARY" --config "$tmp/conf" --host-id gw-b --percent 100
	assert_output "off: host gw-b in the deny list"
}

@test "percentage: --percent over the environment over the config" {
	echo "percent = 100" > "$tmp/conf"
	run "$CANARY" --config "$tmp/conf" --host-id x
	assert_output --partial "on: host x bucket"
	URINGSHIM_CANARY_PERCENT=0 run "$CANARY" --config "$tmp/conf" \
		--host-id x
	assert_output --partial "off: host x bucket"
	URINGSHIM_CANARY_PERCENT=0 run "$CANARY" --config "$tmp/conf" \
		--host-id x --percent 100
	assert_output --partial "on: host x bucket"
	run "$CANARY" --host-id x
	assert_output --partial ">= 0 percent"
}

@test "host id: machine-id file first, else the hostname" {
	echo "0123456789abcdef0123456789abcdef" > "$tmp/machine-id"
	URINGSHIM_MACHINE_ID_FILE=$tmp/machine-id run "$CANARY"
	assert_output --partial "host 0123456789abcdef0123456789abcdef "
	URINGSHIM_MACHINE_ID_FILE=$tmp/none run "$CANARY"
	assert_output --partial "host $(hostname) "
}

@test "the salt draws a different set of hosts" {
	local differ=0
	echo "salt = rollout-2" > "$tmp/conf"
	for i in $(seq 1 10); do
		a=$("$CANARY" --host-id h$i | grep -o 'bucket [0-9]*')
		b=$("$CANARY" --host-id h$i --config "$tmp/conf" |
			grep -o 'bucket [0-9]*')
		[ "$a" = "$b" ] || differ=$((differ + 1))
	done
	[ "$differ" -ge 5 ]
}

@test "emit env: the preload and settings when on, nothing when off" {
	printf 'percent = 100\nURINGSHIM_SEND = batch\nmin_hosts = 2\n' \
		> "$tmp/conf"
	lib=$("$RUN" --print-library)
	run --separate-stderr "$CANARY" --config "$tmp/conf" --host-id x \
		--emit env
	assert_success
	assert_equal "${lines[*]}" "LD_PRELOAD=$lib URINGSHIM_SEND=batch"
	assert_equal "$stderr" "on: host x bucket $(
		"$CANARY" --host-id x | grep -o '[0-9]* >=' | cut -d' ' -f1
	) < 100 percent"
	run --separate-stderr "$CANARY" --config "$tmp/conf" --host-id x \
		--percent 0 --emit env
	assert_success
	assert_output ""
}

@test "emit run-args feeds uringshim-run: --set when on, --off when off" {
	printf 'percent = 100\nURINGSHIM_SEND = batch\n' > "$tmp/conf"
	run --separate-stderr "$CANARY" --config "$tmp/conf" --host-id x \
		--emit run-args
	assert_equal "${lines[*]}" "--set URINGSHIM_SEND=batch"
	mapfile -t args < <("$CANARY" --config "$tmp/conf" --host-id x \
		--percent 0 --emit run-args 2>/dev/null)
	assert_equal "${args[*]}" "--off"
	run "$RUN" -n "${args[@]}" -- true
	assert_success
	assert_line "uringshim-run: shim off"
}

@test "emit systemd: a [Service] drop-in, without the preload when off" {
	printf 'percent = 100\nURINGSHIM_KILLFILE = /run/k\n' > "$tmp/conf"
	printf 'URINGSHIM_LOG = /var/log/a b.log\n' >> "$tmp/conf"
	lib=$("$RUN" --print-library)
	run --separate-stderr "$CANARY" --config "$tmp/conf" --host-id x \
		--emit systemd
	assert_success
	assert_line --index 1 "[Service]"
	assert_line "Environment=LD_PRELOAD=$lib"
	assert_line "Environment=URINGSHIM_KILLFILE=/run/k"
	assert_line 'Environment="URINGSHIM_LOG=/var/log/a b.log"'
	run --separate-stderr "$CANARY" --config "$tmp/conf" --host-id x \
		--percent 0 --emit systemd
	assert_line "[Service]"
	refute_output --partial "Environment="
}

@test "bad percentages, config lines and formats are refused" {
	for p in 101 -1 abc 5.5 ""; do
		run "$CANARY" --host-id x --percent "$p"
		assert_failure 2
	done
	printf 'percent = 10\nthis line is wrong\n' > "$tmp/conf"
	run "$CANARY" --config "$tmp/conf" --host-id x
	assert_failure 2
	assert_output --partial "conf:2: expected"
	printf 'pecent = 10\n' > "$tmp/conf"
	run --separate-stderr "$CANARY" --config "$tmp/conf" --host-id x
	assert_success
	assert_equal "$stderr" \
		"uringshim-canary: $tmp/conf:1: warning: unknown key 'pecent' ignored"
	run "$CANARY" --host-id x --emit yaml
	assert_failure 2
	run "$CANARY" --config "$tmp/missing"
	assert_failure 2
}

@test "the emitted drop-in and the shipped example parse cleanly in systemd" {
	command -v systemd-analyze >/dev/null || skip "no systemd-analyze"
	units=$tmp/units
	mkdir -p "$units/demo.service.d"
	printf '[Unit]\nDescription=demo\n[Service]\nExecStart=/bin/true\n' \
		> "$units/demo.service"
	printf 'URINGSHIM_LOG = /var/log/a b.log\nURINGSHIM_SEND = batch\n' \
		> "$tmp/conf"
	for drop_in in emitted example; do
		if [ $drop_in = emitted ]; then
			"$CANARY" --config "$tmp/conf" --host-id x --percent 100 \
				--emit systemd > "$units/demo.service.d/u.conf"
		else
			cp "$TOP/packaging/systemd/uringshim.conf.example" \
				"$units/demo.service.d/u.conf"
		fi
		grep -q '^Environment=LD_PRELOAD=' "$units/demo.service.d/u.conf"
		SYSTEMD_UNIT_PATH=$units: run --separate-stderr \
			systemd-analyze verify "$units/demo.service"
		assert_equal "$drop_in: $stderr" "$drop_in: "
	done
	# The check is real: a broken line is reported.
	echo 'Environment=A B "' >> "$units/demo.service.d/u.conf"
	SYSTEMD_UNIT_PATH=$units: run --separate-stderr \
		systemd-analyze verify "$units/demo.service"
	[[ $stderr == *"u.conf:"* ]]
}
