/* Compiles Debian's llhttp source http.c (node-llhttp, found by configure)
 * in place, so the parser is never copied into this tree. */
#include <http.c>
