/* api_audit: what the HTTP API gives the audit trail (node/audit). The
 * router marks requests of audited actions as they start (DELETE of a
 * key, key and pattern invalidations, warming jobs created or deleted), gives each a
 * request id (the client's X-Request-Id when it is a sane one, else a new
 * one) returned as X-Request-Id, and its response hook turns the request
 * and its answer into one record: actor (token name, else the client's
 * address), keys or pattern, dry run, counts, status, result, duration.
 * GET /api/audit reads the trail back.
 *
 * Threads: the request's loop thread; records go to the audit writer
 * through audit_submit (thread-safe).
 */
#ifndef DCACHE_API_AUDIT_H
#define DCACHE_API_AUDIT_H

#include "http/http_server.h"
#include "node/api/api.h"
#include "node/audit/audit_record.h"

/* Sets up the request's state (every request, first thing). */
void api_audit_start(http_request_t *r);
/* The request is an audited action: gives it its request id and header.
 * Its action follows from the operation it is measured as (DELETE, key or
 * pattern invalidation); a configuration change (a warming job created,
 * replaced or deleted) is marked with its action instead. */
void api_audit_mark(api_t *a, http_request_t *r);
void api_audit_mark_config(api_t *a, http_request_t *r, audit_action_t action);
/* From the response hook: records the request when it was marked, puts
 * it on the event feed and, with --events-channel, publishes a successful
 * delete or invalidation on Redis. */
void api_audit_responded(api_worker_t *w, const http_request_t *r, int status);
/* A record made elsewhere (an inbound event, a reload) or by the response
 * hook: on the event feed (relayed to the other members) and in the trail,
 * which takes its heap fields. With `channel` (this loop's Redis client,
 * given for a removal that succeeded) and --events-channel, also published
 * on Redis. */
void api_audit_publish(api_t *a, audit_record_t *rec, l2_t *channel);
/* GET /api/audit?since=&until=&action=&actor=&limit=&cursor= */
void api_audit_list(api_worker_t *w, http_request_t *r);
/* Who made the request, as the trail names it: the token's name, or the
 * client's address without its port. */
void api_audit_actor(api_t *a, const http_request_t *r, char *out, size_t cap);

#endif
