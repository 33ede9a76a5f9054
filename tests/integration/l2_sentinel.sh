#!/usr/bin/env bash
# Redis Sentinel: one master, one replica and three sentinels on loopback; a
# node finds the master through the sentinels, the master is killed, the
# sentinels promote the replica, and the node keeps reading and writing
# through the new master.
source "$(dirname "$0")/lib.sh"

start_redis master
MPORT=$REDIS_PORT MPID=$REDIS_PID
start_redis replica --replicaof 127.0.0.1 "$MPORT"
RPORT=$REDIS_PORT

SENTINELS=""
for i in 1 2 3; do
  mkdir -p "$TEST_TMP/sentinel$i"
  for try in 1 2 3 4 5; do
    sp=$(pick_port)
    printf '%s\n' "port $sp" "bind 127.0.0.1" "dir $TEST_TMP/sentinel$i" \
      "sentinel monitor mymaster 127.0.0.1 $MPORT 2" "sentinel down-after-milliseconds mymaster 1000" \
      "sentinel failover-timeout mymaster 5000" "sentinel parallel-syncs mymaster 1" \
      >"$TEST_TMP/sentinel$i/sentinel.conf"
    redis-server "$TEST_TMP/sentinel$i/sentinel.conf" --sentinel >"$TEST_TMP/sentinel$i.log" 2>&1 &
    pid=$!
    NODE_PIDS+=("$pid")
    deadline=$((SECONDS + 10))
    until [[ $(redis-cli -p "$sp" ping 2>/dev/null) == PONG ]]; do
      if ! kill -0 "$pid" 2>/dev/null || ((SECONDS >= deadline)); then break; fi
      sleep 0.05
    done
    [[ $(redis-cli -p "$sp" ping 2>/dev/null) == PONG ]] && break
    kill "$pid" 2>/dev/null || true
    ((try < 5)) || { cat "$TEST_TMP/sentinel$i.log" >&2; echo "sentinel $i did not start" >&2; exit 1; }
  done
  SENTINELS+="${SENTINELS:+,}127.0.0.1:$sp"
  eval "SP$i=$sp"
done
# A failover needs the sentinels to know the replica and each other.
sentinels_ready() {
  local p
  for p in "$SP1" "$SP2" "$SP3"; do
    [[ $(redis-cli -p "$p" sentinel replicas mymaster 2>/dev/null | grep -c "^$RPORT$") -ge 1 ]] || return 1
    [[ $(redis-cli -p "$p" sentinel sentinels mymaster 2>/dev/null | grep -c '^runid$') == 2 ]] || return 1
  done
}
WAIT_SECONDS=30 wait_for "three sentinels know the master, the replica and each other" sentinels_ready && pass

start_node n1 --workers 1 --redis-sentinel "$SENTINELS" --redis-master mymaster --l2-timeout 300ms
master_is() { grep -q "\"msg\":\"redis master\",\"addr\":\"127.0.0.1:$1\"" "$NODE_LOG"; }
wait_for "the node learns the master from the sentinels" master_is "$MPORT" && pass
for i in $(seq 1 20); do http PUT "/api/cache/s$i" --data-binary "value-$i"; done
assert_eq 201 "$STATUS" "writes go to the master"
assert_eq 1 "$(redis-cli -p "$MPORT" wait 1 5000)" "the replica has the writes"

kill -9 "$MPID"
writes_again() { http PUT /api/cache/after-failover --data-binary z; [[ $STATUS == 201 ]]; }
WAIT_SECONDS=40 wait_for "writes succeed after the failover" writes_again && pass
assert_eq ok "$(master_is "$RPORT" && echo ok)" "the node follows the promoted replica"
assert_match 'z$' "$(redis-cli -p "$RPORT" get dcache:after-failover)" "the new write is on the new master"

# A node with an empty L1 reads what was written before the failover.
stop_node "$NODE_PID"
start_node n2 --workers 1 --redis-sentinel "$SENTINELS" --redis-master mymaster --l2-timeout 300ms
read_old() { http GET /api/cache/s7; [[ $STATUS == 200 && $(header x-cache) == HIT-L2 && $BODY == value-7 ]]; }
WAIT_SECONDS=10 wait_for "keys written before the failover are read from the new master" read_old && pass
stop_node "$NODE_PID"
finish
