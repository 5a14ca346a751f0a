#!/usr/bin/env bats
# ab_model.bats - the A/B cost model and statistics (bench/ab_model.py,
# bench/ab_stats.py) on fixed inputs: tests/py/test_ab_model.py, whose
# expected figures are worked out by hand. Seconds, no server.

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
load 'ab_helpers'

@test "ab_model: unit tests on fixed inputs pass" {
	run python3 -m unittest -v "$TOP/tests/py/test_ab_model.py"
	echo "$output"
	assert_success
	# The suite really ran its cases (an import error runs none).
	assert_output --regexp 'Ran [1-9][0-9]* tests'
	assert_line --index -1 OK
}

@test "ab_report record: a quote in a value still gives valid JSON" {
	f=$BATS_TEST_TMPDIR/r.json
	run python3 "$TOP/bench/ab_report.py" record "$f" 'name=a"b\c' \
		n:n=1.5 bad:n=nan l:l=1,-,3 b:b=true p:p=missing
	assert_success
	run ab_json "$f" '
assert d == {"name": "a\"b\\c", "n": 1.5, "bad": None,
             "l": [1, None, 3], "b": True, "p": None}, d
print("ok")'
	assert_output ok
}
