# bench/module.mk - build rules for bench/ (filled in by its owner).

# ---- loadgen and hist (C rules; owner: load generator) ----
LOADGEN_OBJS	:= $(BUILD)/bench/loadgen.o $(BUILD)/bench/hist.o

TEST_PROGS	+= $(BUILD)/tests/hist_accuracy

$(BUILD)/tests/hist_accuracy: $(BUILD)/tests/unit/hist_accuracy.o \
			      $(BUILD)/bench/hist.o
	$(quiet) LD $@
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS) -lm
# ---- end of loadgen block ----
