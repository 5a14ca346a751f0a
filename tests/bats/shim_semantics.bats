#!/usr/bin/env bats
# shim_semantics.bats - the shim's semantic contract, corner by corner.
#
# Each program in tests/shim/ proves one corner (its description block says
# which) and prints a transcript of what the application observed. It must
# pass plainly, and under LD_PRELOAD=liburingshim.so, for each settings
# combination (default; URINGSHIM_ADAPTIVE=0, the ring path forced;
# URINGSHIM_RECV=single), print a byte-identical transcript and exit 0.
# Without build/liburingshim.so the shim runs skip; the plain runs do not.

load shim_semantics_helpers

@test "backpressure: plain" {
	check_plain backpressure
}
@test "backpressure: shim default" {
	check_shim backpressure default
}
@test "backpressure: shim adaptive0" {
	check_shim backpressure adaptive0
}
@test "backpressure: shim recv_single" {
	check_shim backpressure recv_single
}

@test "blocking: plain" {
	check_plain blocking
}
@test "blocking: shim default" {
	check_shim blocking default
}
@test "blocking: shim adaptive0" {
	check_shim blocking adaptive0
}
@test "blocking: shim recv_single" {
	check_shim blocking recv_single
}

@test "close_flush: plain" {
	check_plain close_flush
}
@test "close_flush: shim default" {
	check_shim close_flush default
}
@test "close_flush: shim adaptive0" {
	check_shim close_flush adaptive0
}
@test "close_flush: shim recv_single" {
	check_shim close_flush recv_single
}

@test "connect: plain" {
	check_plain connect
}
@test "connect: shim default" {
	check_shim connect default
}
@test "connect: shim adaptive0" {
	check_shim connect adaptive0
}
@test "connect: shim recv_single" {
	check_shim connect recv_single
}

@test "dup: plain" {
	check_plain dup
}
@test "dup: shim default" {
	check_shim dup default
}
@test "dup: shim adaptive0" {
	check_shim dup adaptive0
}
@test "dup: shim recv_single" {
	check_shim dup recv_single
}

@test "efault: plain" {
	check_plain efault
}
@test "efault: shim default" {
	check_shim efault default
}
@test "efault: shim adaptive0" {
	check_shim efault adaptive0
}
@test "efault: shim recv_single" {
	check_shim efault recv_single
}

@test "eintr: plain" {
	check_plain eintr
}
@test "eintr: shim default" {
	check_shim eintr default
}
@test "eintr: shim adaptive0" {
	check_shim eintr adaptive0
}
@test "eintr: shim recv_single" {
	check_shim eintr recv_single
}

@test "epoll_nested: plain" {
	check_plain epoll_nested
}
@test "epoll_nested: shim default" {
	check_shim epoll_nested default
}
@test "epoll_nested: shim adaptive0" {
	check_shim epoll_nested adaptive0
}
@test "epoll_nested: shim recv_single" {
	check_shim epoll_nested recv_single
}

@test "errors: plain" {
	check_plain errors
}
@test "errors: shim default" {
	check_shim errors default
}
@test "errors: shim adaptive0" {
	check_shim errors adaptive0
}
@test "errors: shim recv_single" {
	check_shim errors recv_single
}

@test "et: plain" {
	check_plain et
}
@test "et: shim default" {
	check_shim et default
}
@test "et: shim adaptive0" {
	check_shim et adaptive0
}
@test "et: shim recv_single" {
	check_shim et recv_single
}

@test "fd_reuse: plain" {
	check_plain fd_reuse
}
@test "fd_reuse: shim default" {
	check_shim fd_reuse default
}
@test "fd_reuse: shim adaptive0" {
	check_shim fd_reuse adaptive0
}
@test "fd_reuse: shim recv_single" {
	check_shim fd_reuse recv_single
}

@test "fionread_peek: plain" {
	check_plain fionread_peek
}
@test "fionread_peek: shim default" {
	check_shim fionread_peek default
}
@test "fionread_peek: shim adaptive0" {
	check_shim fionread_peek adaptive0
}
@test "fionread_peek: shim recv_single" {
	check_shim fionread_peek recv_single
}

@test "fork: plain" {
	check_plain fork
}
@test "fork: shim default" {
	check_shim fork default
}
@test "fork: shim adaptive0" {
	check_shim fork adaptive0
}
@test "fork: shim recv_single" {
	check_shim fork recv_single
}

@test "fortify: plain" {
	check_plain fortify
}
@test "fortify: shim default" {
	check_shim fortify default
}
@test "fortify: shim adaptive0" {
	check_shim fortify adaptive0
}
@test "fortify: shim recv_single" {
	check_shim fortify recv_single
}

@test "handoff: plain" {
	check_plain handoff
}
@test "handoff: shim default" {
	check_shim handoff default
}
@test "handoff: shim adaptive0" {
	check_shim handoff adaptive0
}
@test "handoff: shim recv_single" {
	check_shim handoff recv_single
}

@test "ipv6: plain" {
	check_plain ipv6
}
@test "ipv6: shim default" {
	check_shim ipv6 default
}
@test "ipv6: shim adaptive0" {
	check_shim ipv6 adaptive0
}
@test "ipv6: shim recv_single" {
	check_shim ipv6 recv_single
}

@test "loop_threads: plain" {
	check_plain loop_threads
}
@test "loop_threads: shim default" {
	check_shim loop_threads default
}
@test "loop_threads: shim adaptive0" {
	check_shim loop_threads adaptive0
}
@test "loop_threads: shim recv_single" {
	check_shim loop_threads recv_single
}

@test "lt: plain" {
	check_plain lt
}
@test "lt: shim default" {
	check_shim lt default
}
@test "lt: shim adaptive0" {
	check_shim lt adaptive0
}
@test "lt: shim recv_single" {
	check_shim lt recv_single
}

@test "mixed_set: plain" {
	check_plain mixed_set
}
@test "mixed_set: shim default" {
	check_shim mixed_set default
}
@test "mixed_set: shim adaptive0" {
	check_shim mixed_set adaptive0
}
@test "mixed_set: shim recv_single" {
	check_shim mixed_set recv_single
}

@test "nonblock_toggle: plain" {
	check_plain nonblock_toggle
}
@test "nonblock_toggle: shim default" {
	check_shim nonblock_toggle default
}
@test "nonblock_toggle: shim adaptive0" {
	check_shim nonblock_toggle adaptive0
}
@test "nonblock_toggle: shim recv_single" {
	check_shim nonblock_toggle recv_single
}

@test "oneshot: plain" {
	check_plain oneshot
}
@test "oneshot: shim default" {
	check_shim oneshot default
}
@test "oneshot: shim adaptive0" {
	check_shim oneshot adaptive0
}
@test "oneshot: shim recv_single" {
	check_shim oneshot recv_single
}

@test "peer_reset: plain" {
	check_plain peer_reset
}
@test "peer_reset: shim default" {
	check_shim peer_reset default
}
@test "peer_reset: shim adaptive0" {
	check_shim peer_reset adaptive0
}
@test "peer_reset: shim recv_single" {
	check_shim peer_reset recv_single
}

@test "poll_select: plain" {
	check_plain poll_select
}
@test "poll_select: shim default" {
	check_shim poll_select default
}
@test "poll_select: shim adaptive0" {
	check_shim poll_select adaptive0
}
@test "poll_select: shim recv_single" {
	check_shim poll_select recv_single
}

@test "rdhup: plain" {
	check_plain rdhup
}
@test "rdhup: shim default" {
	check_shim rdhup default
}
@test "rdhup: shim adaptive0" {
	check_shim rdhup adaptive0
}
@test "rdhup: shim recv_single" {
	check_shim rdhup recv_single
}

@test "sendfile_order: plain" {
	check_plain sendfile_order
}
@test "sendfile_order: shim default" {
	check_shim sendfile_order default
}
@test "sendfile_order: shim adaptive0" {
	check_shim sendfile_order adaptive0
}
@test "sendfile_order: shim recv_single" {
	check_shim sendfile_order recv_single
}

@test "shutdown_flush: plain" {
	check_plain shutdown_flush
}
@test "shutdown_flush: shim default" {
	check_shim shutdown_flush default
}
@test "shutdown_flush: shim adaptive0" {
	check_shim shutdown_flush adaptive0
}
@test "shutdown_flush: shim recv_single" {
	check_shim shutdown_flush recv_single
}

@test "signal_write: plain" {
	check_plain signal_write
}
@test "signal_write: shim default" {
	check_shim signal_write default
}
@test "signal_write: shim adaptive0" {
	check_shim signal_write adaptive0
}
@test "signal_write: shim recv_single" {
	check_shim signal_write recv_single
}

@test "threads: plain" {
	check_plain threads
}
@test "threads: shim default" {
	check_shim threads default
}
@test "threads: shim adaptive0" {
	check_shim threads adaptive0
}
@test "threads: shim recv_single" {
	check_shim threads recv_single
}

@test "writev_large: plain" {
	check_plain writev_large
}
@test "writev_large: shim default" {
	check_shim writev_large default
}
@test "writev_large: shim adaptive0" {
	check_shim writev_large adaptive0
}
@test "writev_large: shim recv_single" {
	check_shim writev_large recv_single
}

@test "bad_args: plain" {
	check_plain bad_args
}
@test "bad_args: shim default" {
	check_shim bad_args default
}
@test "bad_args: shim adaptive0" {
	check_shim bad_args adaptive0
}
@test "bad_args: shim recv_single" {
	check_shim bad_args recv_single
}

@test "poll_array: plain" {
	check_plain poll_array
}
@test "poll_array: shim default" {
	check_shim poll_array default
}
@test "poll_array: shim adaptive0" {
	check_shim poll_array adaptive0
}
@test "poll_array: shim recv_single" {
	check_shim poll_array recv_single
}

@test "epoll_del_closed: plain" {
	check_plain epoll_del_closed
}
@test "epoll_del_closed: shim default" {
	check_shim epoll_del_closed default
}
@test "epoll_del_closed: shim adaptive0" {
	check_shim epoll_del_closed adaptive0
}
@test "epoll_del_closed: shim recv_single" {
	check_shim epoll_del_closed recv_single
}
