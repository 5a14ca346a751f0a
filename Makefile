# uringshim - top-level build.
#
#   make            build everything into build/ (installs missing build deps)
#   make test       build, then run every C test program and bats suite
#   make ab         the A/B verdict on the demo server (about 5 minutes)
#   make clean      remove build/
#   V=1             show the full commands
#
# Each directory contributes a module.mk fragment that appends to the lists
# below; this file only holds what is common to all of them.

BUILD		?= build
CC		?= cc
WARN		:= -Wall -Wextra -Werror
BASE_CFLAGS	:= -std=gnu11 -O2 -g $(WARN) -D_GNU_SOURCE -pthread
# SAN=address,undefined (or thread) builds everything with sanitizers.
ifneq ($(SAN),)
BASE_CFLAGS	+= -fsanitize=$(SAN) -fno-omit-frame-pointer
BASE_LDFLAGS	+= -fsanitize=$(SAN)
endif
ALL_CFLAGS	= $(BASE_CFLAGS) $(CFLAGS)
ALL_LDFLAGS	= -pthread $(BASE_LDFLAGS) $(LDFLAGS)

ifeq ($(V),1)
Q :=
quiet = @true
else
Q := @
quiet = @printf '  %-7s %s\n'
endif

# Filled by the module.mk fragments.
PROGRAMS	:=	# built by `make`
TEST_PROGS	:=	# C test programs tests/run executes (exit 0/1/77)
TEST_SUPPORT	:=	# helpers the suites call, built by `make test`
CLEAN_EXTRA	:=

.PHONY: all test clean deps deps-build deps-test deps-bench
.DEFAULT_GOAL := all

include demo_server/module.mk
include bench/module.mk
include shim/module.mk
include scripts/module.mk
include tests/module.mk

all: deps-build $(PROGRAMS)

# deps: install the Debian packages a target needs when they are missing.
deps-build:
	$(Q)scripts/deps.sh build
deps-test:
	$(Q)scripts/deps.sh test
deps-bench:
	$(Q)scripts/deps.sh bench
deps: deps-build deps-test deps-bench

test: deps-test all $(TEST_PROGS) $(TEST_SUPPORT)
	$(Q)BUILD=$(BUILD) tests/run

# Generic compile rule: build/<dir>/<file>.o from <dir>/<file>.c, with
# header dependencies tracked.
$(BUILD)/%.o: %.c
	$(quiet) CC $@
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(ALL_CFLAGS) $(CFLAGS_$(*D)) -MMD -MP -c -o $@ $<

clean:
	$(quiet) CLEAN $(BUILD)
	$(Q)rm -rf $(BUILD) $(CLEAN_EXTRA)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# ===== Hardening: real servers, sanitizers, valgrind, fuzzing, soak =====
# (owned by the hardening work; see README "Real servers and hardening")
#   make test-sanitize  everything built with ASan+UBSan into build-san/,
#                       then the suites run against it
#   make test-tsan      the same with TSan into build-tsan/ (threaded suites)
#   make valgrind       the memcheck suite (demo server +- shim under valgrind)
#   make fuzz           every libFuzzer target for FUZZ_TIME seconds (120),
#                       then the argument fuzzer as long, with a new seed
#   make soak           the stress suite with longer, larger loads
.PHONY: deps-real test-sanitize test-tsan valgrind fuzz soak

deps-real:
	$(Q)scripts/deps.sh real
test: deps-real

# A preloaded ASan shim in a server without ASan needs the ASan runtime
# first in LD_PRELOAD (SHIM_PRELOAD_PREFIX, read by the real-server suites);
# servers built here have it linked, so the link-order check is relaxed.
SAN_ASAN_RT = $(shell $(CC) -print-file-name=libasan.so)
test-sanitize:
	$(MAKE) BUILD=build-san SAN=address,undefined all
	ASAN_OPTIONS=verify_asan_link_order=0:detect_leaks=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	SHIM_PRELOAD_PREFIX=$(SAN_ASAN_RT) \
		$(MAKE) BUILD=build-san SAN=address,undefined test

# TSan: the threaded suites. tests/tsan.supp holds the reports about
# memory whose synchronisation TSan cannot see (memcached is not
# instrumented), each with the evidence that it is not the shim's race.
TSAN_FILTER ?= shim|stress|real_memcached|threads
TSAN_RUN_OPTIONS := halt_on_error=1:report_signal_unsafe=0
TSAN_RUN_OPTIONS := $(TSAN_RUN_OPTIONS):suppressions=$(CURDIR)/tests/tsan.supp
test-tsan:
	$(MAKE) BUILD=build-tsan SAN=thread all
	TSAN_OPTIONS=$(TSAN_RUN_OPTIONS) \
	TESTS_FILTER='$(TSAN_FILTER)' \
	SHIM_PRELOAD_PREFIX=$(shell $(CC) -print-file-name=libtsan.so) \
		$(MAKE) BUILD=build-tsan SAN=thread test

valgrind: deps-test all $(TEST_SUPPORT)
	$(Q)BUILD=$(BUILD) TESTS_FILTER='^memcheck' tests/run

FUZZ_TIME ?= 120
FUZZ_SEED ?= $(shell date +%s)
fuzz: $(FUZZ_BINS) $(FUZZ_ARGS)
	$(Q)$(FUZZ_ARGS) --seconds $(FUZZ_TIME) --seed $(FUZZ_SEED) \
		--settings default,adaptive0,recv_single,send_sync
	$(Q)for t in $(FUZZ_TARGETS); do \
		mkdir -p $(BUILD)/fuzz-work/$$t; \
		echo "fuzz: $$t for $(FUZZ_TIME) s"; \
		$(FUZZ_DIR)/$$t -max_total_time=$(FUZZ_TIME) \
			-artifact_prefix=$(BUILD)/fuzz-work/ \
			$(BUILD)/fuzz-work/$$t tests/fuzz/corpus/$$t \
			2>$(BUILD)/fuzz-work/$$t.log || \
			{ tail -n 40 $(BUILD)/fuzz-work/$$t.log; exit 1; }; \
		grep '^Done' $(BUILD)/fuzz-work/$$t.log; \
	done

soak: deps-test all $(TEST_SUPPORT)
	$(Q)STRESS_SCALE=$${STRESS_SCALE:-10} BUILD=$(BUILD) \
		TESTS_FILTER='^stress' tests/run
