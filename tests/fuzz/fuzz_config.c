/* libFuzzer target for what an operator types: the command line (the input
 * split at NULs into arguments), the Redis URL, sizes, durations, the CORS
 * origin list and the URL pieces of a request (percent-decoding, query
 * lookups). Nothing may crash; a config that loads is freed cleanly. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_url.h"
#include "node/core/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static FILE *devnull;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!devnull) devnull = fopen("/dev/null", "w");
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';

    config_redis_t r;
    (void)config_parse_redis_url(s, &r);
    uint64_t v;
    (void)config_parse_size(s, &v);
    (void)config_parse_duration(s, 1000, &v);
    (void)config_host_is_loopback(s);
    (void)config_origin_listed(s, "https://a.example", 17);

    char *dec = malloc(size + 1);
    long n = http_url_decode((const char *)data, size, dec, true);
    if (n > (long)size) __builtin_trap();
    char val[64];
    (void)http_query_get((const char *)data, size, "pattern", val, sizeof val);
    const char *qv;
    size_t qlen;
    if (http_query_find((const char *)data, size, "limit", &qv, &qlen) &&
        (qv < (const char *)data || qv + qlen > (const char *)data + size))
        __builtin_trap();
    free(dec);

    /* argv: "dcache-node" then the input's NUL-separated pieces. */
    char *argv[34] = {"dcache-node"};
    int argc = 1;
    for (char *p = s; argc < 33 && p <= s + size;) {
        argv[argc++] = p;
        p += strlen(p) + 1;
    }
    char *env[] = {NULL};
    config_t cfg;
    config_result_t res = config_load(&cfg, argc, argv, env, devnull, devnull);
    if (res == CONFIG_OK && (!cfg.http_host || cfg.replicas < 1 || cfg.replicas > 5)) __builtin_trap();
    config_free(&cfg);
    free(s);
    return 0;
}
