/* The cluster views: GET /api/cluster/members (the member list, from the
 * gossip driver's thread-safe snapshot) and GET /api/cluster/ring (the
 * ring snapshot this node routes with, and optionally the owners of one
 * key). Operators use the ring view to see how the hash space is split and
 * to find where a key lives without guessing from X-Cache-Owner; tests use
 * it to check that every node routes alike.
 *
 * The ring is read with topo_slot_get (not the worker's topo_cache) so the
 * answer is the latest published ring even on a worker that has not routed
 * a key since it changed. */
#include "node/api/api_cluster.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_url.h"
#include "node/api/api_http.h"

void api_cluster_members(api_worker_t *w, http_request_t *r)
{
    api_t *a = w->api;
    gossip_t *g = atomic_load(&a->gossip);
    if (!g) {
        http_respond_error(r, 503, "cluster_starting", "membership is not running yet");
        return;
    }
    sbuf_t b;
    sbuf_init(&b);
    gossip_members_json(g, &b);
    api_http_sbuf(r, 200, &b);
}

/* Percent-encoded, a key takes at most three bytes per byte. */
#define API_CLUSTER_KEY_ENCODED_MAX (3 * LIMITS_KEY_MAX)

static int api_cluster_name_cmp(const void *a, const void *b)
{
    const topo_member_t *x = *(const topo_member_t *const *)a, *y = *(const topo_member_t *const *)b;
    return strcmp(x->name, y->name);
}

/* A ratio as a JSON number; NaN and infinities are not JSON. */
static void api_cluster_number(sbuf_t *b, double v)
{
    sbuf_printf(b, "%.6f", isfinite(v) ? v : 0.0);
}

/* Reads ?key= with the cache endpoints' rules and error codes. Returns 1
 * with the key, 0 when there is no key parameter, -1 after answering 400. */
static int api_cluster_query_key(http_request_t *r, char *key, size_t *klen)
{
    size_t qlen;
    const char *q = http_request_query(r, &qlen);
    const char *raw;
    size_t raw_len;
    if (!q || !http_query_find(q, qlen, "key", &raw, &raw_len)) return 0;
    if (raw_len > API_CLUSTER_KEY_ENCODED_MAX) {
        http_respond_error(r, 400, "key_too_long", "keys are at most 1024 bytes");
        return -1;
    }
    char decoded[API_CLUSTER_KEY_ENCODED_MAX + 1];
    long n = http_query_get(q, qlen, "key", decoded, sizeof decoded);
    if (n < 0) {
        http_respond_error(r, 400, "bad_key", "malformed percent-encoding in the key");
        return -1;
    }
    if (n == 0 || (size_t)n > LIMITS_KEY_MAX) {
        http_respond_error(r, 400, n ? "key_too_long" : "bad_key",
                           n ? "keys are at most 1024 bytes" : "the key is empty");
        return -1;
    }
    memcpy(key, decoded, (size_t)n);
    *klen = (size_t)n;
    return 1;
}

void api_cluster_ring(api_worker_t *w, http_request_t *r)
{
    api_t *a = w->api;
    char key[LIMITS_KEY_MAX];
    size_t klen = 0;
    int has_key = api_cluster_query_key(r, key, &klen);
    if (has_key < 0) return;

    topo_t *t = topo_slot_get(&a->route.topo);
    if (!t) {
        http_respond_error(r, 503, "cluster_starting", "no ring yet: membership has not published one");
        return;
    }
    const topo_member_t **sorted = malloc(t->n * sizeof *sorted);
    if (!sorted) {
        topo_unref(t);
        http_respond_error(r, 503, "no_memory", "out of memory building the response");
        return;
    }
    for (size_t i = 0; i < t->n; i++) sorted[i] = &t->members[i];
    qsort(sorted, t->n, sizeof *sorted, api_cluster_name_cmp);

    ring_stats_t rs;
    ring_get_stats(t->ring, &rs);
    const char *self = t->self >= 0 ? t->members[t->self].name : route_self_name(&a->route);
    sbuf_t b;
    sbuf_init(&b);
    /* replicas is what the ring applies (min of --replicas and members);
     * replicas_configured tells an operator why a lone node has 1. */
    sbuf_printf(&b, "{\"version\":%llu,\"replicas\":%u,\"replicas_configured\":%u,\"members\":%zu,\"zones\":%zu,"
                    "\"balance\":",
                (unsigned long long)t->version, rs.replicas, (unsigned)a->cfg->replicas, rs.members, rs.zones);
    api_cluster_number(&b, rs.balance);
    sbuf_printf(&b, ",\"bytes\":%zu,\"self\":", rs.bytes);
    sbuf_json_string(&b, self, strlen(self));
    sbuf_puts(&b, ",\"nodes\":[");
    for (size_t i = 0; i < t->n; i++) {
        const topo_member_t *m = sorted[i];
        sbuf_puts(&b, i ? ",{\"name\":" : "{\"name\":");
        sbuf_json_string(&b, m->name, strlen(m->name));
        sbuf_puts(&b, ",\"zone\":");
        sbuf_json_string(&b, m->zone, strlen(m->zone));
        sbuf_puts(&b, ",\"peer\":");
        sbuf_json_string(&b, m->peer_text, strlen(m->peer_text));
        sbuf_puts(&b, ",\"http\":");
        sbuf_json_string(&b, m->http_text, strlen(m->http_text));
        sbuf_puts(&b, ",\"share\":");
        api_cluster_number(&b, ring_member_share(t->ring, (uint32_t)(m - t->members)));
        sbuf_printf(&b, ",\"suspect\":%s}", m->suspect ? "true" : "false");
    }
    sbuf_puts(&b, "]");
    if (has_key) {
        uint32_t owners[RING_REPLICAS_MAX];
        size_t n = topo_owners(t, key, klen, owners, RING_REPLICAS_MAX);
        sbuf_puts(&b, ",");
        sbuf_json_bytes_member(&b, "key", key, klen);
        sbuf_puts(&b, ",\"owners\":[");
        for (size_t i = 0; i < n; i++) {
            const char *name = t->members[owners[i]].name;
            if (i) sbuf_puts(&b, ",");
            sbuf_json_string(&b, name, strlen(name));
        }
        sbuf_puts(&b, "]");
    }
    sbuf_puts(&b, "}");
    free(sorted);
    topo_unref(t);
    api_http_sbuf(r, 200, &b);
}
