# demo_server/module.mk - the matching server and its engine library.

SERVER_ENGINE_OBJS := $(BUILD)/demo_server/book.o $(BUILD)/demo_server/engine.o
SERVER_OBJS := $(SERVER_ENGINE_OBJS) \
	$(BUILD)/demo_server/journal.o \
	$(BUILD)/demo_server/server.o \
	$(BUILD)/demo_server/loop_epoll.o \
	$(BUILD)/demo_server/loop_uring.o \
	$(BUILD)/demo_server/main.o

PROGRAMS += $(BUILD)/matching_server

$(BUILD)/matching_server: $(SERVER_OBJS)
	$(quiet) LD $@
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS) -luring

# The scripted protocol client the server suites drive (tests/tools/).
TEST_SUPPORT += $(BUILD)/tests/proto_client
$(BUILD)/tests/proto_client: $(BUILD)/tests/tools/proto_client.o
	$(quiet) LD $@
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

# The framing helpers of protocol.h, on their own (no server, no engine).
TEST_PROGS += $(BUILD)/tests/unit/proto_frames
$(BUILD)/tests/unit/proto_frames: $(BUILD)/tests/unit/proto_frames.o
	$(quiet) LD $@
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

# Unit tests (tests/unit/), one program per feature, linked with the engine.
SERVER_UNIT_TESTS := book_match book_million engine_determinism
TEST_PROGS += $(SERVER_UNIT_TESTS:%=$(BUILD)/tests/unit/%)
$(SERVER_UNIT_TESTS:%=$(BUILD)/tests/unit/%): $(BUILD)/tests/unit/%: \
		$(BUILD)/tests/unit/%.o $(SERVER_ENGINE_OBJS)
	$(quiet) LD $@
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

# The framing test drives server.c itself (no sockets).
TEST_PROGS += $(BUILD)/tests/unit/frame_parser
$(BUILD)/tests/unit/frame_parser: $(BUILD)/tests/unit/frame_parser.o \
		$(SERVER_ENGINE_OBJS) $(BUILD)/demo_server/server.o \
		$(BUILD)/demo_server/journal.o
	$(quiet) LD $@
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

# make bench-book [SESSIONS=N]: in-process matching throughput (not a test).
SESSIONS = 16
.PHONY: bench-book
bench-book: $(BUILD)/book_bench
	$(Q)$(BUILD)/book_bench --sessions $(SESSIONS)
$(BUILD)/book_bench: $(BUILD)/demo_server/book_bench.o $(SERVER_ENGINE_OBJS)
	$(quiet) LD $@
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)
