#!/usr/bin/env bash
# The data path across real nodes: keys PUT through one node are read back
# through the others with identical bytes; a DELETE through a third is seen
# by all; 100 concurrent GETs for one key on a non-owner make one peer
# request; a fourth node joins under a read load and then one node is
# killed (replicas = 2) with zero failed requests from a client that only
# talks to the survivors, and every key still readable.
source "$(dirname "$0")/lib.sh"

N=${ROUTING_KEYS:-10000}
# Room for every key on every node: after a death the survivors hold more
# copies, and an eviction here would be a lost key without L2.
# The cluster key seals the peer channel as well as gossip.
KEY=$(head -c 32 /dev/urandom | base64)
FAST=(--workers 1 --probe-interval 200ms --probe-timeout 100ms --gossip-interval 50ms --push-pull-interval 2s
  --l1-max-entries 100000 --cluster-key "$KEY")
declare -A URL PID GOSSIP

launch() { # name [flags]
  local name=$1; shift
  start_node "$name" --name "$name" "${FAST[@]}" "$@"
  URL[$name]=$NODE_URL PID[$name]=$NODE_PID GOSSIP[$name]=$NODE_GOSSIP_PORT
}
metric() { curl -s "${URL[$1]}/metrics" | awk -v m="$2" '$1 == m {print $2}'; }
ring_size() { curl -s "${URL[$1]}/api/cluster/ring" | jq -r .members; }
settled() { # nodes... : every one has a ring of that many members and no handoff running
  local n
  for n in "$@"; do
    [[ $(ring_size "$n") == "$#" && $(metric "$n" handoff_running) == 0 ]] || return 1
  done
}

# batch NAME METHOD NODE FIRST LAST [outdir]: a curl config with one request per key.
batch() {
  local name=$1 method=$2 node=$3 first=$4 last=$5 outdir=${6:-} i
  local port=${URL[$node]##*:}
  for ((i = first; i <= last; i++)); do
    printf 'url = "http://127.0.0.1:%s/api/cache/k%d"\n' "$port" "$i"
    case $method in
      PUT) printf 'request = "PUT"\ndata = "value-%d"\n' "$i" ;;
      DELETE) printf 'request = "DELETE"\n' ;;
    esac
    printf 'write-out = "%%{http_code}\\n"\n'
    if [[ -n $outdir ]]; then printf 'output = "%s/k%d"\n' "$outdir" "$i"; else printf 'output = "/dev/null"\n'; fi
    if ((i < last)); then printf 'next\n'; fi
  done >"$TEST_TMP/$name.cfg"
}
run_batch() { curl -s --no-progress-meter -Z --parallel-max 16 -K "$TEST_TMP/$1.cfg" 2>/dev/null || true; }
count_codes() { sort | uniq -c | awk '{printf "%s:%s ", $2, $1}' | sed 's/ $//'; }
# verify DIR: prints how many files hold exactly "value-<i>" for key k<i>.
verify() {
  find "$1" -type f -name 'k*' -print0 |
    xargs -0 awk 'FNR == 1 {n = FILENAME; sub(/.*\/k/, "", n); if ($0 == "value-" n) ok++} END {print ok + 0}' |
    awk '{s += $1} END {print s + 0}'
}

launch n1
SEED="127.0.0.1:${GOSSIP[n1]}"
launch n2 --seeds "$SEED"
# n3 waits long for a stopped owner, so the coalescing check below sees one request.
launch n3 --seeds "$SEED" --peer-timeout 10s
WAIT_SECONDS=20 wait_for "three nodes share one ring" settled n1 n2 n3 && pass

# --- N keys PUT through n1, read through n2 and n3 with identical bytes ---
batch put PUT n1 1 "$N"
assert_eq "201:$N" "$(run_batch put | count_codes)" "$N PUTs through n1 are created"
for n in n2 n3; do
  mkdir -p "$TEST_TMP/got-$n"
  batch "get-$n" GET "$n" 1 "$N" "$TEST_TMP/got-$n"
  assert_eq "200:$N" "$(run_batch "get-$n" | count_codes)" "every key readable through $n"
  assert_eq "$N" "$(verify "$TEST_TMP/got-$n")" "every value read through $n has the bytes PUT through n1"
done
forwarded=$(curl -s "${URL[n2]}/metrics" | awk '$1 == "route_forwarded_total{operation=\"get\"}" {print $2}')
assert_match '^[1-9][0-9]*$' "$forwarded" "n2 forwarded the GETs for keys it does not own"
NODE_URL=${URL[n2]} http GET /api/cache/k1
assert_match '^n[123]$' "$(header x-cache-owner)" "X-Cache-Owner names the primary"
assert_match '^n[123]$' "$(header x-cache-node)" "X-Cache-Node names the node that answered"

# --- the peer channel refuses what it cannot open, and counts it ---
# (it shares the cluster port: a stream opens with the peer preamble, 0xdc)
peer_port=$(grep -o '"msg":"peer listening"[^}]*"port":[0-9]*' "$TEST_TMP/n2.log" | grep -o '[0-9]*$')
assert_eq "${GOSSIP[n2]}" "$peer_port" "the peer channel is on the cluster port"
dropped() { curl -s "${URL[n2]}/metrics" | awk -v r="peer_dropped_total{reason=\"$1\"}" '$1 == r {print $2}'; }
printf '\xdc\xff\xff\xff\xff' >"$TEST_TMP/too_big"
{ printf '\xdc\x00\x00\x00\x40'; head -c 64 /dev/urandom; } >"$TEST_TMP/forged"
for f in too_big forged; do
  exec 8<>"/dev/tcp/127.0.0.1/$peer_port"
  cat "$TEST_TMP/$f" >&8
  timeout 5 cat <&8 >/dev/null 2>&1 || true
  exec 8<&- 8>&-
done
# With a cluster key nothing but a handshake passes: both fail at their
# first byte, as a failed handshake.
assert_eq "0 2" "$(dropped too_big) $(dropped auth)" "an oversized and a forged frame close the connection and are counted"
hs() { curl -s "${URL[n2]}/metrics" | awk -v r="peer_handshakes_total{result=\"$1\"}" '$1 == r {print $2}'; }
assert_match '^[1-9][0-9]*$' "$(hs ok)" "the nodes talk over handshaken sessions"
assert_eq 2 "$(hs failed)" "the two streams count as failed handshakes"
NODE_URL=${URL[n2]} http GET /api/cache/k7
assert_eq 200 "$STATUS" "the peer channel still serves after the bad frames"

# --- DELETE through n3 is seen by every node ---
batch del DELETE n3 1 100
assert_eq "200:100" "$(run_batch del | count_codes)" "100 DELETEs through n3"
for n in n1 n2 n3; do
  batch "gone-$n" GET "$n" 1 100
  assert_eq "404:100" "$(run_batch "gone-$n" | count_codes)" "the deleted keys are gone through $n"
done
batch put-back PUT n3 1 100
assert_eq "201:100" "$(run_batch put-back | count_codes)" "the deleted keys PUT again through n3"

# --- listing, preview and invalidation cover the whole cluster ---
listed() { # node: every key of a paged listing, one a line
  local cursor=0 page
  while :; do
    page=$(curl -s "${URL[$1]}/api/cache/keys?limit=1000&cursor=$cursor")
    jq -r '.keys[].key' <<<"$page"
    cursor=$(jq -r .cursor <<<"$page")
    [[ $cursor == 0 ]] && break
  done
}
assert_eq "$N $N" "$(listed n2 | sort | uniq | wc -l) $(listed n2 | wc -l)" "the listing through n2 shows every key once"
matching() { # glob prefix -> how many of k1..kN start with it
  local i c=0
  for ((i = 1; i <= N; i++)); do [[ k$i == $1* ]] && c=$((c + 1)); done
  echo "$c"
}
k1=$(matching k1)
NODE_URL=${URL[n3]} http GET "/api/invalidate/preview?pattern=k1*&limit=7"
assert_eq "$k1 7 0" "$(json '"\(.matched) \(.sample | length) \(.unreachable | length)"')" "preview through n3 counts every node's keys once"
NODE_URL=${URL[n1]} http POST /api/invalidate/pattern -d '{"pattern":"k1*","dry_run":true}'
assert_eq "$k1 0 3" "$(json '"\(.matched) \(.invalidated) \(.nodes)"')" "a dry run through n1 counts and keeps"
NODE_URL=${URL[n2]} http POST /api/invalidate -d "$(jq -nc '{keys: [range(101; 151) | "k\(.)"]}')"
assert_eq "50 []" "$(json '"\(.invalidated) \(.unreachable)"')" "50 keys invalidated through n2, counted once"
k2=$(matching k2)
NODE_URL=${URL[n3]} http POST /api/invalidate/pattern -d '{"pattern":"k2*"}'
assert_eq "$k2 $k2" "$(json '"\(.matched) \(.invalidated)"')" "pattern invalidation through n3"
assert_eq "3 true $k2 $k2" "$(json '"\(.per_node | length) \([.per_node[].answered] | all) \([.per_node[].matched] | add) \([.per_node[].invalidated] | add)"')" \
  "per_node: every member answered, and their parts add up to the totals"
assert_eq "n1 n2 n3" "$(json '[.per_node[].node] | sort | join(" ")')" "per_node names the members"
for n in n1 n2 n3; do
  batch "inv-$n" GET "$n" 101 150
  assert_eq "404:50" "$(run_batch "inv-$n" | count_codes)" "invalidated keys are gone through $n"
  NODE_URL=${URL[$n]} http GET "/api/invalidate/preview?pattern=k2*"
  assert_eq 0 "$(json .matched)" "no k2* key left on any node, asked through $n"
done
batch restore PUT n1 1 "$N"
assert_eq 0 "$(run_batch restore | grep -cv '^20[01]$')" "every key PUT again"
kill -STOP "${PID[n1]}"
# Both at once, while n1 is still a member (not yet declared dead).
curl -s -o "$TEST_TMP/inval.body" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
  -d '{"keys":["not-a-key"]}' "${URL[n2]}/api/invalidate" >"$TEST_TMP/inval.code" &
inval_pid=$!
NODE_URL=${URL[n2]} http GET "/api/invalidate/preview?pattern=k3*"
wait "$inval_pid"
kill -CONT "${PID[n1]}"
assert_eq '["n1"]' "$(printf '%s' "$BODY" | jq -c .unreachable)" "a member that does not answer is reported"
# An invalidation is acknowledged only once every member did it.
assert_eq "503 invalidation_incomplete [\"n1\"]" \
  "$(cat "$TEST_TMP/inval.code") $(jq -r .code "$TEST_TMP/inval.body") $(jq -c .unreachable "$TEST_TMP/inval.body")" \
  "an invalidation a member did not answer is a 503 naming it"

# --- 100 concurrent GETs for one key on a non-owner: one peer request ---
key=""
for i in $(seq 1 200); do
  if ! curl -s "${URL[n3]}/api/cluster/ring?key=k$i" | jq -e '.owners | index("n3")' >/dev/null; then key=k$i; break; fi
done
assert_match '^k[0-9]+$' "$key" "a key that n3 does not own"
gets_before=$(curl -s "${URL[n3]}/metrics" | awk '$1 == "peer_requests_total{type=\"get\"}" {print $2}')
coalesced_before=$(metric n3 route_coalesced_total)
for i in $(seq 100); do
  printf 'url = "%s/api/cache/%s"\nwrite-out = "%%{http_code}\\n"\noutput = "/dev/null"\n' "${URL[n3]}" "$key"
  if ((i < 100)); then printf 'next\n'; fi
done >"$TEST_TMP/hot.cfg"
# Both owners stop answering, so every GET arrives while the first is in flight.
kill -STOP "${PID[n1]}" "${PID[n2]}"
curl -s --no-progress-meter -Z --parallel-immediate --parallel-max 100 -K "$TEST_TMP/hot.cfg" >"$TEST_TMP/hot.out" 2>/dev/null &
hot=$!
coalesced_all() { (($(metric n3 route_coalesced_total) >= coalesced_before + 99)); }
wait_for "100 concurrent GETs wait on one forwarded request" coalesced_all && pass
kill -CONT "${PID[n1]}" "${PID[n2]}"
wait "$hot" || true
assert_eq "200:100" "$(count_codes <"$TEST_TMP/hot.out")" "all 100 concurrent GETs answered"
gets_after=$(curl -s "${URL[n3]}/metrics" | awk '$1 == "peer_requests_total{type=\"get\"}" {print $2}')
assert_eq 1 "$((gets_after - gets_before))" "100 concurrent GETs made one peer request"
WAIT_SECONDS=20 wait_for "the stopped nodes are back" settled n1 n2 n3 && pass

# --- a join and a kill -9 under a read load from a client of n2 and n3 ---
batch load-n2 GET n2 1 "$N"
batch load-n3 GET n3 1 "$N"
: >"$TEST_TMP/load.codes"
: >"$TEST_TMP/load.rounds"
(
  while [[ ! -e $TEST_TMP/load.stop ]]; do
    run_batch load-n2 >>"$TEST_TMP/load.codes"
    run_batch load-n3 >>"$TEST_TMP/load.codes"
    echo round >>"$TEST_TMP/load.rounds"
  done
) &
loader=$!
rounds() { wc -l <"$TEST_TMP/load.rounds" 2>/dev/null || echo 0; }
after_rounds() { (($(rounds) >= $1)); }

launch n4 --seeds "127.0.0.1:${GOSSIP[n2]}"
WAIT_SECONDS=30 wait_for "n4 joined and the handoff finished" settled n1 n2 n3 n4 && pass
r=$(($(rounds) + 1))
WAIT_SECONDS=60 wait_for "a full read round after the join" after_rounds "$r" && pass
assert_match '^[1-9][0-9]*$' "$(metric n4 cache_entries)" "n4 holds keys after the join"

kill -9 "${PID[n1]}"
WAIT_SECONDS=30 wait_for "the ring settles without the killed node" settled n2 n3 n4 && pass
r=$(($(rounds) + 1))
WAIT_SECONDS=60 wait_for "a full read round after the kill" after_rounds "$r" && pass
touch "$TEST_TMP/load.stop"
wait "$loader" || true
total=$(wc -l <"$TEST_TMP/load.codes")
assert_eq "200:$total" "$(count_codes <"$TEST_TMP/load.codes")" "no failed request during the join and the kill ($total reads)"

for n in n2 n4; do
  rm -rf "$TEST_TMP/got-$n"
  mkdir -p "$TEST_TMP/got-$n"
  batch "final-$n" GET "$n" 1 "$N" "$TEST_TMP/got-$n"
  assert_eq "200:$N" "$(run_batch "final-$n" | count_codes)" "every key still readable through $n"
  assert_eq "$N" "$(verify "$TEST_TMP/got-$n")" "every value still has its bytes through $n"
done
# On failure, name some of the keys that went missing (for the log).
if [[ $(verify "$TEST_TMP/got-n2") != "$N" ]]; then
  for ((i = 1; i <= N; i++)); do
    [[ -f $TEST_TMP/got-n2/k$i && $(<"$TEST_TMP/got-n2/k$i") == "value-$i" ]] || echo "missing through n2: k$i"
  done | head -20 >&2
fi
finish
