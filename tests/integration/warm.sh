#!/usr/bin/env bash
# Warming jobs across three nodes with Redis: a file job on a schedule
# (@every 2s) runs once per firing in the whole cluster; jobs created
# through one node are seen by the others; a triggered job loads its keys
# into their owners; a pattern job warms from Redis after a restart
# emptied L1; a run whose runner is killed completes on another node; a
# run is cancelled through another node; history rows; errors.
source "$(dirname "$0")/lib.sh"

start_redis redis
start_origin
cat >"$TEST_TMP/origins.json" <<JSON
{"origins": [{"name": "catalog", "type": "http", "url": "$ORIGIN_URL/items/{rest}", "keys": ["products:*"],
              "ttl": "5m", "concurrency": 64}],
 "jobs": [{"name": "tick", "schedule": "@every 2s", "source": {"keys": ["products:t1", "products:t2"]}}]}
JSON
key=$(head -c 32 /dev/urandom | base64)
URLS=()
PIDS=()
flags=(--cluster-key "$key" --redis "redis://127.0.0.1:$REDIS_PORT" --origins "$TEST_TMP/origins.json")
start_node n1 --name n1 "${flags[@]}"
URLS+=("$NODE_URL")
PIDS+=("$NODE_PID")
gport1=$NODE_GOSSIP_PORT
for n in n2 n3; do
  start_node "$n" --name "$n" "${flags[@]}" --seeds "127.0.0.1:$gport1"
  URLS+=("$NODE_URL")
  PIDS+=("$NODE_PID")
done
formed() { for u in "${URLS[@]}"; do curl -fsS "$u/ready" >/dev/null || return 1; done; }
wait_for "three ready nodes" formed

# --- a scheduled file job: once per firing in the whole cluster ---
tick_runs() { curl -fsS "${URLS[0]}/api/warming/history?limit=200" | jq '[.runs[] | select(.job == "tick")] | length'; }
at_least() { local want=$1; shift; (($("$@") >= want)); }
WAIT_SECONDS=20 wait_for "the 2 s schedule fired three times" at_least 3 tick_runs
runs=$(curl -fsS "${URLS[1]}/api/warming/history?limit=200" | jq -c '[.runs[] | select(.job == "tick")]')
slots=$(jq '[.[] | (.started_ms / 2000 | floor)] | unique | length' <<<"$runs")
assert_eq "$(jq length <<<"$runs")" "$slots" "one run per firing across three nodes"
assert_eq "done 2" "$(jq -r '.[0] | "\(.state) \(.loaded)"' <<<"$runs")" "each run loaded its two keys"
assert_eq 200 "$(curl -sS -o /dev/null -w '%{http_code}' "${URLS[2]}/api/cache/products:t1")" "which the cluster serves"
http_on() { local u=$1; shift; NODE_URL=$u; http "$@"; }

# --- jobs through the API, seen by every node ---
job='{"name":"featured","source":{"keys":["products:f1","products:f2","products:f3","products:missing-1"]},"priority":5}'
http_on "${URLS[0]}" POST /api/warming/jobs -H 'Content-Type: application/json' --data-binary "$job"
assert_eq 201 "$STATUS" "a job created"
has_job() { curl -fsS "$1/api/warming/jobs" | jq -e --arg n "$2" '.jobs[] | select(.name == $n)' >/dev/null; }
wait_for "the job on another node" has_job "${URLS[2]}" featured
http_on "${URLS[2]}" POST /api/warming/trigger --data-binary '{"job":"featured"}'
assert_eq 202 "$STATUS" "triggered through another node"
featured_done() {
  curl -fsS "${URLS[1]}/api/warming/history" | jq -e '.runs[] | select(.job == "featured" and .state == "done")' >/dev/null
}
wait_for "the run in the history, seen from a third node" featured_done
row=$(curl -fsS "${URLS[1]}/api/warming/history" | jq -c '[.runs[] | select(.job == "featured")][0]')
assert_eq "4 3 1 0" "$(jq -r '"\(.keys) \(.loaded) \(.missing) \(.failed)"' <<<"$row")" "keys, loaded, missing, failed"
assert_match '^api:' "$(jq -r .trigger <<<"$row")" "the trigger names who asked"
loads_before=$(origin_count /items/f1)
for u in "${URLS[@]}"; do
  NODE_URL=$u
  http GET /api/cache/products:f1
  assert_match '^HIT' "$(header x-cache)" "a warmed key is a hit on every node"
done
assert_eq "$loads_before" "$(origin_count /items/f1)" "and the origin is not asked again"

# --- errors ---
http_on "${URLS[0]}" POST /api/warming/jobs --data-binary '{"name":"x","source":{"keys":[]}}'
assert_eq "400 bad_job" "$STATUS $(json .code)" "a bad job is refused"
http_on "${URLS[0]}" DELETE /api/warming/jobs/tick
assert_eq "409 job_read_only" "$STATUS $(json .code)" "a file job is read-only through the API"
http_on "${URLS[0]}" DELETE /api/warming/jobs/nosuch
assert_eq "404 job_not_found" "$STATUS $(json .code)" "an unknown job"
http_on "${URLS[0]}" POST /api/warming/trigger --data-binary '{"pattern":"a*","bogus":1}'
assert_eq "400 bad_request" "$STATUS $(json .code)" "an unknown trigger field"

# --- a pattern over Redis, after a restart emptied L1 ---
for i in $(seq 1 200); do curl -fsS -o /dev/null -X PUT "${URLS[$((i % 3))]}/api/cache/pat:$i" --data-binary "v$i"; done
stop_node "${PIDS[1]}"
start_node n2 --name n2 "${flags[@]}" --seeds "127.0.0.1:$gport1"
URLS[1]=$NODE_URL
PIDS[1]=$NODE_PID
wait_for "n2 back" formed
in_l1() { curl -fsS "$1/metrics" | awk '$1 == "cache_entries" {print $2}'; }
http_on "${URLS[1]}" POST /api/warming/trigger --data-binary '{"pattern":"pat:*","concurrency":32}'
assert_eq 202 "$STATUS" "an ad-hoc pattern run"
pattern_done() {
  curl -fsS "${URLS[1]}/api/warming/history" |
    jq -e '.runs[] | select(.job == "adhoc" and .state == "done" and .loaded == 200)' >/dev/null
}
wait_for "the pattern run loaded the 200 keys from Redis" pattern_done
NODE_URL=${URLS[1]}
hits=0
for i in $(seq 1 200); do
  NODE_URL=${URLS[$((i % 3))]}
  http GET "/api/cache/pat:$i"
  [[ $(header x-cache) == HIT ]] && hits=$((hits + 1))
done
assert_eq 200 "$hits" "every key of the pattern is in its owners' L1 (HIT, not HIT-L2)"

# --- a run taken over when its runner dies ---
origin_control "delay=0.05"
keys=$(seq 1 300 | jq -R '"products:slow\(.)"' | jq -sc .)
http_on "${URLS[0]}" POST /api/warming/jobs --data-binary "{\"name\":\"slow\",\"source\":{\"keys\":$keys},\"concurrency\":2}"
wait_for "the slow job everywhere" has_job "${URLS[2]}" slow
http_on "${URLS[0]}" POST /api/warming/trigger --data-binary '{"job":"slow"}'
runner() { curl -fsS "${URLS[0]}/api/warming/jobs" | jq -r '.jobs[] | select(.name == "slow") | .running.node // empty'; }
has_runner() { [[ -n $(runner) ]]; }
wait_for "the slow run under way" has_runner
progress() { curl -fsS "${URLS[0]}/api/warming/jobs" | jq -r '.jobs[] | select(.name == "slow") | .running.keys // 0'; }
wait_for "some keys done" at_least 10 progress
who=$(runner)
idx=$((${who#n} - 1))
kill -9 "${PIDS[$idx]}"
survivor=${URLS[$(((idx + 1) % 3))]}
taken_over() {
  curl -fsS "$survivor/api/warming/history?limit=200" |
    jq -e --arg who "$who" '.runs[] | select(.job == "slow" and .state == "done" and .node != $who)' >/dev/null
}
WAIT_SECONDS=60 wait_for "the run completed on another node" taken_over
row=$(curl -fsS "$survivor/api/warming/history?limit=200" | jq -c '[.runs[] | select(.job == "slow" and .state == "done")][0]')
assert_eq takeover "$(jq -r .trigger <<<"$row")" "taken over from the dead runner's progress"
assert_eq 300 "$(jq -r '.loaded + .missing' <<<"$row")" "every key loaded by the end"
start_node "n$((idx + 1))" --name "n$((idx + 1))" "${flags[@]}" --seeds "127.0.0.1:$NODE_GOSSIP_PORT"
URLS[$idx]=$NODE_URL
PIDS[$idx]=$NODE_PID
wait_for "three nodes again" formed
wait_for "the restarted node read the jobs from Redis" has_job "${URLS[$idx]}" slow

# --- cancelled through another node ---
curl -fsS -X POST "${URLS[0]}/api/invalidate/pattern" --data-binary '{"pattern":"products:slow*"}' >/dev/null
http_on "${URLS[0]}" POST /api/warming/trigger --data-binary '{"job":"slow"}'
assert_eq 202 "$STATUS" "triggered again: $BODY"
wait_for "the slow run under way again" has_runner || { curl -sS "${URLS[0]}/api/warming/jobs" >&2; grep -h warming "$TEST_TMP"/n*.log >&2; }
cancelled() {
  curl -fsS "${URLS[0]}/api/warming/history?limit=200" | jq -e '.runs[] | select(.job == "slow" and .state == "cancelled")' >/dev/null
}
for u in "${URLS[@]}"; do curl -fsS -o /dev/null -X POST "$u/api/warming/cancel" --data-binary '{"job":"slow"}'; done
WAIT_SECONDS=20 wait_for "the run cancelled" cancelled
origin_control "delay=0"

# --- deleted through one node, gone from the others ---
http_on "${URLS[1]}" DELETE /api/warming/jobs/featured
assert_eq 200 "$STATUS" "an API job deleted"
gone() { ! has_job "${URLS[2]}" featured; }
wait_for "the job gone from every node" gone

# --- the trail and the feed ---
trail=$(for u in "${URLS[@]}"; do curl -fsS "$u/api/audit?action=warm&limit=1000" | jq -c '.records[]'; done)
assert_match '"action":"warm"' "$trail" "runs are in the audit trail"
jobs_trail=$(curl -fsS "${URLS[1]}/api/audit?action=warm_job&limit=1000")
assert_match '"keys":\["featured"\]' "$(jq -c '.records[] | select(.status == 200)' <<<"$jobs_trail")" \
  "a job deleted through the API is in the trail, by the node that received it"
m=$(metric_sum 'warm_runs_total{result="done"}' "${URLS[@]}")
((m >= 3)) && pass || fail "warm_runs_total counts runs: $m"

finish
