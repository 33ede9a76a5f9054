#!/usr/bin/env bash
# Every endpoint of a single node's HTTP API, successes and errors.
source "$(dirname "$0")/lib.sh"

start_node api --workers 2 --metrics-interval 200

# --- PUT / GET / HEAD / DELETE ---
http PUT '/api/cache/greeting?ttl=60' --data-binary 'hello world' -H 'Content-Type: text/plain'
assert_eq 201 "$STATUS" "PUT of a new key"
assert_eq greeting "$(json .key)" "PUT echoes the key"
assert_eq 60 "$(json .ttl)" "PUT echoes the ttl"
assert_match '^[0-9]+$' "$(json .version)" "PUT returns a version"
v1=$(json .version)

http PUT /api/cache/greeting --data-binary 'hello again' -H 'Content-Type: text/plain' -H 'X-Cache-TTL: 120'
assert_eq 200 "$STATUS" "PUT replacing a key"
assert_eq 120 "$(json .ttl)" "X-Cache-TTL header sets the ttl"
v2=$(json .version)
(( v2 > v1 )) && pass || fail "versions increase"

http GET /api/cache/greeting
assert_eq 200 "$STATUS" "GET of a present key"
assert_eq 'hello again' "$BODY" "GET returns the raw value"
assert_eq text/plain "$(header content-type)" "GET returns the stored content type"
assert_eq HIT "$(header x-cache)" "X-Cache says HIT"
assert_match '^max-age=(119|120)$' "$(header cache-control)" "Cache-Control carries the remaining ttl"
etag=$(header etag)
assert_match '^"[0-9a-f]{16}"$' "$etag" "ETag is a quoted version"

http GET /api/cache/greeting -H "If-None-Match: $etag"
assert_eq 304 "$STATUS" "If-None-Match with the current ETag"
assert_eq "" "$BODY" "304 has no body"
http GET /api/cache/greeting -H 'If-None-Match: "0000000000000000"'
assert_eq 200 "$STATUS" "If-None-Match with another ETag"

http HEAD /api/cache/greeting
assert_eq 200 "$STATUS" "HEAD of a present key"
assert_eq "$v2" "$(header x-cache-version)" "X-Cache-Version is the stored version"
assert_eq 11 "$(header content-length)" "HEAD carries Content-Length"
# A body after HEAD's headers would be read as the next response's start.
raw=$(raw_http "$NODE_PORT" 'HEAD /api/cache/greeting HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
assert_match $'X-Cache-Owner: [^\r]+\r\n\r\nHTTP/1.1 200 OK' "$raw" "HEAD sends headers only"

http PUT '/api/cache/nottl?ttl=0' --data-binary 'x' -H 'Content-Type:'
assert_eq 0 "$(json .ttl)" "ttl=0 means no expiry"
http GET /api/cache/nottl
assert_eq "" "$(header cache-control)" "no max-age without expiry"
assert_eq application/octet-stream "$(header content-type)" "default content type"

http PUT /api/cache/defttl --data-binary 'x'
assert_eq 3600 "$(json .ttl)" "default ttl is 3600 s"

http DELETE /api/cache/greeting
assert_eq 200 "$STATUS" "DELETE"
assert_eq true "$(json .deleted)" "DELETE of a present key"
http DELETE /api/cache/greeting
assert_eq false "$(json .deleted)" "DELETE of an absent key"
http GET /api/cache/greeting
assert_eq 404 "$STATUS" "GET after DELETE"
assert_eq not_found "$(json .code)" "404 carries a JSON code"
assert_eq "key not found" "$(json .error)" "404 carries a JSON error"
http HEAD /api/cache/greeting
assert_eq 404 "$STATUS" "HEAD of an absent key"

# --- keys: percent-decoding, binary keys, limits ---
http PUT '/api/cache/a%2Fb%20c' --data-binary 'slash'
assert_eq 'a/b c' "$(json .key)" "keys are percent-decoded"
http GET '/api/cache/a%2Fb%20c'
assert_eq slash "$BODY" "percent-encoded key round trip"
http PUT '/api/cache/bin%00%FF' --data-binary 'binary'
assert_eq 201 "$STATUS" "binary key with NUL and 0xFF"
assert_eq AP8= "$(json .key_base64 | base64 -d | tail -c 2 | base64)" "non-UTF-8 key is reported in base64"
http GET '/api/cache/bin%00%FF'
assert_eq binary "$BODY" "binary key round trip"
http GET '/api/cache/bad%zz'
assert_eq 400 "$STATUS" "malformed percent-encoding"
assert_eq bad_key "$(json .code)" "malformed key code"
http GET "/api/cache/$(head -c 1025 /dev/zero | tr '\0' k)"
assert_eq 400 "$STATUS" "1025-byte key"
assert_eq key_too_long "$(json .code)" "long key code"
http PUT "/api/cache/$(head -c 1024 /dev/zero | tr '\0' k)" --data-binary x
assert_eq 201 "$STATUS" "1024-byte key is accepted"
http GET /api/cache/
assert_eq 400 "$STATUS" "empty key"

# --- TTL ---
http PUT '/api/cache/k?ttl=abc' --data-binary x
assert_eq 400 "$STATUS" "non-numeric ttl"
assert_eq bad_ttl "$(json .code)" "bad ttl code"
http PUT /api/cache/k -H 'X-Cache-TTL: -5' --data-binary x
assert_eq 400 "$STATUS" "negative ttl"
http PUT '/api/cache/short?ttl=1' --data-binary x
assert_eq 201 "$STATUS" "PUT with ttl=1"
expired() { [[ $(curl -s -o /dev/null -w '%{http_code}' "$NODE_URL/api/cache/short") == 404 ]]; }
wait_for "a 1 s entry expires" expired && pass

# --- listing with cursors and patterns ---
for i in $(seq 1 120); do printf 'PUT /api/cache/page:%03d HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nv' "$i"; done >"$TEST_TMP/pipeline"
curl -s -o /dev/null "$NODE_URL/health"
exec 8<>"/dev/tcp/127.0.0.1/$NODE_PORT"
cat "$TEST_TMP/pipeline" >&8
printf 'GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&8
created=$(timeout 10 cat <&8 | grep -ao 'HTTP/1.1 201' | wc -l)
exec 8<&- 8>&-
assert_eq 120 "$created" "120 pipelined PUTs on one connection are all answered"

cursor=0; seen=()
for _ in $(seq 50); do
  http GET "/api/cache/keys?pattern=page:*&limit=50&cursor=$cursor"
  assert_eq 200 "$STATUS" "keys page"
  (( $(json '.keys | length') <= 60 )) && pass || fail "a page holds about limit keys"
  mapfile -t -O "${#seen[@]}" seen < <(json '.keys[].key')
  cursor=$(json .cursor)
  [[ $cursor == 0 ]] && break
done
assert_eq 120 "$(printf '%s\n' "${seen[@]}" | sort -u | wc -l)" "cursor pagination reaches every key"
assert_eq 0 "$(printf '%s\n' "${seen[@]}" | grep -vc '^page:' || true)" "pattern filters keys"
http GET '/api/cache/keys?pattern=page:00%5B1-3%5D'
assert_eq "page:001 page:002 page:003" "$(json '[.keys[].key] | sort | join(" ")')" "character classes in patterns"
http GET '/api/cache/keys?pattern=page:001'
assert_eq 1 "$(json '.keys[0].size')" "listing reports the value size"
assert_match '^[0-9]+$' "$(json '.keys[0].ttl')" "listing reports the ttl"
http GET '/api/cache/keys?limit=0'
assert_eq 400 "$STATUS" "limit=0 is refused"
http GET '/api/cache/keys?limit=x'
assert_eq bad_parameter "$(json .code)" "non-numeric limit"
http GET '/api/cache/keys?cursor=-1'
assert_eq 400 "$STATUS" "negative cursor"

# --- invalidation ---
http POST /api/invalidate -d '{"keys":["page:001","page:002","absent"]}'
assert_eq 200 "$STATUS" "invalidate keys"
assert_eq 2 "$(json .invalidated)" "invalidate counts removed keys"
http GET /api/cache/page:001
assert_eq 404 "$STATUS" "invalidated key is gone"
http POST /api/invalidate -d '{"keys":"page:003"}'
assert_eq bad_keys "$(json .code)" "keys must be an array"
http POST /api/invalidate -d '{"keys":[1]}'
assert_eq bad_key "$(json .code)" "keys must be strings"
http POST /api/invalidate -d 'not json'
assert_eq 400 "$STATUS" "invalid JSON"
assert_eq bad_json "$(json .code)" "invalid JSON code"
http POST /api/invalidate
assert_eq 400 "$STATUS" "missing body"
http GET /api/invalidate
assert_eq 405 "$STATUS" "GET on a POST endpoint"
assert_eq "POST, OPTIONS" "$(header allow)" "405 says what is allowed"

for u in 1 2 3 4 5; do curl -s -o /dev/null -X PUT --data-binary x "$NODE_URL/api/cache/users:$u"; done
for p in 1 2 3; do curl -s -o /dev/null -X PUT --data-binary x "$NODE_URL/api/cache/posts:$p"; done
http GET '/api/invalidate/preview?pattern=users:*&limit=2'
assert_eq 5 "$(json .matched)" "preview counts matches"
assert_eq 2 "$(json '.sample | length')" "preview sample honours limit"
http GET '/api/invalidate/preview'
assert_eq 400 "$STATUS" "preview needs a pattern"
http POST /api/invalidate/pattern -d '{"pattern":"users:*","dry_run":true}'
assert_eq "5 0" "$(json '"\(.matched) \(.invalidated)"')" "dry run matches without deleting"
http GET /api/cache/users:3
assert_eq 200 "$STATUS" "dry run leaves keys"
http POST /api/invalidate/pattern -d '{"pattern":"users:*"}'
assert_eq "5 5" "$(json '"\(.matched) \(.invalidated)"')" "pattern invalidation"
http GET /api/cache/users:3
assert_eq 404 "$STATUS" "pattern-invalidated key is gone"
http GET /api/cache/posts:1
assert_eq 200 "$STATUS" "other keys stay"
http POST /api/invalidate/pattern -d '{"dry_run":true}'
assert_eq bad_pattern "$(json .code)" "pattern is required"
http POST /api/invalidate/pattern -d '{"pattern":"x","dry_run":"yes"}'
assert_eq 400 "$STATUS" "dry_run must be boolean"

# --- metrics ---
http GET /metrics
assert_eq 200 "$STATUS" "/metrics"
assert_match '^text/plain; version=0.0.4' "$(header content-type)" "Prometheus content type"
for m in cache_hits_total cache_misses_total cache_latency_seconds_bucket cache_size_bytes cache_entries \
  evictions_total expirations_total invalidations_total errors_total http_requests_total \
  process_resident_memory_bytes; do
  grep -q "^$m" <<<"$BODY" && pass || fail "/metrics has $m"
done
grep -q 'cache_latency_seconds_bucket{operation="get",le="+Inf"}' <<<"$BODY" && pass || fail "latency by operation"
grep -q 'http_requests_total{code="404"}' <<<"$BODY" && pass || fail "requests by status code"
if command -v promtool >/dev/null; then
  if promtool check metrics <<<"$BODY" >"$TEST_TMP/promtool" 2>&1; then pass; else fail "promtool: $(cat "$TEST_TMP/promtool")"; fi
else
  echo "promtool not installed: skipping the format check" >&2
fi

http GET /api/metrics
assert_eq 200 "$STATUS" "/api/metrics"
for f in hits misses hit_rate entries bytes evictions invalidations uptime_seconds latency.get.p50_ms \
  latency.get.p90_ms latency.get.p95_ms latency.get.p99_ms latency.put.count; do
  [[ $(json ".$f") != null ]] && pass || fail "/api/metrics has $f"
done
(( $(json .invalidations) >= 7 )) && pass || fail "invalidations are counted"
(( $(json .hits) > 0 && $(json .misses) > 0 )) && pass || fail "hits and misses are counted"

has_points() { [[ $(curl -s "$NODE_URL/api/metrics/history?window=1m" | jq '.points | length') -ge 2 ]]; }
wait_for "history has two samples" has_points && pass
http GET '/api/metrics/history?window=1m'
assert_eq 1m "$(json .window)" "history window"
[[ $(json '.points[-1].entries') != null ]] && pass || fail "history points carry entries"
http GET '/api/metrics/history?window=2d'
assert_eq bad_window "$(json .code)" "unknown window"

# --- default limits: memory binds, not an entry count ---
# (the old default of 10000 entries evicted a 100k-key working set with 512 MB
# to spare). 12000 PUTs over one curl, then every key must still be there.
http GET /api/metrics
assert_eq 0 "$(json .max_entries)" "no entry limit by default"
entries0=$(json .entries)
evictions0=$(json .evictions)
for ((i = 0; i < 12000; i++)); do printf 'url = "%s/api/cache/bulk%d"\noutput = "/dev/null"\n' "$NODE_URL" "$i"; done \
  >"$TEST_TMP/bulk.curl"
codes=$(curl -sS -X PUT --data-binary v -w '%{http_code}\n' -K "$TEST_TMP/bulk.curl" | sort | uniq -c | awk '{print $2 ":" $1}')
assert_eq "201:12000" "$codes" "12000 PUTs stored"
http GET /api/metrics
assert_eq $((entries0 + 12000)) "$(json .entries)" "L1 holds all of them"
assert_eq "$evictions0" "$(json .evictions)" "nothing evicted"
http GET /api/cache/bulk0
assert_eq 200 "$STATUS" "the first key is still there"

# --- health and readiness ---
http GET /health
assert_eq ok "$(json .status)" "/health"
http GET /ready
assert_eq true "$(json .ready)" "/ready"
assert_eq disabled "$(json .dependencies.l2.status)" "/ready names L2 state"

# --- unknown routes ---
http GET /nope
assert_eq 404 "$STATUS" "unknown route"
assert_eq no_route "$(json .code)" "unknown route code"
http PATCH /api/cache/x
assert_eq 405 "$STATUS" "PATCH on a key"

# SO_REUSEPORT would let a second node share the port silently: it must refuse.
rc=0
"$DCACHE_NODE_BIN" --http-port "$NODE_PORT" --cluster-port 0 --peer-port 0 --audit-dir "$TEST_TMP/audit-second" 2>"$TEST_TMP/second.log" || rc=$?
assert_eq 1 "$rc" "a second node on a port in use exits 1"
assert_match 'cannot listen.*address already in use' "$(cat "$TEST_TMP/second.log")" "and says why"

stop_node "$NODE_PID"
grep -q '"msg":"stopped"' "$NODE_LOG" && pass || fail "node logs its stop"
finish
