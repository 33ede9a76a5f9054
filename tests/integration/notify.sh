#!/usr/bin/env bash
# Invalidation events from PostgreSQL (--invalidate-listen): NOTIFY with
# keys or a pattern invalidates on every node, carried out cluster-wide
# once (one audit record, by the event's designated node) while every node
# drops its own copies; a malformed payload is counted and ignored; a node
# whose connection to PostgreSQL came back after a loss drops its L1.
source "$(dirname "$0")/lib.sh"

start_postgres
key=$(head -c 32 /dev/urandom | base64)
URLS=()
start_node n1 --name n1 --cluster-key "$key" --invalidate-listen dcache_inv --listen-db "$PG_URL"
URLS+=("$NODE_URL")
gport1=$NODE_GOSSIP_PORT
for n in n2 n3; do
  start_node "$n" --name "$n" --cluster-key "$key" --seeds "127.0.0.1:$gport1" --invalidate-listen dcache_inv \
    --listen-db "$PG_URL"
  URLS+=("$NODE_URL")
done
formed() { for u in "${URLS[@]}"; do curl -fsS "$u/ready" >/dev/null || return 1; done; }
wait_for "three ready nodes" formed
listening() { [[ $(pg_sql "select count(*) from pg_stat_activity where query like 'LISTEN%'") == 3 ]]; }
wait_for "every node listens" listening

for k in users:1 users:2 orders:1; do curl -fsS -X PUT "${URLS[0]}/api/cache/$k" --data-binary v >/dev/null; done
wait_for "the values everywhere" status_everywhere users:2 200 "${URLS[@]}"

pg_sql "NOTIFY dcache_inv, '{\"keys\":[\"users:1\"]}'" >/dev/null
wait_for "NOTIFY with a key invalidates it on every node" status_everywhere users:1 404 "${URLS[@]}"
status_everywhere users:2 200 "${URLS[@]}" && pass || fail "and only that key"
pg_sql "NOTIFY dcache_inv, '{\"pattern\":\"users:*\",\"id\":\"ev-2\"}'" >/dev/null
wait_for "NOTIFY with a pattern" status_everywhere users:2 404 "${URLS[@]}"
status_everywhere orders:1 200 "${URLS[@]}" && pass || fail "and only what it matches"

# Once cluster-wide: one audit record per event, on the node that carried it out.
audit_count() { # ACTOR -> records on every node
  local u total=0
  for u in "${URLS[@]}"; do
    total=$((total + $(curl -fsS "$u/api/audit?actor=$1" | jq '.records | length')))
  done
  echo "$total"
}
wait_for "one audit record per event" output_is 2 audit_count pg:dcache_inv
recs=""
for u in "${URLS[@]}"; do recs+=$(curl -fsS "$u/api/audit?actor=pg:dcache_inv&action=invalidate_pattern" | jq -c '.records[]'); done
assert_eq "ev-2 ok users:*" "$(jq -r '"\(.request_id) \(.result) \(.pattern)"' <<<"$recs")" "the event's id is the request id"
assert_eq 2 "$(metric_sum 'invalidation_events_total{result="cluster"}' "${URLS[@]}")" "carried out once each"
assert_eq 4 "$(metric_sum 'invalidation_events_total{result="local"}' "${URLS[@]}")" "and applied locally by the others"

pg_sql "NOTIFY dcache_inv, 'not json'" >/dev/null
pg_sql "NOTIFY dcache_inv, '{\"keys\":[]}'" >/dev/null
wait_for "malformed payloads are counted on every node" \
  output_is 6 metric_sum 'invalidation_events_total{result="malformed"}' "${URLS[@]}"
status_everywhere orders:1 200 "${URLS[@]}" && pass || fail "and change nothing"

# --- a gap: PostgreSQL goes away and comes back ---
curl -fsS -X PUT "${URLS[0]}/api/cache/gap:1" --data-binary v >/dev/null
stop_postgres
restart_postgres
wait_for "every node listens again" listening
WAIT_SECONDS=20 wait_for "each node counts the gap" output_is 3 metric_sum invalidation_event_gaps_total "${URLS[@]}"
status_everywhere gap:1 404 "${URLS[@]}" && pass || fail "and dropped its L1 (no Redis: the value is gone)"
pg_sql "NOTIFY dcache_inv, '{\"keys\":[\"orders:1\"]}'" >/dev/null
wait_for "events work again" status_everywhere orders:1 404 "${URLS[@]}"

rc=0; "$DCACHE_NODE_BIN" --http-port 0 --cluster-port 0 --invalidate-listen dcache_inv 2>"$TEST_TMP/bad.log" || rc=$?
assert_eq 2 "$rc" "--invalidate-listen without a database is refused"
assert_match 'needs a PostgreSQL' "$(cat "$TEST_TMP/bad.log")" "and says why"
rc=0; "$DCACHE_NODE_BIN" --http-port 0 --cluster-port 0 --audit-dir "$TEST_TMP/a4" --invalidate-listen 'bad name' \
  --listen-db "$PG_URL" 2>"$TEST_TMP/bad2.log" || rc=$?
assert_eq 2 "$rc" "a channel that is not a name is refused"
assert_match 'letters, digits' "$(cat "$TEST_TMP/bad2.log")" "and says why"
finish
