#!/usr/bin/env bash
# Predicted hot keys: each node counts the GETs it serves and shares its
# top list; /api/warming/hot on any node shows the cluster's, hottest
# first; a "hot" job warms them; a node that joins warms the hot keys it
# now owns before they are asked of it (a "prefetch" run, trigger "ring").
source "$(dirname "$0")/lib.sh"

key=$(head -c 32 /dev/urandom | base64)
URLS=()
start_node n1 --name n1 --cluster-key "$key"
URLS+=("$NODE_URL")
gport1=$NODE_GOSSIP_PORT
for n in n2 n3; do
  start_node "$n" --name "$n" --cluster-key "$key" --seeds "127.0.0.1:$gport1"
  URLS+=("$NODE_URL")
done
formed() { for u in "${URLS[@]}"; do curl -fsS "$u/ready" >/dev/null || return 1; done; }
wait_for "three ready nodes" formed

for i in $(seq 1 20); do curl -fsS -o /dev/null -X PUT "${URLS[0]}/api/cache/hot:$i" --data-binary "v$i"; done
# hot:1 is read 60 times through n1, hot:2 40 times through n2, hot:3..20
# twice each through n3: the cluster's list must add the nodes' up.
for _ in $(seq 1 60); do echo "url = \"${URLS[0]}/api/cache/hot:1\""; echo "output = /dev/null"; done >"$TEST_TMP/c1"
for _ in $(seq 1 40); do echo "url = \"${URLS[1]}/api/cache/hot:2\""; echo "output = /dev/null"; done >"$TEST_TMP/c2"
for i in $(seq 3 20); do for _ in 1 2; do echo "url = \"${URLS[2]}/api/cache/hot:$i\""; echo "output = /dev/null"; done; done >"$TEST_TMP/c3"
curl -fsS -K "$TEST_TMP/c1"
curl -fsS -K "$TEST_TMP/c2"
curl -fsS -K "$TEST_TMP/c3"
hot_top() { curl -fsS "$1/api/warming/hot?limit=3" | jq -c '[.nodes, [.keys[] | "\(.key)=\(.count)"]]'; }
for u in "${URLS[@]}"; do
  wait_for "the cluster's hot keys on $u" output_is '[3,["hot:1=60","hot:2=40","hot:10=2"]]' hot_top "$u"
done

# --- a hot job ---
NODE_URL=${URLS[1]}
http POST /api/warming/jobs --data-binary '{"name":"h","source":{"hot":5}}'
assert_eq 201 "$STATUS" "a hot job"
http POST /api/warming/trigger --data-binary '{"job":"h"}'
assert_eq 202 "$STATUS" "triggered"
hot_done() { curl -fsS "${URLS[1]}/api/warming/history" | jq -e '.runs[] | select(.job == "h" and .state == "done" and .keys == 5)' >/dev/null; }
wait_for "the hot job warmed the 5 hottest keys" hot_done

# --- a new member warms the hot keys it now owns ---
start_node n4 --name n4 --cluster-key "$key" --seeds "127.0.0.1:$gport1"
URLS+=("$NODE_URL")
wait_for "four ready nodes" formed
prefetched() {
  curl -fsS "${URLS[3]}/api/warming/history" |
    jq -e '.runs[] | select(.job == "prefetch" and .trigger == "ring" and .state == "done" and .loaded > 0)' >/dev/null
}
WAIT_SECONDS=30 wait_for "n4 prefetched the hot keys it owns" prefetched
owned=0
for i in $(seq 1 20); do
  owners=$(curl -fsS "${URLS[3]}/api/cluster/ring?key=hot:$i" | jq -r '.owners | join(",")')
  [[ ,$owners, == *,n4,* ]] && owned=$((owned + 1))
done
loaded=$(curl -fsS "${URLS[3]}/api/warming/history" | jq '[.runs[] | select(.job == "prefetch")][0].keys')
assert_eq "$owned" "$loaded" "the prefetch took exactly the hot keys n4 owns"

finish
