#!/usr/bin/env bash
# GET /api/cluster/ring with three real nodes: every node converges on the
# same ring (the same owners for every key; the version is each node's own
# counter, so it is not compared), shares sum to 1, a key has two distinct
# owners (the default --replicas 2) that match the X-Cache-Owner the data
# path reports, and bad input gets a JSON 4xx.
source "$(dirname "$0")/lib.sh"

FAST=(--workers 1 --probe-interval 200ms --probe-timeout 100ms --gossip-interval 50ms --push-pull-interval 2s)
declare -A URL
NODES=(r1 r2 r3)
start_node r1 --name r1 "${FAST[@]}"
URL[r1]=$NODE_URL
SEED="127.0.0.1:$NODE_GOSSIP_PORT"
for n in r2 r3; do
  start_node "$n" --name "$n" "${FAST[@]}" --seeds "$SEED"
  URL[$n]=$NODE_URL
done

KEYS=()
for i in $(seq 0 17); do KEYS+=("k$i"); done
KEYS+=("a%2Fb" "%FF%00bin") # percent-encoded like cache keys: "a/b" and two binary bytes

# owners_of NODE: one line per key, "key owner,owner", as NODE routes it.
owners_of() {
  local k
  for k in "${KEYS[@]}"; do
    printf '%s ' "$k"
    curl -fsS "${URL[$1]}/api/cluster/ring?key=$k" | jq -r '.owners | join(",")'
  done
}
converged() {
  local n ref
  for n in "${NODES[@]}"; do
    [[ $(curl -fsS "${URL[$n]}/api/cluster/ring" | jq .members) == 3 ]] || return 1
  done
  ref=$(owners_of r1) || return 1
  for n in r2 r3; do [[ $(owners_of "$n") == "$ref" ]] || return 1; done
}
WAIT_SECONDS=30 wait_for "every node routes 20 keys to the same owners" converged && pass

for n in "${NODES[@]}"; do
  NODE_URL=${URL[$n]}
  http GET /api/cluster/ring
  assert_eq 200 "$STATUS" "$n: ring answers 200"
  assert_eq application/json "$(header content-type)" "$n: ring is JSON"
  assert_eq "$n" "$(json .self)" "$n: self names the node"
  assert_eq "3 2 1" "$(json '"\(.members) \(.replicas) \(.zones)"')" "$n: members, replicas, zones"
  assert_eq "r1 r2 r3" "$(json '[.nodes[].name] | join(" ")')" "$n: nodes sorted by name"
  assert_eq 1 "$(json '[.nodes[].share] | add | . * 1000 | round / 1000')" "$n: shares sum to 1"
  assert_eq true "$(json '[.nodes[].share | . > 0.2 and . < 0.5] | all')" "$n: shares are near a third"
  assert_eq true "$(json '.balance >= 1 and .balance < 1.5')" "$n: balance is max/mean"
  assert_eq true "$(json '.version >= 1 and .bytes > 0')" "$n: version and bytes"
  assert_eq false "$(json '[.nodes[].suspect] | any')" "$n: nobody suspect"
  assert_match '^127\.0\.0\.1:[0-9]+$' "$(json '.nodes[0].peer')" "$n: peer address"
  assert_eq "${URL[r2]#http://}" "$(json '.nodes[] | select(.name == "r2") | .http')" "$n: HTTP address"
  assert_eq null "$(json .owners)" "$n: no owners without ?key"
done

# ?key=: two distinct owners, primary first, the one the data path names.
NODE_URL=${URL[r2]}
for k in k0 k1 k2 k3; do
  http GET "/api/cluster/ring?key=$k"
  assert_eq "$k" "$(json .key)" "key $k echoed"
  assert_eq 2 "$(json '.owners | length')" "key $k has two owners"
  assert_eq 2 "$(json '.owners | unique | length')" "key $k: owners are distinct"
  owners=$(json '.owners | join(",")')
  http PUT "/api/cache/$k" --data-binary v
  assert_eq "${owners%%,*}" "$(header x-cache-owner)" "key $k: primary is the X-Cache-Owner of a PUT"
done
http GET "/api/cluster/ring?key=%FF%00bin"
assert_eq "$(printf '\xff\x00bin' | base64)" "$(json '.key_base64')" "a binary key comes back as key_base64"
http GET "/api/cluster/ring?key=a+b"
assert_eq "a b" "$(json .key)" "'+' in the query is a space, %2B a plus"

# bad input: JSON 4xx
http GET "/api/cluster/ring?key="
assert_eq "400 bad_key" "$STATUS $(json .code)" "empty key"
http GET "/api/cluster/ring?key=%G1"
assert_eq "400 bad_key" "$STATUS $(json .code)" "malformed percent-encoding"
http GET "/api/cluster/ring?key=$(head -c 1025 /dev/zero | tr '\0' k)"
assert_eq "400 key_too_long" "$STATUS $(json .code)" "key over 1024 bytes"
http POST /api/cluster/ring
assert_eq "405 method_not_allowed" "$STATUS $(json .code)" "POST is not allowed"

# dcache-admin ring against the cluster
primary=$(curl -s "${URL[r3]}/api/cluster/ring?key=k0" | jq -r '.owners[0]')
out=$("$DCACHE_ADMIN_BIN" --node "${URL[r3]}" ring --key k0)
assert_match 'r3 .*%  \(this node\)' "$out" "dcache-admin ring marks this node"
assert_eq 3 "$(grep -cE '^r[123] ' <<<"$out")" "dcache-admin ring lists three nodes"
assert_match "owners:"$'\n'"  $primary  \(primary\)" "$out" "dcache-admin ring --key prints the primary first"

finish
