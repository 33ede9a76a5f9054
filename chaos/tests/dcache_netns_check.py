"""End-to-end check of the netns topology with real dcache-node processes, and
an example of the flow chaos/run can follow (not part of the unit tests: it takes
~15 s and needs a built binary).

    python3 chaos/tests/dcache_netns_check.py [path/to/dcache-node]

The parent (root namespace) sets the topology up and re-executes this script in
the client namespace; the child starts 3 nodes with wrap(), checks from the
client side that node 0 sees 3 alive members, partitions [[0],[1,2]], waits for
node 0 to see the others suspect/dead, heals, waits for them to be alive again,
times PUTs with 0 and 100 ms of latency on the peer channel (add_latency), and
kills the nodes.  The parent tears down, also on errors and Ctrl-C.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from chaoslib import topology as T  # noqa: E402

N = 3
HTTP, CLUSTER = 8080, 7946
FAST = ["--probe-interval", "200ms", "--probe-timeout", "100ms", "--gossip-interval", "50ms"]


def members(topo, i):
    url = "http://%s:%d/api/cluster/members" % (topo.client_host(i), HTTP)
    with urllib.request.urlopen(url, timeout=1) as r:
        d = json.loads(r.read())
    return {m["name"]: m["state"] for m in d["members"]}


def wait_for(what, pred, timeout):
    t0 = time.monotonic()
    last = None
    while time.monotonic() - t0 < timeout:
        try:
            last = pred()
            if last is True:
                took = time.monotonic() - t0
                print("  %-40s %.2f s" % (what, took))
                return took
        except OSError as e:
            last = e
        time.sleep(0.1)
    raise SystemExit("FAILED: %s within %s s (last: %r)" % (what, timeout, last))


def child(binary):
    topo = T.make_topology(N, "ignored")
    assert topo.kind == "netns" and topo.in_client() and not topo.owner
    logdir = tempfile.mkdtemp(prefix="dchaos-check-")
    procs = []
    # Latency proxies go in first (delay 0): a redirect only catches connections opened after it.
    lats = [topo.add_latency(i, CLUSTER, 0) for i in range(N)]
    try:
        for i in range(N):
            h = topo.node_host(i)
            argv = [binary, "--name", "n%d" % i, "--http-host", h, "--http-port", str(HTTP),
                    "--cluster-host", h, "--cluster-port", str(CLUSTER), "--advertise", h,
                    "--workers", "1", "--allow-anonymous", "--allow-unsealed"] + FAST
            if i:
                argv += ["--seeds", "%s:%d" % (topo.node_host(0), CLUSTER)]
            log = open(os.path.join(logdir, "n%d.log" % i), "wb")
            procs.append(subprocess.Popen(topo.wrap(i, argv), stdout=log, stderr=subprocess.STDOUT))
            log.close()
        print("  logs in %s" % logdir)

        def all_alive(i):
            return lambda: members(topo, i) == {"n0": "alive", "n1": "alive", "n2": "alive"} or members(topo, i)

        for i in range(N):
            wait_for("node %d sees 3 alive members" % i, all_alive(i), 10)

        topo.partition([[0], [1, 2]])
        wait_for("node 0 sees n1, n2 suspect or dead",
                 lambda: (lambda m: m["n1"] != "alive" and m["n2"] != "alive" or m)(members(topo, 0)), 10)
        wait_for("node 1 sees n0 suspect or dead",
                 lambda: (lambda m: m["n0"] != "alive" and m["n2"] == "alive" or m)(members(topo, 1)), 10)
        print("  during the partition: node 0 %s, node 1 %s" % (members(topo, 0), members(topo, 1)))
        time.sleep(2)
        print("  2 s later:            node 0 %s, node 1 %s" % (members(topo, 0), members(topo, 1)))

        topo.heal()
        for i in range(N):
            wait_for("after heal, node %d sees 3 alive" % i, all_alive(i), 20)
        def put_time(key):
            req = urllib.request.Request("http://%s:%d/api/cache/%s" % (topo.client_host(0), HTTP, key),
                                         data=b"v", method="PUT")
            t0 = time.monotonic()
            with urllib.request.urlopen(req, timeout=5) as r:
                r.read()
            return time.monotonic() - t0

        fast = [put_time("k%d" % k) for k in range(10)]
        for lat in lats:
            lat.set_delay(100)
        slow = [put_time("k%d" % k) for k in range(10)]
        for lat in lats:
            lat.set_delay(0)
        again = [put_time("k%d" % k) for k in range(10)]
        print("  PUT via node 0 (replicas 2, write-acks all), peer channel delay 0 / 100 / 0 ms each way:")
        print("    median %.1f / %.1f / %.1f ms, min %.1f / %.1f / %.1f ms" % tuple(
            [sorted(x)[5] * 1000 for x in (fast, slow, again)] + [min(x) * 1000 for x in (fast, slow, again)]))
        if not min(slow) >= 0.2 > max(fast):
            raise SystemExit("FAILED: latency on the peer channel did not show in PUTs")
        print("  proxy stats: %s" % [lat.stats() for lat in lats])
        for i, p in enumerate(procs):
            if p.poll() is not None:
                raise SystemExit("FAILED: node %d exited (rc %s)" % (i, p.returncode))
        print("OK")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        for lat in lats:
            lat.stop()


def main():
    binary = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "/work/main/build/dcache-node")
    if T.in_client():
        return child(binary)
    topo = T.make_topology(N, "chk%d" % os.getpid(), want="netns")
    t0 = time.monotonic()
    topo.setup()
    print("setup %.3f s: nodes %s, client %s" % (time.monotonic() - t0,
          [topo.node_host(i) for i in range(N)], topo.client_addr()))
    try:
        rc = topo.reexec_in_client([sys.executable, os.path.abspath(__file__), binary])
    finally:
        t0 = time.monotonic()
        topo.teardown()
        print("teardown %.3f s; left: %r" % (time.monotonic() - t0,
              [l for l in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.splitlines()
               if l.startswith(topo.prefix)]))
    return rc


if __name__ == "__main__":
    sys.exit(main())
