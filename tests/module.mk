# tests/module.mk - C test programs.
#
# Each module appends the paths of its C test programs to TEST_PROGS; this
# fragment writes them to $(BUILD)/tests/programs.list, which tests/run reads.
# Programs the bats suites run themselves go in TEST_SUPPORT instead.

TEST_LIST := $(BUILD)/tests/programs.list

test: $(TEST_LIST)
$(TEST_LIST): FORCE
	$(Q)mkdir -p $(@D)
	$(Q)printf '%s\n' $(sort $(TEST_PROGS)) > $@.tmp
	$(Q)cmp -s $@.tmp $@ 2>/dev/null && rm -f $@.tmp || mv $@.tmp $@

.PHONY: FORCE
FORCE:

# Can this machine give the shim a ring? The suites ask it before they
# call a test that needed the ring a skip (tests/bats/common.bash).
URING_PROBE := $(BUILD)/tests/uring_probe
TEST_SUPPORT += $(URING_PROBE)
$(URING_PROBE): $(BUILD)/tests/tools/uring_probe.o
	$(quiet) LD $@
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS) -luring

include tests/shim/rules.mk
include tests/fuzz/rules.mk
