#!/usr/bin/env bash
# The audit trail without a database: each audited request leaves one
# record in the node's JSON-lines file with who, what, how it ended and
# its request id (X-Request-Id); GET /api/audit and dcache-admin audit read
# it back newest first, filtered and paginated, across rotated files and
# restarts.
source "$(dirname "$0")/lib.sh"

tokens="$TEST_TMP/tokens"
writer=$("$DCACHE_ADMIN_BIN" token add app writer --file "$tokens")
admin=$("$DCACHE_ADMIN_BIN" token add ops admin --file "$tokens")
start_node a1 --name a1 --tokens "$tokens" --audit-dir "$TEST_TMP/audit" --audit-file-size 8192 --audit-files 2
pid=$NODE_PID
auth_w=(-H "Authorization: Bearer $writer")
auth_a=(-H "Authorization: Bearer $admin")

audit() { # QUERY -> BODY of GET /api/audit?QUERY
  http GET "/api/audit?$1" "${auth_a[@]}"
}
# The node's own warming runs are recorded too: the prefetch of hot keys
# that follows the ring's forming may land anywhere in this test, so the
# counts leave it out.
records() { # QUERY -> the number of records, warming runs aside
  audit "$1"
  json '[.records[] | select(.action != "warm")] | length'
}

# --- one record per audited request ---
http PUT /api/cache/users:1 "${auth_w[@]}" --data-binary v
http DELETE /api/cache/users:1 "${auth_w[@]}"
assert_eq 200 "$STATUS" "DELETE"
del_id=$(header x-request-id)
assert_match '^[0-9a-f]{24}$' "$del_id" "an audited request gets a request id"
http POST /api/invalidate "${auth_w[@]}" -H 'X-Request-Id: trace-42' --data '{"keys":["k1","k2","k3","k4","k5","k6","k7","k8","k9","k10","k11","k12"]}'
assert_eq 200 "$STATUS" "invalidate keys"
assert_eq trace-42 "$(header x-request-id)" "the client's request id is kept"
http POST /api/invalidate/pattern "${auth_a[@]}" --data '{"pattern":"users:*","dry_run":true}'
assert_eq 200 "$STATUS" "dry-run pattern invalidation"
http POST /api/invalidate/pattern "${auth_a[@]}" -H 'X-Request-Id: bad id with spaces' --data '{"pattern":"users:*"}'
assert_eq 200 "$STATUS" "pattern invalidation"
assert_match '^[0-9a-f]{24}$' "$(header x-request-id)" "a request id that is not plain text is replaced"
http DELETE /api/cache/users:2
assert_eq 401 "$STATUS" "an anonymous DELETE is refused"
http GET /api/cache/users:1 "${auth_w[@]}"
assert_eq "" "$(header x-request-id)" "reads are not audited"
curl -sN "${auth_a[@]}" "$NODE_URL/api/events?types=tokens_reload" >"$TEST_TMP/reload.events" 2>/dev/null &
stream_pid=$!
wait_for "the event stream open" grep -q '^retry:' "$TEST_TMP/reload.events"
kill -HUP "$pid"
wait_for "the tokens reload is recorded" output_is 1 records 'action=tokens_reload'
wait_for "and is an event" grep -q '"action":"tokens_reload"' "$TEST_TMP/reload.events"
kill "$stream_pid" 2>/dev/null || true

audit "limit=10"
assert_eq 200 "$STATUS" "GET /api/audit"
assert_eq file "$(json .source)" "without a database the trail is the file"
assert_eq "tokens_reload http_401 invalidate_pattern invalidate_pattern invalidate delete" \
  "$(json '[.records[] | select(.action != "warm") | if .status == 401 then "http_401" else .action end] | join(" ")')" "newest first, one each"
assert_eq "ops" "$(json '.records[2].actor')" "actor: the token's name"
assert_eq "127.0.0.1" "$(json '.records[1].actor')" "actor: an anonymous client's address"
assert_eq "unauthorized" "$(json '.records[1].result')" "a refused request says why"
assert_eq "false 0 0" "$(json '.records[2] | "\(.dry_run) \(.matched) \(.invalidated)"')" "pattern: counts, dry run"
assert_eq "true" "$(json '.records[3].dry_run')" "dry runs are recorded too"
assert_eq "10 12 trace-42" "$(json '.records[4] | "\(.keys | length) \(.key_count) \(.request_id)"')" \
  "keys: the first 10 and the count"
assert_eq "users:1 $del_id 200 ok a1" "$(json '.records[5] | "\(.keys[0]) \(.request_id) \(.status) \(.result) \(.node)"')" \
  "delete: key, request id, status, node"
assert_match '^20[0-9]{2}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z$' "$(json '.records[5].time')" "time in RFC 3339"

# --- filters and pages ---
assert_eq 2 "$(records 'action=invalidate_pattern')" "by action"
assert_eq 2 "$(records 'actor=app')" "by actor"
assert_eq 0 "$(records 'since=2020-01-01T00:00:00Z&until=2020-01-02T00:00:00Z')" "by time"
assert_eq 6 "$(records 'since=1h')" "an age"
audit "limit=4"
first=$(json '[.records[].id] | join(" ")')
next=$(json .next)
audit "limit=4&cursor=$next"
assert_eq 2 "$(json '.records | length')" "the second page has the rest"
assert_eq null "$(json .next)" "and no next"
assert_eq 0 "$(printf '%s\n%s\n' "$first" "$(json '[.records[].id] | join(" ")')" | tr ' ' '\n' | sort | uniq -d | wc -l)" \
  "pages do not overlap"
audit "action=nothing"
assert_eq 400 "$STATUS" "an unknown action is a 400"
assert_eq bad_action "$(json .code)" "with a code"
audit "cursor=garbage"
assert_eq 400 "$STATUS" "a malformed cursor is a 400"
http GET /api/audit "${auth_w[@]}"
assert_eq 403 "$STATUS" "the trail needs the admin role"

# --- dcache-admin audit ---
out=$("$DCACHE_ADMIN_BIN" --node "$NODE_URL" --token "$admin" audit --action delete)
assert_match 'TIME +NODE +ACTOR +ACTION' "$out" "dcache-admin audit prints a table"
assert_match 'a1 +app +delete +200 +ok .*users:1' "$out" "with the delete"
assert_eq 6 "$("$DCACHE_ADMIN_BIN" --node "$NODE_URL" --token "$admin" --json audit --all --limit 2 | jq '[.records[] | select(.action != "warm")] | length')" \
  "--all follows the pages"

# --- rotation, and a restart keeps the trail ---
for i in $(seq 1 40); do curl -sS -o /dev/null -X DELETE "${auth_w[@]}" "$NODE_URL/api/cache/bulk:$i"; done
wait_for "46 records written" output_is 46 records 'limit=1000'
test -f "$TEST_TMP/audit/a1.jsonl.1" && pass || fail "the file was rotated past --audit-file-size"
test ! -f "$TEST_TMP/audit/a1.jsonl.3" && pass || fail "at most --audit-files rotations are kept"
stop_node "$pid"
start_node a1 --name a1 --tokens "$tokens" --audit-dir "$TEST_TMP/audit" --audit-file-size 1mb
http DELETE /api/cache/after "${auth_w[@]}"
audit "limit=1"
assert_eq after "$(json '.records[0].keys[0]')" "a restarted node appends, newest first"
older=$(records 'limit=1000')
((older > 1)) && pass || fail "and still reads what it wrote before the restart ($older)"
http GET /metrics
assert_match 'audit_records_total [1-9]' "$BODY" "records are counted"
assert_match 'audit_dropped_total\{reason="queue_full"\} 0' "$BODY" "none dropped"

# --- a directory it cannot write is refused at start ---
touch "$TEST_TMP/not-a-dir"
rc=0; "$DCACHE_NODE_BIN" --http-port 0 --cluster-port 0 --audit-dir "$TEST_TMP/not-a-dir" 2>"$TEST_TMP/bad.log" || rc=$?
assert_eq 2 "$rc" "an unusable --audit-dir stops the start"
assert_match 'audit-dir.*not-a-dir' "$(cat "$TEST_TMP/bad.log")" "and says which"
finish
