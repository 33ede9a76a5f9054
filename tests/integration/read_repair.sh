#!/usr/bin/env bash
# Read repair: a node whose reads are checked with the other owners (it
# just stood still) sends what it holds to an owner that answered with
# nothing or something older. Anti-entropy is off here (--repair-interval
# 0), so only the checked reads can bring the keys back to the owner that
# dropped them.
source "$(dirname "$0")/lib.sh"

N=20
FAST=(--workers 1 --probe-interval 500ms --probe-timeout 200ms --suspicion-mult 30 --gossip-interval 50ms
  --replicas 2 --write-acks 1 --peer-timeout 200ms --repair-interval 0 --tombstone-grace 2s)
declare -A URL PID

launch() { # name [flags]
  local name=$1; shift
  start_node "$name" --name "$name" "${FAST[@]}" "$@"
  URL[$name]=$NODE_URL PID[$name]=$NODE_PID
}
metric() { curl -s "${URL[$1]}/metrics" | awk -v m="$2" '$1 == m {print $2}'; }
ring_size() { curl -s "${URL[$1]}/api/cluster/ring" | jq -r .members; }
both_joined() { [[ $(ring_size n1) == 2 && $(ring_size n2) == 2 ]]; }
metric_at_least() { [[ $(metric "$1" "$2") -ge $3 ]]; } # node metric value
metric_is() { [[ $(metric "$1" "$2") == "$3" ]]; }
requests() { # METHOD: a curl config for keys k0..k<N-1> on n1
  local i port=${URL[n1]##*:}
  for ((i = 0; i < N; i++)); do
    ((i > 0)) && echo next # without it curl -K sends every entry's data to every URL
    printf 'url = "http://127.0.0.1:%s/api/cache/k%d"\nrequest = "%s"\ndata = "value-%d"\noutput = /dev/null\nwrite-out = "%%{http_code}\\n"\n' \
      "$port" "$i" "$1" "$i"
  done
}
codes() { curl -s -K "$1" | sort | uniq -c | awk '{print $2":"$1}' | tr '\n' ' '; }

launch n1
launch n2 --seeds "127.0.0.1:$NODE_GOSSIP_PORT"
WAIT_SECONDS=20 wait_for "two nodes joined" both_joined && pass
requests PUT >"$TEST_TMP/put.cfg"
requests GET | grep -v "^data" >"$TEST_TMP/get.cfg"
assert_eq "201:$N " "$(codes "$TEST_TMP/put.cfg")" "$N PUTs acknowledged"
assert_eq "$N" "$(metric n2 cache_entries)" "both owners hold every key"

# n2 stands still longer than --tombstone-grace: it drops what it held.
kill -STOP "${PID[n2]}"
sleep 3 # the stall itself is the fault: longer than --tombstone-grace
kill -CONT "${PID[n2]}"
WAIT_SECONDS=10 wait_for "n2 dropped what it held" metric_at_least n2 sync_dropped_entries_total 1 && pass
assert_eq 0 "$(metric n2 cache_entries)" "n2 holds nothing"
assert_eq 0 "$(metric n1 route_read_repairs_total)" "no read repair yet"

# n1 stands still (over 1 s, the shortest gap a node takes for a stall), so
# its reads are checked with n2 when it wakes: each finds n2 without the key.
kill -STOP "${PID[n1]}"
sleep 1.5 # the stall itself is the fault
kill -CONT "${PID[n1]}"
WAIT_SECONDS=10 wait_for "n1 noticed its stall" metric_at_least n1 'sync_started_total{reason="stall"}' 1 && pass
assert_eq "200:$N " "$(codes "$TEST_TMP/get.cfg")" "every key reads through n1"
WAIT_SECONDS=10 wait_for "n2 holds every key again" metric_is n2 cache_entries "$N" && pass
assert_eq "$N" "$(metric n1 route_read_repairs_total)" "one read repair per key"
for k in k0 k$((N - 1)); do
  assert_eq "value-${k#k}" "$(curl -s "${URL[n2]}/api/cache/$k")" "$k reads through n2"
done

finish
