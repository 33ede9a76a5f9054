"""Concurrent clients against random nodes, every operation recorded.

Keys are few (default 64, in 4 groups `g0:` .. `g3:` for pattern
invalidation) so operations collide. Every PUT writes a value no other
operation writes (`client.seq`), so a value read names the write it came
from. Half the clients talk only to nodes the harness believes up; the
others to any node, so "failed requests" can be told apart from requests
to a node that was down.
"""

import http.client
import json
import random
import threading
import time
import urllib.parse

# Operation mix (weights).
MIX = [("put", 35), ("get", 45), ("delete", 8), ("invalidate", 8), ("invalidate_pattern", 4)]
GROUPS = 4
REQUEST_TIMEOUT = 3.0


def key_name(i):
    return "g%d:k%d" % (i % GROUPS, i)


class History:
    """Operations, in the order they completed; thread-safe."""

    def __init__(self, t0):
        self.t0 = t0
        self.ops = []
        self.lock = threading.Lock()
        self.next_id = 0

    def now(self):
        return time.monotonic() - self.t0

    def add(self, op):
        with self.lock:
            op["id"] = self.next_id
            self.next_id += 1
            self.ops.append(op)

    def dump(self, path):
        with open(path, "w") as f:
            for op in self.ops:
                f.write(json.dumps(op, sort_keys=True) + "\n")


class Client:
    """One HTTP connection per node, reopened after any error."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.conns = {}

    def request(self, i, method, path, body=None, headers=None):
        """(status, body bytes, headers dict) or (None, error text, {})."""
        conn = self.conns.get(i)
        if conn is None:
            host = self.cluster.topo.client_host(i)
            conn = http.client.HTTPConnection(host, self.cluster.nodes[i].http_port, timeout=REQUEST_TIMEOUT)
            self.conns[i] = conn
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            data = r.read()
            return r.status, data, {k.lower(): v for k, v in r.getheaders()}
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            self.conns.pop(i, None)
            return None, type(e).__name__, {}

    def close(self):
        for c in self.conns.values():
            c.close()
        self.conns.clear()


def do_op(client, i, kind, target, value=None):
    """Runs one operation on node i; returns the fields to record."""
    rec = {"op": kind, "node": i}
    if kind in ("put", "get", "delete"):
        rec["key"] = target
        path = "/api/cache/" + urllib.parse.quote(target, safe="")
        if kind == "put":
            rec["value"] = value
            st, body, hdr = client.request(i, "PUT", path + "?ttl=0", body=value.encode())
            if st in (200, 201):
                try:
                    rec["version"] = int(json.loads(body)["version"])
                except (ValueError, KeyError):
                    pass
        elif kind == "get":
            st, body, hdr = client.request(i, "GET", path)
            if st == 200:
                rec["value"] = body.decode(errors="replace")
                rec["version"] = int(hdr.get("x-cache-version", "0"))
                rec["cache"] = hdr.get("x-cache")
        else:
            st, body, hdr = client.request(i, "DELETE", path)
    elif kind == "invalidate":
        rec["key"] = target
        st, body, hdr = client.request(i, "POST", "/api/invalidate", body=json.dumps({"keys": [target]}).encode(),
                                       headers={"Content-Type": "application/json"})
    else:
        rec["pattern"] = target
        st, body, hdr = client.request(i, "POST", "/api/invalidate/pattern",
                                       body=json.dumps({"pattern": target}).encode(),
                                       headers={"Content-Type": "application/json"})
    rec["status"] = st
    if st is None:
        rec["error"] = body
    elif st >= 500:
        try:
            rec["error"] = json.loads(body).get("code", "")
        except ValueError:
            rec["error"] = ""
    return rec


class Workload:
    def __init__(self, cluster, history, rng, clients=6, keys=64, static=200):
        self.cluster = cluster
        self.history = history
        self.rng = rng
        # Hot keys, written and deleted all the time, and static keys, each
        # written once before the faults and then only read: a lost write
        # of a hot key is soon hidden by the next one; of a static key, never.
        self.hot = [key_name(k) for k in range(keys)]
        self.static = ["s%d:k%d" % (k % GROUPS, k) for k in range(static)]
        self.keys = self.hot + self.static
        self.nclients = clients
        self.stop_flag = threading.Event()
        self.threads = []
        self.seeds = [rng.randrange(1 << 30) for _ in range(clients)]

    def pick_op(self, rng):
        r = rng.randrange(sum(w for _, w in MIX))
        for kind, w in MIX:
            if r < w:
                return kind
            r -= w
        return "get"

    def run_client(self, c):
        rng = random.Random(self.seeds[c])
        up_only = c % 2 == 0
        client = Client(self.cluster)
        seq = 0
        n = len(self.cluster.nodes)
        while not self.stop_flag.is_set():
            up = self.cluster.up()
            if up_only:
                if not up:
                    time.sleep(0.01)
                    continue
                i = rng.choice(up)
            else:
                i = rng.randrange(n)
            kind = self.pick_op(rng)
            if kind == "invalidate_pattern":
                target = "g%d:*" % rng.randrange(GROUPS)
            elif kind == "get" and self.static and rng.random() < 0.3:
                target = rng.choice(self.static)
            else:
                target = rng.choice(self.hot)
            value = None
            if kind == "put":
                seq += 1
                value = "c%d.%d" % (c, seq)
            start = self.history.now()
            node_up = i in up
            rec = do_op(client, i, kind, target, value)
            rec.update({"client": c, "start": start, "end": self.history.now(), "node_up": node_up,
                        "up_only": up_only, "phase": "run"})
            self.history.add(rec)
        client.close()

    def preload(self):
        """Writes every static key once, through random nodes."""
        client = Client(self.cluster)
        for k, key in enumerate(self.static):
            i = self.rng.randrange(len(self.cluster.nodes))
            start = self.history.now()
            rec = do_op(client, i, "put", key, "static.%d" % k)
            rec.update({"client": -1, "start": start, "end": self.history.now(), "node_up": True, "up_only": True,
                        "phase": "run"})
            self.history.add(rec)
        client.close()

    def start(self):
        for c in range(self.nclients):
            t = threading.Thread(target=self.run_client, args=(c,), daemon=True)
            t.start()
            self.threads.append(t)

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join()

    def final_reads(self):
        """Every key read through every node, after heal and settle."""
        client = Client(self.cluster)
        for k in self.keys:
            for i in range(len(self.cluster.nodes)):
                start = self.history.now()
                rec = do_op(client, i, "get", k)
                rec.update({"client": -1, "start": start, "end": self.history.now(), "node_up": True,
                            "up_only": True, "phase": "final"})
                self.history.add(rec)
        client.close()
