# tests/shim/rules.mk - the shim conformance programs and the io_uring denier.
#
# Each corner tests/shim/<corner>.c becomes $(BUILD)/tests/shim/<corner>;
# tests/bats/shim_semantics.bats runs it plainly and under the shim and
# compares the transcripts, tests/bats/shim_fallback.bats runs it under
# $(BUILD)/tests/deny_uring. Both are TEST_SUPPORT: the suites run them.

SHIM_CORNERS := backpressure blocking close_flush connect dup efault eintr \
		epoll_nested errors et fd_reuse fionread_peek fork fortify \
		handoff ipv6 loop_threads lt mixed_set nonblock_toggle oneshot \
		peer_reset poll_select rdhup sendfile_order shutdown_flush \
		signal_write threads writev_large
# Issue 10: hostile arguments, poll arrays, DEL of a closed fd.
SHIM_CORNERS += bad_args poll_array epoll_del_closed
SHIM_CORNER_BINS := $(addprefix $(BUILD)/tests/shim/,$(SHIM_CORNERS))
CONFORM_OBJ := $(BUILD)/tests/shim/conform.o
DENY_URING := $(BUILD)/tests/deny_uring
# The stats file across failed, vfork'd and spawned execs (shim_ops.bats).
EXEC_STATS := $(BUILD)/tests/shim/exec_stats
# Writes, then SIGKILL: what arrives (shim_send_sync.bats).
KILL_WINDOW := $(BUILD)/tests/shim/kill_window
# What URINGSHIM_SPIN_US promises a waiting thread (shim_spin.bats).
SPIN_WAIT := $(BUILD)/tests/shim/spin_wait
# Writes, then a fatal signal: what arrives; the fatal signals' actions
# as the application sees them (shim_crash.bats).
CRASH_FLUSH := $(BUILD)/tests/shim/crash_flush \
	       $(BUILD)/tests/shim/sigaction_view

TEST_SUPPORT += $(SHIM_CORNER_BINS) $(DENY_URING) $(EXEC_STATS) \
		$(KILL_WINDOW) $(SPIN_WAIT) $(CRASH_FLUSH)

$(SHIM_CORNER_BINS): $(BUILD)/tests/shim/%: $(BUILD)/tests/shim/%.o \
		     $(CONFORM_OBJ)
	$(quiet) LD $@
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(EXEC_STATS): $(BUILD)/tests/shim/exec_stats.o
	$(quiet) LD $@
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(SPIN_WAIT): $(BUILD)/tests/shim/spin_wait.o $(CONFORM_OBJ)
	$(quiet) LD $@
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(KILL_WINDOW): $(BUILD)/tests/shim/kill_window.o $(CONFORM_OBJ)
	$(quiet) LD $@
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(CRASH_FLUSH): $(BUILD)/tests/shim/%: $(BUILD)/tests/shim/%.o $(CONFORM_OBJ)
	$(quiet) LD $@
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(DENY_URING): $(BUILD)/tests/tools/deny_uring.o
	$(quiet) LD $@
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS) -lseccomp

# Build just these: `make shim-conform`.
.PHONY: shim-conform
shim-conform: $(SHIM_CORNER_BINS) $(DENY_URING) $(EXEC_STATS) \
	      $(KILL_WINDOW) $(CRASH_FLUSH)
