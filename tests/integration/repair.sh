#!/usr/bin/env bash
# Anti-entropy repair: two owners that disagree (a replica was paused while
# writes and deletes were acknowledged by the other owner alone, with
# --write-acks 1) agree again within a few --repair-interval rounds: the
# writes it missed are copied to it, the deletes it missed remove its copies,
# and in agreement a round sends only digests. A node that stood still
# longer than --tombstone-grace drops what it held (the deletes it missed
# are forgotten by then) and gets it back from the other owner.
source "$(dirname "$0")/lib.sh"

N=200
FAST=(--workers 1 --probe-interval 500ms --probe-timeout 200ms --suspicion-mult 8 --gossip-interval 50ms
  --replicas 2 --write-acks 1 --peer-timeout 200ms --repair-interval 1s --tombstone-grace 6s)
declare -A URL PID

launch() { # name [flags]
  local name=$1; shift
  start_node "$name" --name "$name" "${FAST[@]}" "$@"
  URL[$name]=$NODE_URL PID[$name]=$NODE_PID
}
metric() { curl -s "${URL[$1]}/metrics" | awk -v m="$2" '$1 == m {print $2}'; }
ring_size() { curl -s "${URL[$1]}/api/cluster/ring" | jq -r .members; }
both_joined() { [[ $(ring_size n1) == 2 && $(ring_size n2) == 2 ]]; }
requests() { # METHOD FROM TO: a curl config for keys k<FROM>..k<TO-1> on n1
  local i port=${URL[n1]##*:}
  for ((i = $2; i < $3; i++)); do
    ((i > $2)) && echo next # without it curl -K sends every entry's data to every URL
    printf 'url = "http://127.0.0.1:%s/api/cache/k%d"\nrequest = "%s"\ndata = "value-%d"\noutput = /dev/null\nwrite-out = "%%{http_code}\\n"\n' \
      "$port" "$i" "$1" "$i"
  done
}
metric_at_least() { [[ $(metric "$1" "$2") -ge $3 ]]; } # node metric value
metric_is() { [[ $(metric "$1" "$2") == "$3" ]]; }
codes() { curl -s -K "$1" | sort | uniq -c | awk '{print $2":"$1}' | tr '\n' ' '; }

launch n1
launch n2 --seeds "127.0.0.1:$NODE_GOSSIP_PORT"
WAIT_SECONDS=20 wait_for "two nodes joined" both_joined && pass

requests PUT 0 "$N" >"$TEST_TMP/put.cfg"
assert_eq "201:$N " "$(codes "$TEST_TMP/put.cfg")" "$N PUTs acknowledged"
assert_eq "$N" "$(metric n2 cache_entries)" "both owners hold every key"
# In agreement, rounds compare digests and find nothing to repair.
rounds_then=$(metric n1 repair_rounds_total)
WAIT_SECONDS=15 wait_for "two repair rounds" metric_at_least n1 repair_rounds_total $((rounds_then + 2)) && pass
# (Writes younger than a round's cut, 2 s, wait for a later round.)
WAIT_SECONDS=15 wait_for "n1 compared n2's digests" metric_at_least n1 repair_digests_answered_total 1 && pass
assert_eq 0 "$(metric n1 repair_items_offered_total)" "owners in agreement offer nothing"

# n2 stands still for less than a stall while n1 alone acknowledges new
# writes and deletes: n2 misses them.
kill -STOP "${PID[n2]}"
requests PUT "$N" $((N + 50)) >"$TEST_TMP/put2.cfg"
requests DELETE 0 50 >"$TEST_TMP/del.cfg"
put_codes=$(codes "$TEST_TMP/put2.cfg")
del_codes=$(codes "$TEST_TMP/del.cfg")
kill -CONT "${PID[n2]}"
assert_eq "201:50 " "$put_codes" "writes acknowledged by n1 alone"
assert_eq "200:50 " "$del_codes" "deletes acknowledged by n1 alone"

# Within a few rounds n2 holds what n1 holds: the 50 new keys, not the 50 deleted.
WAIT_SECONDS=20 wait_for "the owners agree again" metric_is n2 cache_entries "$N" ||
  { curl -s "${URL[n1]}/metrics" | grep -E '^(repair|cache_entries)'; curl -s "${URL[n2]}/metrics" | grep -E '^(repair|cache_entries)'; }
assert_eq "$N" "$(metric n1 cache_entries)" "n1 still holds every live key"
for k in k0 k49 k$((N + 49)) k$((N + 10)); do
  st=$(curl -s -o /dev/null -w '%{http_code}' "${URL[n2]}/api/cache/$k")
  case $k in k0 | k49) assert_eq 404 "$st" "$k, deleted while n2 slept, is gone through n2" ;;
  *) assert_eq 200 "$st" "$k, written while n2 slept, reads through n2" ;;
  esac
done
# Repair did it (n2 may have taken a few of the requests that waited in its
# socket itself).
[[ $(metric n1 repair_entries_sent_total) -ge 1 ]] && pass || fail "n1 sent n2 the writes it missed"
[[ $(metric n2 repair_entries_deleted_total) -ge 1 ]] && pass || fail "n2 removed copies deleted while it slept"
[[ $(metric n2 repair_tombstones_learnt_total) -ge 1 ]] && pass || fail "n2 learnt the deletes it missed"
[[ $(metric n1 repair_buckets_differing_total) -ge 1 ]] && pass || fail "the digests differed"

# --- a stall longer than the grace: n2 drops its L1, reads through it still
# find every key (checked with n1), and repair refills it ---
assert_eq 0 "$(metric n2 sync_dropped_entries_total)" "no drop after a short stall"
kill -STOP "${PID[n2]}"
sleep 7 # the stall itself is what is tested: longer than --tombstone-grace
kill -CONT "${PID[n2]}"
WAIT_SECONDS=20 wait_for "n2 dropped what it held" metric_at_least n2 sync_dropped_entries_total 1 && pass
port2=${URL[n2]##*:}
for ((i = 50; i < N + 50; i++)); do
  printf 'url = "http://127.0.0.1:%s/api/cache/k%d"\noutput = /dev/null\nwrite-out = "%%{http_code}\\n"\n' "$port2" "$i"
done >"$TEST_TMP/get2.cfg"
got=$(codes "$TEST_TMP/get2.cfg")
[[ $got != *404* ]] && pass || fail "a key read as missing through the node that dropped its L1: $got"
WAIT_SECONDS=30 wait_for "repair refilled n2" metric_is n2 cache_entries "$N" && pass

finish
