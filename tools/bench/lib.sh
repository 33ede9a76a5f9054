# Shared helpers for benchmarks: binaries, free ports, process cleanup.
# Benchmarks print figures and ratios against a reference measured in the
# same run; they never pass or fail.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
: "${DCACHE_NODE_BIN:=$top/build/dcache-node}"
BENCH_TMP=$(mktemp -d "${TMPDIR:-/tmp}/dcache-bench.XXXXXX")
BENCH_PIDS=()
bench_cleanup() {
  local p
  for p in "${BENCH_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$BENCH_TMP"
}
trap bench_cleanup EXIT

[[ -x $DCACHE_NODE_BIN ]] || { echo "build first: tools/setup.sh (no $DCACHE_NODE_BIN)" >&2; exit 1; }

# free_port: a loopback TCP port nobody listens on, below the kernel's
# ephemeral range (a port some client socket is using refuses connections
# but cannot be bound: wrk and the peer channel hold hundreds), and not
# handed out before in this run (callers take several before binding any;
# $(free_port) runs in a subshell, hence the file).
free_port() {
  local p lo=32768 _hi
  read -r lo _hi </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
  ((lo > 11000)) || lo=61000
  while :; do
    p=$((10000 + RANDOM % (lo - 10000)))
    grep -qx "$p" "$BENCH_TMP/ports" 2>/dev/null && continue
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && continue
    echo "$p" >>"$BENCH_TMP/ports"
    echo "$p"
    return
  done
}

# start_dcache [flags...]: starts a node on a free port; sets DC_PORT, DC_PID.
start_dcache() {
  local log="$BENCH_TMP/dcache.log"
  "$DCACHE_NODE_BIN" --http-port 0 --cluster-port 0 --peer-port 0 --audit-dir "$BENCH_TMP/audit" "$@" 2>"$log" &
  DC_PID=$!
  BENCH_PIDS+=("$DC_PID")
  DC_PORT=""
  for _ in $(seq 200); do
    DC_PORT=$(grep -o '"port":[0-9]*' "$log" | head -1 | cut -d: -f2 || true)
    [[ -n $DC_PORT ]] && break
    sleep 0.05
  done
  [[ -n $DC_PORT ]] || { cat "$log" >&2; echo "dcache-node did not start" >&2; exit 1; }
}

rss_bytes() { # PID
  awk '/^VmRSS:/ {print $2 * 1024}' "/proc/$1/status"
}

# pipe_requests PORT FILE: sends FILE (pipelined HTTP requests, the last with
# Connection: close) on one connection and waits for every response.
pipe_requests() {
  local port=$1 file=$2
  exec 7<>"/dev/tcp/127.0.0.1/$port"
  cat "$file" >&7 &
  local writer=$!
  cat <&7 >/dev/null
  wait "$writer" || true
  exec 7<&- 7>&-
}

# wrk_summary FILE: "req/s p50_ms p99_ms" from wrk --latency output.
wrk_summary() {
  awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /Requests\/sec:/ { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    END { printf "%.0f %.3f %.3f\n", rps, p50, p99 }' "$1"
}
