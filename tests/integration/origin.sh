#!/usr/bin/env bash
# Read-through from origins (--origins): a miss on a key bound to an origin
# is loaded by the key's primary, once however many clients ask across the
# cluster, and answered MISS-ORIGIN; the origin's 404 is a 404, its
# failure a 502 origin_error, or the expired copy (X-Cache: STALE) inside
# stale_if_error; a delete makes the next read load again; refresh-ahead
# reloads a hot key before it expires; PostgreSQL origins; SIGHUP reloads
# the file and a bad file keeps the origins in force.
source "$(dirname "$0")/lib.sh"

start_origin
start_postgres
pg_sql "create table items (id text primary key, body bytea, content_type text)" >/dev/null
pg_sql "insert into items values ('7', 'seven', 'text/plain'), ('8', '\\x00ff', null)" >/dev/null
cat >"$TEST_TMP/origins.json" <<JSON
{"origins": [
  {"name": "catalog", "type": "http", "url": "$ORIGIN_URL/items/{rest}", "keys": ["products:*"],
   "ttl": "60s", "stale_if_error": "1m", "timeout": "2s"},
  {"name": "short", "type": "http", "url": "$ORIGIN_URL/items/{key}", "keys": ["short:*"],
   "ttl": "1s", "stale_if_error": "1m"},
  {"name": "db", "type": "postgres", "conninfo": "$PG_URL", "param": "rest",
   "query": "SELECT body, content_type FROM items WHERE id = \$1", "keys": ["items:*"]}
]}
JSON

key=$(head -c 32 /dev/urandom | base64)
URLS=()
# A wide refresh-ahead window (beta 50 times a load's few ms), so that the
# polling reads below fall inside it.
start_node n1 --name n1 --cluster-key "$key" --origins "$TEST_TMP/origins.json" --refresh-beta 50
URLS+=("$NODE_URL")
PIDS+=("$NODE_PID")
gport1=$NODE_GOSSIP_PORT
for n in n2 n3; do
  start_node "$n" --name "$n" --cluster-key "$key" --seeds "127.0.0.1:$gport1" --origins "$TEST_TMP/origins.json" \
    --refresh-beta 50
  URLS+=("$NODE_URL")
  PIDS+=("$NODE_PID")
done
formed() { for u in "${URLS[@]}"; do curl -fsS "$u/ready" >/dev/null || return 1; done; }
wait_for "three ready nodes" formed
members() { curl -fsS "$1/api/cluster/ring" | jq '.members | length'; }
wait_for "one ring of three" output_is 3 members "${URLS[0]}"

# --- a miss loads from the origin, once; then it is a hit ---
NODE_URL=${URLS[1]}
http GET /api/cache/products:1
assert_eq 200 "$STATUS" "a key bound to an origin is loaded on a miss"
assert_eq "MISS-ORIGIN" "$(header x-cache)" "and says so"
assert_eq '1 application/json' "$(json .n) $(header content-type)" "with the origin's body and content type"
assert_eq "max-age=60" "$(header cache-control)" "and the origin's TTL"
http GET /api/cache/products:1
assert_match '^HIT' "$(header x-cache)" "the next read is a hit"
for u in "${URLS[@]}"; do
  s=$(curl -sS -o /dev/null -w '%{http_code}' "$u/api/cache/products:1")
  assert_eq 200 "$s" "every node serves it"
done
assert_eq 1 "$(origin_count /items/1)" "the origin was asked once"
assert_eq 404 "$(curl -sS -o /dev/null -w '%{http_code}' "${URLS[0]}/api/cache/products:missing-1")" "the origin's 404 is a 404"
assert_eq 404 "$(curl -sS -o /dev/null -w '%{http_code}' "${URLS[0]}/api/cache/other:1")" "a key no origin serves misses as before"

# --- coalescing: 100 concurrent misses through three nodes, one load ---
origin_control "delay=0.5"
for i in $(seq 0 99); do
  curl -sS -o /dev/null -w '%{http_code}\n' "${URLS[$((i % 3))]}/api/cache/products:herd" &
done >"$TEST_TMP/herd" 2>&1
wait_children() { [[ $(wc -l <"$TEST_TMP/herd") -ge 100 ]]; }
WAIT_SECONDS=30 wait_for "the herd answered" wait_children
assert_eq "100 200" "$(sort "$TEST_TMP/herd" | uniq -c | awk '{print $1, $2}')" "every client of the herd got the value"
assert_eq 1 "$(origin_count /items/herd)" "and the origin saw one request"
origin_control "delay=0"

# --- a delete: the next read loads again (the origin's newer value) ---
curl -fsS -X DELETE "${URLS[2]}/api/cache/products:1" >/dev/null
NODE_URL=${URLS[0]}
http GET /api/cache/products:1
# Loaded by this read, or just before it by the prefetch of hot keys that
# follows the ring's forming (a slow machine may run it this late): either
# way the origin's second answer, never the deleted first.
assert_match "^(MISS-ORIGIN|HIT) 2$" "$(header x-cache) $(json .n)" "a deleted key is loaded again"

# --- the origin fails: 502, or the expired copy inside stale_if_error ---
http GET /api/cache/short:1
assert_eq "MISS-ORIGIN" "$(header x-cache)" "a key with a 1 s TTL loaded"
origin_control "fail=1"
http GET /api/cache/products:failing
assert_eq "502 origin_error" "$STATUS $(json .code)" "a failing origin is a 502 origin_error"
stale() { curl -sS -D - -o /dev/null "${URLS[0]}/api/cache/short:1" | tr -d '\r' | grep -qx 'X-Cache: STALE'; }
wait_for "the expired copy served stale while the origin fails" stale
http GET /api/cache/short:1
assert_eq "200 1" "$STATUS $(json .n)" "the stale copy is the one loaded before"
origin_control "fail=0"
fresh() { curl -sS -D - -o /dev/null "${URLS[0]}/api/cache/short:1" | tr -d '\r' | grep -qx 'X-Cache: MISS-ORIGIN'; }
wait_for "a fresh load once the origin is back (its breaker half-open)" fresh

# --- PostgreSQL origins ---
http GET /api/cache/items:7
assert_eq "200 seven text/plain MISS-ORIGIN" "$STATUS $BODY $(header content-type) $(header x-cache)" \
  "a PostgreSQL origin: the query's first column, content_type column"
curl -fsS "${URLS[1]}/api/cache/items:8" -o "$TEST_TMP/bytes"
assert_eq "00ff" "$(od -An -tx1 "$TEST_TMP/bytes" | tr -d ' \n')" "bytea comes back as bytes"
assert_eq 404 "$(curl -sS -o /dev/null -w '%{http_code}' "${URLS[2]}/api/cache/items:9")" "no row is a 404"

# --- refresh-ahead: a hot key reloaded before it expires ---
# Loads of 50 ms make the early window (beta times the measured load time)
# as wide as the key's 1 s life, so polling reads fall inside it however
# slowly a loaded machine runs them; with loads of a few ms it was a
# matter of luck.
origin_control "delay=0.05"
refreshes() { metric_sum 'route_origin_refreshes_total{result="stored"}' "${URLS[@]}"; }
before=$(refreshes)
reads_refresh() {
  curl -fsS -o /dev/null "${URLS[0]}/api/cache/short:hot"
  (($(refreshes) > before))
}
WAIT_SECONDS=20 wait_for "a read near expiry reloads the key early" reads_refresh
origin_control "delay=0"

# --- SIGHUP: a new file is put in force, a bad one is refused ---
sed -i 's/"keys": \["products:\*"\]/"keys": ["products:*", "goods:*"]/' "$TEST_TMP/origins.json"
for pid in "${PIDS[@]}"; do kill -HUP "$pid"; done
goods() { [[ $(curl -sS -o /dev/null -w '%{http_code}' "${URLS[0]}/api/cache/goods:5") == 200 ]]; }
wait_for "a pattern added to the file is served after SIGHUP" goods
echo '{"origins": [{"name": "broken"}]}' >"$TEST_TMP/origins.json"
kill -HUP "${PIDS[0]}"
wait_for "a bad file is refused and says why" grep -q 'origins file not reloaded' "$TEST_TMP/n1.log"
http GET /api/cache/products:2
assert_eq "200" "$STATUS" "the origins in force stay"
reloads() { curl -fsS "${URLS[0]}/api/audit?action=origins_reload" | jq -r '[.records[].result] | join(" ")'; }
wait_for "both reloads are in the trail" output_is "origins_file_refused ok" reloads

# --- metrics (each primary counts its own loads) ---
loads=$(metric_sum 'origin_loads_total{origin="catalog"}' "${URLS[@]}")
((loads >= 4)) && pass || fail "loads are counted per origin: $loads"
failed=$(metric_sum 'origin_results_total{origin="catalog",result="failed"}' "${URLS[@]}")
((failed >= 1)) && pass || fail "and failures: $failed"

finish
