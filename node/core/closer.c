#include "node/core/closer.h"

#include <stddef.h>

void closer_init(closer_t *c)
{
    *c = (closer_t){0};
}

void closer_add(closer_t *c, unsigned n)
{
    c->open += n;
}

static void closer_maybe_done(closer_t *c)
{
    if (!c->finishing || c->open || !c->done) return;
    /* Cleared first: done may free the closer's owner. */
    void (*done)(void *) = c->done;
    c->done = NULL;
    done(c->arg);
}

void closer_closed(closer_t *c)
{
    c->open--;
    closer_maybe_done(c);
}

void closer_closed_cb(void *closer)
{
    closer_closed(closer);
}

void closer_finish(closer_t *c, void (*done)(void *arg), void *arg)
{
    c->finishing = true;
    c->done = done;
    c->arg = arg;
    closer_maybe_done(c);
}
