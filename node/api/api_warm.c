/* api_warm: the warming endpoints (see the header). */
#include "node/api/api_warm.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "node/api/api_audit.h"
#include "node/api/api_http.h"
#include "node/warm/warm.h"

/* The warming engine, or NULL with a 503 answered. */
static warm_t *api_warm_engine(api_t *a, http_request_t *r)
{
    warm_t *w = atomic_load(&a->warm);
    if (!w) api_http_retry(r, METRICS_ERR_DRAINING, "warming is not running on this node (starting or stopping)");
    return w;
}

static void api_warm_refused(http_request_t *r, warm_api_result_t res, const char *name)
{
    char msg[160];
    switch (res) {
    case WARM_API_NOT_FOUND:
        snprintf(msg, sizeof msg, "no warming job is named %s", name);
        http_respond_error(r, 404, "job_not_found", msg);
        break;
    case WARM_API_READ_ONLY:
        snprintf(msg, sizeof msg, "job %s is declared in the origins file: change it there and send SIGHUP", name);
        http_respond_error(r, 409, "job_read_only", msg);
        break;
    case WARM_API_FULL: http_respond_error(r, 409, "too_many_jobs", "at most 256 jobs (64 ad-hoc runs waiting)"); break;
    case WARM_API_BUSY:
        snprintf(msg, sizeof msg, "job %s is running already", name);
        http_respond_error(r, 409, "job_running", msg);
        break;
    default: api_http_retry(r, METRICS_ERR_NO_MEMORY, "out of memory"); break;
    }
}

void api_warm_jobs(api_worker_t *w, http_request_t *r)
{
    warm_t *engine = api_warm_engine(w->api, r);
    if (!engine) return;
    sbuf_t b;
    sbuf_init(&b);
    warm_api_jobs_json(engine, &b);
    api_http_sbuf(r, 200, &b);
}

void api_warm_put(api_worker_t *w, http_request_t *r)
{
    warm_t *engine = api_warm_engine(w->api, r);
    if (!engine) return;
    json_t *body = api_http_json_body(r);
    if (!body) return;
    warm_job_t job;
    char err[300];
    if (!warm_job_from_json(&job, body, err, sizeof err)) {
        json_decref(body);
        http_respond_error(r, 400, "bad_job", err);
        return;
    }
    json_decref(body);
    warm_api_result_t res = warm_api_put(engine, &job);
    if (res != WARM_API_OK) {
        api_warm_refused(r, res, job.name);
        warm_job_clear(&job);
        return;
    }
    sbuf_t b;
    sbuf_init(&b);
    sbuf_puts(&b, "{\"job\":");
    warm_job_json(&job, &b);
    sbuf_puts(&b, "}");
    warm_job_clear(&job);
    api_http_sbuf(r, 201, &b);
}

void api_warm_delete(api_worker_t *w, http_request_t *r)
{
    warm_t *engine = api_warm_engine(w->api, r);
    if (!engine) return;
    size_t plen;
    const char *path = http_request_path(r, &plen);
    size_t pre = strlen(API_WARM_JOBS_PREFIX);
    char name[WARM_NAME_MAX];
    if (plen <= pre || plen - pre >= sizeof name) {
        http_respond_error(r, 400, "bad_name", "a job name is 1 to 63 letters, digits, '_', '-' or '.'");
        return;
    }
    memcpy(name, path + pre, plen - pre);
    name[plen - pre] = '\0';
    if (!warm_job_name_ok(name)) {
        http_respond_error(r, 400, "bad_name", "a job name is 1 to 63 letters, digits, '_', '-' or '.'");
        return;
    }
    warm_api_result_t res = warm_api_delete(engine, name);
    if (res != WARM_API_OK) {
        api_warm_refused(r, res, name);
        return;
    }
    static const char ok[] = "{\"deleted\":true}";
    api_http_json_headers(r, 200, ok, sizeof ok - 1, NULL, 0);
}

/* {"job": name}, or an ad-hoc run: {"keys": [...]} or {"pattern": ...},
 * with a job's optional priority, batch_size and concurrency. */
void api_warm_trigger(api_worker_t *w, http_request_t *r)
{
    warm_t *engine = api_warm_engine(w->api, r);
    if (!engine) return;
    json_t *body = api_http_json_body(r);
    if (!body) return;
    char actor[80], run_id[128] = "";
    api_audit_actor(w->api, r, actor, sizeof actor);
    const char *name = json_string_value(json_object_get(body, "job"));
    if (name) {
        if (json_object_size(body) != 1 || !warm_job_name_ok(name)) {
            json_decref(body);
            http_respond_error(r, 400, "bad_request", "{\"job\": NAME} names a job and nothing else");
            return;
        }
        char copy[WARM_NAME_MAX];
        snprintf(copy, sizeof copy, "%s", name);
        json_decref(body);
        warm_api_result_t res = warm_api_trigger(engine, copy, actor, NULL, 0);
        if (res != WARM_API_OK) {
            api_warm_refused(r, res, copy);
            return;
        }
        sbuf_t b;
        sbuf_init(&b);
        sbuf_puts(&b, "{\"triggered\":");
        sbuf_json_string(&b, copy, strlen(copy));
        sbuf_puts(&b, "}");
        api_http_sbuf(r, 202, &b);
        return;
    }
    /* Ad hoc: the body is a job without a name, its keys or pattern at the
     * top; warm_job reads it once reshaped. */
    json_t *job = json_object();
    json_t *source = json_object();
    const char *field;
    json_t *v;
    bool bad = !job || !source;
    json_object_foreach(body, field, v) {
        if (strcmp(field, "keys") == 0 || strcmp(field, "pattern") == 0) json_object_set(source, field, v);
        else if (strcmp(field, "priority") == 0 || strcmp(field, "batch_size") == 0 || strcmp(field, "concurrency") == 0)
            json_object_set(job, field, v);
        else bad = true;
    }
    json_decref(body);
    if (bad || json_object_size(source) != 1) {
        json_decref(job);
        json_decref(source);
        http_respond_error(r, 400, "bad_request",
                           "give {\"job\": NAME}, {\"keys\": [...]} or {\"pattern\": \"...\"} (with priority, "
                           "batch_size, concurrency if you like), nothing else");
        return;
    }
    json_object_set_new(job, "name", json_string("adhoc"));
    json_object_set_new(job, "source", source);
    warm_job_t parsed;
    char err[300];
    bool ok = warm_job_from_json(&parsed, job, err, sizeof err);
    json_decref(job);
    if (!ok) {
        http_respond_error(r, 400, "bad_job", err);
        return;
    }
    warm_api_result_t res = warm_api_trigger_adhoc(engine, &parsed, actor, run_id, sizeof run_id);
    warm_job_clear(&parsed);
    if (res != WARM_API_OK) {
        api_warm_refused(r, res, "adhoc");
        return;
    }
    sbuf_t b;
    sbuf_init(&b);
    sbuf_puts(&b, "{\"run\":");
    sbuf_json_string(&b, run_id, strlen(run_id));
    sbuf_puts(&b, "}");
    api_http_sbuf(r, 202, &b);
}

void api_warm_cancel(api_worker_t *w, http_request_t *r)
{
    warm_t *engine = api_warm_engine(w->api, r);
    if (!engine) return;
    json_t *body = api_http_json_body(r);
    if (!body) return;
    const char *name = json_string_value(json_object_get(body, "job"));
    char copy[WARM_NAME_MAX] = "";
    if (name && json_object_size(body) == 1 && warm_job_name_ok(name)) snprintf(copy, sizeof copy, "%s", name);
    json_decref(body);
    if (!copy[0]) {
        http_respond_error(r, 400, "bad_request", "{\"job\": NAME} names the job whose run to cancel");
        return;
    }
    warm_api_result_t res = warm_api_cancel(engine, copy);
    if (res != WARM_API_OK) {
        api_warm_refused(r, res, copy);
        return;
    }
    static const char ok[] = "{\"cancelled\":true}";
    api_http_json_headers(r, 202, ok, sizeof ok - 1, NULL, 0);
}

void api_warm_history(api_worker_t *w, http_request_t *r)
{
    warm_t *engine = api_warm_engine(w->api, r);
    if (!engine) return;
    uint64_t limit;
    if (!api_http_query_uint(r, "limit", 50, 1, WARM_HISTORY_MAX, &limit)) return;
    sbuf_t b;
    sbuf_init(&b);
    warm_api_history_json(engine, (size_t)limit, &b);
    api_http_sbuf(r, 200, &b);
}

void api_warm_hot(api_worker_t *w, http_request_t *r)
{
    warm_t *engine = api_warm_engine(w->api, r);
    if (!engine) return;
    uint64_t limit;
    if (!api_http_query_uint(r, "limit", 50, 1, 1000, &limit)) return;
    sbuf_t b;
    sbuf_init(&b);
    warm_hot_json(warm_predicted(engine), (size_t)limit, &b);
    api_http_sbuf(r, 200, &b);
}
