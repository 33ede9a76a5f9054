#!/usr/bin/env bash
# Tokens, roles, rate limits, CORS and the scan bound against a real node:
# dcache-admin token add writes the file, each role reaches exactly its
# endpoints, SIGHUP reloads the file, and a node refuses what it must.
source "$(dirname "$0")/lib.sh"

tokens="$TEST_TMP/tokens"
add_token() { # NAME ROLE -> the token
  "$DCACHE_ADMIN_BIN" token add "$1" "$2" --file "$tokens" 2>"$TEST_TMP/add.err"
}
reader=$(add_token dash reader)
writer=$(add_token app writer)
admin=$(add_token ops admin)
assert_match '^dct_[A-Za-z0-9_-]{43}$' "$reader" "token add prints a token"
assert_eq 600 "$(stat -c %a "$tokens")" "the tokens file is created 0600"
assert_eq 0 "$(grep -c "$reader" "$tokens" || true)" "the file holds no token"
assert_match '^dash reader [0-9a-f]{64}$' "$(head -n 1 "$tokens")" "NAME ROLE HASH"
rc=0; add_token dash admin >/dev/null || rc=$?
assert_eq 1 "$rc" "a name already in the file is refused"
rc=0; add_token 'bad name' admin >/dev/null || rc=$?
assert_eq 2 "$rc" "an invalid name is a usage error"

# --- the node refuses a tokens file others may read, and an open API off loopback ---
cp "$tokens" "$TEST_TMP/open-tokens"; chmod 644 "$TEST_TMP/open-tokens"
rc=0; "$DCACHE_NODE_BIN" --tokens "$TEST_TMP/open-tokens" --http-port 0 --cluster-port 0 \
  >/dev/null 2>"$TEST_TMP/refused.err" || rc=$?
assert_eq 2 "$rc" "a tokens file readable by others is refused"
assert_match 'chmod 600' "$(cat "$TEST_TMP/refused.err")" "and the error says how to fix it"
rc=0; "$DCACHE_NODE_BIN" --http-host 0.0.0.0 --http-port 0 --cluster-port 0 \
  >/dev/null 2>"$TEST_TMP/anon.err" || rc=$?
assert_eq 2 "$rc" "no tokens on a non-loopback address is refused"
assert_match 'allow-anonymous' "$(cat "$TEST_TMP/anon.err")" "and the error names --allow-anonymous"
rc=0; "$DCACHE_NODE_BIN" --cluster-host 0.0.0.0 --advertise 10.1.2.3 --allow-anonymous --http-port 0 \
  --cluster-port 0 >/dev/null 2>"$TEST_TMP/unsealed.err" || rc=$?
assert_eq 2 "$rc" "no cluster key on a non-loopback cluster address is refused"
assert_match 'cluster-key' "$(cat "$TEST_TMP/unsealed.err")" "and the error names --cluster-key"

start_node auth --workers 2 --tokens "$tokens" --cors-origins https://app.example,https://ops.example

bearer() { echo "Authorization: Bearer $1"; }

# --- 401 without a token or with an unknown one ---
http GET /api/cache/k
assert_eq 401 "$STATUS" "no token: 401"
assert_eq unauthorized "$(json .code)" "401 code"
assert_match '^Bearer' "$(header WWW-Authenticate)" "401 says WWW-Authenticate: Bearer"
http GET /api/cache/k -H "$(bearer dct_notatoken)"
assert_eq 401 "$STATUS" "unknown token: 401"
http GET /api/cache/k -H "Authorization: Basic dXNlcjpwYXNz"
assert_eq 401 "$STATUS" "another scheme: 401"

# --- open endpoints ---
http GET /health
assert_eq 200 "$STATUS" "/health is open"
http GET /ready
assert_eq 200 "$STATUS" "/ready is open"
http GET /metrics
assert_eq 200 "$STATUS" "/metrics is open without --metrics-auth"

# --- each role reaches its endpoints ---
http PUT /api/cache/k -H "$(bearer "$reader")" --data-binary v1
assert_eq 403 "$STATUS" "a reader may not PUT"
assert_eq forbidden "$(json .code)" "403 code"
http PUT /api/cache/k -H "$(bearer "$writer")" --data-binary v1
assert_eq 201 "$STATUS" "a writer may PUT"
http GET /api/whoami -H "$(bearer "$reader")"
assert_eq "dash reader true" "$(json '"\(.name) \(.role) \(.tokens)"')" "whoami names the token and its role"
http GET /api/whoami -H "$(bearer "$admin")"
assert_eq "ops admin" "$(json '"\(.name) \(.role)"')" "and an admin's"
http GET /api/whoami
assert_eq 401 "$STATUS" "whoami without a token is 401"
http GET /api/cache/k -H "$(bearer "$reader")"
assert_eq 200 "$STATUS" "a reader may GET"
assert_eq v1 "$BODY" "and gets the value"
http GET /api/cache/keys -H "$(bearer "$reader")"
assert_eq 200 "$STATUS" "a reader may list keys"
http GET /api/cluster/members -H "$(bearer "$reader")"
assert_eq 200 "$STATUS" "a reader may read the cluster view"
http POST /api/invalidate -H "$(bearer "$reader")" -H 'Content-Type: application/json' -d '{"keys":["k"]}'
assert_eq 403 "$STATUS" "a reader may not invalidate"
http POST /api/invalidate/pattern -H "$(bearer "$writer")" -H 'Content-Type: application/json' -d '{"pattern":"k*"}'
assert_eq 403 "$STATUS" "a writer may not invalidate a pattern"
http POST /api/invalidate/pattern -H "$(bearer "$admin")" -H 'Content-Type: application/json' -d '{"pattern":"k*"}'
assert_eq 200 "$STATUS" "an admin may invalidate a pattern"
http DELETE /api/cache/k -H "$(bearer "$writer")"
assert_eq 200 "$STATUS" "a writer may DELETE"

# --- dcache-admin sends its token ---
out=$("$DCACHE_ADMIN_BIN" --node "$NODE_URL" --token "$writer" put adm hello 2>&1)
assert_match 'version' "$out" "dcache-admin put with --token"
rc=0; DCACHE_TOKEN="$reader" "$DCACHE_ADMIN_BIN" --node "$NODE_URL" put adm x >/dev/null 2>&1 || rc=$?
assert_eq 1 "$rc" "dcache-admin with a reader token cannot put"
assert_eq hello "$(DCACHE_TOKEN="$reader" "$DCACHE_ADMIN_BIN" --node "$NODE_URL" get adm)" "DCACHE_TOKEN is used"

# --- nothing secret in the metrics: names, never tokens ---
m=$(curl -s "$NODE_URL/metrics")
assert_match 'auth_requests_total\{token="app"\} [1-9]' "$m" "requests counted by token name"
assert_match 'auth_unauthorized_total\{reason="missing"\} [1-9]' "$m" "401s counted by reason"
if grep -q "${writer#dct_}" <<<"$m"; then fail "a token appears in /metrics"; else pass; fi
if grep -q "${writer#dct_}" "$NODE_LOG"; then fail "a token appears in the log"; else pass; fi

# --- SIGHUP reloads the file; a broken file keeps the tokens in force ---
late=$(add_token late writer)
http PUT /api/cache/late -H "$(bearer "$late")" --data-binary x
assert_eq 401 "$STATUS" "a token added to the file is unknown until SIGHUP"
kill -HUP "$NODE_PID"
wait_for "the reload" grep -q '"msg":"tokens reloaded"' "$NODE_LOG"
http PUT /api/cache/late -H "$(bearer "$late")" --data-binary x
assert_eq 201 "$STATUS" "after SIGHUP the new token works"
cp "$tokens" "$TEST_TMP/tokens.good"
echo "broken line" >>"$tokens"
kill -HUP "$NODE_PID"
wait_for "the failed reload" grep -q '"msg":"tokens file not reloaded' "$NODE_LOG"
http GET /api/cache/late -H "$(bearer "$late")"
assert_eq 200 "$STATUS" "a file that does not load keeps the tokens in force"
kill -0 "$NODE_PID" && pass || fail "the node died on SIGHUP"

# --- CORS: listed origins only ---
http GET /api/cache/late -H "$(bearer "$reader")" -H 'Origin: https://app.example'
assert_eq https://app.example "$(header Access-Control-Allow-Origin)" "a listed origin is allowed"
http GET /api/cache/late -H "$(bearer "$reader")" -H 'Origin: https://evil.example'
assert_eq "" "$(header Access-Control-Allow-Origin)" "an unlisted origin gets no allow header"
http OPTIONS /api/cache/late -H 'Origin: https://ops.example' -H 'Access-Control-Request-Method: PUT' \
  -H 'Access-Control-Request-Headers: authorization'
assert_eq 204 "$STATUS" "a preflight from a listed origin: 204"
assert_eq https://ops.example "$(header Access-Control-Allow-Origin)" "preflight allow origin"
assert_match 'PUT' "$(header Access-Control-Allow-Methods)" "preflight allow methods"
assert_match 'Authorization' "$(header Access-Control-Allow-Headers)" "preflight allow headers"
http OPTIONS /api/cache/late -H 'Origin: https://evil.example' -H 'Access-Control-Request-Method: PUT'
assert_eq "" "$(header Access-Control-Allow-Origin)" "a preflight from an unlisted origin is not allowed"
assert_eq "" "$(header Access-Control-Allow-Methods)" "and gets no allowed methods"

# --- patterns are bounded ---
long=$(head -c 300 /dev/zero | tr '\0' a)
http POST /api/invalidate/pattern -H "$(bearer "$admin")" -d "{\"pattern\":\"$long*\"}"
assert_eq 400 "$STATUS" "a pattern over 256 bytes"
http GET "/api/invalidate/preview?pattern=$(printf '*a%.0s' $(seq 20))" -H "$(bearer "$reader")"
assert_eq 400 "$STATUS" "a pattern with over 16 wildcards"
assert_eq bad_pattern "$(json .code)" "bad_pattern code"
stop_node "$NODE_PID"

# --- rate limits: per token, and per address for anonymous clients ---
start_node limited --workers 2 --rate-limit 1:3 --tokens "$TEST_TMP/tokens.good" --public-read
codes=""
for i in 1 2 3 4 5; do
  codes+=$(curl -s -o /dev/null -w '%{http_code} ' -H "$(bearer "$reader")" "$NODE_URL/api/cache/x")
done
assert_match '^404 404 404 429' "$codes" "a burst of 3, then 429 ($codes)"
http GET /api/cache/x -H "$(bearer "$reader")"
assert_eq 429 "$STATUS" "still over the limit"
assert_eq rate_limited "$(json .code)" "429 code"
assert_match '^[1-9][0-9]*$' "$(header Retry-After)" "429 has Retry-After"
http GET /api/cache/x -H "$(bearer "$writer")"
assert_eq 404 "$STATUS" "another token has its own bucket"
http GET /api/cache/x
assert_eq 404 "$STATUS" "--public-read: anonymous GET of a value"
http GET /api/cache/keys
assert_eq 401 "$STATUS" "--public-read opens values only"
http GET /health
assert_eq 200 "$STATUS" "health probes are never limited"
assert_match 'auth_token_rate_limited_total\{token="dash"\} [1-9]' "$(curl -s "$NODE_URL/metrics")" \
  "429s counted by token name"
if command -v promtool >/dev/null; then
  if curl -s "$NODE_URL/metrics" | promtool check metrics >"$TEST_TMP/promtool" 2>&1; then pass
  else fail "promtool: $(cat "$TEST_TMP/promtool")"; fi
fi
stop_node "$NODE_PID"

start_node metricsauth --tokens "$TEST_TMP/tokens.good" --metrics-auth
http GET /metrics
assert_eq 401 "$STATUS" "--metrics-auth: /metrics needs a token"
http GET /metrics -H "$(bearer "$reader")"
assert_eq 200 "$STATUS" "--metrics-auth: a reader may scrape"
stop_node "$NODE_PID"

finish
