#!/usr/bin/env bash
# dcache-admin against a real node: every command, tables and --json, and
# its exit codes on errors (warm: jobs through the API, no Redis).
source "$(dirname "$0")/lib.sh"

start_node admin --workers 1
adm() { "$DCACHE_ADMIN_BIN" --node "$NODE_URL" "$@"; }
rc_of() { local rc=0; "$@" >/dev/null 2>&1 || rc=$?; echo "$rc"; }

# put: argument, stdin, file
out=$(adm put greeting 'hello world' --ttl 60 --content-type text/plain)
assert_match 'greeting' "$out" "put prints the key"
assert_eq 'hello world' "$(adm get greeting)" "get prints the raw value"
printf 'from stdin' | adm put piped >/dev/null
assert_eq 'from stdin' "$(adm get piped)" "put reads stdin"
head -c 3000 /dev/urandom >"$TEST_TMP/blob"
adm put blob --file "$TEST_TMP/blob" >/dev/null
adm get blob >"$TEST_TMP/blob.out"
cmp -s "$TEST_TMP/blob" "$TEST_TMP/blob.out" && pass || fail "binary value round trip through files"

# --json output is machine-readable
assert_eq 60 "$(adm --json put j v --ttl 60 | jq -r .ttl)" "put --json"
assert_eq text/plain "$(adm --json get greeting | jq -r .content_type)" "get --json content type"
assert_eq 'hello world' "$(adm get greeting --json | jq -r .value)" "options after the command"
curl -s -o /dev/null -X PUT --data-binary x "$NODE_URL/api/cache/bin%FF"
assert_eq 1 "$(adm --json keys 'bin*' | jq '[.keys[] | select(.key_base64)] | length')" "keys --json base64 for binary keys"

# keys: table and --all across pages
for i in $(seq 1 30); do curl -s -o /dev/null -X PUT --data-binary x "$NODE_URL/api/cache/item:$i"; done
table=$(adm keys 'item:*' --all --limit 7)
assert_eq 30 "$(grep -c '^item:' <<<"$table")" "keys --all follows cursors"
assert_match 'KEY' "$(head -1 <<<"$table")" "keys prints a table header"

# del, invalidate, invalidate-pattern, preview
assert_match 'yes' "$(adm del piped)" "del of a present key"
assert_match 'no' "$(adm del piped)" "del of an absent key"
assert_eq 1 "$(rc_of adm get piped)" "get of an absent key exits 1"
adm get piped 2>"$TEST_TMP/err" >/dev/null || true
assert_match 'key not found' "$(cat "$TEST_TMP/err")" "the server's message reaches stderr"
assert_eq 2 "$(adm --json invalidate item:1 item:2 absent | jq .invalidated)" "invalidate"
assert_eq 28 "$(adm --json preview 'item:*' | jq .matched)" "preview"
assert_eq "28 0" "$(adm --json invalidate-pattern 'item:*' --dry-run | jq -r '"\(.matched) \(.invalidated)"')" \
  "invalidate-pattern --dry-run"
assert_eq 28 "$(adm --json invalidate-pattern 'item:*' | jq .invalidated)" "invalidate-pattern"
assert_eq 0 "$(adm --json preview 'item:*' | jq .matched)" "pattern invalidation removed the keys"

# metrics and health
out=$(adm metrics)
assert_match 'hit' "$out" "metrics prints a summary"
assert_match 'P99' "$out" "metrics prints latency percentiles"
(( $(adm --json metrics | jq .hits) > 0 )) && pass || fail "metrics --json"
assert_eq 0 "$(rc_of adm health)" "health exits 0 on a ready node"
assert_match 'l2' "$(adm health)" "health lists dependencies"

# ring: this node alone owns everything
self=$(curl -s "$NODE_URL/api/cluster/members" | jq -r .self)
wait_for "the ring is published" curl -fsS "$NODE_URL/api/cluster/ring"
out=$(adm ring)
assert_match 'balance' "$out" "ring prints the balance"
assert_match "$self .* 100\.00%  \(this node\)" "$out" "ring lists this node with its whole share"
out=$(adm ring --key 'user:42')
assert_match "owners:"$'\n'"  $self  \(primary\)" "$out" "ring --key prints the owner"
assert_eq "$self" "$(adm --json ring --key 'a+b' | jq -r '.owners[0]')" "ring --json --key"
assert_eq 'a+b' "$(adm --json ring --key 'a+b' | jq -r .key)" "ring --key sends '+' as itself"
assert_eq 2 "$(rc_of adm ring --key '')" "ring --key '' is a usage error"
assert_match 'ring \[--key KEY\]' "$("$DCACHE_ADMIN_BIN" --help)" "--help lists ring"

# warm: without Redis a job created through the API lives on this node
printf '%s' '{"name":"t","source":{"keys":["a","b"]}}' >"$TEST_TMP/job.json"
assert_eq 'saved job t: 2 keys, runs when triggered' "$(adm warm add "$TEST_TMP/job.json")" "warm add"
assert_match '^t +2 keys +- +0 +yes +- +- +- +no$' "$(adm warm jobs | sed -n 2p)" "warm jobs lists the job"
assert_eq t "$(adm warm jobs --json | jq -r '.jobs[0].name')" "warm jobs --json"
assert_eq 'triggered job t' "$(adm warm run t)" "warm run"
t_done() { adm warm history | grep -E '^t-[0-9]+ +t +[^ ]+ +api:[^ ]+ +done +[0-9T:-]+Z +[0-9dhms ]+ +2 +0 +2 +0 +[0-9.]+$' >/dev/null; }
wait_for "warm history shows t done: 2 keys, 0 loaded, 2 missing, 0 failed" t_done
assert_match 'done: 2 keys, 0 loaded, 0 failed' "$(adm warm jobs)" "warm jobs shows the last run"
assert_match '^started run adhoc-[0-9-]+$' "$(adm warm keys x y)" "warm keys prints the run's id"
assert_eq 1 "$(adm warm history --limit 1 --json | jq '.runs | length')" "warm history --limit"
assert_eq 'deleted job t' "$(adm warm delete t)" "warm delete"
assert_eq 0 "$(adm --json warm jobs | jq '.jobs | length')" "the job is gone"
rc=0
adm warm delete nosuch >/dev/null 2>"$TEST_TMP/err" || rc=$?
assert_eq 1 "$rc" "warm delete of an absent job exits 1"
assert_match 'job_not_found' "$(cat "$TEST_TMP/err")" "with the node's code on stderr"
assert_eq 2 "$(rc_of adm warm bogus)" "an unknown warm subcommand exits 2"
assert_eq 2 "$(rc_of adm warm run)" "warm run without a name exits 2"

# exit codes
assert_eq 2 "$(rc_of adm frobnicate)" "unknown command exits 2"
assert_eq 2 "$(rc_of adm get)" "missing argument exits 2"
assert_eq 3 "$(rc_of "$DCACHE_ADMIN_BIN" --node http://127.0.0.1:1 health)" "unreachable node exits 3"
assert_eq 2 "$(rc_of adm put k v --ttl -3)" "a bad ttl is a usage error"
assert_match 'invalidate-pattern' "$("$DCACHE_ADMIN_BIN" --help)" "--help lists the commands"

stop_node "$NODE_PID"
finish
