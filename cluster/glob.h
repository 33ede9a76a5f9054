/* glob: Redis's glob language, so that L1 (this matcher) and L2 (Redis's
 * SCAN MATCH) always agree on which keys a pattern names.
 *
 *   *      any run of bytes, including none
 *   ?      exactly one byte
 *   [abc]  one byte of the set; [a-z] a range (reversed ranges are swapped,
 *          as in Redis); [^abc] any byte not in the set; \ escapes inside
 *   \x     the byte x literally
 *
 * Keys and patterns are binary-safe byte strings. Matching is iterative with
 * backtracking to the last star only, so it runs in O(len(pattern) *
 * len(string)) whatever the pattern (Redis itself once had an exponential
 * case, CVE-2022-36021). Pure: no allocation, no I/O; safe from any thread.
 */
#ifndef DCACHE_GLOB_H
#define DCACHE_GLOB_H

#include <stdbool.h>
#include <stddef.h>

bool glob_match(const char *pattern, size_t pattern_len, const char *string, size_t string_len);

/* True when the pattern contains no special character, i.e. it names exactly
 * one key (after removing escapes); lets callers take a direct lookup. */
bool glob_is_literal(const char *pattern, size_t pattern_len);

#endif
