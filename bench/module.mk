# bench/module.mk - build rules for bench/ (filled in by its owner).

# ---- loadgen and hist (C rules; owner: load generator) ----
LOADGEN_SRCS	:= $(wildcard bench/loadgen/*.c)
LOADGEN_OBJS	:= $(LOADGEN_SRCS:%.c=$(BUILD)/%.o) $(BUILD)/bench/hist.o

PROGRAMS	+= $(BUILD)/loadgen
TEST_PROGS	+= $(BUILD)/tests/hist_accuracy

$(BUILD)/loadgen: $(LOADGEN_OBJS)
	$(quiet) LD $@
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS) -ljansson -lm

$(BUILD)/tests/hist_accuracy: $(BUILD)/tests/unit/hist_accuracy.o \
			      $(BUILD)/bench/hist.o
	$(quiet) LD $@
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS) -lm
# ---- end of loadgen block ----

# ---- A/B harness targets (owner: A/B harness) ----
# hostprof: the host's unit costs (bench/hostprof.c), run by bench/ab.
PROGRAMS	+= $(BUILD)/hostprof

$(BUILD)/hostprof: $(BUILD)/bench/hostprof.o
	$(quiet) LD $@
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS) -luring

# make ab        the default matrix, about 5 minutes on 2 cores
# make ab-full   every scenario, more repetitions
# AB_FLAGS="..." passes options to bench/ab (see bench/ab --help).
.PHONY: ab ab-full
ab: all deps-bench
	$(Q)BUILD=$(BUILD) bench/ab $(AB_FLAGS)
ab-full: all deps-bench
	$(Q)BUILD=$(BUILD) bench/ab --full $(AB_FLAGS)
# ---- end of A/B harness block ----

# ---- real-server A/B (owner: hardening) ----
# make ab-real   redis/nginx/memcached baseline vs shim (bench/ab_real);
# AB_REAL_FLAGS="--reps 5 --duration 5" passes options.
.PHONY: ab-real
ab-real: all deps-bench deps-real
	$(Q)BUILD=$(BUILD) bench/ab_real $(AB_REAL_FLAGS)
# ---- end of real-server A/B block ----

# ---- shimcost: the shim's own CPU per intercepted call ----
# make bench-shim   shimcost plainly and under the shim, pinned to CPU 0;
# the shim without adaptive parking, which would hand a loop this idle
# back to plain syscalls and measure those instead
PROGRAMS	+= $(BUILD)/shimcost
$(BUILD)/shimcost: $(BUILD)/bench/shimcost.o
	$(quiet) LD $@
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

.PHONY: bench-shim
bench-shim: all
	$(Q)for r in 1 2 3; do \
		taskset -c 0 $(BUILD)/shimcost $(SHIMCOST_FLAGS); \
		LD_PRELOAD=$(abspath $(SHIM_LIB)) URINGSHIM_ADAPTIVE=0 \
			taskset -c 0 \
			$(BUILD)/shimcost $(SHIMCOST_FLAGS); \
	done
