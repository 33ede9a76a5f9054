#!/usr/bin/env bash
# Syncing: a node restarted at once (inside the suspicion timeout, so the
# cluster never saw it die) comes back empty but is handed what it owns by
# the other owners; until they are done it says `syncing` on /ready and
# checks every read of its keys with them, so no acknowledged write reads
# as missing through it. A node that stood still (SIGSTOP) past a peer
# timeout syncs again when it wakes, refuses the write that waited in its
# socket meanwhile, and does not serve a value deleted while it slept.
source "$(dirname "$0")/lib.sh"

N=300
KEY=$(head -c 32 /dev/urandom | base64)
# Slow suspicion (a restart is never seen as a death) and a fast peer
# timeout (a short stop is a stall).
FAST=(--workers 1 --probe-interval 500ms --probe-timeout 200ms --suspicion-mult 8 --gossip-interval 50ms
  --push-pull-interval 2s --replicas 3 --peer-timeout 300ms --cluster-key "$KEY")
declare -A URL PID

launch() { # name [flags]
  local name=$1; shift
  start_node "$name" --name "$name" "${FAST[@]}" "$@"
  URL[$name]=$NODE_URL PID[$name]=$NODE_PID
}
metric() { curl -s "${URL[$1]}/metrics" | awk -v m="$2" '$1 == m {print $2}'; }
ready_status() { curl -s "${URL[$1]}/ready" | jq -r .status; }
is_ready() { [[ $(ready_status "$1") == ok ]]; }
ring_size() { curl -s "${URL[$1]}/api/cluster/ring" | jq -r .members; }
all_ready() { local n; for n in "$@"; do [[ $(ring_size "$n") == "$#" ]] && is_ready "$n" || return 1; done; }

launch n1
SEED="127.0.0.1:$NODE_GOSSIP_PORT"
launch n2 --seeds "$SEED"
launch n3 --seeds "$SEED"
WAIT_SECONDS=20 wait_for "three nodes joined and synced" all_ready n1 n2 n3 && pass
assert_eq 0 "$(metric n2 syncing)" "a synced node's syncing gauge is 0"
[[ $(metric n2 'sync_completed_total') -ge 1 ]] && pass || fail "n2 counted its start-up sync"

port1=${URL[n1]##*:}
for ((i = 0; i < N; i++)); do
  ((i > 0)) && echo next # without it curl -K sends every entry's data to every URL
  printf 'url = "http://127.0.0.1:%s/api/cache/k%d"\nrequest = "PUT"\ndata = "value-%d"\noutput = /dev/null\nwrite-out = "%%{http_code}\\n"\n' \
    "$port1" "$i" "$i"
done >"$TEST_TMP/put.cfg"
assert_eq "201:$N" "$(curl -s -K "$TEST_TMP/put.cfg" | sort | uniq -c | awk '{print $2":"$1}')" "$N PUTs acknowledged"

# --- kill -9 and restart at once: the ring sees a new run, not a death ---
kill -9 "${PID[n3]}"
wait "${PID[n3]}" 2>/dev/null || true
launch n3 --seeds "$SEED"
# Every read through the restarted node finds the value, syncing or not.
port3=${URL[n3]##*:}
for ((i = 0; i < N; i++)); do
  printf 'url = "http://127.0.0.1:%s/api/cache/k%d"\noutput = /dev/null\nwrite-out = "%%{http_code}\\n"\n' "$port3" "$i"
done >"$TEST_TMP/get3.cfg"
codes=$(curl -s -K "$TEST_TMP/get3.cfg" | sort | uniq -c | awk '{print $2":"$1}' | tr '\n' ' ')
# 503 syncing is allowed before it joined; a 404 never is.
[[ $codes != *404* ]] && pass || fail "a read through the restarted node said not found: $codes"
WAIT_SECONDS=20 wait_for "the restarted node synced" all_ready n1 n2 n3 && pass
[[ $(metric n3 'sync_started_total{reason="start"}') -ge 1 ]] && pass || fail "n3 counted a start sync"
# Handed over, not just read through: with three replicas every key is in n3's L1.
assert_eq "$N" "$(metric n3 cache_entries)" "the restarted node holds every key again"
assert_eq "200:$N" "$(curl -s -K "$TEST_TMP/get3.cfg" | sort | uniq -c | awk '{print $2":"$1}')" "every key reads through it"

# --- SIGSTOP past the peer timeout: a delete meanwhile is not served ---
kill -STOP "${PID[n2]}"
# A write sent to the stopped node waits in its socket; carried out when it
# wakes, it would be stamped then, over whatever was written meanwhile.
curl -s -o /dev/null -w '%{http_code}' -X PUT --data late "${URL[n2]}/api/cache/late" >"$TEST_TMP/late.code" &
late_pid=$!
STATUS=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "${URL[n1]}/api/cache/k7")
# The delete waits on no one asleep only with fewer write acks; with "all"
# it is refused (503) while n2 sleeps: then k7 stays, and that is the
# honest answer. Either way n2 must agree with n1 after it wakes.
sleep 1.5 # the fault itself: stopped longer than a stall (max(--peer-timeout, 1 s))
kill -CONT "${PID[n2]}"
wait "$late_pid"
assert_eq 503 "$(cat "$TEST_TMP/late.code")" "a PUT that waited through the stall is refused, not stamped late"
WAIT_SECONDS=20 wait_for "the stopped node noticed its stall" \
  bash -c "[[ \$(curl -s ${URL[n2]}/metrics | awk '\$1 == \"sync_started_total{reason=\\\"stall\\\"}\" {print \$2}') -ge 1 ]]"
want=$(curl -s -o /dev/null -w '%{http_code}' "${URL[n1]}/api/cache/k7")
got=$(curl -s -o /dev/null -w '%{http_code}' "${URL[n2]}/api/cache/k7")
assert_eq "$want" "$got" "after the stall n2 answers k7 as n1 does (delete answered $STATUS)"
[[ $(metric n2 sync_verified_reads_total) -ge 1 ]] && pass || fail "n2 checked its read with the other owners"

finish
