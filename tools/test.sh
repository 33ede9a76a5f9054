#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: the dashboard's
# component tests, unit and integration tests (make check, the dashboard's
# browser test among them) in a normal build and again under
# AddressSanitizer + UndefinedBehaviorSanitizer, a short libFuzzer run of
# the wire codecs, the chaos harness's short suite, then make distcheck.
# This is what CI runs (.ci/run).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/tools/setup.sh" --asan --test
jobs=$(nproc 2>/dev/null || echo 2)

run_check() { # dir
  echo "test: make check in $1 ($(date +%T))"
  if ! make -C "$top/$1" -s -j"$jobs" check; then
    find "$top/$1/tests" -name '*.log' -newer "$top/$1/Makefile" -print0 2>/dev/null |
      xargs -0 grep -l -E '^(FAIL|ERROR)|\[  FAILED  \]|not ok' 2>/dev/null |
      while read -r f; do echo "===== $f"; tail -n 80 "$f"; done
    exit 1
  fi
}

echo "test: dashboard component tests ($(date +%T))"
(cd "$top/dashboard" && npm test --silent)
run_check build
# The browser drives the normal build's nodes only: under the sanitizers
# dashboard.sh checks the serving, not the page again.
DCACHE_E2E=0 ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run_check build-asan
echo "test: fuzzing at $(date +%T) (short run; tests/fuzz/run.sh SECONDS for longer)"
"$top/tests/fuzz/run.sh" 6
echo "test: chaos at $(date +%T) (checkers' unit tests, then the short suite; chaos/run --help for longer runs)"
python3 -m unittest discover -s "$top/chaos/tests"
DCACHE_NODE_BIN="$top/build/dcache-node" "$top/chaos/run" --suite short
echo "test: make distcheck ($(date +%T))"
# Unit tests only in the tarball's build: the integration tests ran twice above.
make -C "$top/build" -s -j"$jobs" distcheck DISTCHECK_CONFIGURE_FLAGS=-q RUN_INTEGRATION_TESTS= >/dev/null
echo "test: all passed ($(date +%T))"
