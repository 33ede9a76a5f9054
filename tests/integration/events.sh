#!/usr/bin/env bash
# GET /api/events: the event feed as Server-Sent Events. A client sees
# deletes and invalidations made through any node, membership and ring
# changes and every node's metrics tick, in order; it resumes after the
# Last-Event-ID it last saw, and is told when what it asks for is gone.
source "$(dirname "$0")/lib.sh"

key=$(head -c 32 /dev/urandom | base64)
start_node e1 --name e1 --cluster-key "$key"
url1=$NODE_URL
gport1=$NODE_GOSSIP_PORT
start_node e2 --name e2 --cluster-key "$key" --seeds "127.0.0.1:$gport1"
url2=$NODE_URL
wait_for "two members" bash -c "curl -fsS $url1/api/cluster/members | jq -e '[.members[] | select(.state == \"alive\")] | length == 2'"

stream="$TEST_TMP/stream"
curl -sN "$url1/api/events" >"$stream" 2>/dev/null &
curl_pid=$!
wait_for "the stream is open" grep -q '^retry: ' "$stream"

# --- what happens anywhere in the cluster shows on e1's feed ---
curl -fsS -X DELETE "$url2/api/cache/through-e2" -H 'X-Request-Id: del-via-e2' >/dev/null
curl -fsS -X POST "$url1/api/invalidate/pattern" --data '{"pattern":"users:*"}' >/dev/null
wait_for "the delete made through e2" grep -q '"request_id":"del-via-e2"' "$stream"
wait_for "the pattern invalidation" grep -q '"pattern":"users:\*"' "$stream"
assert_match '"node":"e2"' "$(grep '"request_id":"del-via-e2"' "$stream")" "it names the node that received it"
assert_eq "delete" "$(grep -B1 '"request_id":"del-via-e2"' "$stream" | sed -n 's/^event: //p')" "as a delete event"
wait_for "metrics ticks from both nodes" bash -c "grep -A1 '^event: metrics' '$stream' | grep -q '\"node\":\"e2\"' && grep -A1 '^event: metrics' '$stream' | grep -q '\"node\":\"e1\"'"
tick=$(grep -A1 '^event: metrics' "$stream" | grep -m1 '"node":"e1"' | sed 's/^data: //')
assert_eq "ok disabled 0 0" "$(jq -r '"\(.state) \(.l2) \(.evictions) \(.expirations)"' <<<"$tick")" \
  "a metrics tick carries the node's state, its L2's and its totals"
assert_match '^[1-9][0-9]*$' "$(jq -r .max_bytes <<<"$tick")" "and its memory limit"
start_node e3 --name e3 --cluster-key "$key" --seeds "127.0.0.1:$gport1"
pid3=$NODE_PID
wait_for "e3 joining is a member event" bash -c "grep -A1 '^event: member' '$stream' | grep -q '\"member\":\"e3\"'"
wait_for "and a ring event" grep -q '^event: ring' "$stream"

ids=$(sed -n 's/^id: //p' "$stream")
run=$(head -n1 <<<"$ids" | cut -d- -f1)
assert_eq 1 "$(cut -d- -f1 <<<"$ids" | sort -u | wc -l)" "every id is of one run"
seqs=$(cut -d- -f2 <<<"$ids")
assert_eq "$seqs" "$(sort -n <<<"$seqs")" "in order"
assert_eq "$(wc -l <<<"$seqs")" "$(sort -u <<<"$seqs" | wc -l)" "each once"

# --- resuming ---
# The id just before an event's (events relayed from e2 and e1's own may
# come in either order, so ids are taken from what the stream showed).
id_before() { # PATTERN -> the id of the event before the first data line matching it
  awk -v re="$1" '/^id: / {prev = cur; cur = $2} $0 ~ re && /^data: / {print prev; exit}' "$stream"
}
id_of() { # PATTERN -> the id of the first event whose data matches it
  awk -v re="$1" '/^id: / {cur = $2} $0 ~ re && /^data: / {print cur; exit}' "$stream"
}
before_pattern=$(id_before '"pattern":"users:\\*"')
resumed=$(timeout 2 curl -sN -H "Last-Event-ID: $before_pattern" "$url1/api/events?types=invalidate_pattern" || true)
assert_match '"pattern":"users:\*"' "$resumed" "Last-Event-ID resumes after that event"
assert_eq 0 "$(grep -c '^event: metrics' <<<"$resumed" || true)" "types keeps only those types"
resumed=$(timeout 2 curl -sN -H "Last-Event-ID: $(id_of '"pattern":"users:\\*"')" "$url1/api/events?types=invalidate_pattern" || true)
assert_eq 0 "$(grep -c '"pattern":"users:' <<<"$resumed" || true)" "and not with the event it names"
del_id=$(id_of 'del-via-e2')
resumed=$(timeout 2 curl -sN "$url1/api/events?types=delete&last_event_id=${del_id%-*}-$((${del_id##*-} - 1))" || true)
assert_match 'del-via-e2' "$resumed" "?last_event_id= works as the header does"
reset=$(timeout 1 curl -sN -H "Last-Event-ID: 12345-6" "$url1/api/events?types=delete" || true)
assert_match $'event: reset\ndata: \\{"reason":"another_run"\\}' "$reset" "an id of another run is a reset"
NODE_URL=$url1
http GET "/api/events?types=a,b,c,d,e,f,g,h,i"
assert_eq 400 "$STATUS" "too many types is a 400"

# --- the stream ends cleanly when the node stops ---
stop_node "$pid3"
kill "$curl_pid" 2>/dev/null || true
wait "$curl_pid" 2>/dev/null || true
streams_open() { curl -fsS "$url1/metrics" | grep -q '^http_streams_active 0$'; }
wait_for "no stream left open" streams_open
http GET /metrics
assert_match 'events_received_total [1-9]' "$BODY" "e1 received events from the others"

# --- --events-channel: the same events for applications, on Redis ---
rc=0; "$DCACHE_NODE_BIN" --http-port 0 --cluster-port 0 --events-channel inv 2>"$TEST_TMP/noredis.log" || rc=$?
assert_eq 2 "$rc" "--events-channel without --redis is refused"
assert_match 'events-channel.*needs --redis' "$(cat "$TEST_TMP/noredis.log")" "and says why"
start_redis redis
start_node r1 --name r1 --redis "redis://127.0.0.1:$REDIS_PORT" --events-channel dcache-invalidations
sub="$TEST_TMP/sub"
redis-cli -p "$REDIS_PORT" --no-raw SUBSCRIBE dcache-invalidations >"$sub" 2>&1 &
sub_pid=$!
NODE_PIDS+=("$sub_pid")
subscribed() { [[ $(redis-cli -p "$REDIS_PORT" PUBSUB NUMSUB dcache-invalidations | tail -n 1) == 1 ]]; }
wait_for "the subscriber is listening" subscribed
curl -fsS -X POST "$NODE_URL/api/invalidate/pattern" --data '{"pattern":"dry:*","dry_run":true}' >/dev/null
curl -fsS -X DELETE "$NODE_URL/api/cache/pub:1" -H 'X-Request-Id: pub-1' >/dev/null
curl -fsS -X POST "$NODE_URL/api/invalidate" --data '{"keys":["pub:2"]}' -H 'X-Request-Id: pub-2' >/dev/null
wait_for "both invalidations published" bash -c "grep -q 'pub-1' '$sub' && grep -q 'pub-2' '$sub'"
assert_eq 1 "$(grep -c 'pub-1' "$sub")" "each once"
assert_eq 0 "$(grep -c 'dry:' "$sub" || true)" "a dry run is not published"
assert_match '"action\\":\\"delete\\"' "$(grep 'pub-1' "$sub")" "as the JSON record"
http GET /metrics
assert_match 'events_redis_published_total 2' "$BODY" "and counted"
finish
