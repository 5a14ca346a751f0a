/*
 * crash.c - a process killed by a fatal signal still delivers what
 * write() acknowledged.
 *
 * With batched sends an acknowledged byte may sit in a send queue until
 * the next wait point, and SIGSEGV, SIGBUS, SIGFPE, SIGILL or SIGABRT
 * would kill the process with it.  From the first accelerated socket on
 * (or the first guarded copy of a caller's structure, shim__ucopy, if
 * that comes first: "armed") the shim keeps its own handler in the kernel
 * for those five and keeps the application's actions itself: sigaction()
 * and signal() set and return the application's action, as it would read
 * it back from the kernel.  When one of the five arrives, the handler
 *   1. lets safecopy.c take a fault inside a guarded copy (EFAULT, no
 *      crash);
 *   2. runs the application's handler the way the kernel would (its mask,
 *      SA_NODEFER, SA_RESETHAND, SA_SIGINFO); a handler that returns,
 *      longjmps or _exit()s is honoured;
 *   3. when the default action follows, pushes every queued byte into the
 *      kernel, waiting at most CRASH_FLUSH_MS for peers to make room;
 *   4. lets the default action happen: a fault repeats when the handler
 *      returns, anything else is queued again with its siginfo, so the
 *      exit status and the core are the ones the kernel would produce.
 * DESIGN.md "Fatal signals" says what cannot be flushed, and why.
 *
 * Layer 0: this file knows nothing of sockets; the flush is the sockets'
 * (shim__crash_ops, filled in by init.c), and the exported sigaction and
 * signal are wrap_sig.c's.
 */
#include <string.h>
#include <sys/syscall.h>
#include <time.h>

#include "base.h"

#ifdef SHIM_TSAN
#include <dlfcn.h>
#include <gnu/lib-names.h>
#endif

/* How long a dying process waits for its peers to take its bytes. */
#define CRASH_FLUSH_MS	2000

static const int fatal_sigs[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT };
#define NFATAL	(sizeof(fatal_sigs) / sizeof(fatal_sigs[0]))

/* Flag bits the kernel sees from us rather than from the application. */
#define OUR_FLAGS	(SA_SIGINFO | SA_NODEFER | SA_RESETHAND)

/*
 * The application's action for each fatal signal, as it reads it back.
 * Guarded by busy, a spinlock whose holders never block: sigaction()
 * (under sig_lock, every signal blocked) and the handler, which gives up
 * waiting after a bounded spin rather than hang a dying process.
 */
struct app_action {
	int busy;
	struct sigaction sa;
};
static struct app_action app[NFATAL];
static pthread_mutex_t sig_lock = PTHREAD_MUTEX_INITIALIZER;
static bool armed;
static __thread int in_app_handler;	/* app handlers running here */
__thread unsigned long shim__sig_gen;	/* and handlers run (sigwatch.c) */
static __thread bool in_flush;

static void crash_handler(int sig, siginfo_t *si, void *uc);

static int slot_of(int sig)
{
	size_t i;

	for (i = 0; i < NFATAL; i++)
		if (fatal_sigs[i] == sig)
			return i;
	return -1;
}

/* ---- the kernel's action ---- */

#ifdef SHIM_TSAN
/*
 * TSan builds only.  TSan's sigaction gives the kernel its own wrapper,
 * which runs our handler with every signal blocked and TSan's per-thread
 * ignore counters cleared, restoring both only when the handler returns.
 * A caught fault never returns (safecopy.c jumps back), so SIGSEGV stayed
 * blocked and TSan's counters unbalanced.  libc's own sigaction, found
 * past TSan, makes the kernel run the handler directly, as in production.
 */
static int (*libc_sigaction)(int, const struct sigaction *,
			     struct sigaction *);

static void kernel_resolve(void)
{
	void *libc;

	if (libc_sigaction)
		return;
	libc = dlopen(LIBC_SO, RTLD_LAZY | RTLD_NOLOAD);
	if (libc)
		libc_sigaction = dlsym(libc, "sigaction");
}

int shim__kernel_sigaction(int sig, const struct sigaction *sa,
			   struct sigaction *old)
{
	kernel_resolve();
	if (libc_sigaction)
		return libc_sigaction(sig, sa, old);
	return REAL(sigaction)(sig, sa, old);
}
#else
static void kernel_resolve(void)
{
}

int shim__kernel_sigaction(int sig, const struct sigaction *sa,
			   struct sigaction *old)
{
	return REAL(sigaction)(sig, sa, old);
}
#endif
#define kernel_action shim__kernel_sigaction

/*
 * What the kernel runs for the application's action a: our handler, with
 * a's SA_ONSTACK and SA_RESTART (the stack and syscall restarts are the
 * application's choice; with no handler of its own, the alternate stack
 * if the thread has one, so a stack overflow still flushes).  SA_NODEFER
 * and an empty mask leave the signal
 * mask alone, so a guarded copy can jump back without sigprocmask.  An
 * ignored SIGFPE, SIGILL or SIGABRT stays ignored in the kernel (no EINTR
 * from a signal the application ignores); SIGSEGV and SIGBUS are always
 * ours, since the guarded copies need them.
 */
static void kernel_install(int sig, const struct sigaction *a)
{
	struct sigaction k;

	if (a->sa_handler == SIG_IGN && sig != SIGSEGV && sig != SIGBUS) {
		kernel_action(sig, a, NULL);
		return;
	}
	memset(&k, 0, sizeof(k));
	k.sa_sigaction = crash_handler;
	k.sa_flags = (a->sa_flags & ~OUR_FLAGS) | SA_SIGINFO | SA_NODEFER;
	if (a->sa_handler == SIG_DFL || a->sa_handler == SIG_IGN)
		k.sa_flags |= SA_ONSTACK;
	sigemptyset(&k.sa_mask);
	kernel_action(sig, &k, NULL);
}

/* ---- the application's view ---- */

/* False when another holder kept it through the whole spin. */
static bool app_lock(int i)
{
	int tries;

	for (tries = 0; tries < 1000000; tries++)
		if (!__atomic_exchange_n(&app[i].busy, 1, __ATOMIC_ACQUIRE))
			return true;
	return false;
}

static void app_unlock(int i)
{
	__atomic_store_n(&app[i].busy, 0, __ATOMIC_RELEASE);
}

static void app_get(int i, struct sigaction *out)
{
	bool locked = app_lock(i);

	memcpy(out, &app[i].sa, sizeof(*out));
	if (locked)
		app_unlock(i);
}

static void app_put(int i, const struct sigaction *sa)
{
	if (!app_lock(i))
		return;
	memcpy(&app[i].sa, sa, sizeof(*sa));
	app_unlock(i);
}

/* The part of a mask the kernel keeps: 64 signals, less KILL and STOP. */
static void mask_norm(sigset_t *out, const sigset_t *in)
{
	sigemptyset(out);
	memcpy(out, in, _NSIG / 8);
	sigdelset(out, SIGKILL);
	sigdelset(out, SIGSTOP);
}

/*
 * The application sets act for fatal_sigs[i] (armed, sig_lock held).
 * The flags it will read back are the kernel's own rewrite of them (libc
 * adds SA_RESTORER, the kernel drops unknown bits): install, read back,
 * and keep the application's handler, mask, OUR_FLAGS and SA_ONSTACK.
 */
static void app_set(int i, const struct sigaction *act)
{
	int sig = fatal_sigs[i];
	struct sigaction kept, rec;

	kernel_install(sig, act);
	memset(&kept, 0, sizeof(kept));
	kernel_action(sig, NULL, &kept);
	if (kept.sa_handler == act->sa_handler) {
		rec = kept;		/* ignored: the kernel holds it */
	} else {
		memset(&rec, 0, sizeof(rec));
		rec.sa_handler = act->sa_handler;
		/* SA_ONSTACK too: kernel_install adds it for DFL/IGN. */
		rec.sa_flags = (kept.sa_flags & ~(OUR_FLAGS | SA_ONSTACK)) |
			       (act->sa_flags & (OUR_FLAGS | SA_ONSTACK));
		rec.sa_restorer = kept.sa_restorer;
		mask_norm(&rec.sa_mask, &act->sa_mask);
	}
	app_put(i, &rec);
}

/* SA_RESETHAND: the action becomes SIG_DFL on delivery (flags stay). */
static void app_reset(int i, const struct sigaction *was)
{
	if (!app_lock(i))
		return;
	if (app[i].sa.sa_handler == was->sa_handler)
		app[i].sa.sa_handler = SIG_DFL;
	app_unlock(i);
}

/* Every signal blocked: a handler calling sigaction() cannot deadlock. */
static void sig_lock_take(sigset_t *saved)
{
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, saved);
	pthread_mutex_lock(&sig_lock);
}

static void sig_lock_drop(const sigset_t *saved)
{
	pthread_mutex_unlock(&sig_lock);
	pthread_sigmask(SIG_SETMASK, saved, NULL);
}

/*
 * Fork child: another thread may have held sig_lock, or been writing an
 * action, when the process forked.
 */
static void crash_atfork_child(void)
{
	size_t i;

	pthread_mutex_init(&sig_lock, NULL);
	for (i = 0; i < NFATAL; i++)
		app[i].busy = 0;
}

/*
 * The first accelerated socket: from now on bytes can be queued, so the
 * shim takes the fatal signals, keeping what the application had as its
 * action.  Or the first guarded copy, which needs the SIGSEGV handler.
 */
void shim__crash_arm(void)
{
	struct sigaction cur;
	sigset_t saved;
	size_t i;

	if (__atomic_load_n(&armed, __ATOMIC_ACQUIRE))
		return;
	sig_lock_take(&saved);
	if (armed) {
		sig_lock_drop(&saved);
		return;
	}
	kernel_resolve();
	for (i = 0; i < NFATAL; i++) {
		memset(&cur, 0, sizeof(cur));
		REAL(sigaction)(fatal_sigs[i], NULL, &cur);
		app_put(i, &cur);
		kernel_install(fatal_sigs[i], &cur);
	}
	/* The guard first: whoever sees armed may copy at once. */
	shim__safecopy_enable();
	__atomic_store_n(&armed, true, __ATOMIC_RELEASE);
	sig_lock_drop(&saved);
	pthread_atfork(NULL, NULL, crash_atfork_child);
}

bool shim__ucopy(void *dst, const void *src, size_t n)
{
	if (unlikely(!__atomic_load_n(&armed, __ATOMIC_ACQUIRE)))
		shim__crash_arm();
	return shim__copy(dst, src, n);
}

/* sigaction() for the application (wrap_sig.c): its view of the five. */
int shim__sig_action(int sig, const struct sigaction *act,
		     struct sigaction *old)
{
	struct sigaction a, prev;
	sigset_t saved;
	int i, ret = 0;

	i = slot_of(sig);
	/* A bad pointer faults here, as in libc; a misaligned one is read. */
	if (act)
		memcpy(&a, act, sizeof(a));
	memset(&prev, 0, sizeof(prev));
	sig_lock_take(&saved);
	if (!armed) {
		ret = REAL(sigaction)(sig, act ? &a : NULL, &prev);
	} else {
		app_get(i, &prev);
		if (act)
			app_set(i, &a);
	}
	sig_lock_drop(&saved);
	if (!ret && old)
		memcpy(old, &prev, sizeof(prev));	/* after, as libc */
	return ret;
}

__sighandler_t shim__sig_signal(int sig, __sighandler_t handler)
{
	struct sigaction a, prev;
	__sighandler_t ret;
	sigset_t saved;
	int i;

	i = slot_of(sig);
	if (handler == SIG_ERR)
		return REAL(signal)(sig, handler);
	sig_lock_take(&saved);
	if (!armed) {
		ret = REAL(signal)(sig, handler);
	} else {
		/* What glibc's signal() asks for: BSD semantics. */
		memset(&a, 0, sizeof(a));
		a.sa_handler = handler;
		sigemptyset(&a.sa_mask);
		sigaddset(&a.sa_mask, sig);
		a.sa_flags = SA_RESTART;
		app_get(i, &prev);
		app_set(i, &a);
		ret = prev.sa_handler;
	}
	sig_lock_drop(&saved);
	return ret;
}

/* ---- the flush ---- */

const struct crash_ops *shim__crash_ops;

static uint64_t now_ms(void)
{
	return mono_ns() / 1000000;
}

/*
 * Push every queued byte into the kernel, waiting at most CRASH_FLUSH_MS
 * for peers to make room.  Only from a thread that was not inside the
 * shim: its state is consistent then.  Returns with the shim's process
 * lock held when hold is set and the lock could be taken.
 */
static bool crash_flush(bool hold)
{
	bool locked;

	if (shim__depth || !shim__crash_ops)
		return false;
	in_flush = true;
	locked = shim__crash_ops->flush(now_ms() + CRASH_FLUSH_MS, hold);
	in_flush = false;
	return locked;
}

void shim__crash_flush(void)
{
	crash_flush(false);
}

bool shim__crash_in_handler(void)
{
	return in_app_handler > 0;
}

/* ---- the handler ---- */

/* Raised by the CPU: returning runs the instruction, and faults, again. */
static bool is_fault(int sig, const siginfo_t *si)
{
	return sig != SIGABRT && si->si_code > 0;
}

/*
 * abort(): once its handler returns, glibc resets SIGABRT and raises it
 * again past sigaction(), so a SIGABRT this process sent itself is taken
 * to mean death (for a plain raise(SIGABRT), the flush is only early).
 */
static bool self_abort(int sig, const siginfo_t *si)
{
	return sig == SIGABRT && si->si_code == SI_TKILL &&
	       si->si_pid == getpid();
}

/* As the kernel delivers to a handler: its mask, the signal unless NODEFER. */
static void run_app_handler(int i, int sig, const struct sigaction *a,
			    siginfo_t *si, void *uc)
{
	sigset_t mask = a->sa_mask, saved;

	if (a->sa_flags & SA_RESETHAND)
		app_reset(i, a);
	if (!(a->sa_flags & SA_NODEFER))
		sigaddset(&mask, sig);
	pthread_sigmask(SIG_BLOCK, &mask, &saved);
	shim__sig_gen++;
	in_app_handler++;
	if (a->sa_flags & SA_SIGINFO)
		a->sa_sigaction(sig, si, uc);
	else
		a->sa_handler(sig);
	in_app_handler--;
	/* A signal the handler raised again is delivered here. */
	pthread_sigmask(SIG_SETMASK, &saved, NULL);
}

/*
 * The default action, as the kernel would take it.  A fault is left to
 * repeat: the core then shows the faulting instruction on top, with the
 * kernel's own siginfo.  Anything else is queued again to this thread,
 * with its siginfo, and kills at once.
 */
static void die(int sig, siginfo_t *si, bool fault, bool locked)
{
	struct sigaction dfl;
	sigset_t one;

	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	kernel_action(sig, &dfl, NULL);
	if (!fault) {
		sigemptyset(&one);
		sigaddset(&one, sig);
		pthread_sigmask(SIG_UNBLOCK, &one, NULL);
		syscall(SYS_rt_tgsigqueueinfo, getpid(), syscall(SYS_gettid),
			sig, si);
	}
	if (locked)
		shim__crash_ops->unhold();
}

static void crash_handler(int sig, siginfo_t *si, void *uc)
{
	int i = slot_of(sig), err = errno;
	bool fault = is_fault(sig, si);
	struct sigaction a;

	if (sig == SIGSEGV || sig == SIGBUS)
		shim__safecopy_catch();
	if (i < 0 || in_flush) {
		/* The flush itself faulted: no second try. */
		die(sig, si, fault, false);
		goto out;
	}
	app_get(i, &a);
	if (a.sa_handler != SIG_DFL && a.sa_handler != SIG_IGN) {
		run_app_handler(i, sig, &a, si, uc);
		app_get(i, &a);
		if (fault && (a.sa_handler == SIG_DFL ||
			      a.sa_handler == SIG_IGN)) {
			crash_flush(false);
			die(sig, si, true, false);
		} else if (self_abort(sig, si)) {
			crash_flush(false);
		}
		goto out;
	}
	/* Ignored: only SIGSEGV and SIGBUS come here, a fault kills. */
	if (a.sa_handler == SIG_IGN && !fault)
		goto out;
	die(sig, si, fault, crash_flush(!fault));
out:
	errno = err;
}
