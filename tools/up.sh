#!/usr/bin/env bash
# Installs what is missing, builds, and starts a local 3-node dcache cluster
# on loopback with embedded defaults (in-memory L1, no Redis, no PostgreSQL), then
# prints its URLs. Logs and pid files go to .run/.
#
#   tools/up.sh           start (restarts what this script started before)
#   tools/up.sh --stop    stop it
#
# Three nodes on 127.0.0.1: HTTP on 8080-8082, gossip and the peer channel
# (which shares the cluster port) on 7946-7948 (DCACHE_HTTP_PORT and
# DCACHE_CLUSTER_PORT move the ranges).
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

gport=${DCACHE_CLUSTER_PORT:-7946}
for i in 1 2 3; do
  "$top/build/dcache-node" --name "node$i" --http-host 127.0.0.1 --http-port $((port + i - 1)) \
    --cluster-port $((gport + i - 1)) --seeds "127.0.0.1:$gport" --audit-dir "$run/audit" \
    >"$run/node$i.out" 2>"$run/node$i.log" &
  echo $! >"$run/node$i.pid"
done
for i in 1 2 3; do
  url="http://127.0.0.1:$((port + i - 1))"
  for _ in $(seq 100); do
    [[ $(curl -fsS "$url/api/cluster/members" 2>/dev/null | jq '[.members[] | select(.state == "alive")] | length') == 3 ]] && break
    if ! kill -0 "$(cat "$run/node$i.pid")" 2>/dev/null; then
      echo "dcache-node node$i failed to start:" >&2; cat "$run/node$i.log" >&2; exit 1
    fi
    sleep 0.1
  done
done
cat <<MSG

dcache is running: a 3-node cluster on loopback (logs in .run/, stop with tools/up.sh --stop).
  node1      http://127.0.0.1:$port       (gossip and peer 127.0.0.1:$gport)
  node2      http://127.0.0.1:$((port + 1))       (gossip and peer 127.0.0.1:$((gport + 1)))
  node3      http://127.0.0.1:$((port + 2))       (gossip and peer 127.0.0.1:$((gport + 2)))
  dashboard  http://127.0.0.1:$port/
  API        http://127.0.0.1:$port/api/cache/{key}
  members    http://127.0.0.1:$port/api/cluster/members
  metrics    http://127.0.0.1:$port/metrics   (JSON: /api/metrics)
  CLI        build/dcache-admin --node http://127.0.0.1:$port members
MSG
