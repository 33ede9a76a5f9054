#!/usr/bin/env bash
# Invalidation events from Redis (--invalidate-subscribe): PUBLISH with
# keys or a pattern invalidates on every node, carried out cluster-wide
# once; a node whose subscription came back after Redis went away drops
# its L1.
source "$(dirname "$0")/lib.sh"

start_redis redis
rport=$REDIS_PORT
rpid=$REDIS_PID
key=$(head -c 32 /dev/urandom | base64)
URLS=()
start_node s1 --name s1 --cluster-key "$key" --redis "redis://127.0.0.1:$rport" --invalidate-subscribe dcache-inv
URLS+=("$NODE_URL")
gport1=$NODE_GOSSIP_PORT
start_node s2 --name s2 --cluster-key "$key" --seeds "127.0.0.1:$gport1" --redis "redis://127.0.0.1:$rport" \
  --invalidate-subscribe dcache-inv
URLS+=("$NODE_URL")
formed() { for u in "${URLS[@]}"; do curl -fsS "$u/ready" >/dev/null || return 1; done; }
wait_for "two ready nodes" formed
subscribers() { [[ $(redis-cli -p "$rport" PUBSUB NUMSUB dcache-inv | tail -n 1) == "$1" ]]; }
wait_for "both nodes subscribed" subscribers 2

for k in users:1 users:2 orders:1; do curl -fsS -X PUT "${URLS[0]}/api/cache/$k" --data-binary v >/dev/null; done
wait_for "the values everywhere" status_everywhere users:2 200 "${URLS[@]}"

redis-cli -p "$rport" PUBLISH dcache-inv '{"keys":["users:1"]}' >/dev/null
wait_for "PUBLISH with a key invalidates it on every node (and in Redis)" status_everywhere users:1 404 "${URLS[@]}"
status_everywhere users:2 200 "${URLS[@]}" && pass || fail "and only that key"
redis-cli -p "$rport" PUBLISH dcache-inv '{"pattern":"users:*"}' >/dev/null
wait_for "PUBLISH with a pattern" status_everywhere users:2 404 "${URLS[@]}"
status_everywhere orders:1 200 "${URLS[@]}" && pass || fail "and only what it matches"
audit_count() {
  local u total=0
  for u in "${URLS[@]}"; do total=$((total + $(curl -fsS "$u/api/audit?actor=redis:dcache-inv" | jq '.records | length'))); done
  echo "$total"
}
wait_for "one audit record per event" output_is 2 audit_count
redis-cli -p "$rport" PUBLISH dcache-inv '{"keys":"nope"}' >/dev/null
wait_for "a malformed payload is counted on each node" \
  output_is 2 metric_sum 'invalidation_events_total{result="malformed"}' "${URLS[@]}"

# --- Redis goes away and comes back on the same port: a gap ---
kill -9 "$rpid"
wait "$rpid" 2>/dev/null || true
REDIS_FIXED_PORT=$rport start_redis redis
# Redis restarted empty; what the nodes hold in L1 may be stale now.
wait_for "both nodes subscribed again" subscribers 2
wait_for "each node counts the gap" output_is 2 metric_sum invalidation_event_gaps_total "${URLS[@]}"
status_everywhere orders:1 404 "${URLS[@]}" && pass || fail "and dropped its L1 (Redis restarted empty: nothing to read back)"

rc=0; "$DCACHE_NODE_BIN" --http-port 0 --cluster-port 0 --invalidate-subscribe x 2>"$TEST_TMP/bad.log" || rc=$?
assert_eq 2 "$rc" "--invalidate-subscribe without --redis is refused"
assert_match 'needs --redis' "$(cat "$TEST_TMP/bad.log")" "and says why"
finish
