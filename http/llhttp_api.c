/* Compiles Debian's llhttp source api.c (node-llhttp, found by configure)
 * in place, so the parser is never copied into this tree. */
#include <api.c>
