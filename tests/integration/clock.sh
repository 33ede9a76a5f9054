#!/usr/bin/env bash
# A node whose wall clock runs 30 s ahead (libfaketime; its monotonic clock
# stays true) is found apart from the other two: its /ready says
# clock_skew (503), writes through it are refused with 503 clock_skew, and
# the metrics events every member relays carry that state, so another
# node's feed (the dashboard) shows it. The others stay ready: one bad
# clock stops only itself.
source "$(dirname "$0")/lib.sh"

faketime_lib=/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1
[[ -f $faketime_lib ]] || { echo "libfaketime is missing (tools/setup.sh --test installs faketime)" >&2; exit 1; }
FAST=(--workers 1 --probe-interval 200ms --probe-timeout 100ms --gossip-interval 50ms --push-pull-interval 1s)
declare -A URL
ready_status() { curl -s "${URL[$1]}/ready" | jq -r .status; }

start_node c1 --name c1 "${FAST[@]}"
URL[c1]=$NODE_URL
seed="127.0.0.1:$NODE_GOSSIP_PORT"
start_node c2 --name c2 "${FAST[@]}" --seeds "$seed"
URL[c2]=$NODE_URL
# An ASan build must be told that libfaketime comes before its runtime.
LD_PRELOAD=$faketime_lib FAKETIME=+30s FAKETIME_DONT_FAKE_MONOTONIC=1 FAKETIME_NO_CACHE=1 \
  ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 \
  start_node c3 --name c3 "${FAST[@]}" --seeds "$seed"
URL[c3]=$NODE_URL

stream="$TEST_TMP/stream"
curl -sN "${URL[c1]}/api/events?types=metrics" >"$stream" 2>/dev/null &
wait_for "c1's feed is open" grep -q '^retry: ' "$stream"

skewed() { [[ $(ready_status c3) == clock_skew ]]; }
WAIT_SECONDS=20 wait_for "c3 finds its clock apart" skewed && pass
assert_eq 503 "$(curl -s -o /dev/null -w '%{http_code}' "${URL[c3]}/ready")" "/ready is 503 while the clock is apart"
NODE_URL=${URL[c3]} http PUT /api/cache/through-c3 --data-binary v
assert_eq "503 clock_skew" "$STATUS $(json .code)" "a write through c3 is refused"
others_ok() { [[ $(ready_status c1) == ok && $(ready_status c2) == ok ]]; }
WAIT_SECONDS=20 wait_for "c1 and c2 stay ready" others_ok && pass
NODE_URL=${URL[c1]} http PUT /api/cache/through-c1 --data-binary v
assert_match '^20[01]$' "$STATUS" "writes through the others go on"
relayed() { grep '^data: ' "$stream" | sed 's/^data: //' | jq -e 'select(.node == "c3" and .state == "clock_skew")'; }
wait_for "c3's state on c1's feed" relayed && pass
finish
