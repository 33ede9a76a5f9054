#include "node/route/route_quorum.h"

#include <stdlib.h>

/* One round of SYNCs to every other member. It lives until every SYNC is
 * answered or failed (their callbacks point at it), which the worker's
 * peer pool guarantees, on close too; its waiters are told as soon as the
 * outcome is known. */
typedef struct route_quorum_round {
    struct route_quorum_round *next;   /* the worker's rounds, newest first */
    route_worker_t *w;
    uint64_t started_ms;
    size_t size;                       /* the cluster's, when the round began */
    unsigned pending;                  /* SYNCs not answered yet */
    unsigned answered;                 /* members that answered, this node counted */
    bool settled, majority;
    route_quorum_wait_t *waiters;
} route_quorum_round_t;

static void route_quorum_settle(route_quorum_round_t *r, bool majority)
{
    r->settled = true;
    r->majority = majority;
    route_quorum_wait_t *wt = r->waiters;
    r->waiters = NULL;
    while (wt) {
        route_quorum_wait_t *next = wt->next;
        wt->done(wt->ctx, majority); /* may free wt */
        wt = next;
    }
}

static void route_quorum_unlink(route_quorum_round_t *r)
{
    for (route_quorum_round_t **p = &r->w->quorum_rounds; *p; p = &(*p)->next) {
        if (*p == r) {
            *p = r->next;
            break;
        }
    }
}

/* One SYNC answered (or failed); the round is freed after the last. */
static void route_quorum_counted(route_quorum_round_t *r, bool answered)
{
    r->pending--;
    if (answered) r->answered++;
    if (!r->settled && r->answered * 2 > r->size) route_quorum_settle(r, true);
    if (r->pending) return;
    if (!r->settled) route_quorum_settle(r, false);
    route_quorum_unlink(r);
    free(r);
}

static void route_quorum_reply(void *ctx, peer_result_t res, const peer_msg_t *resp)
{
    route_quorum_round_t *r = ctx;
    bool answered = res == PEER_OK && resp->type == PEER_MSG_SYNC_RESP;
    if (answered) route_observe(r->w->route, resp->clock);
    route_quorum_counted(r, answered);
}

/* Asks every other member of t. The round comes back holding one `pending`
 * of its own, so that answers given at once cannot settle it before the
 * caller waits on it: route_quorum_counted(r, false) releases it. */
static route_quorum_round_t *route_quorum_start(route_worker_t *w, topo_t *t, size_t size)
{
    route_quorum_round_t *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->w = w;
    r->started_ms = uv_now(w->loop);
    r->size = size;
    r->answered = 1;
    r->pending = 1;
    r->next = w->quorum_rounds;
    w->quorum_rounds = r;
    atomic_fetch_add(&w->route->stats.majority_rounds, 1);
    route_sync_all(w, t, &r->pending, route_quorum_reply, r);
    return r;
}

void route_quorum_confirm(route_worker_t *w, uint64_t since_ms, route_quorum_wait_t *wait, route_quorum_fn done,
                          void *ctx)
{
    topo_t *t = route_topo(w);
    size_t size = route_cluster_size(w->route, t);
    if (!t || topo_heard_since(t, since_ms) * 2 > size) {
        done(ctx, t != NULL);
        return;
    }
    *wait = (route_quorum_wait_t){.done = done, .ctx = ctx};
    route_quorum_round_t *r = w->quorum_rounds;
    if (r && r->started_ms >= since_ms && !r->settled) {
        wait->next = r->waiters;
        r->waiters = wait;
        return;
    }
    if (r && r->started_ms >= since_ms && r->majority) {
        done(ctx, true);
        return;
    }
    r = route_quorum_start(w, t, size);
    if (!r) {
        done(ctx, false);
        return;
    }
    r->waiters = wait;
    route_quorum_counted(r, false);
}
