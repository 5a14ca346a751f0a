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
