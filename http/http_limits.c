#include "http/http_limits.h"

void http_limits_default(http_limits_t *l)
{
    l->max_header_bytes = 16384;
    l->max_headers = 100;
    l->max_body_bytes = 1u << 20;
    l->header_timeout_ms = 10000;
    l->idle_timeout_ms = 60000;
    l->max_connections = 10000;
}
