#include "node/core/backoff.h"

void backoff_init(backoff_t *b, uint64_t min_ms, uint64_t max_ms)
{
    b->min_ms = min_ms;
    b->max_ms = max_ms;
    b->cur_ms = 0;
}

uint64_t backoff_next(backoff_t *b)
{
    if (b->cur_ms == 0) b->cur_ms = b->min_ms;
    else b->cur_ms = b->cur_ms > b->max_ms / 2 ? b->max_ms : b->cur_ms * 2;
    if (b->cur_ms > b->max_ms) b->cur_ms = b->max_ms;
    return b->cur_ms;
}

void backoff_reset(backoff_t *b)
{
    b->cur_ms = 0;
}
