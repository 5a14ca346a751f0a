# ops_helpers.bash - shared setup of the ops_*.bats suites: paths of the
# operating tools as built into $BUILD, and small synthetic-input writers.

load common

OPS_BUILD=$BUILD_DIR
RUN=$OPS_BUILD/uringshim-run
CANARY=$OPS_BUILD/uringshim-canary
COHORT=$OPS_BUILD/uringshim-cohort
ROLLBACK=$OPS_BUILD/uringshim-rollback
COLLECT=$OPS_BUILD/uringshim-collect
SHIM_LIB=$OPS_BUILD/liburingshim.so

# require_shim_lib - skip unless the shim library has been built.
require_shim_lib() {
	[ -f "$SHIM_LIB" ] || skip "$SHIM_LIB not built yet (shim/)"
}

# write_result FILE HOST SHIM THROUGHPUT P50 P99 P99_9 ERRORS CPU_S [COHORT]
# - one host's figures as uringshim-cohort reads them (100000 requests).
write_result() {
	local cohort=""
	[ -z "${10:-}" ] || cohort="\"cohort\": \"${10}\","
	cat > "$1" <<JSON
{"host": "$2", "shim": "$3", $cohort "cpu_seconds": $9,
 "loadgen": {"requests": 100000, "errors": $8, "throughput": $4,
	     "latency_us": {"p50": $5, "p90": $5, "p99": $6, "p99_9": $7,
			    "p99_99": $7, "max": $7}},
 "stat": {"state": "$([ "$3" = on ] && echo active || echo disabled)"}}
JSON
}
