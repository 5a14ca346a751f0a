#!/usr/bin/env bats
# ops_cohort.bats - uringshim-cohort on synthetic hosts: each verdict
# (promote, hold, roll back) at its thresholds, thresholds read from the
# config, hosts that did not run what their cohort says, the collected
# directory format, the markdown report and its PNG plot.

load ops_helpers

setup() {
	tmp=$(mktemp -d "$BATS_TMPDIR/ops_cohort.XXXXXX")
	cd "$tmp"
	# Control: 100k req/s, p50 10, p99 30, p99.9 50 us, 15 us CPU/request.
	write_result c1.json ctl-1 off 100000 10 30 50 0 1.5
	write_result c2.json ctl-2 off 100000 10 30 50 0 1.5
}

teardown() {
	cd /
	rm -rf "$tmp"
}

# verdict - the verdict word of the last `run "$COHORT" ...`.
verdict() {
	echo "${lines[0]#verdict: }"
}

@test "a better canary is promoted; report, plot and summary written" {
	write_result k1.json can-1 on 120000 10 30 50 0 1.0
	write_result k2.json can-2 on 118000 10 31 50 0 1.1
	run "$COHORT" --out rep k1.json k2.json c1.json c2.json
	assert_success
	assert_equal "$(verdict)" promote
	assert_line "report: rep/report.md"
	grep -q '^\*\*Verdict: promote\*\*' rep/report.md
	grep -q '^| throughput (req/s) | 119,000.0 | 100,000.0 | +19.0% | 0.0% |$' \
		rep/report.md
	grep -q '^| CPU per request (us) | 10.50 | 15.00 | -30.0% |' rep/report.md
	# Control hosts 90k and 110k differ by 20% of their mean.
	write_result c2.json ctl-2 off 110000 10 30 50 0 1.5
	write_result c1.json ctl-1 off 90000 10 30 50 0 1.5
	run "$COHORT" --out rep k1.json k2.json c1.json c2.json
	grep -q '^| throughput (req/s) | 119,000.0 | 100,000.0 | +19.0% | 20.0% |$' \
		rep/report.md
	grep -q '^| can-1 | canary | on | active | 120,000.0 ' rep/report.md
	grep -q '^| ctl-2 | control | off | disabled |' rep/report.md
	grep -q '!\[cohort plot\](plot.png)' rep/report.md
	[ "$(head -c 8 rep/plot.png | od -An -tx1 | tr -d ' ')" = \
	  89504e470d0a1a0a ]
	python3 -c 'import json, sys
s = json.load(open("rep/summary.json"))
assert s["verdict"] == "promote" and s["canary"]["hosts"] == 2, s'
}

@test "canary errors beyond control's roll back" {
	write_result k1.json can-1 on 120000 10 30 50 3 1.0
	run "$COHORT" --out rep k1.json c1.json
	assert_success
	assert_equal "$(verdict)" rollback
	assert_output --partial "canary has 3 errors, control 0"
	# Allowing 3 extra errors turns it into a hold (errors still > 0).
	echo "rollback_max_errors = 3" > conf
	run "$COHORT" --config conf --out rep k1.json c1.json
	assert_equal "$(verdict)" hold
}

@test "throughput: a drop past the rollback threshold rolls back, a small one holds" {
	write_result k1.json can-1 on 85000 10 30 50 0 1.0
	run "$COHORT" --out rep k1.json c1.json
	assert_equal "$(verdict)" rollback
	assert_output --partial "throughput -15.0% (roll back below -10%)"
	write_result k1.json can-1 on 95000 10 30 50 0 1.0
	run "$COHORT" --out rep k1.json c1.json
	assert_equal "$(verdict)" hold
	assert_output --partial "throughput -5.0% (promote needs >= +0%)"
}

@test "latency: p99 thresholds come from the config" {
	# p99 +20%: above the promote limit (5%), below roll back (25%).
	write_result k1.json can-1 on 110000 10 36 50 0 1.0
	run "$COHORT" --out rep k1.json c1.json
	assert_equal "$(verdict)" hold
	assert_output --partial "p99 +20.0% (promote needs <= +5%)"
	printf 'promote_max_p99_regression_pct = 20 # relaxed\n' > conf
	run "$COHORT" --config conf --out rep k1.json c1.json
	assert_equal "$(verdict)" promote
	printf 'rollback_p99_regression_pct = 15\n' > conf
	run "$COHORT" --config conf --out rep k1.json c1.json
	assert_equal "$(verdict)" rollback
	grep -q '^- rollback_p99_regression_pct = 15$' rep/report.md
}

@test "CPU per request: a required saving that is missing holds" {
	write_result k1.json can-1 on 110000 10 30 50 0 1.45
	echo "promote_min_cpu_gain_pct = 5" > conf
	run "$COHORT" --config conf --out rep k1.json c1.json
	assert_equal "$(verdict)" hold
	assert_output --partial "CPU per request -3.3% (promote needs a saving of >= 5%)"
}

@test "a canary host without the shim, or too few hosts, holds" {
	write_result k1.json can-1 off 120000 10 30 50 0 1.0 canary
	run "$COHORT" --out rep k1.json c1.json
	assert_equal "$(verdict)" hold
	assert_output --partial "canary host can-1 runs without the shim"
	write_result k1.json can-1 on 120000 10 30 50 0 1.0
	echo "min_hosts = 2" > conf
	run "$COHORT" --config conf --out rep k1.json c1.json c2.json
	assert_equal "$(verdict)" hold
	assert_output --partial "canary cohort has 1 hosts, needs 2"
}

@test "collected directories are read, CPU per request derived" {
	mkdir -p h1 h2
	printf 'host=dir-1\ncohort=canary\nshim=on\ncpu_seconds=2.000\n' \
		> h1/meta
	printf 'host=dir-2\nshim=off\ncpu_seconds=3.000\n' > h2/meta
	for d in h1 h2; do
		cat > $d/loadgen.json <<-JSON
		{"requests": 200000, "errors": 0, "throughput": 50000,
		 "latency_us": {"p50": 8, "p90": 9, "p99": 20, "p99_9": 40,
				"p99_99": 60, "max": 90}}
		JSON
	done
	echo '{"state": "active", "enters": 1000}' > h1/stat-before.json
	echo '{"state": "active", "enters": 51000}' > h1/stat.json
	run "$COHORT" --out rep h1 h2
	assert_success
	grep -q '^| dir-1 | canary | on | active | 50,000.0 | 8.0 | 20.0 | 40.0 | 0 | 10.00 | 0.250 |$' rep/report.md
	grep -q '^| dir-2 | control | off | - | .* | 15.00 | n/a |$' rep/report.md
	grep -q '^| io_uring_enter per request | 0.250 | n/a | n/a | n/a |$' \
		rep/report.md
	# A state other than active carries its reason.
	echo '{"state": "killed", "reason": "kill file present"}' > h1/stat.json
	run "$COHORT" --out rep h1 h2
	assert_line --partial "canary host dir-1 shim state is 'killed (kill file present)'"
}

@test "broken inputs are refused" {
	echo '{"host": "x", "shim": "maybe", "loadgen": {}}' > bad.json
	run "$COHORT" --out rep bad.json
	assert_failure 2
	echo '{"host": "x", "shim": "on", "loadgen": {"requests": 1}}' \
		> bad.json
	run "$COHORT" --out rep bad.json
	assert_failure 2
	assert_output --partial "loadgen figures incomplete"
	run "$COHORT" --out rep c1.json c1.json
	assert_failure 2
	assert_output --partial "the same host appears twice"
	printf 'percent = 5\nrollback_p99_regresion_pct = 1\n' > conf
	run --separate-stderr "$COHORT" --config conf --out rep c1.json
	assert_success
	assert_equal "$stderr" "uringshim-cohort: conf:2: warning: unknown key 'rollback_p99_regresion_pct' ignored"
	echo "min_hosts = many" > conf
	run "$COHORT" --config conf --out rep c1.json
	assert_failure 2
}
