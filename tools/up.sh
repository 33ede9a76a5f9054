#!/usr/bin/env bash
# Installs what is missing, builds, and starts a local dcache on loopback
# with embedded defaults (in-memory L1, no Redis, no PostgreSQL), then
# prints its URLs. Logs and pid files go to .run/.
#
#   tools/up.sh           start (restarts what this script started before)
#   tools/up.sh --stop    stop it
#
# Until membership lands (issue 3) this is one standalone node; it becomes
# a 3-node cluster then.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
run="$top/.run"
port=${DCACHE_HTTP_PORT:-8080}

stop_all() {
  shopt -s nullglob
  for pidf in "$run"/*.pid; do
    pid=$(cat "$pidf")
    if kill "$pid" 2>/dev/null; then
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$pidf"
  done
}

if [[ ${1:-} == --stop ]]; then stop_all; echo "stopped"; exit 0; fi
if [[ -n ${1:-} ]]; then sed -n '2,10p' "$0"; exit 2; fi

"$top/tools/setup.sh"
mkdir -p "$run"
stop_all

"$top/build/dcache-node" --http-host 127.0.0.1 --http-port "$port" >"$run/node1.out" 2>"$run/node1.log" &
echo $! >"$run/node1.pid"
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  if ! kill -0 "$(cat "$run/node1.pid")" 2>/dev/null; then
    echo "dcache-node failed to start:" >&2; cat "$run/node1.log" >&2; exit 1
  fi
  sleep 0.1
done
cat <<MSG

dcache is running (logs in .run/node1.log, stop with tools/up.sh --stop):
  API        http://127.0.0.1:$port/api/cache/{key}
  metrics    http://127.0.0.1:$port/metrics   (JSON: /api/metrics)
  health     http://127.0.0.1:$port/health    http://127.0.0.1:$port/ready
  CLI        build/dcache-admin --node http://127.0.0.1:$port health
MSG
