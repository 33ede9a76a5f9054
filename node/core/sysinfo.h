/* sysinfo: facts about this process for metrics (RSS, CPU time, open file
 * descriptors, start time) and the machine (core count). Linux /proc. */
#ifndef DCACHE_SYSINFO_H
#define DCACHE_SYSINFO_H

#include <stdint.h>

typedef struct sysinfo_process {
    uint64_t rss_bytes;
    uint64_t virtual_bytes;
    double cpu_seconds;
    uint64_t open_fds;
} sysinfo_process_t;

/* Returns 0, or -1 when /proc could not be read (fields left at 0). */
int sysinfo_process(sysinfo_process_t *out);
unsigned sysinfo_cores(void);
/* Milliseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t sysinfo_now_ms(void);

#endif
