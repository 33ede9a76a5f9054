#!/bin/sh
# Builds the libFuzzer targets with clang (not through automake: the main
# build may use gcc) and runs each for N seconds (default 30) from seeds the
# targets write themselves. Prints the executions of each run; exits non-zero
# when a target crashes, keeping the work directory with the crashing input.
#
# Seeds also come from tests/fuzz/corpus/TARGET/ when it exists.
#
#   tests/fuzz/run.sh [seconds] [target...]
#   targets: swim_proto seal peer_proto peer_hs glob tokens config journal http
set -eu

secs=${1:-30}
[ $# -gt 0 ] && shift
targets=${*:-swim_proto seal peer_proto peer_hs glob tokens config journal http}
top=$(cd "$(dirname "$0")/../.." && pwd)
cc=${CLANG:-clang}

if ! command -v "$cc" >/dev/null 2>&1; then
    echo "fuzz: $cc not found (apt-get install clang)" >&2
    exit 77
fi
msgpack_pc=msgpack-c
pkg-config --exists msgpack-c 2>/dev/null || msgpack_pc=msgpack
work=$(mktemp -d "${TMPDIR:-/tmp}/dcache-fuzz.XXXXXX")
# config.c reads the version from the build's autoconfig.h; any will do.
printf '#define PACKAGE_VERSION "fuzz"\n' >"$work/autoconfig.h"
cflags="-std=gnu11 -D_GNU_SOURCE -g -O1 -I$top -I$work $(pkg-config --cflags $msgpack_pc libsodium libuv)
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
        -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter"
libs="$(pkg-config --libs $msgpack_pc libsodium libuv) -lpthread -lm"
llhttp_src=${LLHTTP_SRCDIR:-/usr/share/llhttp}
llhttp_inc=${LLHTTP_INCDIR:-/usr/share/include/llhttp}

failed=0

for t in $targets; do
    case $t in
    swim_proto) srcs="$top/cluster/swim_proto.c $top/cluster/mpk.c" ;;
    seal) srcs="$top/cluster/seal.c" ;;
    peer_proto) srcs="$top/cluster/peer_proto.c $top/cluster/mpk.c $top/cluster/seal.c" ;;
    peer_hs) srcs="$top/cluster/peer_hs.c $top/cluster/seal.c" ;;
    glob) srcs="$top/cluster/glob.c" ;;
    tokens) srcs="$top/node/core/tokens.c" ;;
    config) srcs="$top/node/core/config.c $top/node/core/log.c $top/http/http_url.c" ;;
    journal) srcs="$top/node/l2/journal.c $top/node/l2/journal_pending.c $top/cluster/ring.c $top/cluster/seal.c" ;;
    http)
        # The whole node but main: llhttp's sources as the build takes
        # them (Debian's, compiled in place, warnings off), then ours.
        mkdir -p "$work/llhttp"
        for f in api http llhttp; do
            # shellcheck disable=SC2086
            $cc -std=gnu11 -g -O1 -w -fsanitize=fuzzer-no-link,address,undefined -I"$llhttp_inc" \
                -c "$llhttp_src/$f.c" -o "$work/llhttp/$f.o"
        done
        # The dashboard's files, as the build embeds them (it built them).
        "$top/tools/dashboard-embed.sh" --no-build "$top/dashboard" "$work/api_dashboard_assets.c"
        srcs="$(find "$top/node" "$top/cluster" -name '*.c' ! -name main.c ! -name worker.c | sort)
              $(find "$top/http" -name '*.c' ! -name 'llhttp_*.c' | sort) $work/api_dashboard_assets.c $work/llhttp/*.o"
        ;;
    *) echo "fuzz: unknown target $t" >&2; exit 2 ;;
    esac
    bin="$work/fuzz_$t"
    extra=""
    [ "$t" = http ] && extra="-I$llhttp_inc $(pkg-config --cflags jansson hiredis libpq libcurl) $(pkg-config --libs jansson hiredis libpq libcurl)"
    # shellcheck disable=SC2086
    $cc $cflags "$top/tests/fuzz/fuzz_$t.c" $srcs -o "$bin" $libs $extra
    corpus="$work/corpus_$t"
    mkdir -p "$corpus"
    if [ -d "$top/tests/fuzz/corpus/$t" ]; then cp "$top/tests/fuzz/corpus/$t"/* "$corpus"/ 2>/dev/null || true; fi
    log="$work/fuzz_$t.log"
    rc=0
    FUZZ_SEED_DIR="$corpus" "$bin" "$corpus" -max_total_time="$secs" -max_len=4096 -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$work/$t-" >"$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 || true)
    echo "fuzz_$t: ${execs:-?} executions in ${secs}s (${rate:-?}/s), ${cov:-cov: ?}, corpus $(ls "$corpus" | wc -l)"
    if [ "$rc" -ne 0 ]; then
        echo "fuzz_$t: FAILED (exit $rc); log and crashing input in $work" >&2
        tail -n 40 "$log" >&2
        failed=1
    fi
done

if [ "$failed" -ne 0 ]; then exit 1; fi
[ -n "${FUZZ_KEEP:-}" ] && echo "fuzz: kept $work" || rm -rf "$work"
