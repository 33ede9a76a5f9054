#!/usr/bin/env bash
# The audit trail in a real PostgreSQL (--audit-db): the table is created,
# every node's records arrive once, /api/audit reads the whole cluster's
# trail from it; with PostgreSQL down, deletes and invalidations still
# succeed, records wait in the files (also across a restart of the node)
# and arrive, none lost and none twice, when it is back.
source "$(dirname "$0")/lib.sh"

start_postgres
key=$(head -c 32 /dev/urandom | base64)
start_node a1 --name a1 --cluster-key "$key" --audit-dir "$TEST_TMP/audit1" --audit-db "$PG_URL"
url1=$NODE_URL pid1=$NODE_PID gport1=$NODE_GOSSIP_PORT
start_node a2 --name a2 --cluster-key "$key" --seeds "127.0.0.1:$gport1" --audit-dir "$TEST_TMP/audit2" \
  --audit-db "$PG_URL"
url2=$NODE_URL gport2=$NODE_GOSSIP_PORT
wait_for "two members" bash -c "curl -fsS $url1/api/cluster/members | jq -e '[.members[] | select(.state == \"alive\")] | length == 2'"

rows() { pg_sql "select count(*) from dcache_audit" 2>/dev/null || echo -1; }
expect_rows() { [[ $(rows) == "$1" ]]; }

curl -fsS -X DELETE "$url1/api/cache/k1" -H 'X-Request-Id: first' >/dev/null
curl -fsS -X POST "$url2/api/invalidate" --data '{"keys":["k2","k3"]}' >/dev/null
curl -fsS -X POST "$url2/api/invalidate/pattern" --data '{"pattern":"k*","dry_run":true}' >/dev/null
wait_for "three rows" expect_rows 3
assert_eq "a1 delete first" "$(pg_sql "select node, action, request_id from dcache_audit where request_id = 'first'" | tr '|' ' ')" \
  "a row names node, action and request id"
assert_eq '["k1"]' "$(pg_sql "select record->'keys' from dcache_audit where request_id = 'first'")" "and keeps the record"
NODE_URL=$url1
http GET /api/audit
assert_eq postgres "$(json .source)" "/api/audit reads PostgreSQL"
assert_eq "a1 a2" "$(json '[.records[].node] | unique | join(" ")')" "the whole cluster's trail, from any node"
http GET "/api/audit?limit=2"
next=$(json .next)
http GET "/api/audit?limit=2&cursor=$next"
assert_eq 1 "$(json '.records | length')" "pages through PostgreSQL"
http GET /ready
assert_eq "ok postgres" "$(json '.dependencies.audit | "\(.status) \(.sink)"')" "/ready: audit ok"

# --- PostgreSQL down under invalidation load ---
stop_postgres
ok=0
for i in $(seq 1 40); do
  code=$(curl -sS -o /dev/null -w '%{http_code}' -X DELETE "$url1/api/cache/down:$i")
  [[ $code == 200 ]] && ok=$((ok + 1))
done
for i in $(seq 1 10); do
  code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST "$url2/api/invalidate/pattern" --data "{\"pattern\":\"p$i:*\"}")
  [[ $code == 200 ]] && ok=$((ok + 1))
done
assert_eq 50 "$ok" "deletes and invalidations succeed while PostgreSQL is down"
degraded() { curl -sS "$url1/ready" | jq -e '.dependencies.audit.status == "degraded" and .dependencies.audit.backlog_bytes > 0'; }
wait_for "/ready says the audit trail is degraded, with a backlog" degraded
http GET "/api/audit?limit=5"
assert_eq file "$(json .source)" "/api/audit falls back to this node's files"
assert_match 'PostgreSQL' "$(json .degraded)" "and says why"
# a1 stops with records not shipped; they are in its files.
stop_node "$pid1"
restart_postgres
start_node a1 --name a1 --cluster-key "$key" --seeds "127.0.0.1:$gport2" --audit-dir "$TEST_TMP/audit1" \
  --audit-db "$PG_URL"
url1=$NODE_URL
WAIT_SECONDS=30 wait_for "every record, once (53)" expect_rows 53
assert_eq 53 "$(pg_sql "select count(distinct request_id) from dcache_audit")" "no record twice"
assert_eq 40 "$(pg_sql "select count(*) from dcache_audit where action = 'delete' and record->'keys'->>0 like 'down:%'")" \
  "the deletes made during the outage"
recovered() { curl -sS "$url1/ready" | jq -e '.dependencies.audit.status == "ok" and .dependencies.audit.backlog_bytes == 0'; }
wait_for "/ready says ok again" recovered
http GET /metrics
assert_match 'audit_dropped_total\{reason="spool_full"\} 0' "$BODY" "nothing dropped"
assert_match 'audit_written_total\{sink="postgres"\} [1-9]' "$BODY" "shipped records are counted"

# --- a connection string with a host name is refused at start ---
rc=0; "$DCACHE_NODE_BIN" --http-port 0 --cluster-port 0 --audit-dir "$TEST_TMP/audit3" \
  --audit-db "postgres://dcache@localhost:$PG_PORT/postgres" 2>"$TEST_TMP/bad.log" || rc=$?
assert_eq 2 "$rc" "--audit-db with a host name stops the start"
assert_match 'audit-db.*IP address' "$(cat "$TEST_TMP/bad.log")" "and says why"
finish
