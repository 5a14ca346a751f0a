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
