# tests/fuzz/rules.mk - build rules of the hardening work: the libFuzzer
# targets (tests/fuzz/) and the C helpers of the stress suites
# (tests/harden/). Included at the end of tests/module.mk.

# A preload giving the demo server a SIGUSR1 handler (stress.bats).
CFLAGS_tests/harden := -fPIC
HARDEN_SIGCOUNT := $(BUILD)/tests/harden/libsigcount.so
TEST_SUPPORT += $(HARDEN_SIGCOUNT)
$(HARDEN_SIGCOUNT): $(BUILD)/tests/harden/sigcount.o
	$(quiet) LD $@
	$(Q)$(CC) $(ALL_LDFLAGS) -shared -o $@ $^ $(LIBS)

# libFuzzer targets, always built with clang and ASan+UBSan whatever CC
# and SAN are (libFuzzer is clang's). Each links the sources it fuzzes.
FUZZ_CC		?= clang
FUZZ_CFLAGS	:= -std=gnu11 -O1 -g -D_GNU_SOURCE -pthread -Wall -Wextra \
		   -Werror -fsanitize=fuzzer,address,undefined \
		   -fno-sanitize-recover=undefined
FUZZ_DIR	:= $(BUILD)/tests/fuzz
FUZZ_TARGETS	:= fuzz_frames fuzz_shim_io
FUZZ_BINS	:= $(FUZZ_TARGETS:%=$(FUZZ_DIR)/%)

$(FUZZ_DIR)/fuzz_frames: tests/fuzz/fuzz_frames.c demo_server/server.c \
		demo_server/engine.c demo_server/book.c demo_server/journal.c \
		$(wildcard demo_server/*.h)
	$(quiet) FUZZCC $@
	$(Q)mkdir -p $(@D)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $(filter %.c,$^)

# Drives $(BUILD)/liburingshim.so, dlopen()ed at run time.
$(FUZZ_DIR)/fuzz_shim_io: tests/fuzz/fuzz_shim_io.c shim/stats.h | $(SHIM_LIB)
	$(quiet) FUZZCC $@
	$(Q)mkdir -p $(@D)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< -ldl

# The short bounded run `make test` does (tests/fuzz/fuzz_short.sh).
TEST_PROGS += $(FUZZ_DIR)/fuzz_short
$(FUZZ_DIR)/fuzz_short: tests/fuzz/fuzz_short.sh $(FUZZ_BINS)
	$(Q)mkdir -p $(@D)
	$(Q)cp $< $@ && chmod +x $@

# The differential argument fuzzer (tests/fuzz/fuzz_args.c), built with the
# project's CC and SAN: a bounded pass (fixed seed) in `make test`, a long
# one with a new seed and every shim setting in `make fuzz`.
FUZZ_ARGS := $(BUILD)/tests/fuzz/fuzz_args
# It passes NULL where libc declares nonnull, on purpose.
CFLAGS_tests/fuzz := -fno-sanitize=nonnull-attribute
TEST_PROGS += $(FUZZ_ARGS)
$(BUILD)/tests/fuzz/fuzz_args.o: shim/syscalls.def shim/stats.h
$(FUZZ_ARGS): $(BUILD)/tests/fuzz/fuzz_args.o | $(SHIM_LIB)
	$(quiet) LD $@
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)
