/* The journal replayer (contract in l2_drainer.h), on the main loop. */
#include "node/l2/l2_drainer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/core/closer.h"
#include "node/core/log.h"

/* ---------- replaying the journal ---------- */

#define L2_DRAIN_BATCH 256
#define L2_DRAIN_TICK_MS 500

struct l2_drainer {
    l2_shared_t *s;
    l2_t *l;
    uv_timer_t timer;
    bool draining;         /* a drain file is being replayed */
    bool read_error;       /* logged once */
    uint64_t pos, batch_end;
    unsigned inflight;
    bool failed;
    uint64_t replayed;
    closer_t closer;       /* the timer and the client */
};

static void l2_drain_tick(uv_timer_t *t);

static void l2_drain_reply(void *ctx, l2_result_t res)
{
    l2_drainer_t *d = ctx;
    d->inflight--;
    if (res != L2_OK) d->failed = true;
    if (d->inflight) return;
    if (d->failed) {
        /* Replayed again from the batch start next time: records are
         * versioned, so sending one twice changes nothing. */
        d->failed = false;
        return;
    }
    atomic_fetch_add(&d->s->stats.journal_drained, d->replayed);
    d->pos = d->batch_end;
    d->replayed = 0;
    l2_drain_tick(&d->timer); /* next batch at once */
}

static int l2_drain_one(const journal_rec_t *r, void *ctx)
{
    l2_drainer_t *d = ctx;
    d->inflight++;
    d->replayed++;
    if (r->op == JOURNAL_OP_DEL)
        l2_del(d->l, r->key, r->klen, r->version, l2_drain_reply, d);
    else
        l2_set(d->l, r->key, r->klen, r->value, r->vlen, r->ct, r->ctlen, r->version, r->expires_at_ms,
               l2_drain_reply, d);
    return 0;
}

static void l2_drain_tick(uv_timer_t *t)
{
    l2_drainer_t *d = t->data;
    journal_t *j = d->s->journal;
    if (d->inflight || l2_closing(d->l) || !j) return;
    if (!d->draining) {
        if (journal_records(j) == 0) return;
        int64_t n = journal_drain_begin(j);
        if (n <= 0) return;
        log_info("replaying the journal into Redis", "\"records\":%lld", (long long)n);
        d->draining = true;
        d->pos = 0;
    }
    /* Sent even while the breaker is open: refused at once then, and the
     * first batch after the pause is the breaker's trial. */
    uint64_t pos = d->pos;
    d->replayed = 0;
    d->inflight = 1; /* held while the batch is sent */
    int64_t n = journal_drain_read(j, &pos, L2_DRAIN_BATCH, l2_drain_one, d);
    d->batch_end = pos;
    if (n == 0) {
        d->inflight = 0;
        if (journal_drain_done(j) == 0) log_info("journal replayed", NULL);
        d->draining = false;
        return;
    }
    if (n < 0 && !d->read_error) log_error("cannot read the journal; it is kept", "\"error\":\"%s\"", strerror((int)-n));
    d->read_error = n < 0;
    l2_drain_reply(d, n < 0 ? L2_UNAVAILABLE : L2_OK);
}

l2_drainer_t *l2_drainer_new(uv_loop_t *loop, l2_shared_t *s)
{
    l2_drainer_t *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->s = s;
    d->l = l2_new(loop, s);
    if (!d->l) {
        free(d);
        return NULL;
    }
    uv_timer_init(loop, &d->timer);
    d->timer.data = d;
    uv_timer_start(&d->timer, l2_drain_tick, L2_DRAIN_TICK_MS, L2_DRAIN_TICK_MS);
    closer_add(&d->closer, 2);
    return d;
}

static void l2_drainer_timer_closed(uv_handle_t *h)
{
    l2_drainer_t *d = h->data;
    closer_closed(&d->closer);
}

void l2_drainer_close(l2_drainer_t *d, void (*done)(void *arg), void *arg)
{
    uv_timer_stop(&d->timer);
    uv_close((uv_handle_t *)&d->timer, l2_drainer_timer_closed);
    l2_close(d->l, closer_closed_cb, &d->closer);
    closer_finish(&d->closer, done, arg);
}

void l2_drainer_free(l2_drainer_t *d)
{
    if (!d) return;
    l2_free(d->l);
    free(d);
}

