#!/usr/bin/env bash
# HTTP limits and hostile input against a real node: every limit answers
# with its status and a JSON error, is counted in /metrics, and the node
# keeps serving.
source "$(dirname "$0")/lib.sh"

start_node limits --workers 1 --max-header-size 2kb --max-value-size 1kb --max-request-body 1kb \
  --header-timeout 500ms --idle-timeout 1s --max-connections 4

metric() { curl -s "$NODE_URL/metrics" | awk -v m="$1" '$1==m {print $2}'; }

# --- 431: header section too large ---
http GET /health -H "X-Big: $(head -c 3000 /dev/zero | tr '\0' a)"
assert_eq 431 "$STATUS" "oversized header"
assert_eq header_too_large "$(json .code)" "431 code"
raw=$(raw_http "$NODE_PORT" "GET /$(head -c 3000 /dev/zero | tr '\0' a) HTTP/1.1\r\nHost: x\r\n\r\n")
assert_match '^HTTP/1.1 431' "$raw" "oversized request line"
hdrs=""
for i in $(seq 120); do hdrs+="X-H$i: v\r\n"; done
raw=$(raw_http "$NODE_PORT" "GET /health HTTP/1.1\r\n${hdrs}\r\n")
assert_match '^HTTP/1.1 431' "$raw" "too many header fields"

# --- 413: body too large, decided from the headers ---
head -c 2000 /dev/zero | tr '\0' v >"$TEST_TMP/big"
http PUT /api/cache/big --data-binary @"$TEST_TMP/big" -H 'Expect:'
assert_eq 413 "$STATUS" "value over --max-value-size"
assert_eq body_too_large "$(json .code)" "413 code"
http PUT /api/cache/big --data-binary @"$TEST_TMP/big" -H 'Expect: 100-continue'
assert_eq 413 "$STATUS" "value over the limit with Expect: 100-continue"
raw=$(raw_http "$NODE_PORT" 'PUT /api/cache/big HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\nExpect: 100-continue\r\n\r\n')
assert_match '^HTTP/1.1 413' "$raw" "413 comes before any body byte"
[[ $raw != *"100 Continue"* ]] && pass || fail "no 100 Continue for a refused body"
raw=$(raw_http "$NODE_PORT" 'PUT /api/cache/chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n'"$(head -c 1024 /dev/zero | tr '\0' c)"'\r\n400\r\n'"$(head -c 1024 /dev/zero | tr '\0' c)"'\r\n0\r\n\r\n')
assert_match '^HTTP/1.1 413' "$raw" "chunked body growing past the limit"
http POST /api/invalidate --data-binary @"$TEST_TMP/big" -H 'Expect:'
assert_eq 413 "$STATUS" "JSON body over --max-request-body"
head -c 1024 /dev/zero | tr '\0' v >"$TEST_TMP/fits"
http PUT /api/cache/fits --data-binary @"$TEST_TMP/fits" -H 'Expect: 100-continue'
assert_eq 201 "$STATUS" "a value of exactly --max-value-size"

# Expect: 100-continue with an acceptable body: 100 first, then the answer.
exec 7<>"/dev/tcp/127.0.0.1/$NODE_PORT"
printf 'PUT /api/cache/cont HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n' >&7
IFS= read -r -t 5 line <&7 || true
assert_eq $'HTTP/1.1 100 Continue\r' "$line" "100 Continue for an acceptable body"
IFS= read -r -t 5 blank <&7 || true
assert_eq $'\r' "$blank" "100 Continue is a complete interim response"
printf 'hello' >&7
IFS= read -r -t 5 line <&7 || true; read -r -t 1 -d '' _ <&7 || true
exec 7<&- 7>&-
assert_eq $'HTTP/1.1 201 Created\r' "$line" "body after 100 Continue is stored"
http GET /api/cache/cont
assert_eq hello "$BODY" "value sent after 100 Continue"

# --- 400: malformed requests close the connection ---
raw=$(raw_http "$NODE_PORT" 'GARBAGE\r\n\r\n')
assert_match '^HTTP/1.1 400' "$raw" "garbage request line"
assert_match 'Connection: close' "$raw" "400 closes the connection"
assert_match '"code":"bad_request"' "$raw" "400 carries a JSON code"
raw=$(raw_http "$NODE_PORT" 'GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello')
assert_match '^HTTP/1.1 400' "$raw" "conflicting Content-Length"
raw=$(raw_http "$NODE_PORT" 'GET /health HTTP/1.1\r\nBad Header\r\n\r\n')
assert_match '^HTTP/1.1 400' "$raw" "header without a colon"
raw=$(raw_http "$NODE_PORT" $'GET /health HTTP/1.1\r\nX: \x01\x02\r\n\r\n')
assert_match '^HTTP/1.1 (400|200)' "$raw" "control bytes in a header value get an answer"
head -c 65536 /dev/urandom >"$TEST_TMP/noise"
exec 7<>"/dev/tcp/127.0.0.1/$NODE_PORT"; cat "$TEST_TMP/noise" >&7 2>/dev/null || true; exec 7<&- 7>&-

# --- 408: headers too slow (slowloris) ---
raw=$(raw_http "$NODE_PORT" 'GET /health HTTP/1.1\r\nHost: x\r\n')
assert_match '^HTTP/1.1 408' "$raw" "incomplete headers time out with 408"

# --- idle connections are closed ---
start=$SECONDS
exec 7<>"/dev/tcp/127.0.0.1/$NODE_PORT"
timeout 10 cat <&7 >/dev/null || true
exec 7<&- 7>&-
(( SECONDS - start < 10 )) && pass || fail "an idle connection is closed by the server"

# --- 503: over --max-connections ---
# Hold exactly --max-connections served connections. One may be refused
# while an earlier client's close is still on its way to the server; retry
# until each held connection has had a 200 on it.
held=()
open_served() {
  local fd line
  exec {fd}<>"/dev/tcp/127.0.0.1/$NODE_PORT"
  printf 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n' >&"$fd"
  IFS= read -r -t 5 line <&"$fd" || true
  if [[ $line == $'HTTP/1.1 200 OK\r' ]]; then held+=("$fd"); return 0; fi
  exec {fd}<&-
  return 1
}
for _ in 1 2 3 4; do wait_for "a connection under the limit is served" open_served; done
assert_eq 4 "${#held[@]}" "connections up to the limit are served"
raw=$(raw_http "$NODE_PORT" 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n')
assert_match '^HTTP/1.1 503' "$raw" "one connection over the limit gets 503"
assert_match 'too_many_conns' "$raw" "503 carries a JSON code"
for fd in "${held[@]}"; do exec {fd}<&-; done
served() { curl -fsS "$NODE_URL/health"; }
wait_for "the node serves again once connections close" served && pass

# --- every refusal was counted, and the node is fine ---
(( $(metric http_header_too_large_total) >= 3 )) && pass || fail "431s are counted"
(( $(metric http_body_too_large_total) >= 4 )) && pass || fail "413s are counted"
(( $(metric http_malformed_requests_total) >= 3 )) && pass || fail "400s are counted"
(( $(metric http_header_timeouts_total) >= 1 )) && pass || fail "408s are counted"
(( $(metric http_idle_timeouts_total) >= 1 )) && pass || fail "idle closes are counted"
(( $(metric http_connections_rejected_total) >= 1 )) && pass || fail "refused connections are counted"
(( $(curl -s "$NODE_URL/metrics" | awk '$1=="errors_total{type=\"too_large\"}" {print $2}') >= 7 )) && pass ||
  fail "errors_total counts too_large"
http GET /api/cache/fits
assert_eq 200 "$STATUS" "node still serves after hostile input"

stop_node "$NODE_PID"
finish
