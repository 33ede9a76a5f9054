#!/usr/bin/env bash
# The dashboard on real nodes: the page and its files are served without a
# token (they hold no data) with the content types, compression, caching
# and Content-Security-Policy a browser needs; then, where Chromium and the
# dashboard's npm modules are installed (tools/setup.sh --test installs
# them), the end-to-end test drives the page in headless Chromium against
# three nodes run with tokens (dashboard/e2e/), keeping its screenshots in
# tests/integration/dashboard-shots/ of the build tree.
source "$(dirname "$0")/lib.sh"

src=$(cd "$(dirname "$0")/../.." && pwd)
tokens="$TEST_TMP/tokens"
admin=$("$DCACHE_ADMIN_BIN" token add ops admin --file "$tokens")
reader=$("$DCACHE_ADMIN_BIN" token add viewer reader --file "$tokens")

start_node d0 --tokens "$tokens"
url0=$NODE_URL
seed="127.0.0.1:$NODE_GOSSIP_PORT"
start_node d1 --tokens "$tokens" --seeds "$seed"
url1=$NODE_URL
start_node d2 --tokens "$tokens" --seeds "$seed"
url2=$NODE_URL
NODE_URL=$url0

# --- the page: no token, no-cache, the policy ---
http GET /
assert_eq 200 "$STATUS" "GET / without a token"
assert_eq "text/html; charset=utf-8" "$(header Content-Type)" "the page is HTML"
assert_eq "no-cache" "$(header Cache-Control)" "the page is revalidated"
assert_match "script-src 'self'" "$(header Content-Security-Policy)" "a strict policy"
assert_match "frame-ancestors 'none'" "$(header Content-Security-Policy)" "no framing"
assert_eq nosniff "$(header X-Content-Type-Options)" "nosniff"
assert_match '<script type="module"[^>]* src="\./assets/' "$BODY" "the page loads its script from assets/"
etag=$(header ETag)
page=$BODY
http GET /index.html
assert_eq "$page" "$BODY" "/index.html is the same page"
http GET / -H "If-None-Match: $etag"
assert_eq 304 "$STATUS" "a matching If-None-Match is answered 304"
assert_eq "" "$BODY" "with no body"

# --- its files: immutable, gzip'd for clients that take it ---
script=$(grep -o 'src="\./assets/[^"]*\.js"' <<<"$page" | head -n 1 | sed 's/^src="\.//; s/"$//')
http GET "$script"
assert_eq 200 "$STATUS" "the page's script"
assert_eq "text/javascript; charset=utf-8" "$(header Content-Type)" "served as JavaScript"
assert_eq "public, max-age=31536000, immutable" "$(header Cache-Control)" "cached for a year"
assert_eq "" "$(header Content-Encoding)" "plain without Accept-Encoding"
plain=$(curl -fsS "$url0$script" | sha256sum)
http HEAD "$script" -H 'Accept-Encoding: gzip, br'
assert_eq gzip "$(header Content-Encoding)" "gzip when the client takes it"
assert_eq "Accept-Encoding" "$(header Vary)" "and Vary says so"
assert_eq "$plain" "$(curl -fsS -H 'Accept-Encoding: gzip' "$url1$script" | gunzip | sha256sum)" \
  "the gzip'd file is the script, on another node too"
http GET "$script" -H 'Accept-Encoding: gzip;q=0'
assert_eq "" "$(header Content-Encoding)" "gzip;q=0 refuses gzip"
http GET /assets/no-such-file.js
assert_eq 404 "$STATUS" "an unknown file"
assert_eq no_asset "$(json .code)" "is a JSON 404"
http POST /
assert_eq 405 "$STATUS" "the page is read-only"
# The API itself still asks for the token.
http GET /api/cluster/members
assert_eq 401 "$STATUS" "the API needs a token"

# --- in a browser ---
if [[ ${DCACHE_E2E:-1} == 0 ]]; then
  echo "dashboard.sh: end-to-end test skipped (DCACHE_E2E=0)"
elif [[ ! -x /usr/bin/chromium || ! -d $src/dashboard/node_modules/playwright-core ]]; then
  fail "the end-to-end test needs /usr/bin/chromium and dashboard/node_modules (tools/setup.sh --test)"
else
  wait_for "3 members alive" output_is 3 bash -c \
    "curl -fsS -H 'Authorization: Bearer $admin' $url0/api/cluster/members | jq '[.members[] | select(.state == \"alive\")] | length'"
  shots="$(pwd)/tests/integration/dashboard-shots"
  rm -rf "$shots"; mkdir -p "$shots"
  rc=0
  (cd "$src/dashboard" && DCACHE_DASH_URL="$url0/" DCACHE_URLS="$url0,$url1,$url2" DCACHE_ADMIN_TOKEN="$admin" \
    DCACHE_READER_TOKEN="$reader" DCACHE_SHOTS="$shots" timeout 300 npm run --silent e2e) || rc=$?
  assert_eq 0 "$rc" "the end-to-end test in Chromium (screenshots in $shots)"
fi
finish
