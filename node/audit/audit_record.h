/* audit_record: what one audit record is (audit.h writes them, audit_pg
 * ships and reads them back): its action, fields and JSON line, and what
 * a query of the trail asks for.
 *
 * Ownership: a record owns its keys and pattern (audit_record_clear).
 * Threads: any.
 */
#ifndef DCACHE_AUDIT_RECORD_H
#define DCACHE_AUDIT_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node/core/sbuf.h"

typedef enum {
    AUDIT_DELETE = 0,
    AUDIT_INVALIDATE,           /* keys */
    AUDIT_INVALIDATE_PATTERN,   /* dry runs too */
    AUDIT_WARM,
    AUDIT_TOKENS_RELOAD,
    AUDIT_WARM_JOB,             /* a warming job created, replaced or deleted through the API */
    AUDIT_ORIGINS_RELOAD,       /* the --origins file reread (SIGHUP) */
    AUDIT_ACTIONS
} audit_action_t;

const char *audit_action_name(audit_action_t a);
/* false when s names no action. */
bool audit_action_parse(const char *s, size_t len, audit_action_t *out);

#define AUDIT_KEYS_MAX 10        /* keys listed in a record; key_count has them all */
#define AUDIT_ID_MAX 48          /* request ids */
#define AUDIT_ACTOR_MAX 72       /* a token name, or a client address */

typedef struct audit_record {
    int64_t time_ms;             /* wall clock when the request arrived */
    uint64_t duration_us;
    audit_action_t action;
    char request_id[AUDIT_ID_MAX];
    char actor[AUDIT_ACTOR_MAX];
    uint64_t key_count;          /* keys the request named */
    char *keys;                  /* JSON array of the first AUDIT_KEYS_MAX keys, or NULL (owned) */
    char *pattern;               /* the pattern, NUL-terminated, or NULL (owned) */
    bool dry_run;
    int64_t matched, invalidated; /* -1: not applicable */
    int status;                  /* the HTTP status answered */
    char result[32];             /* "ok", or the error code answered */
} audit_record_t;

/* Frees the record's heap fields (not the record). */
void audit_record_clear(audit_record_t *r);

/* One record as a JSON object (no newline). */
void audit_record_json(sbuf_t *b, const audit_record_t *r, const char *node, const char *id);

/* What GET /api/audit asks for. */
typedef struct audit_query {
    int64_t since_ms, until_ms;  /* 0: unbounded */
    int action;                  /* audit_action_t, or -1: any */
    char actor[AUDIT_ACTOR_MAX]; /* "": any */
    unsigned limit;              /* 1..1000 */
    char cursor[64];             /* "": the newest; else the `next` of the previous page */
} audit_query_t;

#endif
