#!/usr/bin/env bash
# Redis as L2 with a real redis-server: write-through and read-through with
# TTLs carried over; a node restarted with an empty L1 serves every key from
# Redis, and through a node that does not own a key, its owner's Redis read
# says HIT-L2; DELETE and invalidations (keys, pattern) leave versioned
# tombstones in Redis; Redis killed: reads
# of cached keys still succeed, misses and sync-mode writes get 503 at once,
# and the breaker says so; Redis back: writes succeed again; journal mode
# accepts writes while Redis is down (each after the journal writer synced
# it) and replays every one of them; a read of a key whose newer write
# waits in the journal (Redis holding the older value, the replay held)
# gets 503 journal_pending, or "not found" for a DELETE, also after a
# restart, and the new value once replayed; a
# stopped Redis trips the breaker within the timeout.
source "$(dirname "$0")/lib.sh"

N=200
rc() { redis-cli -p "$REDIS_PORT" "$@"; }
metric() { curl -s "$NODE_URL/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
l2_field() { curl -s "$NODE_URL/ready" | jq -r ".dependencies.l2.$1"; }
put_all() { # prefix first last -> count of 2xx
  local i ok=0
  for ((i = $2; i <= $3; i++)); do
    http PUT "/api/cache/$1$i" --data-binary "value-$i"
    [[ $STATUS == 20[01] ]] && ok=$((ok + 1))
  done
  echo "$ok"
}
get_all() { # prefix first last -> count of 200 with the right body
  local i ok=0
  for ((i = $2; i <= $3; i++)); do
    http GET "/api/cache/$1$i"
    [[ $STATUS == 200 && $BODY == "value-$i" ]] && ok=$((ok + 1))
  done
  echo "$ok"
}

start_redis redis
L2=(--redis "redis://127.0.0.1:$REDIS_PORT" --l2-timeout 300ms --workers 1)
start_node n1 "${L2[@]}"
assert_eq ok "$(l2_field status)" "/ready shows L2 up"

# --- write-through, TTL carried into Redis ---
assert_eq "$N" "$(put_all k 1 $N)" "$N PUTs written through"
assert_eq "$N" "$(rc --scan --pattern 'dcache:k*' | wc -l)" "every key is in Redis under the prefix"
assert_match '^dc1[0-9a-f]{34}.*value-7$' "$(rc get dcache:k7)" "Redis holds the versioned envelope"
http PUT "/api/cache/short?ttl=100" --data-binary "brief"
pttl=$(rc pttl dcache:short)
assert_match '^[0-9]+$' "$pttl" "a TTL is set in Redis"
((pttl > 90000 && pttl <= 100000)) && pass || fail "PTTL $pttl is not the 100 s TTL"

# --- a restarted node with an empty L1 reads every key from Redis ---
stop_node "$NODE_PID"
start_node n1b "${L2[@]}"
http GET /api/cache/k3
assert_eq "200 HIT-L2" "$STATUS $(header x-cache)" "the first GET after a restart is an L2 hit"
http GET /api/cache/k3
assert_eq "200 HIT" "$STATUS $(header x-cache)" "and fills L1"
http GET /api/cache/short
max_age=$(header cache-control | grep -o '[0-9]*')
((max_age > 80 && max_age <= 100)) && pass || fail "the TTL left came back from Redis (max-age $max_age)"
assert_eq "$N" "$(get_all k 1 $N)" "every key served after the restart"
http GET /api/cache/never-written
assert_eq "404 MISS" "$STATUS $(header x-cache)" "a key in neither level is a miss"

# --- after a full restart, a GET forwarded to an owner that read Redis says HIT-L2 ---
# Two fresh nodes, one owner per key: through the node that does not own k5,
# the value comes from its owner's Redis read, and X-Cache says so.
N1B_URL=$NODE_URL N1B_PID=$NODE_PID
TWO=(--workers 1 --replicas 1 --probe-interval 200ms --probe-timeout 100ms --gossip-interval 50ms --push-pull-interval 2s)
start_node fa --name fa "${L2[@]}" "${TWO[@]}"
FA_URL=$NODE_URL FA_PID=$NODE_PID
start_node fb --name fb "${L2[@]}" "${TWO[@]}" --seeds "127.0.0.1:$NODE_GOSSIP_PORT"
FB_URL=$NODE_URL FB_PID=$NODE_PID
two_ring() { [[ $(curl -s "$FA_URL/api/cluster/ring" | jq -r .members) == 2 &&
                $(curl -s "$FB_URL/api/cluster/ring" | jq -r .members) == 2 ]]; }
wait_for "two nodes share one ring" two_ring
owner=$(curl -s "$FA_URL/api/cluster/ring?key=k5" | jq -r '.owners[0]')
[[ $owner == fa ]] && NODE_URL=$FB_URL || NODE_URL=$FA_URL
http GET /api/cache/k5
assert_eq "200 HIT-L2 $owner value-5" "$STATUS $(header x-cache) $(header x-cache-node) $BODY" \
  "a forwarded GET that its owner read from Redis is a HIT-L2, answered by the owner"
http GET /api/cache/k5
assert_eq "200 HIT $owner" "$STATUS $(header x-cache) $(header x-cache-node)" "then the owner serves it from L1"
ENTRY_URL=$NODE_URL
NODE_URL=$N1B_URL NODE_PID=$N1B_PID

# --- DELETE and invalidation clear Redis ---
http DELETE /api/cache/k5
assert_match '^200 dc0[0-9a-f]{16}$' "$STATUS $(rc get dcache:k5)" "DELETE leaves a tombstone with its version in Redis"
pttl=$(rc pttl dcache:k5)
((pttl > 3500000 && pttl <= 3600000)) && pass || fail "the tombstone lives --l2-tombstone-ttl (1h), PTTL $pttl"
http GET /api/cache/k5
assert_eq "404 MISS" "$STATUS $(header x-cache)" "a tombstone reads as a miss"
# A write older than the delete that reaches Redis later (a slow write, a
# journal replayed from another node) is refused: the nodes' own Lua.
older=$(printf 'dc1%016x%016x00late' 1 0)
assert_eq 0 "$(rc eval "local cur = redis.call('GET', KEYS[1]) if cur and (string.sub(cur, 1, 3) == 'dc1' or string.sub(cur, 1, 3) == 'dc0') and string.sub(cur, 4, 19) > string.sub(ARGV[1], 4, 19) then return 0 end redis.call('SET', KEYS[1], ARGV[1]) return 1" 1 dcache:k5 "$older")" \
  "an older write after the delete is refused by the version check"
http GET /api/cache/k5
assert_eq 404 "$STATUS" "and the key stays deleted"
# Invalidations are versioned deletes: one version for the whole request,
# a tombstone per key in Redis, and the same refusal of older writes.
http POST /api/invalidate -d '{"keys":["k6","k7","k-never"]}'
assert_eq "ok 2" "$(json .l2.status) $(json .l2.unlinked)" "key invalidation removes the values from Redis"
t6=$(rc get dcache:k6) t7=$(rc get dcache:k7)
assert_match '^dc0[0-9a-f]{16}$' "$t6" "key invalidation leaves a tombstone with its version in Redis"
assert_eq "$t6 $t6" "$t7 $(rc get dcache:k-never)" "one version for the whole request, held or not"
pttl=$(rc pttl dcache:k6)
((pttl > 3500000 && pttl <= 3600000)) && pass || fail "the invalidation's tombstone lives --l2-tombstone-ttl, PTTL $pttl"
http GET /api/cache/k6
assert_eq "404 MISS" "$STATUS $(header x-cache)" "an invalidated key reads as a miss"
assert_eq 0 "$(rc eval "local cur = redis.call('GET', KEYS[1]) if cur and (string.sub(cur, 1, 3) == 'dc1' or string.sub(cur, 1, 3) == 'dc0') and string.sub(cur, 4, 19) > string.sub(ARGV[1], 4, 19) then return 0 end redis.call('SET', KEYS[1], ARGV[1]) return 1" 1 dcache:k6 "$older")" \
  "an older write after the invalidation is refused by the version check"
http POST /api/invalidate/pattern -d '{"pattern":"k2*","dry_run":true}'
assert_match '^dc1' "$(rc get dcache:k20)" "a dry run changes nothing in Redis"
http POST /api/invalidate/pattern -d '{"pattern":"k1*"}'
assert_eq "ok 0" "$(json .l2.status) $(rc --scan --pattern 'dcache:k1*' | xargs -n 50 redis-cli -p "$REDIS_PORT" mget | grep -c '^dc1')" \
  "pattern invalidation leaves no value in Redis"
assert_match '^[1-9][0-9]*$' "$(json .l2.unlinked)" "and says how many values it removed"
assert_match '^dc0[0-9a-f]{16}$' "$(rc get dcache:k12)" "each key it found is a tombstone"
http GET /api/cache/k12
assert_eq "404 MISS" "$STATUS $(header x-cache)" "and reads as a miss"
assert_eq 1 "$(metric tombstone_patterns)" "the node remembers the pattern"

# --- Redis killed: cached reads work, the rest fails fast with 503 ---
kill -9 "$REDIS_PID"
wait "$REDIS_PID" 2>/dev/null || true
assert_eq 80 "$(get_all k 20 99)" "cached keys are still served"
http GET /api/cache/never-written-2
assert_eq "503 l2_unavailable 1" "$STATUS $(json .code) $(header retry-after)" "an L1 miss is 503 with Retry-After"
http PUT /api/cache/during-outage --data-binary x
assert_eq "503 l2_unavailable" "$STATUS $(json .code)" "a sync-mode write is refused while Redis is down"
http POST /api/invalidate -d '{"keys":["k30"]}'
assert_eq "503 l2_unavailable 1" "$STATUS $(json .code) $(json .invalidated)" \
  "an invalidation Redis missed is reported (L1 was cleared)"
http GET /api/cache/k30
assert_eq 503 "$STATUS" "the invalidated key is gone from L1"
# Through a node that does not own a key, a miss its owner could not look up
# in Redis is Redis's fault, not the owner's.
for i in $(seq 100 200); do
  [[ $(curl -s "$FA_URL/api/cluster/ring?key=absent$i" | jq -r '.owners[0]') == "$owner" ]] && break
done
SAVED_URL=$NODE_URL NODE_URL=$ENTRY_URL
http GET "/api/cache/absent$i"
assert_eq "503 l2_unavailable" "$STATUS $(json .code)" \
  "a forwarded miss whose owner cannot reach Redis is 503 l2_unavailable"
NODE_URL=$SAVED_URL
stop_node "$FA_PID"
stop_node "$FB_PID"
for i in 1 2 3 4 5 6; do http PUT "/api/cache/outage$i" --data-binary x; done
assert_eq open "$(l2_field breaker)" "the breaker opens after consecutive failures"
assert_eq "degraded open" "$(curl -s "$NODE_URL/api/metrics" | jq -r '"\(.l2.status) \(.l2.breaker)"')" "/api/metrics shows the breaker"
assert_eq degraded "$(l2_field status)" "/ready reports L2 degraded"
assert_match '^[1-9]' "$(metric l2_writes_refused_total)" "refused writes are counted"
assert_match '^[1-9]' "$(metric 'errors_total{type="l2_unavailable"}')" "503s are counted under their cause"
assert_eq 0 "$(metric 'errors_total{type="no_memory"}')" "and not as no_memory"

# --- Redis back: writes go through again ---
REDIS_FIXED_PORT=$REDIS_PORT start_redis redis2
writes_back() { http PUT /api/cache/after-outage --data-binary y; [[ $STATUS == 201 ]]; }
WAIT_SECONDS=15 wait_for "writes succeed once Redis is back" writes_back && pass
after=$(rc get dcache:after-outage)
assert_eq "ok y" "$(l2_field status) ${after: -1}" "the breaker closed and the write is in Redis"
stop_node "$NODE_PID"

# --- journal mode: writes accepted while Redis is down, replayed later ---
start_node n2 "${L2[@]}" --l2-write-mode journal --l2-journal-dir "$TEST_TMP/journal"
kill -9 "$REDIS_PID"
wait "$REDIS_PID" 2>/dev/null || true
journaled=0
for i in $(seq 1 50); do
  http PUT "/api/cache/j$i" --data-binary "value-$i"
  [[ $STATUS == 201 && $(header x-cache-durability) == journal ]] && journaled=$((journaled + 1))
done
assert_eq 50 "$journaled" "writes are acknowledged from the journal while Redis is down"
http DELETE /api/cache/j50
assert_eq "200 journal" "$STATUS $(header x-cache-durability)" "a DELETE is journaled too"
http POST /api/invalidate -d '{"keys":["j49"]}'
assert_eq "200 journaled" "$STATUS $(json .l2.status)" "an invalidation Redis missed is journaled"
assert_eq 52 "$(l2_field journal_records)" "the journal holds them"
assert_eq "52 52 0" \
  "$(metric l2_journal_group_records_total) $(metric l2_journal_group_appends_total) $(metric l2_journal_queued_appends)" \
  "each was acknowledged after the writer thread synced its group"
assert_match '^[1-9][0-9]* failed 0$' "$(metric l2_journal_fsyncs_total) failed $(metric l2_journal_failed_groups_total)" \
  "the groups were synced"
REDIS_FIXED_PORT=$REDIS_PORT start_redis redis3
# 48 values and the two tombstones the journaled deletes leave.
replayed() { [[ $(rc --scan --pattern 'dcache:j*' | wc -l) == 50 && $(l2_field journal_records) == 0 ]]; }
WAIT_SECONDS=20 wait_for "the journal is replayed into Redis" replayed && pass
same=0
for i in $(seq 1 48); do [[ $(rc get "dcache:j$i") == *"value-$i" ]] && same=$((same + 1)); done
assert_eq 48 "$same" "every acknowledged write is in Redis, key by key"
assert_match '^dc0[0-9a-f]{16} dc0[0-9a-f]{16}$' "$(rc get dcache:j50) $(rc get dcache:j49)" \
  "the journaled DELETE and invalidation were replayed (tombstones)"

# A node stopped with writes still in its journal replays them after its restart.
kill -9 "$REDIS_PID"
wait "$REDIS_PID" 2>/dev/null || true
for i in $(seq 1 10); do http PUT "/api/cache/r$i" --data-binary "value-$i"; done
assert_eq "201 10" "$STATUS $(l2_field journal_records)" "ten writes journaled"
stop_node "$NODE_PID"
REDIS_FIXED_PORT=$REDIS_PORT start_redis redis4
start_node n2b "${L2[@]}" --l2-write-mode journal --l2-journal-dir "$TEST_TMP/journal"
restart_replayed() { [[ $(rc --scan --pattern 'dcache:r*' | wc -l) == 10 && $(l2_field journal_records) == 0 ]]; }
WAIT_SECONDS=20 wait_for "a restarted node replays its journal" restart_replayed && pass
stop_node "$NODE_PID"

# --- reads never take Redis's older value of a key still in the journal ---
# Redis denied EVAL (an ACL) refuses every write and every replay (the
# nodes' Lua) while it still answers GETs: writes are journaled and the
# drain is held with Redis up, until EVAL is allowed again.
start_node n5 "${L2[@]}" --l2-write-mode journal --l2-journal-dir "$TEST_TMP/pending-journal"
http PUT /api/cache/pend --data-binary old
http PUT /api/cache/pdel --data-binary old
assert_eq "201 " "$STATUS $(header x-cache-durability)" "written through to Redis first"
rc ACL SETUSER default -eval >/dev/null
http PUT /api/cache/pend --data-binary new
assert_eq "200 journal" "$STATUS $(header x-cache-durability)" "a write Redis refuses is journaled"
http DELETE /api/cache/pdel
assert_eq "200 journal" "$STATUS $(header x-cache-durability)" "so is a DELETE"
assert_eq 2 "$(metric l2_journal_pending_keys)" "both keys are pending"
# L1 loses them (a restart); the pending keys come back from the files.
stop_node "$NODE_PID"
start_node n5b "${L2[@]}" --l2-write-mode journal --l2-journal-dir "$TEST_TMP/pending-journal"
assert_eq "2 2" "$(l2_field journal_records) $(metric l2_journal_pending_keys)" \
  "a restarted node rebuilds its pending keys from the journal"
assert_match '^dc1.*old$' "$(rc get dcache:pend)" "Redis still holds the older value"
http GET /api/cache/pend
assert_eq "503 journal_pending 1" "$STATUS $(json .code) $(header retry-after)" \
  "a read does not take Redis's older value of a key whose newer write waits in the journal"
http GET /api/cache/pdel
assert_eq 404 "$STATUS" "a key whose DELETE waits in the journal is not found, though Redis holds a value"
assert_eq "1 1 1" \
  "$(metric l2_reads_journal_pending_total) $(metric l2_reads_journal_deleted_total) $(metric 'errors_total{type="journal_pending"}')" \
  "the refused and the deleted reads are counted"
assert_eq 2 "$(l2_field journal_records)" "the drain is still held"
rc ACL SETUSER default +eval >/dev/null
drained() { [[ $(l2_field journal_records) == 0 && $(metric l2_journal_pending_keys) == 0 ]]; }
WAIT_SECONDS=20 wait_for "the journal is replayed and no key is pending" drained && pass
http GET /api/cache/pend
assert_eq "200 new HIT-L2" "$STATUS $BODY $(header x-cache)" "after the replay the read gets the journaled value from Redis"
http GET /api/cache/pdel
assert_eq 404 "$STATUS" "and the journaled DELETE stands"
stop_node "$NODE_PID"

# --- a full journal refuses writes as sync mode does ---
start_node n4 "${L2[@]}" --l2-write-mode journal --l2-journal-dir "$TEST_TMP/small-journal" --l2-journal-max 4096
kill -STOP "$REDIS_PID"
codes=""
for i in $(seq 1 60); do http PUT "/api/cache/full$i" --data-binary "$(printf '%0100d' "$i")"; codes+="$STATUS "; done
assert_match '^(201 )+(503 )+$' "$codes" "writes are journaled until the journal is full, then refused"
assert_eq l2_unavailable "$(json .code)" "a refused write says why"
kill -CONT "$REDIS_PID"
stop_node "$NODE_PID"

# --- a stopped Redis trips the breaker within the timeout ---
start_node n3 "${L2[@]}"
kill -STOP "$REDIS_PID"
start=$SECONDS
for i in 1 2 3 4 5; do http PUT "/api/cache/stopped$i" --data-binary x; done
assert_eq "503 open" "$STATUS $(l2_field breaker)" "five timed-out writes open the breaker"
((SECONDS - start <= 5)) && pass || fail "five writes against a stopped Redis took $((SECONDS - start)) s"
kill -CONT "$REDIS_PID"
stop_node "$NODE_PID"
finish
