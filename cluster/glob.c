#include "cluster/glob.h"

/* Matches one class "[...]" starting just after '[' against byte c.
 * Returns the pattern index just past the closing ']' (or the end of the
 * pattern when unterminated, as Redis does) and sets *matched. */
static size_t glob_match_class(const unsigned char *p, size_t plen, size_t i, unsigned char c,
                               bool *matched)
{
    bool negate = false, hit = false;
    if (i < plen && p[i] == '^') {
        negate = true;
        i++;
    }
    while (i < plen && p[i] != ']') {
        if (p[i] == '\\' && i + 1 < plen) {
            i++;
            if (p[i] == c) hit = true;
            i++;
        } else if (i + 2 < plen && p[i + 1] == '-') {
            unsigned char lo = p[i], hi = p[i + 2];
            if (lo > hi) {
                unsigned char t = lo;
                lo = hi;
                hi = t;
            }
            if (c >= lo && c <= hi) hit = true;
            i += 3;
        } else {
            if (p[i] == c) hit = true;
            i++;
        }
    }
    if (i < plen) i++; /* the ']' */
    *matched = negate ? !hit : hit;
    return i;
}

bool glob_match(const char *pattern, size_t plen, const char *string, size_t slen)
{
    const unsigned char *p = (const unsigned char *)pattern;
    const unsigned char *s = (const unsigned char *)string;
    size_t pi = 0, si = 0;
    /* Where to resume after the last '*': pattern just past it, string one
     * further than last time. Every non-star token consumes exactly one
     * byte, so retrying only the last star is enough. */
    size_t star_p = (size_t)-1, star_s = 0;

    while (si < slen) {
        if (pi < plen) {
            unsigned char pc = p[pi];
            if (pc == '*') {
                while (pi < plen && p[pi] == '*') pi++;
                if (pi == plen) return true;
                star_p = pi;
                star_s = si;
                continue;
            }
            if (pc == '?') {
                pi++;
                si++;
                continue;
            }
            if (pc == '[') {
                bool matched;
                size_t next = glob_match_class(p, plen, pi + 1, s[si], &matched);
                if (matched) {
                    pi = next;
                    si++;
                    continue;
                }
            } else {
                size_t lit = pi;
                if (pc == '\\' && pi + 1 < plen) lit = pi + 1;
                if (p[lit] == s[si]) {
                    pi = lit + 1;
                    si++;
                    continue;
                }
            }
        }
        if (star_p == (size_t)-1) return false;
        pi = star_p;
        si = ++star_s;
    }
    while (pi < plen && p[pi] == '*') pi++;
    return pi == plen;
}

bool glob_is_literal(const char *pattern, size_t plen)
{
    for (size_t i = 0; i < plen; i++) {
        char c = pattern[i];
        if (c == '*' || c == '?' || c == '[' || c == '\\') return false;
    }
    return true;
}
