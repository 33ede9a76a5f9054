#!/usr/bin/env bash
# Membership with five real dcache-node processes on loopback: they converge
# from one seed; kill -9 of one is seen as dead; the killed node restarted
# with the same name rejoins; SIGSTOP for less than the suspicion timeout
# causes no false death; forged and truncated datagrams are counted and
# ignored; a node with the wrong cluster key cannot join.
source "$(dirname "$0")/lib.sh"

KEY=$(head -c 32 /dev/urandom | base64)
# Fast timings keep the test short: minimum suspicion timeout is
# 4 x 200 ms = 800 ms, at most 6 x that with Lifeguard.
FAST=(--workers 1 --probe-interval 200ms --probe-timeout 100ms --gossip-interval 50ms --push-pull-interval 2s
  --cluster-key "$KEY")
declare -A URL PID LOGF

launch() { # name [flags]
  local name=$1; shift
  start_node "$name" --name "$name" "${FAST[@]}" "$@"
  URL[$name]=$NODE_URL PID[$name]=$NODE_PID LOGF[$name]=$NODE_LOG
}

state_in() { # observer member -> state as the observer sees it
  curl -s "${URL[$1]}/api/cluster/members" | jq -r --arg m "$2" '.members[] | select(.name == $m) | .state'
}
alive_count() { curl -s "${URL[$1]}/api/cluster/members" | jq '[.members[] | select(.state == "alive")] | length'; }
metric() { curl -s "${URL[$1]}/metrics" | awk -v m="$2" '$1 == m {print $2}'; }

launch n1
SEED="127.0.0.1:$NODE_GOSSIP_PORT"
for n in n2 n3 n4 n5; do launch "$n" --seeds "$SEED"; done

all_see_five() {
  local n
  for n in n1 n2 n3 n4 n5; do [[ $(alive_count "$n") == 5 ]] || return 1; done
}
WAIT_SECONDS=20 wait_for "five nodes converge from one seed" all_see_five && pass
assert_eq alive "$(state_in n5 n2)" "n5 sees n2 alive"
table=$("$DCACHE_ADMIN_BIN" --node "${URL[n1]}" members)
assert_eq 5 "$(grep -c ' alive ' <<<"$table")" "dcache-admin members lists five alive members"
assert_match 'n1 +alive .*\(this node\)' "$table" "dcache-admin members marks this node"
assert_eq ok "$(curl -s "${URL[n2]}/ready" | jq -r .dependencies.cluster.status)" "/ready reports the cluster joined"
m=$(curl -s "${URL[n1]}/api/cluster/members" | jq '.members[] | select(.name == "n3")')
assert_match '^[0-9a-f]{32}$' "$(jq -r .id <<<"$m")" "members carry a 128-bit id"
assert_match '^127\.0\.0\.1:[0-9]+$' "$(jq -r .http <<<"$m")" "members carry their HTTP address"
old_id=$(jq -r .id <<<"$m")

# --- kill -9: seen as dead by everyone else ---
kill -9 "${PID[n3]}"
dead_everywhere() {
  local n
  for n in n1 n2 n4 n5; do [[ $(state_in "$n" n3) == dead ]] || return 1; done
}
WAIT_SECONDS=20 wait_for "a killed node is seen dead by all" dead_everywhere && pass

# --- restart with the same name: rejoins as a new run, one record ---
launch n3 --seeds "$SEED"
back_everywhere() {
  local n
  for n in n1 n2 n4 n5; do [[ $(state_in "$n" n3) == alive ]] || return 1; done
}
WAIT_SECONDS=20 wait_for "the restarted node is alive again everywhere" back_everywhere && pass
new_id=$(curl -s "${URL[n1]}/api/cluster/members" | jq -r '.members[] | select(.name == "n3") | .id')
[[ $new_id != "$old_id" ]] && pass || fail "the restarted node is a new run (new id)"
assert_eq 5 "$(curl -s "${URL[n1]}/api/cluster/members" | jq '.members | length')" "one record per name"

# --- SIGSTOP shorter than the suspicion timeout: no false death ---
WAIT_SECONDS=20 wait_for "everyone alive before the pause" all_see_five
kill -STOP "${PID[n4]}"
sleep 0.5 # the fault itself: a pause shorter than the 800 ms minimum suspicion timeout
kill -CONT "${PID[n4]}"
WAIT_SECONDS=20 wait_for "all alive after the pause" all_see_five && pass
for n in n1 n2 n3 n5; do
  ! grep -q '"msg":"member dead","member":"n4"' "${LOGF[$n]}" && pass || fail "$n declared the paused n4 dead"
done

# --- forged and truncated datagrams are counted and ignored ---
g1=${SEED#*:}
before=$(curl -s "${URL[n1]}/metrics" | awk '$1 ~ /^swim_dropped_total/ {s += $2} END {print s + 0}')
printf 'not a dcache datagram' >"/dev/udp/127.0.0.1/$g1"
printf '\x02' >"/dev/udp/127.0.0.1/$g1"
{ printf '\x02'; head -c 300 /dev/urandom; } >"$TEST_TMP/forged"
cat "$TEST_TMP/forged" >"/dev/udp/127.0.0.1/$g1" # one write, one datagram
printf '\x01\x00\x00\x00\x00\x91\x01' >"/dev/udp/127.0.0.1/$g1"
drops_counted() {
  local now
  now=$(curl -s "${URL[n1]}/metrics" | awk '$1 ~ /^swim_dropped_total/ {s += $2} END {print s + 0}')
  ((now >= before + 4))
}
wait_for "bad datagrams are counted" drops_counted && pass
(( $(metric n1 'swim_dropped_total{reason="auth"}') >= 1 )) && pass || fail "forged datagrams count as auth failures"
assert_eq 5 "$(alive_count n1)" "bad datagrams change nothing"

# --- the wrong cluster key cannot join ---
start_node intruder --name intruder --workers 1 --probe-interval 200ms --probe-timeout 100ms \
  --cluster-key "$(head -c 32 /dev/urandom | base64)" --seeds "$SEED"
intruder_url=$NODE_URL
refused() { grep -q '"msg":"no seed answered; retrying"' "$NODE_LOG"; }
WAIT_SECONDS=20 wait_for "the intruder's join is refused" refused && pass
assert_eq joining "$(curl -s "$intruder_url/ready" | jq -r .dependencies.cluster.status)" "intruder is not joined"
assert_eq "" "$(state_in n1 intruder)" "members do not list the intruder"

# --- graceful leave: reported as left, not failed ---
kill -TERM "${PID[n5]}"
left_everywhere() {
  local n
  for n in n1 n2 n3 n4; do [[ $(state_in "$n" n5) == left ]] || return 1; done
}
WAIT_SECONDS=20 wait_for "a leaving node is seen as left" left_everywhere && pass
rc=0; wait "${PID[n5]}" || rc=$?
assert_eq 0 "$rc" "a leaving node exits 0"

finish
