/*
 * real.c - resolve the real libc entry points behind every interposed name.
 *
 * One pointer real_<name> per syscalls.def entry, looked up with
 * dlsym(RTLD_NEXT) and, when another preload hides it, RTLD_DEFAULT (which
 * may find our own wrapper: that one is refused to avoid infinite
 * recursion).  Called from the constructor and, lazily, by any wrapper that
 * runs before it (another library's constructor doing I/O).
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <stddef.h>
#include <sys/sendfile.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>

#include "base.h"

#define SHIM_CALL(ret, name, params) ret (*real_##name) params;
#include "syscalls.def"
#undef SHIM_CALL

/* Layer 0's state: init.c fills the settings before anything runs. */
struct shim_config shim__cfg;
__thread int shim__depth;
static __thread pid_t cached_tid;

pid_t shim__gettid(void)
{
	if (unlikely(!cached_tid))
		cached_tid = syscall(SYS_gettid);
	return cached_tid;
}

void shim__gettid_forget(void)
{
	cached_tid = 0;
}

const char *const shim__call_names[SHIM_NCALLS] = {
#define SHIM_CALL(ret, name, params) #name,
#include "syscalls.def"
#undef SHIM_CALL
};

static void *resolve_one(const char *name)
{
	Dl_info mine, found;
	void *p = dlsym(RTLD_NEXT, name);

	if (p)
		return p;
	p = dlsym(RTLD_DEFAULT, name);
	/* Never our own wrapper: that would recurse forever. */
	if (p && dladdr((void *)resolve_one, &mine) && dladdr(p, &found) &&
	    mine.dli_fbase == found.dli_fbase)
		p = NULL;
	return p;
}

/*
 * Returns 0, or -ENOSYS when a call every process needs is missing (then
 * the shim stays passthrough where it can).  Idempotent and safe to race:
 * every thread writes the same values.
 */
int shim__resolve_real(void)
{
#define SHIM_CALL(ret, name, params)					\
	if (!real_##name)						\
		real_##name = (ret (*) params)resolve_one(#name);
#include "syscalls.def"
#undef SHIM_CALL
	if (!real_read || !real_write || !real_close || !real_epoll_ctl)
		return -ENOSYS;
	return 0;
}
