#include "cluster/hlc.h"

void hlc_init(hlc_t *c)
{
    c->last = 0;
}

static uint64_t hlc_from_ms(int64_t now_ms)
{
    if (now_ms < 0) now_ms = 0;
    return (uint64_t)now_ms << HLC_LOGICAL_BITS;
}

uint64_t hlc_stamp(hlc_t *c, int64_t now_ms)
{
    uint64_t physical = hlc_from_ms(now_ms);
    /* When the wall clock is behind the last stamp (or within its
     * millisecond), the logical counter carries on; an overflowing counter
     * borrows from the next millisecond, which keeps order. */
    c->last = physical > c->last ? physical : c->last + 1;
    return c->last;
}

void hlc_observe(hlc_t *c, uint64_t remote, int64_t now_ms)
{
    uint64_t physical = hlc_from_ms(now_ms);
    uint64_t top = physical > c->last ? physical : c->last;
    if (remote > top) top = remote;
    c->last = top;
}

bool hlc_plausible(uint64_t version, int64_t now_ms, int64_t max_ahead_ms)
{
    return hlc_physical_ms(version) - now_ms <= max_ahead_ms;
}

bool hlc_observe_within(hlc_t *c, uint64_t remote, int64_t now_ms, int64_t max_ahead_ms)
{
    if (!hlc_plausible(remote, now_ms, max_ahead_ms)) return false;
    hlc_observe(c, remote, now_ms);
    return true;
}

int64_t hlc_physical_ms(uint64_t version)
{
    return (int64_t)(version >> HLC_LOGICAL_BITS);
}
