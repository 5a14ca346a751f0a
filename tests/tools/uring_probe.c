/*
 * uring_probe - can this process tree use io_uring the way the shim needs?
 *
 *   uring_probe
 *
 * Sets up a small ring and asks it for the operations the shim cannot do
 * without (RECV, SEND, POLL_ADD, ASYNC_CANCEL), without the shim. The
 * suites run it to tell "io_uring is refused here" (a seccomp profile,
 * kernel.io_uring_disabled, an old kernel: the shim rightly runs in
 * passthrough, and a test that needs the ring skips) from "the shim fell
 * back although io_uring works" (a failure). Exit 0 and "io_uring
 * available" when it can; 77 and the reason on one line when it cannot.
 */
#include <liburing.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
	static const struct {
		int op;
		const char *name;
	} needed[] = {
		{ IORING_OP_RECV, "RECV" }, { IORING_OP_SEND, "SEND" },
		{ IORING_OP_POLL_ADD, "POLL_ADD" },
		{ IORING_OP_ASYNC_CANCEL, "ASYNC_CANCEL" },
	};
	struct io_uring_probe *probe;
	struct io_uring ring;
	int ret;

	ret = io_uring_queue_init(8, &ring, 0);
	if (ret < 0) {
		printf("io_uring refused here: io_uring_setup: %s\n",
		       strerror(-ret));
		return 77;
	}
	probe = io_uring_get_probe_ring(&ring);
	io_uring_queue_exit(&ring);
	if (!probe) {
		printf("io_uring refused here: no opcode probe (kernel too "
		       "old)\n");
		return 77;
	}
	for (size_t i = 0; i < sizeof(needed) / sizeof(needed[0]); i++) {
		if (!io_uring_opcode_supported(probe, needed[i].op)) {
			printf("io_uring refused here: the kernel lacks "
			       "IORING_OP_%s\n", needed[i].name);
			io_uring_free_probe(probe);
			return 77;
		}
	}
	io_uring_free_probe(probe);
	printf("io_uring available\n");
	return 0;
}
