/*
 * init.c - setup: constructor, settings, the dispatch tables, and the
 * hooks around fork, thread exit and process exit.
 *
 * Init order: resolve the real_ pointers, read URINGSHIM_* settings, open
 * the log and the stats file, size the fd table.  No ring is created here:
 * each event-loop thread makes its own on first use (loop.c).  Anything
 * that fails leaves the shim passthrough.  The only file that names every
 * layer: it fills the tables through which completions and flushes go
 * back up, and calls one hook per module at fork and thread exit.
 */
#include <ctype.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

#include "core.h"

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
extern char **environ;

/* ---- settings ---- */

static const char *const known_vars[] = {
	"DISABLE", "SEND", "RECV", "WAIT", "SQPOLL", "ADAPTIVE", "SPIN_US",
	"SPIN_RING",
	"SEND_MAX_FD", "SEND_MAX_TOTAL", "RECV_BUF", "RING_ENTRIES", "LOG",
	"LOG_LEVEL", "STATS", "STATS_DIR", "KILLFILE", "FAULT", "TASKRUN", NULL,
};

static void warn_bad(const char *name, const char *val)
{
	shim__say("uringshim: ignoring URINGSHIM_%s=%s (bad value): "
		  "using the default\n", name, val);
}

static bool parse_u64(const char *name, uint64_t min, uint64_t max,
		      uint64_t *out)
{
	char var[64];
	const char *val;
	char *end;
	unsigned long long v;

	snprintf(var, sizeof(var), "URINGSHIM_%s", name);
	val = getenv(var);
	if (!val)
		return false;
	errno = 0;
	v = strtoull(val, &end, 0);
	if (errno || end == val || *end || v < min || v > max ||
	    !isdigit((unsigned char)val[0])) {
		warn_bad(name, val);
		return false;
	}
	*out = v;
	return true;
}

/* Returns the index of val in choices, or dflt (with a warning). */
static int parse_choice(const char *name, const char *const *choices,
			int dflt)
{
	char var[64];
	const char *val;
	int i;

	snprintf(var, sizeof(var), "URINGSHIM_%s", name);
	val = getenv(var);
	if (!val)
		return dflt;
	for (i = 0; choices[i]; i++)
		if (!strcmp(val, choices[i]))
			return i;
	warn_bad(name, val);
	return dflt;
}

static void parse_str(const char *name, char *out, size_t size)
{
	char var[64];
	const char *val;

	snprintf(var, sizeof(var), "URINGSHIM_%s", name);
	val = getenv(var);
	if (!val)
		return;
	if (strlen(val) >= size || !*val) {
		warn_bad(name, val);
		return;
	}
	strcpy(out, val);
}

/*
 * URINGSHIM_SPIN_US: microseconds a wait watches before it sleeps; -1
 * watches for ever (a dedicated core), 0 (the default) never.  In ns.
 */
static int64_t parse_spin(void)
{
	const char *val = getenv("URINGSHIM_SPIN_US");
	uint64_t v;

	if (val && !strcmp(val, "-1"))
		return -1;
	if (parse_u64("SPIN_US", 0, 60ULL * 1000 * 1000, &v))
		return (int64_t)v * 1000;
	return 0;
}

static void warn_unknown_vars(void)
{
	char **e;
	int i;

	for (e = environ; e && *e; e++) {
		const char *name, *eq;
		size_t len;
		bool known = false;

		if (strncmp(*e, "URINGSHIM_", 10))
			continue;
		name = *e + 10;
		eq = strchr(name, '=');
		len = eq ? (size_t)(eq - name) : strlen(name);
		for (i = 0; known_vars[i]; i++)
			if (strlen(known_vars[i]) == len &&
			    !strncmp(known_vars[i], name, len))
				known = true;
		if (!known)
			shim__say("uringshim: unknown setting %.*s ignored\n",
				  (int)(len + 10), *e);
	}
}

static void config_read(struct shim_config *c)
{
	static const char *const off_on[] = { "0", "1", NULL };
	static const char *const send[] = { "batch", "direct", "sync", NULL };
	static const char *const recv[] = { "multishot", "single", "direct",
					    NULL };
	static const char *const wait[] = { "ring", "direct", NULL };
	static const char *const taskrun[] = { "coop", "defer", "signal",
					       NULL };
	uint64_t v;

	c->disable = parse_choice("DISABLE", off_on, 0) == 1;
	c->send_mode = parse_choice("SEND", send, MODE_SEND_BATCH);
	c->recv_mode = parse_choice("RECV", recv, MODE_RECV_MULTISHOT);
	c->wait_mode = parse_choice("WAIT", wait, MODE_WAIT_RING);
	c->taskrun_mode = parse_choice("TASKRUN", taskrun, MODE_TASKRUN_COOP);
	c->adaptive = parse_choice("ADAPTIVE", off_on, 1) == 1;
	c->spin_ns = parse_spin();
	c->spin_ring = parse_choice("SPIN_RING", off_on, 1) == 1;
	c->stats = parse_choice("STATS", off_on, 1) == 1;
	c->sqpoll_cpu = -1;
	if (parse_u64("SQPOLL", 0, CPU_SETSIZE - 1, &v))
		c->sqpoll_cpu = v;
	c->send_max_fd = 256 * 1024;
	if (parse_u64("SEND_MAX_FD", 4096, 64 << 20, &v))
		c->send_max_fd = v;
	c->send_max_total = 256ULL << 20;
	if (parse_u64("SEND_MAX_TOTAL", 4096, 1ULL << 40, &v))
		c->send_max_total = v;
	c->recv_buf = 16 * 1024;
	if (parse_u64("RECV_BUF", 512, 16 << 20, &v))
		c->recv_buf = v;
	c->ring_entries = 256;
	if (parse_u64("RING_ENTRIES", 8, 32768, &v))
		c->ring_entries = v;
	c->log_level = LOG_WARN;
	if (parse_u64("LOG_LEVEL", 0, 3, &v))
		c->log_level = v;
	strcpy(c->stats_dir, "/dev/shm");
	parse_str("STATS_DIR", c->stats_dir, sizeof(c->stats_dir));
	parse_str("KILLFILE", c->killfile, sizeof(c->killfile));
	parse_str("FAULT", c->fault, sizeof(c->fault));
}

/* ---- the tables the lower layers call up through ---- */

static const struct ring_ops ring_table = {
	.complete = {
		[UD_RECV] = fd_on_recv,
		[UD_SEND] = fd_on_send,
		[UD_CANCEL] = fd_on_cancel,
		[UD_EPPOLL] = ep_on_poll,
		[UD_WAKE] = loop_on_wake,
		[UD_ERREP] = fd_on_err_events,
	},
};

static void loop_flush(struct loop *l)
{
	ep_flush_dead(l);
	fd_flush_dirty(l);
}

/*
 * A loop thread exits.  Its ring ops would be cancelled with it, so:
 * queued bytes out (briefly; a slow peer's rest goes to the drainer),
 * sockets back to the kernel, sets unbound (another thread may bind
 * them), then the ring goes.
 */
static void thread_exit(struct loop *l)
{
	shim__log(LOG_INFO, "uringshim: tid %d exits: flushing %llu bytes, "
		  "closing its ring\n", (int)l->tid,
		  (unsigned long long)RD(l->queued));
	loop_flush_sync(5);
	loop_lock(l);
	fd_loop_exit(l);
	loop_unlock(l);
	ep_loop_exit(l);
}

static const struct loop_ops loop_table = {
	.flush = loop_flush,
	.thread_exit = thread_exit,
};

static const struct crash_ops crash_table = {
	.flush = fd_crash_flush,
	.unhold = fd_crash_unhold,
};

/* ---- fork ---- */

/*
 * fork: push every queued byte into the kernel, but do not wait for
 * sockets that are full: the parent keeps its ring and finishes them, and
 * a fork (redis BGSAVE) must not stall behind a slow client.  The locks
 * are held across the fork so the child sees consistent state.
 */
static void atfork_prepare(void)
{
	loop_flush_before_block();
	shim__stats_atfork_prepare();
	drain_atfork_prepare();
	shim_lock();
}

static void atfork_parent(void)
{
	shim_unlock();
	drain_atfork_parent();
	shim__stats_atfork_parent();
}

/*
 * The child never touches the parent's rings: drop them and forget every
 * socket the parent accelerated (passthrough in the child).  A child that
 * runs an event loop of its own (nginx workers, pre-fork servers) gets a
 * fresh ring on its first use.
 */
static void atfork_child(void)
{
	char reason[sizeof(shim__stats->reason)];

	memcpy(reason, shim__stats->reason, sizeof(reason));
	/*
	 * Taken in prepare by this thread, the child's only one: release it.
	 * A re-init would leave TSan believing the parent's owner still holds
	 * it, and report the child's next other thread to take it.
	 */
	shim_unlock();
	shim__gettid_forget();
	shim.pid = getpid();
	shim__stats_reopen_child();	/* the exec lock too */
	drain_forget_child();
	ep_forget_child();
	fd_forget_child();
	loop_forget_child();
	shim.send_budget = shim__cfg.send_max_total;
	if (shim.state == SHIM_STATE_ACTIVE) {
		WR(shim.state, SHIM_STATE_INIT);
		shim__stats_set_state(SHIM_STATE_INIT,
				      "forked child: no event loop seen yet");
	} else {
		shim__stats_set_state(shim.state, reason);
	}
}

/* ---- init ---- */

static void init_once_fn(void)
{
	shim.pid = getpid();
	if (shim__resolve_real()) {
		WR(shim.state, SHIM_STATE_PASSTHROUGH);
		return;
	}
	config_read(&shim__cfg);
	shim.send_budget = shim__cfg.send_max_total;
	shim__loop_ops = &loop_table;
	shim__ring_ops = &ring_table;
	shim__crash_ops = &crash_table;
	if (shim__cfg.spin_ns)
		shim__sigwatch_enable();
	shim__log_open(getenv("URINGSHIM_LOG"));
	warn_unknown_vars();
	shim__stats_open();
	if (shim__cfg.disable) {
		WR(shim.state, SHIM_STATE_DISABLED);
		shim__stats_set_state(SHIM_STATE_DISABLED,
				      "URINGSHIM_DISABLE=1");
		shim__log(LOG_INFO, "uringshim: disabled\n");
		return;
	}
	if (fdtab_init()) {
		WR(shim.state, SHIM_STATE_PASSTHROUGH);
		shim__stats_set_state(SHIM_STATE_PASSTHROUGH,
				      "no memory for the fd table");
		return;
	}
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
	WR(shim.state, SHIM_STATE_INIT);
	/* The reader's "why not active": no ring is made in this mode. */
	shim__stats_set_state(SHIM_STATE_INIT,
			      shim__cfg.spin_ns && !shim__cfg.spin_ring ?
			      "no ring: spinning on plain waits (SPIN_RING=0)" :
			      "no event loop seen yet");
	shim__log(LOG_INFO, "uringshim: loaded in pid %d\n", (int)shim.pid);
}

__attribute__((constructor)) static void shim_ctor(void)
{
	pthread_once(&init_once, init_once_fn);
}

__attribute__((destructor)) static void shim_dtor(void)
{
	uint64_t accel = 0, enters = 0;
	int i;

	if (shim.pid == getpid()) {
		loop_flush_sync(50);
		loop_flush_others();
		drain_wait(5);
	}
	/*
	 * Other threads may still be counting (exit() does not stop them):
	 * their slots are read only when the line is wanted, and the sums
	 * are approximate then.
	 */
	if (shim__cfg.log_level >= LOG_INFO) {
		for (i = 0; i < SHIM_STATS_SLOTS; i++) {
			accel += shim__stats->slot[i].accel_total;
			enters += shim__stats->slot[i].enters;
		}
		shim__log(LOG_INFO, "uringshim: exit pid %d: %llu fds "
			  "accelerated, %llu io_uring_enter\n", (int)getpid(),
			  (unsigned long long)accel,
			  (unsigned long long)enters);
	}
	shim__stats_close();
}
