/* warm_job: what a warming job is, as the --origins file's "jobs", the
 * API's POST /api/warming/jobs and the records kept in Redis write it:
 *
 *   {"name": "featured", "schedule": "*\/5 * * * *",
 *    "source": {"keys": ["products:1", "products:2"]}
 *            | {"pattern": "products:*"}                      (SCAN over Redis)
 *            | {"query": "SELECT id FROM products WHERE featured",
 *               "origin": "db", "key_prefix": "products:"}   (a postgres origin's database)
 *            | {"hot": 100},                                 (the cluster's predicted hot keys)
 *    "priority": 5, "batch_size": 500, "concurrency": 64, "enabled": true}
 *
 * Only name and source are required; without a schedule a job runs when
 * triggered. A parsed job is a plain value with a few heap strings:
 * warm_job_clear frees them, warm_job_copy duplicates them.
 * Threads: pure functions, any thread.
 */
#ifndef DCACHE_WARM_JOB_H
#define DCACHE_WARM_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node/core/sbuf.h"
#include "node/warm/warm_cron.h"

#define WARM_NAME_MAX 64          /* bytes, NUL included: [A-Za-z0-9_.-]{1,63} */
#define WARM_KEYS_MAX 100000      /* keys one job may list */
#define WARM_HOT_MAX 10000        /* hot keys one job may ask for */
#define WARM_CONCURRENCY_MAX 4096

typedef enum { WARM_SRC_KEYS = 0, WARM_SRC_PATTERN, WARM_SRC_QUERY, WARM_SRC_HOT } warm_source_t;

typedef struct warm_job {
    char name[WARM_NAME_MAX];
    bool scheduled;             /* has a schedule */
    warm_cron_t cron;
    warm_source_t source;
    char **keys;                /* KEYS */
    size_t nkeys;
    char *pattern;              /* PATTERN */
    char *query, *origin, *key_prefix; /* QUERY */
    size_t hot;                 /* HOT: how many */
    int priority;               /* higher runs first: -1000..1000, default 0 */
    unsigned batch_size;        /* keys taken from the source at once, default 1000 */
    unsigned concurrency;       /* keys loading at once, default 64 */
    bool enabled;
    bool from_file;             /* declared in the file (read-only through the API) */
} warm_job_t;

/* Parses one job from JSON text; false with a message naming the field. */
bool warm_job_parse(warm_job_t *out, const char *json, size_t len, char *err, size_t errlen);
/* The same from a jansson object (the file's "jobs" items). */
struct json_t;
bool warm_job_from_json(warm_job_t *out, const struct json_t *obj, char *err, size_t errlen);
/* The job as JSON, as warm_job_parse reads it back. */
void warm_job_json(const warm_job_t *j, sbuf_t *out);
void warm_job_clear(warm_job_t *j);
bool warm_job_copy(warm_job_t *dst, const warm_job_t *src);
const char *warm_source_name(warm_source_t s);
bool warm_job_name_ok(const char *name);

#endif
