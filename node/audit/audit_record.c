#include "node/audit/audit_record.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const audit_action_names[AUDIT_ACTIONS] = {
    "delete", "invalidate", "invalidate_pattern", "warm", "tokens_reload", "warm_job", "origins_reload",
};

const char *audit_action_name(audit_action_t a)
{
    return a < AUDIT_ACTIONS ? audit_action_names[a] : "unknown";
}

bool audit_action_parse(const char *s, size_t len, audit_action_t *out)
{
    for (int i = 0; i < AUDIT_ACTIONS; i++)
        if (strlen(audit_action_names[i]) == len && memcmp(audit_action_names[i], s, len) == 0) {
            *out = (audit_action_t)i;
            return true;
        }
    return false;
}

void audit_record_clear(audit_record_t *r)
{
    free(r->keys);
    free(r->pattern);
    r->keys = r->pattern = NULL;
}

/* ---- JSON ---- */

static void audit_time_text(int64_t ms, char *buf, size_t cap)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    char head[32];
    strftime(head, sizeof head, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, cap, "%s.%03dZ", head, (int)(ms % 1000));
}

void audit_record_json(sbuf_t *b, const audit_record_t *r, const char *node, const char *id)
{
    char when[40];
    audit_time_text(r->time_ms, when, sizeof when);
    sbuf_puts(b, "{\"id\":");
    sbuf_json_string(b, id, strlen(id));
    sbuf_printf(b, ",\"time\":\"%s\",\"time_ms\":%" PRId64 ",\"node\":", when, r->time_ms);
    sbuf_json_string(b, node, strlen(node));
    sbuf_puts(b, ",\"actor\":");
    sbuf_json_string(b, r->actor, strlen(r->actor));
    sbuf_printf(b, ",\"action\":\"%s\"", audit_action_name(r->action));
    if (r->keys) {
        sbuf_puts(b, ",\"keys\":");
        sbuf_puts(b, r->keys);
        sbuf_printf(b, ",\"key_count\":%" PRIu64, r->key_count);
    }
    if (r->pattern) {
        sbuf_puts(b, ",\"pattern\":");
        sbuf_json_string(b, r->pattern, strlen(r->pattern));
    }
    if (r->action == AUDIT_INVALIDATE_PATTERN) sbuf_printf(b, ",\"dry_run\":%s", r->dry_run ? "true" : "false");
    if (r->matched >= 0) sbuf_printf(b, ",\"matched\":%" PRId64, r->matched);
    if (r->invalidated >= 0) sbuf_printf(b, ",\"invalidated\":%" PRId64, r->invalidated);
    sbuf_printf(b, ",\"status\":%d,\"result\":", r->status);
    sbuf_json_string(b, r->result, strlen(r->result));
    sbuf_printf(b, ",\"duration_ms\":%.3f,\"request_id\":", (double)r->duration_us / 1000.0);
    sbuf_json_string(b, r->request_id, strlen(r->request_id));
    sbuf_puts(b, "}");
}

