/*
 * ready.c - emulated epoll registrations and the sets' ready lists.
 *
 * An accelerated socket is never in the kernel's epoll set (the shim
 * pulls its bytes, so the kernel's readiness for it would be wrong); its
 * registrations live in the socket (struct sfd.regs) and each set keeps a
 * ready list like the kernel's rdllist: the registrations to evaluate at
 * the next wait.  All of it is guarded by the lock of the set's owner
 * loop, which is the loop of every socket registered in it.
 */
#include <string.h>

#include "core.h"

void reg_ready(struct reg *r)
{
	struct sep *ep = r->ep;

	if (r->on_ready)
		return;
	r->on_ready = true;
	r->rnext = NULL;
	r->rprev = ep->ready_tail;
	if (ep->ready_tail)
		ep->ready_tail->rnext = r;
	else
		WR(ep->ready_head, r);
	ep->ready_tail = r;
}

void reg_unready(struct reg *r)
{
	struct sep *ep = r->ep;

	if (!r->on_ready)
		return;
	if (r->rprev)
		r->rprev->rnext = r->rnext;
	else
		WR(ep->ready_head, r->rnext);
	if (r->rnext)
		r->rnext->rprev = r->rprev;
	else
		ep->ready_tail = r->rprev;
	r->on_ready = false;
	r->rnext = r->rprev = NULL;
}

struct reg *reg_find(struct sfd *f, struct sep *ep)
{
	int i;

	for (i = 0; i < f->nregs; i++)
		if (f->regs[i].ep == ep)
			return &f->regs[i];
	return NULL;
}

struct reg *reg_add(struct sfd *f, struct sep *ep,
		    const struct epoll_event *ev)
{
	struct reg *r;

	if (f->nregs == SFD_MAX_REGS)
		return NULL;
	r = &f->regs[f->nregs++];
	memset(r, 0, sizeof(*r));
	r->ep = ep;
	r->f = f;
	r->events = ev->events;
	r->data = ev->data;
	if (!ep->nemul++)
		WR(ep->owner, f->loop);
	reg_ready(r);
	return r;
}

void reg_unlink(struct reg *r)
{
	struct sfd *f = r->f;
	struct sep *ep = r->ep;
	int i = r - f->regs;

	reg_unready(r);
	if (!--ep->nemul)
		WR(ep->owner, NULL);
	f->nregs--;
	if (i != f->nregs) {
		/* Move the last one into the hole, fixing its list links. */
		struct reg *last = &f->regs[f->nregs];
		bool was_ready = last->on_ready;

		reg_unready(last);
		*r = *last;
		if (was_ready)
			reg_ready(r);
	}
	memset(&f->regs[f->nregs], 0, sizeof(f->regs[0]));
}

void regs_notify(struct sfd *f)
{
	int i;

	for (i = 0; i < f->nregs; i++)
		reg_ready(&f->regs[i]);
}
