# shim/module.mk - build/liburingshim.so (the LD_PRELOAD library) and
# build/uringshim-stat (reads its live stats file).

# In layer order (DESIGN.md): each file calls only those before it
# (tests/bats/shim_layers.bats checks the objects against this list).
SHIM_SRCS	:= shim/real.c shim/log.c shim/stats.c shim/safecopy.c \
		   shim/fdnum.c shim/crash.c shim/sigwatch.c \
		   shim/ring.c \
		   shim/fdtab.c shim/loop.c shim/drain.c shim/ready.c \
		   shim/fd.c shim/epoll.c shim/wait.c \
		   shim/args.c \
		   shim/wrap_io.c shim/wrap_fd.c shim/wrap_epoll.c \
		   shim/wrap_sig.c \
		   shim/init.c
SHIM_OBJS	:= $(SHIM_SRCS:%.c=$(BUILD)/%.o)
SHIM_LIB	:= $(BUILD)/liburingshim.so
SHIM_STAT	:= $(BUILD)/uringshim-stat

# initial-exec TLS: no __tls_get_addr call on the hot path, and none for
# the sanitizers' dynamic-TLS tracking to misread when the library is
# dlopen()ed (fuzz_shim_io; LeakSanitizer's tracer crashed on it).  48
# bytes, well inside glibc's static TLS reserve for loaded libraries.
CFLAGS_shim	:= -fPIC -fvisibility=hidden -ftls-model=initial-exec
CFLAGS_shim/tools :=
CFLAGS_shim/tests :=

# Static liburing when its archive links into a shared object (it is
# PIC on Debian), so the preload pulls in no extra runtime dependency.
SHIM_URING	:= $(firstword $(wildcard /usr/lib/$(shell $(CC) \
		     -print-multiarch 2>/dev/null)/liburing.a \
		     /usr/lib/liburing.a /usr/lib64/liburing.a))
ifeq ($(SHIM_URING),)
SHIM_URING	:= -luring
endif

# Explicit, because the generated .d files name their targets with the
# BUILD spelling of the run that wrote them (build/ vs /abs/build/).
SHIM_MAP	:= $(BUILD)/shim/uringshim.map
$(SHIM_OBJS): shim/base.h shim/ring.h shim/core.h shim/args.h \
	      shim/syscalls.def shim/stats.h shim/module.mk
$(BUILD)/shim/tools/uringshim-stat.o: shim/stats.h

# The version script comes from syscalls.def: one list, never two.
$(SHIM_MAP): shim/uringshim.map.in shim/syscalls.def
	$(quiet) GEN $@
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) -E -P -x c -Ishim $< | grep -v '^ *$$' > $@

$(SHIM_LIB): $(SHIM_OBJS) $(SHIM_MAP)
	$(quiet) LD $@
	$(Q)$(CC) $(ALL_LDFLAGS) -shared -Wl,-z,defs \
		-Wl,--version-script=$(SHIM_MAP) -o $@ $(SHIM_OBJS) \
		$(SHIM_URING) -ldl $(LIBS)

$(SHIM_STAT): $(BUILD)/shim/tools/uringshim-stat.o
	$(quiet) LD $@
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

PROGRAMS	+= $(SHIM_LIB) $(SHIM_STAT)

# The layer order, for the check: one object a line, lowest first.
SHIM_LAYERS	:= $(BUILD)/shim/layers.list
$(SHIM_LAYERS): shim/module.mk
	$(Q)mkdir -p $(@D)
	$(Q)printf '%s\n' $(SHIM_OBJS) > $@
TEST_SUPPORT	+= $(SHIM_LAYERS)

# C test programs (run under the shim by re-executing themselves).
SHIM_TESTS	:= $(BUILD)/shim/tests/polled_epoll
$(SHIM_TESTS): %: %.o | $(SHIM_LIB) $(SHIM_STAT)
	$(quiet) LD $@
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $< $(LIBS)
TEST_PROGS	+= $(SHIM_TESTS)
