/*
 * epoll_nested - an epoll set nested in another reports input that arrived
 * before the nesting.
 *
 * The inner set's socket has unread input when the inner set is added to
 * an outer set, as a library that nests its own epoll fd in the
 * application's loop does. The outer set must report the inner one at
 * once, with the outer registration's data, for as long as the inner set
 * has events (level-triggered): by epoll_wait, by poll of the outer set,
 * and through a third set nesting the outer one. Once the input is read
 * nothing is reported; new input is reported again. EPOLLET reports the
 * held input once; EPOLLONESHOT once, then again only after
 * EPOLL_CTL_MOD. A thread already waiting on the outer set (with a
 * socket of its own there, so its wait runs in its ring under the shim)
 * is woken when another thread nests the set holding input.
 */
#include "conform.h"

#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/*
 * A socket with "held" unread in set *inner (data 7), reported there once
 * so the input has surely arrived; returns the pair in peer and conn.
 */
static int inner_with_input(int *peer, int *conn)
{
	struct epoll_event ev[4];
	int inner, n;

	inner = tcp_pair_epoll(peer, conn, EPOLLIN, 7);
	put_text(*peer, "held");
	n = epoll_report(inner, WAIT_MS, "inner, input arrived", ev, 4);
	expect(n == 1 && ev[0].data.u64 == 7);
	return inner;
}

static void level_triggered(void)
{
	struct epoll_event ev[4];
	int peer, conn, inner, outer, top, n;

	inner = inner_with_input(&peer, &conn);
	outer = epoll_new();
	epoll_add(outer, inner, EPOLLIN, 9);
	n = epoll_report(outer, WAIT_MS, "LT outer, input held", ev, 4);
	expect(n == 1 && ev[0].data.u64 == 9 && ev[0].events == EPOLLIN);
	n = epoll_report(outer, 0, "LT outer again, still held", ev, 4);
	expect(n == 1 && ev[0].data.u64 == 9);
	say("poll outer: %s",
	    wait_fd_ms(outer, POLLIN, WAIT_MS) & POLLIN ? "IN" : "nothing");
	/* A polled set: its waits no longer go through a ring. */
	n = epoll_report(outer, 0, "LT outer after poll", ev, 4);
	expect(n == 1 && ev[0].data.u64 == 9);
	top = epoll_new();
	epoll_add(top, outer, EPOLLIN, 13);
	n = epoll_report(top, WAIT_MS, "LT top, two levels up", ev, 4);
	expect(n == 1 && ev[0].data.u64 == 13);

	n = epoll_report(inner, 0, "LT inner", ev, 4);
	expect(n == 1 && ev[0].data.u64 == 7);
	read_print(conn, 16, "LT read");
	expect_no_report(outer, 0, "LT outer, drained");
	expect_no_report(top, 0, "LT top, drained");
	put_text(peer, "new");
	n = epoll_report(outer, WAIT_MS, "LT outer, new input", ev, 4);
	expect(n == 1 && ev[0].data.u64 == 9);
	read_print(conn, 16, "LT read new");
	close_all(top, outer, inner, conn, peer);
}

static void edge_triggered(void)
{
	struct epoll_event ev[4];
	int peer, conn, inner, outer, n;

	inner = inner_with_input(&peer, &conn);
	outer = epoll_new();
	epoll_add(outer, inner, EPOLLIN | EPOLLET, 10);
	n = epoll_report(outer, WAIT_MS, "ET outer, input held", ev, 4);
	expect(n == 1 && ev[0].data.u64 == 10);
	expect_no_report(outer, 0, "ET outer, nothing new");
	read_print(conn, 16, "ET read");
	expect_no_report(outer, 0, "ET outer, drained");
	close_all(outer, inner, conn, peer);
}

static void oneshot(void)
{
	struct epoll_event ev[4];
	int peer, conn, inner, outer, n;

	inner = inner_with_input(&peer, &conn);
	outer = epoll_new();
	epoll_add(outer, inner, EPOLLIN | EPOLLONESHOT, 11);
	n = epoll_report(outer, WAIT_MS, "ONESHOT outer, input held", ev, 4);
	expect(n == 1 && ev[0].data.u64 == 11);
	expect_no_report(outer, 0, "ONESHOT outer, disarmed");
	epoll_mod(outer, inner, EPOLLIN | EPOLLONESHOT, 12);
	n = epoll_report(outer, WAIT_MS, "ONESHOT outer, re-armed", ev, 4);
	expect(n == 1 && ev[0].data.u64 == 12);
	expect_no_report(outer, 0, "ONESHOT outer, disarmed again");
	read_print(conn, 16, "ONESHOT read");
	close_all(outer, inner, conn, peer);
}

/*
 * The waiter's timeout: returning well before it means it was woken (the
 * semantic; nothing depends on how fast). Its set reports the nested set
 * after the timeout too, so the count alone cannot tell.
 */
#define WAITER_TIMEOUT_MS	(5 * WAIT_MS)

struct outer_waiter {
	int outer;
	int n;
	long elapsed_ms;
	struct epoll_event ev[4];
};

static void *outer_waiter_run(void *arg)
{
	struct outer_waiter *w = arg;
	struct timespec start;
	int peer, conn;

	tcp_pair(AF_INET, &peer, &conn);
	epoll_add(w->outer, conn, EPOLLIN, 21);
	/* The first wait makes this thread's ring; MOD then accelerates. */
	expect(epoll_wait(w->outer, w->ev, 4, 0) == 0);
	epoll_mod(w->outer, conn, EPOLLIN, 21);
	clock_gettime(CLOCK_MONOTONIC, &start);
	w->n = epoll_wait(w->outer, w->ev, 4, WAITER_TIMEOUT_MS);
	w->elapsed_ms = elapsed_ms(&start);
	close_all(conn, peer);
	return NULL;
}

static void nested_while_waiting(void)
{
	struct outer_waiter w = { 0 };
	pthread_t thread;
	int peer, conn, inner;

	inner = inner_with_input(&peer, &conn);
	w.outer = epoll_new();
	pthread_create(&thread, NULL, outer_waiter_run, &w);
	/* Most likely blocked by now; either way it must see the set. */
	nanosleep(&(struct timespec){ 0, 100 * 1000 * 1000 }, NULL);
	epoll_add(w.outer, inner, EPOLLIN, 9);
	pthread_join(thread, NULL);
	say("thread waiting on outer: n=%d [0x%llx %s]", w.n,
	    w.n > 0 ? (unsigned long long)w.ev[0].data.u64 : 0ULL,
	    w.n > 0 ? epoll_event_names(w.ev[0].events) : "");
	expect(w.n == 1 && w.ev[0].data.u64 == 9);
	say("woken before its timeout: %s",
	    w.elapsed_ms < WAITER_TIMEOUT_MS - WAIT_MS ? "yes" : "NO");
	expect(w.elapsed_ms < WAITER_TIMEOUT_MS - WAIT_MS);
	read_print(conn, 16, "waiting read");
	close_all(w.outer, inner, conn, peer);
}

int main(void)
{
	level_triggered();
	edge_triggered();
	oneshot();
	nested_while_waiting();
	return conform_finish();
}
