#!/usr/bin/env bash
# Minority: a node that loses sight of most of the cluster (here the two
# others stop; on a network it is the small side of a partition) answers
# 503 minority to writes, invalidations and reads (what it holds may have
# been overwritten or deleted on the other side; a miss may have been
# written there); /ready says minority. When the others are back it
# serves again.
source "$(dirname "$0")/lib.sh"

FAST=(--workers 1 --probe-interval 200ms --probe-timeout 100ms --gossip-interval 50ms --push-pull-interval 1s
  --replicas 3 --peer-timeout 300ms)
declare -A URL PID

launch() { # name [flags]
  local name=$1; shift
  start_node "$name" --name "$name" "${FAST[@]}" "$@"
  URL[$name]=$NODE_URL PID[$name]=$NODE_PID
}
ready_status() { curl -s "${URL[$1]}/ready" | jq -r .status; }
ring_size() { curl -s "${URL[$1]}/api/cluster/ring" | jq -r .members; }
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }

launch n1
SEED="127.0.0.1:$NODE_GOSSIP_PORT"
launch n2 --seeds "$SEED"
launch n3 --seeds "$SEED"
all_ok() { local n; for n in n1 n2 n3; do [[ $(ring_size "$n") == 3 && $(ready_status "$n") == ok ]] || return 1; done; }
WAIT_SECONDS=20 wait_for "three nodes joined and synced" all_ok && pass
assert_eq 201 "$(code -X PUT --data held "${URL[n1]}/api/cache/held")" "a PUT before the split"

kill -STOP "${PID[n2]}" "${PID[n3]}"
alone() { [[ $(ring_size n1) == 1 ]]; }
WAIT_SECONDS=20 wait_for "n1 declares the other two dead" alone && pass
assert_eq minority "$(ready_status n1)" "/ready says minority"
assert_eq 503 "$(code "${URL[n1]}/ready")" "/ready is 503 in a minority"
NODE_URL=${URL[n1]} http PUT /api/cache/late -d late
assert_eq "503 minority" "$STATUS $(json .code)" "a write in a minority is refused"
NODE_URL=${URL[n1]} http POST /api/invalidate -H 'Content-Type: application/json' -d '{"keys":["held"]}'
assert_eq "503 minority" "$STATUS $(json .code)" "so is an invalidation"
assert_eq 503 "$(code "${URL[n1]}/api/cache/held")" "what it holds may be stale: not served"
assert_eq 503 "$(code "${URL[n1]}/api/cache/never-written")" "a miss is not a 404 it could vouch for"
assert_eq 1 "$(curl -s "${URL[n1]}/metrics" | awk '$1 == "cluster_minority" {print $2}')" "cluster_minority gauge"

kill -CONT "${PID[n2]}" "${PID[n3]}"
WAIT_SECONDS=30 wait_for "the three see each other and sync again" all_ok && pass
assert_eq 0 "$(curl -s "${URL[n1]}/metrics" | awk '$1 == "cluster_minority" {print $2}')" "back in the majority"
assert_eq 201 "$(code -X PUT --data late "${URL[n1]}/api/cache/late")" "writes are taken again"
assert_eq 200 "$(code "${URL[n1]}/api/cache/held")" "and reads served"

finish
