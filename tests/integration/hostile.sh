#!/usr/bin/env bash
# The cluster port under attack by someone without the key: idle
# connections that would hold every slot, a push-pull that claims a huge
# state, a peer connection that never finishes its handshake. The node
# closes each quickly, refuses more than 32 connections from one address,
# and a node with the key still joins and talks to it meanwhile.
source "$(dirname "$0")/lib.sh"

KEY=$(head -c 32 /dev/urandom | base64)
# Fast failure detection, so the heal below takes seconds.
FAST=(--probe-interval 200ms --probe-timeout 100ms --suspicion-mult 2 --push-pull-interval 1s)
start_node n1 --name n1 --workers 1 --cluster-key "$KEY" "${FAST[@]}"
URL1=$NODE_URL
PORT1=$NODE_GOSSIP_PORT
metric() { curl -s "$URL1/metrics" | awk -v m="$1" '$1==m {print $2}'; }

# An attacker holding 300 connections open (more than the node's 256 slots for
# connections that have not said what they are yet), reopening every one the node
# closes, for as long as the test runs. It comes from 127.0.0.2: the
# per-address limit is what keeps the members' connections (from 127.0.0.1)
# out of its reach.
python3 - "$PORT1" "$TEST_TMP/attacker.ready" <<'EOF' &
import socket, sys, time
port, ready = int(sys.argv[1]), sys.argv[2]
conns = []
deadline = time.time() + 60
while time.time() < deadline:
    alive = []
    for c in conns:
        c.setblocking(False)
        try:
            if c.recv(1) == b"":
                c.close()
                continue
        except BlockingIOError:
            pass
        except OSError:
            c.close()
            continue
        alive.append(c)
    conns = alive
    while len(conns) < 300:
        try:
            conns.append(socket.create_connection(("127.0.0.1", port), timeout=1, source_address=("127.0.0.2", 0)))
        except OSError:
            break
    open(ready, "w").close()
    time.sleep(0.2)
EOF
ATTACKER=$!
NODE_PIDS+=("$ATTACKER")
wait_for "the attacker's connections" test -e "$TEST_TMP/attacker.ready"

# A push-pull header that does not open, claiming the largest state; and a
# bare length prefix of 32 MiB, as a node of an older build would send.
exec 8<>"/dev/tcp/127.0.0.1/$PORT1"
{ printf '\x00\x00\x00\x35\x02'; head -c 52 /dev/urandom; } >&8 2>/dev/null || true
timeout 5 cat <&8 >/dev/null 2>&1 || true
exec 8<&- 8>&-
exec 8<>"/dev/tcp/127.0.0.1/$PORT1"
printf '\x02\x00\x00\x00' >&8 2>/dev/null || true
timeout 5 cat <&8 >/dev/null 2>&1 || true
exec 8<&- 8>&-
# (gossip's metrics are a snapshot taken every second)
counted() { curl -s "$URL1/metrics" | grep -q "^$1 [1-9]"; }
wait_for "a forged push-pull header refused as auth" counted 'swim_dropped_total{reason="auth"}' && pass
wait_for "an oversized header refused" counted 'swim_dropped_total{reason="version"}' && pass

# A peer connection (preamble 0xdc) that never sends its HELLO is closed.
start=$SECONDS
exec 8<>"/dev/tcp/127.0.0.1/$PORT1"
printf '\xdc' >&8 2>/dev/null || true
timeout 10 cat <&8 >/dev/null 2>&1 || true
exec 8<&- 8>&-
assert_match '^[0-9]$' "$((SECONDS - start))" "a silent peer connection is closed within seconds"
wait_for "the silent handshake counted" sh -c \
  "curl -s '$URL1/metrics' | grep -q '^peer_handshakes_total{result=\"failed\"} [1-9]'"

# Meanwhile a member with the key joins, and the two serve each other's keys.
start_node n2 --name n2 --workers 1 --cluster-key "$KEY" --seeds "127.0.0.1:$PORT1" "${FAST[@]}"
URL2=$NODE_URL
PID2=$NODE_PID
members() { curl -s "$1/api/cluster/members" | jq '[.members[] | select(.state == "alive")] | length'; }
WAIT_SECONDS=20 wait_for "n2 joins while the attacker holds connections" sh -c "[ \"\$(curl -s '$URL2/api/cluster/members' | jq '[.members[] | select(.state == \"alive\")] | length')\" = 2 ]" && pass
assert_eq 2 "$(members "$URL1")" "n1 sees n2"
WAIT_SECONDS=20 wait_for "both ready" sh -c "curl -fs '$URL1/ready' && curl -fs '$URL2/ready'"
for i in $(seq 20); do curl -s -o /dev/null -X PUT --data-binary "v$i" "$URL1/api/cache/k$i"; done
ok=0
for i in $(seq 20); do [[ $(curl -s "$URL2/api/cache/k$i") == "v$i" ]] && ok=$((ok + 1)); done
assert_eq 20 "$ok" "every key written through n1 reads through n2"
wait_for "over 32 connections from one address refused" counted swim_accepts_refused_total && pass

# n2 cut off long enough to be declared dead, then back: the two heal, the
# attacker still at it.
kill -STOP "$PID2"
WAIT_SECONDS=20 wait_for "n1 declares the stopped n2 dead" sh -c \
  "[ \"\$(curl -s '$URL1/api/cluster/members' | jq '[.members[] | select(.state == \"dead\")] | length')\" = 1 ]" && pass
kill -CONT "$PID2"
WAIT_SECONDS=20 wait_for "the cluster heals while the attacker holds connections" sh -c \
  "[ \"\$(curl -s '$URL1/api/cluster/members' | jq '[.members[] | select(.state == \"alive\")] | length')\" = 2 ]" && pass
assert_eq 2 "$(members "$URL2")" "n2 sees n1 alive after the heal"
kill "$ATTACKER" 2>/dev/null || true
finish
