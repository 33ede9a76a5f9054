/* Compiles Debian's llhttp source llhttp.c (node-llhttp, found by configure)
 * in place, so the parser is never copied into this tree. */
#include <llhttp.c>
