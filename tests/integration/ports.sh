#!/usr/bin/env bash
# Nodes started by hand on one machine, as a new user does: only distinct
# --http-port and --cluster-port (and --seeds), no --peer-port. The cluster
# ports are adjacent (like 7946, 7947, 7948), so a peer port that defaulted
# to a fixed number, or to the cluster port plus one, would collide. The
# peer channel shares each node's cluster port: every node advertises its
# cluster address as its peer address, the three form one ring, and keys
# PUT through one node are read back through the others (forwarded over the
# shared port). A fourth node with a --peer-port of its own joins: the
# others hand it its keys over that port, and it reads through theirs.
# Every node stops cleanly.
source "$(dirname "$0")/lib.sh"

USED=" "
# pick VAR [N]: the first of N consecutive free ports, none picked before.
pick() {
  local var=$1 n=${2:-1} p i ok
  while :; do
    p=$(pick_port)
    ok=1
    for ((i = 0; i < n; i++)); do
      if [[ $USED == *" $((p + i)) "* ]] || (exec 3<>"/dev/tcp/127.0.0.1/$((p + i))") 2>/dev/null; then ok=0; break; fi
    done
    ((ok)) && break
  done
  for ((i = 0; i < n; i++)); do USED+="$((p + i)) "; done
  printf -v "$var" '%s' "$p"
}

declare -A URL PID CPORT
launch() { # name http-port cluster-port [flags]
  local name=$1 http=$2 cluster=$3; shift 3
  launch_node "$name" --http-port "$http" --cluster-port "$cluster" "$@"
  URL[$name]=$NODE_URL PID[$name]=$NODE_PID CPORT[$name]=$cluster
}
metric() { curl -s "${URL[$1]}/metrics" | awk -v m="$2" '$1 == m {print $2}'; }
ring() { curl -s "${URL[$1]}/api/cluster/ring"; }
settled() { # nodes... : each has a ring of that many members and no handoff running
  local n
  for n in "$@"; do
    [[ $(ring "$n" | jq -r .members) == "$#" && $(metric "$n" handoff_running) == 0 ]] || return 1
  done
}
# batch NAME METHOD NODE FIRST LAST: a curl config, one request per key k<i>
# whose value is "value-<i>". run_batch prints a line per request: a PUT's
# "<code> <i>", a GET's "<body> <code> <i>".
batch() {
  local name=$1 method=$2 node=$3 first=$4 last=$5 i
  for ((i = first; i <= last; i++)); do
    printf 'url = "%s/api/cache/k%d"\n' "${URL[$node]}" "$i"
    if [[ $method == PUT ]]; then printf 'request = "PUT"\ndata = "value-%d"\noutput = "/dev/null"\n' "$i"; fi
    printf 'write-out = " %%{http_code} %d\\n"\n' "$i"
    if ((i < last)); then printf 'next\n'; fi
  done >"$TEST_TMP/$name.cfg"
}
run_batch() { curl -s --no-progress-meter -K "$TEST_TMP/$1.cfg" 2>/dev/null || true; }
# puts_ok NODE FIRST LAST: how many PUTs of k<FIRST>..k<LAST> through NODE
# were stored.
puts_ok() {
  batch "put-$1" PUT "$1" "$2" "$3"
  run_batch "put-$1" | awk '$1 == 200 || $1 == 201 {n++} END {print n + 0}'
}
# reads_ok NODE FIRST LAST: how many of k<FIRST>..k<LAST> read through NODE
# answer 200 with their own value.
reads_ok() {
  batch "get-$1" GET "$1" "$2" "$3"
  run_batch "get-$1" | awk '$1 == "value-" $3 && $2 == 200 {n++} END {print n + 0}'
}

pick C 3
pick H1; pick H2; pick H3
launch n1 "$H1" "$C"
launch n2 "$H2" $((C + 1)) --seeds "127.0.0.1:$C"
launch n3 "$H3" $((C + 2)) --seeds "127.0.0.1:$C"
WAIT_SECONDS=30 wait_for "three nodes started by hand form one ring" settled n1 n2 n3 && pass

for n in n1 n2 n3; do
  assert_match "\"msg\":\"peer listening\".*\"port\":${CPORT[$n]},\"shared\":\"cluster port\"" \
    "$(cat "$TEST_TMP/$n.log")" "$n serves the peer channel on its cluster port"
done
assert_eq "127.0.0.1:$C 127.0.0.1:$((C + 1)) 127.0.0.1:$((C + 2))" \
  "$(ring n2 | jq -r '[.nodes[].peer] | sort | join(" ")')" "each member advertises its cluster port as its peer address"

# --- keys PUT through n1 are read through n2 and n3 ---
N=300
assert_eq "$N" "$(puts_ok n1 1 "$N")" "$N PUTs through n1"
assert_eq "$N" "$(reads_ok n2 1 "$N")" "every key read back through n2"
assert_eq "$N" "$(reads_ok n3 1 "$N")" "every key read back through n3"
for n in n2 n3; do
  assert_match '^[1-9][0-9]*$' "$(metric "$n" 'route_forwarded_total{operation="get"}')" \
    "$n forwarded GETs for keys it does not own"
done
# One key n2 does not own, read through n2: the answer comes from an owner.
self2=$(ring n2 | jq -r .self)
key=""
for ((i = 1; i <= 50; i++)); do
  owners=$(curl -s "${URL[n2]}/api/cluster/ring?key=k$i" | jq -r '.owners | join(" ")')
  if [[ " $owners " != *" $self2 "* ]]; then key=k$i; break; fi
done
assert_match '^k[0-9]+$' "$key" "a key that n2 does not own"
NODE_URL=${URL[n2]} http GET "/api/cache/$key"
assert_eq "200 value-${key#k}" "$STATUS $BODY" "$key read through n2"
answered=$(header x-cache-node)
[[ " $owners " == *" $answered "* ]] && pass || fail "an owner ($owners) answered, not [$answered]"

# --- a fourth node with its own --peer-port ---
pick H4; pick C4; pick P4
launch n4 "$H4" "$C4" --peer-port "$P4" --seeds "127.0.0.1:$((C + 1))"
WAIT_SECONDS=30 wait_for "n4 joined and the handoff finished" settled n1 n2 n3 n4 && pass
assert_match "\"msg\":\"peer listening\".*\"port\":$P4}" "$(cat "$TEST_TMP/n4.log")" "n4 serves the peer channel on --peer-port"
assert_eq "127.0.0.1:$P4" "$(ring n1 | jq -r --arg s "$(ring n4 | jq -r .self)" '.nodes[] | select(.name == $s) | .peer')" \
  "n4 advertises its own peer port"
assert_match '^[1-9][0-9]*$' "$(metric n4 cache_entries)" "the others handed n4 its keys over its peer port"
assert_eq "$N" "$(reads_ok n4 1 "$N")" "every key read through n4 (over the others' cluster ports)"
assert_eq "$N" "$(reads_ok n1 1 "$N")" "every key still read through n1"

assert_eq "" "$(grep -h '"level":"error"' "$TEST_TMP"/n?.log)" "no node logged an error"

for n in n1 n2 n3 n4; do stop_node "${PID[$n]}"; done
finish
