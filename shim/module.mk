# shim/module.mk - build/liburingshim.so (the LD_PRELOAD library) and
# build/uringshim-stat (reads its live stats file).

SHIM_SRCS	:= shim/real.c shim/init.c shim/log.c shim/stats.c \
		   shim/fdtab.c shim/accel.c shim/ring.c shim/loop.c \
		   shim/epoll.c \
		   shim/wrap_io.c shim/wrap_fd.c shim/wrap_epoll.c \
		   shim/drain.c shim/safecopy.c shim/args.c
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
$(SHIM_OBJS): shim/internal.h shim/args.h shim/syscalls.def shim/stats.h \
	      shim/module.mk
$(BUILD)/shim/tools/uringshim-stat.o: shim/stats.h

$(SHIM_LIB): $(SHIM_OBJS) shim/uringshim.map
	$(quiet) LD $@
	$(Q)$(CC) $(ALL_LDFLAGS) -shared -Wl,-z,defs \
		-Wl,--version-script=shim/uringshim.map -o $@ $(SHIM_OBJS) \
		$(SHIM_URING) -ldl $(LIBS)

$(SHIM_STAT): $(BUILD)/shim/tools/uringshim-stat.o
	$(quiet) LD $@
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

PROGRAMS	+= $(SHIM_LIB) $(SHIM_STAT)

# C test programs (run under the shim by re-executing themselves).
SHIM_TESTS	:= $(BUILD)/shim/tests/polled_epoll
$(SHIM_TESTS): %: %.o | $(SHIM_LIB) $(SHIM_STAT)
	$(quiet) LD $@
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $< $(LIBS)
TEST_PROGS	+= $(SHIM_TESTS)
