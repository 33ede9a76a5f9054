#!/usr/bin/env bash
# kill -9 of Redis under a concurrent read/write load, in both write modes:
# nothing hangs, reads of cached keys keep succeeding, writes behave as the
# mode says, and once Redis is back every acknowledged write is in Redis,
# compared key by key. Redis runs with an fsync'd append-only file so what
# it acknowledged survives its own kill -9.
source "$(dirname "$0")/lib.sh"

start_redis redis --appendonly yes --appendfsync always
PORT=$REDIS_PORT
rc() { redis-cli -p "$PORT" "$@"; }
l2_field() { curl -s "$NODE_URL/ready" | jq -r ".dependencies.l2.$1"; }

# round MODE R: 100 GETs of cached keys and 100 PUTs of new keys, 16 at a time.
round() {
  local mode=$1 r=$2 i port=${NODE_URL##*:}
  for i in $(seq 1 100); do
    printf 'url = "http://127.0.0.1:%s/api/cache/c%d"\nmax-time = 5\n' "$port" "$i"
    printf 'write-out = "GET %%{http_code} %%{url_effective}\\n"\noutput = "/dev/null"\nnext\n'
    printf 'url = "http://127.0.0.1:%s/api/cache/w-%s-%d-%d"\nmax-time = 5\nrequest = "PUT"\n' "$port" "$mode" "$r" "$i"
    printf 'data = "v-%s-%d-%d"\n' "$mode" "$r" "$i"
    printf 'write-out = "PUT %%{http_code} %%{url_effective}\\n"\noutput = "/dev/null"\n'
    if ((i < 100)); then printf 'next\n'; fi
  done >"$TEST_TMP/round.cfg"
  curl -s --no-progress-meter -Z --parallel-max 16 -K "$TEST_TMP/round.cfg" 2>/dev/null || true
}

for mode in sync journal; do
  start_node "n-$mode" --workers 2 --redis "redis://127.0.0.1:$PORT" --l2-timeout 300ms --l2-write-mode "$mode" \
    --l2-journal-dir "$TEST_TMP/journal-$mode"
  for i in $(seq 1 100); do http PUT "/api/cache/c$i" --data-binary "cached-$i"; done
  out="$TEST_TMP/load-$mode"
  : >"$out"
  r=0
  round "$mode" $((r += 1)) >>"$out"
  kill -9 "$REDIS_PID"
  wait "$REDIS_PID" 2>/dev/null || true
  round "$mode" $((r += 1)) >>"$out"
  round "$mode" $((r += 1)) >>"$out"
  REDIS_FIXED_PORT=$PORT start_redis redis-$mode --appendonly yes --appendfsync always --dir "$TEST_TMP/redis"
  round "$mode" $((r += 1)) >>"$out"

  assert_eq 0 "$(grep -c ' 000 ' "$out")" "$mode: no request hung or failed to connect"
  assert_eq "400 0" "$(grep -c '^GET 200 ' "$out" || true) $(grep '^GET' "$out" | grep -vc '^GET 200 ' || true)" \
    "$mode: every read of a cached key succeeded through the outage"
  bad_puts=$(grep '^PUT' "$out" | grep -Evc '^PUT (20[01]|503) ' || true)
  assert_eq 0 "$bad_puts" "$mode: writes were acknowledged or refused with 503, nothing else"
  if [[ $mode == sync ]]; then
    assert_match '^[1-9]' "$(grep -c '^PUT 503 ' "$out")" "sync: writes were refused while Redis was down"
  else
    assert_eq 0 "$(grep -c '^PUT 503 ' "$out")" "journal: no write was refused"
    drained() { [[ $(l2_field journal_records) == 0 ]]; }
    WAIT_SECONDS=30 wait_for "journal: the journal drains" drained && pass
  fi
  # Every acknowledged write is in Redis, key by key.
  missing=0 acked=0
  while read -r _ code url; do
    [[ $code == 20[01] ]] || continue
    acked=$((acked + 1))
    key=${url##*/}
    [[ $(rc get "dcache:$key") == *"v-${key#w-}" ]] || missing=$((missing + 1))
  done < <(grep '^PUT' "$out")
  assert_match '^[1-9]' "$acked" "$mode: some writes were acknowledged"
  assert_eq 0 "$missing" "$mode: all $acked acknowledged writes are in Redis"
  stop_node "$NODE_PID"
done
finish
