# Shared helpers for integration tests: start real dcache-node processes on
# free loopback ports, poll with deadlines, assert, and clean up.
# Sourced by the test scripts; expects DCACHE_NODE_BIN and DCACHE_ADMIN_BIN
# (set by make check; defaults point at the build tree).
set -euo pipefail
# Writing to a socket the server closed must fail the write, not kill the
# test shell.
trap '' PIPE

: "${DCACHE_NODE_BIN:=$(pwd)/dcache-node}"
: "${DCACHE_ADMIN_BIN:=$(pwd)/dcache-admin}"
TEST_NAME=$(basename "$0")
TEST_TMP=$(mktemp -d "${TMPDIR:-/tmp}/dcache-test.XXXXXX")
NODE_PIDS=()
PG_PIDS=()
FAILS=0
CHECKS=0

cleanup() {
  local pid
  # A PostgreSQL's backends outlive its postmaster for a moment: kill them too.
  for pid in "${PG_PIDS[@]}"; do pkill -9 -P "$pid" 2>/dev/null || true; done
  for pid in "${NODE_PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  for pid in "${NODE_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$TEST_TMP"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }
pass() { CHECKS=$((CHECKS + 1)); }

assert_eq() { # expected actual message
  if [[ "$1" == "$2" ]]; then pass; else fail "$3: expected [$1], got [$2]"; fi
}
assert_match() { # regex actual message
  if [[ "$2" =~ $1 ]]; then pass; else fail "$3: [$2] does not match /$1/"; fi
}

# start_node NAME [flags...]: starts a node on free HTTP and cluster ports
# (the peer channel shares the cluster port unless a --peer-port is given);
# sets NODE_URL, NODE_PORT, NODE_GOSSIP_PORT and NODE_PID, and NODE_LOG to
# its log file.
start_node() {
  local name=$1; shift
  launch_node "$name" --http-port 0 --cluster-port 0 "$@"
}

# launch_node NAME [flags...]: start_node with exactly these flags (ports
# included), as someone starting a node by hand would.
launch_node() {
  local name=$1; shift
  NODE_LOG="$TEST_TMP/$name.log"
  : >"$NODE_LOG"
  # In the test's directory: what a node keeps in relative directories by
  # default (the audit trail) stays there.
  (cd "$TEST_TMP" && exec "$DCACHE_NODE_BIN" "$@") >"$TEST_TMP/$name.out" 2>>"$NODE_LOG" &
  NODE_PID=$!
  NODE_PIDS+=("$NODE_PID")
  local deadline=$((SECONDS + 20))
  NODE_PORT=""
  NODE_GOSSIP_PORT=""
  while [[ -z $NODE_PORT || -z $NODE_GOSSIP_PORT ]]; do
    NODE_PORT=$(grep -o '"msg":"http listening"[^}]*"port":[0-9]*' "$NODE_LOG" 2>/dev/null | grep -o '[0-9]*$' || true)
    NODE_GOSSIP_PORT=$(grep -o '"msg":"gossip listening"[^}]*"port":[0-9]*' "$NODE_LOG" 2>/dev/null | grep -o '[0-9]*$' || true)
    if [[ -z $NODE_PORT || -z $NODE_GOSSIP_PORT ]]; then
      kill -0 "$NODE_PID" 2>/dev/null || { cat "$NODE_LOG" >&2; echo "node $name died at start" >&2; exit 1; }
      ((SECONDS < deadline)) || { echo "node $name did not start" >&2; exit 1; }
      sleep 0.05
    fi
  done
  NODE_URL="http://127.0.0.1:$NODE_PORT"
  wait_for "node $name healthy" curl -fsS "$NODE_URL/health" -o /dev/null
}

# stop_node PID: SIGTERM, then expects a clean exit 0 within the deadline.
stop_node() {
  local pid=$1 rc=0
  kill -TERM "$pid"
  wait "$pid" || rc=$?
  assert_eq 0 "$rc" "node exits 0 on SIGTERM"
}

# wait_for DESCRIPTION CMD...: polls CMD until it succeeds (10 s deadline).
wait_for() {
  local what=$1; shift
  local deadline=$((SECONDS + ${WAIT_SECONDS:-10}))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then fail "timed out waiting for: $what"; return 1; fi
    sleep 0.05
  done
}

# http METHOD PATH [curl args...]: sets STATUS, BODY and HEADERS. Only
# curl is a process of its own: tests make hundreds of these calls, and a
# process spawned per file read cost some tests half their time.
http() {
  local method=$1 path=$2; shift 2
  local hfile="$TEST_TMP/headers" bfile="$TEST_TMP/body"
  : >"$hfile"
  : >"$bfile"
  local how=(-X "$method")
  [[ $method == HEAD ]] && how=(-I) # -X HEAD would wait for a body
  STATUS=$(curl -sS -o "$bfile" -D "$hfile" -w '%{http_code}' "${how[@]}" "$@" "$NODE_URL$path" || true)
  BODY=$(<"$bfile")
  HEADERS=$(<"$hfile")
  HEADERS=${HEADERS//$'\r'/}
}

header() { # NAME -> value of the (first) header NAME in HEADERS
  local want=${1,,} line
  while IFS= read -r line; do
    if [[ ${line,,} == "$want: "* ]]; then
      printf '%s\n' "${line#*: }"
      return
    fi
  done <<<"$HEADERS"
}

json() { # FILTER -> jq over BODY
  printf '%s' "$BODY" | jq -r "$1"
}

# raw_http PORT DATA: writes DATA on a fresh connection and prints what the
# server answers until it closes or 5 s pass.
raw_http() {
  local port=$1 data=$2
  exec 9<>"/dev/tcp/127.0.0.1/$port"
  printf '%b' "$data" >&9
  timeout 5 cat <&9 2>/dev/null || true
  exec 9<&- 9>&-
}

finish() {
  if ((FAILS)); then
    echo "$TEST_NAME: $FAILS failed, $CHECKS passed" >&2
    exit 1
  fi
  echo "$TEST_NAME: all $CHECKS checks passed"
}

# output_is EXPECTED CMD...: CMD prints EXPECTED (run anew each time, so
# wait_for can poll it: wait_for "..." output_is 2 some_count).
output_is() {
  local want=$1; shift
  [[ $("$@" 2>/dev/null) == "$want" ]]
}

# status_everywhere KEY STATUS URL...: every node answers GET KEY with STATUS.
status_everywhere() {
  local key=$1 want=$2 u; shift 2
  for u in "$@"; do
    [[ $(curl -sS -o /dev/null -w '%{http_code}' "$u/api/cache/$key") == "$want" ]] || return 1
  done
}

# metric_sum SERIES URL...: the series' value summed over the nodes (0 when absent).
metric_sum() {
  local series=$1 u v total=0; shift
  for u in "$@"; do
    v=$(curl -fsS "$u/metrics" | awk -v m="$series" '$1 == m {print $2}')
    total=$((total + ${v:-0}))
  done
  echo "$total"
}

# pick_port: a free loopback port below the kernel's ephemeral range, so
# no outgoing connection of another test holds it when a server binds it.
pick_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 12000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}

# start_redis NAME [flags...]: a redis-server on a free loopback port in a
# temporary directory, no persistence; sets REDIS_PORT and REDIS_PID. The
# cleanup kills it with the nodes.
start_redis() {
  local name=$1; shift
  command -v redis-server >/dev/null || { echo "redis-server is not installed (tools/setup.sh installs it)" >&2; exit 1; }
  mkdir -p "$TEST_TMP/$name"
  local tries
  for tries in 1 2 3 4 5; do
    REDIS_PORT=${REDIS_FIXED_PORT:-$(pick_port)}
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$TEST_TMP/$name" \
      --daemonize no "$@" >"$TEST_TMP/$name.log" 2>&1 &
    REDIS_PID=$!
    NODE_PIDS+=("$REDIS_PID")
    local deadline=$((SECONDS + 10))
    while ((SECONDS < deadline)); do
      [[ $(redis-cli -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]] && return 0
      kill -0 "$REDIS_PID" 2>/dev/null || break
      sleep 0.05
    done
  done
  echo "redis-server did not start" >&2
  cat "$TEST_TMP/$name.log" >&2
  exit 1
}

# start_postgres [NAME]: a PostgreSQL on a free loopback port (initdb in a
# temporary directory, trust authentication, user dcache); sets PG_PORT,
# PG_PID, PG_DATA and PG_URL. As root it runs as the postgres user, which
# Debian's package creates (PostgreSQL refuses to run as root). The
# cleanup kills it with the nodes. restart_postgres starts it again on the
# same port and data after stop_postgres.
PG_BIN=""
postgres_as() {
  if ((EUID == 0)); then setpriv --reuid postgres --regid postgres --init-groups -- "$@"; else "$@"; fi
}
start_postgres() {
  local name=${1:-pg}
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [[ -x $PG_BIN/initdb ]] || { echo "PostgreSQL is not installed (tools/setup.sh installs it)" >&2; exit 1; }
  PG_DATA="$TEST_TMP/$name"
  mkdir -p "$PG_DATA"
  if ((EUID == 0)); then chmod 755 "$TEST_TMP"; chown postgres "$PG_DATA"; fi
  postgres_as "$PG_BIN/initdb" -D "$PG_DATA/data" -A trust -U dcache --no-sync -E UTF8 >"$TEST_TMP/$name-initdb.log" 2>&1 ||
    { cat "$TEST_TMP/$name-initdb.log" >&2; exit 1; }
  PG_PORT=$(pick_port)
  PG_URL="postgres://dcache@127.0.0.1:$PG_PORT/postgres"
  restart_postgres
}
restart_postgres() {
  local argv=("$PG_BIN/postgres" -D "$PG_DATA/data" -k "$PG_DATA" -p "$PG_PORT" -h 127.0.0.1 -F
    -c fsync=off -c full_page_writes=off)
  # Not through a shell function: $! must be the postmaster itself, which
  # setpriv becomes, so that stop_postgres signals it.
  if ((EUID == 0)); then
    setpriv --reuid postgres --regid postgres --init-groups -- "${argv[@]}" >>"$PG_DATA.log" 2>&1 &
  else
    "${argv[@]}" >>"$PG_DATA.log" 2>&1 &
  fi
  PG_PID=$!
  NODE_PIDS+=("$PG_PID")
  PG_PIDS+=("$PG_PID")
  local deadline=$((SECONDS + 20))
  until psql "$PG_URL" -Atc 'select 1' >/dev/null 2>&1; do
    kill -0 "$PG_PID" 2>/dev/null && ((SECONDS < deadline)) || { cat "$PG_DATA.log" >&2; echo "postgres did not start" >&2; exit 1; }
    sleep 0.1
  done
}
# stop_postgres: a fast shutdown (SIGINT), waited for: an outage.
stop_postgres() {
  kill -INT "$PG_PID"
  wait "$PG_PID" 2>/dev/null || true
}
pg_sql() { # SQL -> its rows, unaligned
  psql "$PG_URL" -Atc "$1"
}

# start_origin: the test HTTP origin (origin_server.py) on a free loopback
# port; sets ORIGIN_URL. origin_count PATH: how many times it was asked
# for PATH; origin_control QUERY: changes how it answers (see the script).
start_origin() {
  local out="$TEST_TMP/origin.port"
  python3 "$(dirname "${BASH_SOURCE[0]}")/origin_server.py" 0 >"$out" 2>"$TEST_TMP/origin.log" &
  NODE_PIDS+=("$!")
  wait_for "the test origin listening" test -s "$out"
  ORIGIN_URL="http://127.0.0.1:$(head -n 1 "$out")"
}
origin_count() {
  curl -fsS "$ORIGIN_URL/_stats" | jq -r --arg p "$1" '.[$p] // 0'
}
origin_control() {
  curl -fsS "$ORIGIN_URL/_control?$1" >/dev/null
}
