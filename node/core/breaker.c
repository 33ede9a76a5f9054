#include "node/core/breaker.h"

const char *breaker_state_name(breaker_state_t s)
{
    switch (s) {
    case BREAKER_CLOSED: return "closed";
    case BREAKER_OPEN: return "open";
    case BREAKER_HALF_OPEN: return "half_open";
    }
    return "unknown";
}

/* ---------- the state machine (unlocked) ---------- */

void breaker_fsm_init(breaker_fsm_t *f, unsigned threshold, int64_t open_ms, int64_t trial_ms)
{
    f->state = BREAKER_CLOSED;
    f->failures = 0;
    f->threshold = threshold ? threshold : 1;
    f->open_ms = open_ms;
    f->open_until = 0;
    f->trial_ms = trial_ms;
    f->trial_out = false;
    f->trial_until = 0;
}

static bool breaker_fsm_trial_free(const breaker_fsm_t *f, int64_t now_ms)
{
    /* A trial whose outcome never came back (its caller went away) is
     * replaced after a pause, or the breaker would stay half-open. */
    return !f->trial_out || (f->trial_ms >= 0 && now_ms >= f->trial_until);
}

breaker_verdict_t breaker_fsm_allow(breaker_fsm_t *f, int64_t now_ms)
{
    if (f->state == BREAKER_OPEN && now_ms >= f->open_until) f->state = BREAKER_HALF_OPEN;
    switch (f->state) {
    case BREAKER_CLOSED: return BREAKER_PASS;
    case BREAKER_HALF_OPEN: return breaker_fsm_trial_free(f, now_ms) ? BREAKER_TRIAL : BREAKER_REJECT;
    case BREAKER_OPEN: break;
    }
    return BREAKER_REJECT;
}

void breaker_fsm_claim(breaker_fsm_t *f, int64_t now_ms)
{
    f->trial_out = true;
    if (f->trial_ms >= 0) f->trial_until = now_ms + f->trial_ms;
}

bool breaker_fsm_would_allow(const breaker_fsm_t *f, int64_t now_ms)
{
    switch (f->state) {
    case BREAKER_CLOSED: return true;
    case BREAKER_OPEN: return now_ms >= f->open_until;
    case BREAKER_HALF_OPEN: return breaker_fsm_trial_free(f, now_ms);
    }
    return false;
}

void breaker_fsm_success(breaker_fsm_t *f)
{
    f->failures = 0;
    f->state = BREAKER_CLOSED;
}

void breaker_fsm_failure(breaker_fsm_t *f, int64_t now_ms)
{
    f->failures++;
    /* A failed trial, or one failure too many: open (again). A failure that
     * arrives while already open (a call sent before it opened) does not
     * extend the pause. */
    if (f->state == BREAKER_HALF_OPEN || (f->state == BREAKER_CLOSED && f->failures >= f->threshold)) {
        f->state = BREAKER_OPEN;
        f->open_until = now_ms + f->open_ms;
    }
}

void breaker_fsm_release(breaker_fsm_t *f)
{
    f->trial_out = false;
}

/* ---------- shared between threads (locked) ---------- */

void breaker_init(breaker_t *b, unsigned threshold, int64_t open_ms, breaker_change_fn on_change, void *ctx)
{
    pthread_mutex_init(&b->lock, NULL);
    /* A trial that never reports is replaced after a full pause. */
    breaker_fsm_init(&b->fsm, threshold, open_ms, open_ms);
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

/* With the lock held, after the state machine moved from `from`: publishes
 * the new state for lock-free readers and counts openings. */
static breaker_state_t breaker_publish(breaker_t *b, breaker_state_t from)
{
    breaker_state_t to = b->fsm.state;
    if (to != from) {
        atomic_store(&b->state_seen, to);
        if (to == BREAKER_OPEN) atomic_fetch_add(&b->opens, 1);
    }
    return to;
}

static void breaker_report(breaker_t *b, breaker_state_t from, breaker_state_t to)
{
    if (from != to && b->on_change) b->on_change(from, to, b->ctx);
}

bool breaker_allow(breaker_t *b, int64_t now_ms)
{
    pthread_mutex_lock(&b->lock);
    breaker_state_t from = b->fsm.state;
    breaker_verdict_t v = breaker_fsm_allow(&b->fsm, now_ms);
    if (v == BREAKER_TRIAL) breaker_fsm_claim(&b->fsm, now_ms);
    bool ok = v != BREAKER_REJECT;
    breaker_state_t to = breaker_publish(b, from);
    pthread_mutex_unlock(&b->lock);
    if (!ok) atomic_fetch_add(&b->rejected, 1);
    breaker_report(b, from, to);
    return ok;
}

/* Outcomes carry no identity here, so any of them ends the trial: the next
 * half-open period starts with none out. */
void breaker_success(breaker_t *b, int64_t now_ms)
{
    (void)now_ms;
    pthread_mutex_lock(&b->lock);
    breaker_state_t from = b->fsm.state;
    breaker_fsm_success(&b->fsm);
    breaker_fsm_release(&b->fsm);
    breaker_state_t to = breaker_publish(b, from);
    pthread_mutex_unlock(&b->lock);
    breaker_report(b, from, to);
}

void breaker_failure(breaker_t *b, int64_t now_ms)
{
    pthread_mutex_lock(&b->lock);
    breaker_state_t from = b->fsm.state;
    breaker_fsm_failure(&b->fsm, now_ms);
    breaker_fsm_release(&b->fsm);
    breaker_state_t to = breaker_publish(b, from);
    pthread_mutex_unlock(&b->lock);
    breaker_report(b, from, to);
}

breaker_state_t breaker_state(breaker_t *b)
{
    return (breaker_state_t)atomic_load(&b->state_seen);
}
