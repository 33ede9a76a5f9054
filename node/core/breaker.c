#include "node/core/breaker.h"

void breaker_init(breaker_t *b, unsigned threshold, int64_t open_ms, breaker_change_fn on_change, void *ctx)
{
    pthread_mutex_init(&b->lock, NULL);
    b->state = BREAKER_CLOSED;
    b->failures = 0;
    b->threshold = threshold ? threshold : 1;
    b->open_ms = open_ms;
    b->open_until = 0;
    b->trial_out = false;
    b->on_change = on_change;
    b->ctx = ctx;
    atomic_init(&b->opens, 0);
    atomic_init(&b->rejected, 0);
    atomic_init(&b->state_seen, BREAKER_CLOSED);
}

void breaker_destroy(breaker_t *b)
{
    pthread_mutex_destroy(&b->lock);
}

const char *breaker_state_name(breaker_state_t s)
{
    switch (s) {
    case BREAKER_CLOSED: return "closed";
    case BREAKER_OPEN: return "open";
    case BREAKER_HALF_OPEN: return "half_open";
    }
    return "unknown";
}

/* Called with the lock held; returns the previous state. */
static breaker_state_t breaker_set(breaker_t *b, breaker_state_t to)
{
    breaker_state_t from = b->state;
    b->state = to;
    atomic_store(&b->state_seen, to);
    if (to == BREAKER_OPEN && from != BREAKER_OPEN) atomic_fetch_add(&b->opens, 1);
    return from;
}

static void breaker_report(breaker_t *b, breaker_state_t from, breaker_state_t to)
{
    if (from != to && b->on_change) b->on_change(from, to, b->ctx);
}

bool breaker_allow(breaker_t *b, int64_t now_ms)
{
    pthread_mutex_lock(&b->lock);
    breaker_state_t from = b->state, to = from;
    bool ok;
    if (b->state == BREAKER_OPEN && now_ms >= b->open_until) {
        breaker_set(b, BREAKER_HALF_OPEN);
        to = BREAKER_HALF_OPEN;
        b->trial_out = false;
    }
    if (b->state == BREAKER_CLOSED) {
        ok = true;
    } else if (b->state == BREAKER_HALF_OPEN && (!b->trial_out || now_ms >= b->trial_until)) {
        /* A trial whose outcome never came back (its caller went away) is
         * replaced after a pause, or the breaker would stay half-open. */
        b->trial_out = true;
        b->trial_until = now_ms + b->open_ms;
        ok = true;
    } else {
        ok = false;
    }
    pthread_mutex_unlock(&b->lock);
    if (!ok) atomic_fetch_add(&b->rejected, 1);
    breaker_report(b, from, to);
    return ok;
}

void breaker_success(breaker_t *b, int64_t now_ms)
{
    (void)now_ms;
    pthread_mutex_lock(&b->lock);
    b->failures = 0;
    b->trial_out = false;
    breaker_state_t from = breaker_set(b, BREAKER_CLOSED);
    pthread_mutex_unlock(&b->lock);
    breaker_report(b, from, BREAKER_CLOSED);
}

void breaker_failure(breaker_t *b, int64_t now_ms)
{
    pthread_mutex_lock(&b->lock);
    breaker_state_t from = b->state, to = from;
    b->failures++;
    /* A failed trial, or one failure too many: open (again). A failure that
     * arrives while already open (a call sent before it opened) does not
     * extend the pause. */
    if (b->state == BREAKER_HALF_OPEN || (b->state == BREAKER_CLOSED && b->failures >= b->threshold)) {
        breaker_set(b, BREAKER_OPEN);
        to = BREAKER_OPEN;
        b->open_until = now_ms + b->open_ms;
        b->trial_out = false;
    }
    pthread_mutex_unlock(&b->lock);
    breaker_report(b, from, to);
}

breaker_state_t breaker_state(breaker_t *b)
{
    return (breaker_state_t)atomic_load(&b->state_seen);
}
