"""The netns topology: reachability, partitions (both ways and one way), loss,
heal, the client side (re-exec and setns), and a teardown that leaves nothing.
Needs root, iproute2 and nftables; skipped with the reason otherwise."""

import itertools
import os
import subprocess
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from chaoslib import topology as T  # noqa: E402

AGENT = os.path.join(HERE, "netagent.py")
PORT = 7000
TIMEOUT = 0.5
_why = T.netns_unavailable_reason()
SKIP = "netns topology impossible here: %s" % _why if _why else None


def netns_list():
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def root_links():
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return sorted(l.split(":")[1].strip().split("@")[0] for l in out.splitlines())


class Agent:
    """netagent.py running under argv (a wrap()ped command)."""

    def __init__(self, argv, host):
        self.p = subprocess.Popen(argv + [sys.executable, AGENT, host, str(PORT)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        line = self.p.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError("agent did not start: %r" % line)
        self.answers = {}
        self.cv = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            pid, _, rest = line.strip().partition(" ")
            with self.cv:
                self.answers[pid] = rest
                self.cv.notify_all()

    def send(self, pid, proto, host):
        self.p.stdin.write("%s %s %s %d %s\n" % (pid, proto, host, PORT, TIMEOUT))

    def wait(self, pid, timeout=5):
        with self.cv:
            self.cv.wait_for(lambda: pid in self.answers, timeout)
            return self.answers.pop(pid, "no answer")

    def stop(self):
        try:
            self.p.stdin.close()
        except OSError:
            pass
        self.p.kill()
        self.p.wait()
        self.p.stdout.close()


_ids = itertools.count()


@unittest.skipIf(SKIP, SKIP)
class NetnsTopologyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.links_before = root_links()
        cls.topo = T.make_topology(3, "ut%d" % os.getpid(), want="netns")
        cls.topo.setup()
        cls.agents = {}
        try:
            for i in range(3):
                cls.agents[i] = Agent(cls.topo.wrap(i, []), cls.topo.node_host(i))
            cls.agents["c"] = Agent(cls.topo.wrap_client([]), cls.topo.client_addr())
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for a in cls.agents.values():
            a.stop()
        cls.topo.teardown()
        left = [l for l in netns_list().splitlines() if l.startswith(cls.topo.prefix)]
        assert not left, left

    def setUp(self):
        self.topo.heal()

    def host(self, x):
        return self.topo.client_addr() if x == "c" else self.topo.node_host(x)

    def reach(self, pairs, protos=("tcp", "udp")):
        """{(src, dst, proto): True if the echo came back}; all probes run at once."""
        sent = []
        for s, d in pairs:
            for proto in protos:
                pid = str(next(_ids))
                self.agents[s].send(pid, proto, self.host(d))
                sent.append(((s, d, proto), pid))
        return {k: self.agents[k[0]].wait(pid) == "ok" for k, pid in sent}

    def assertReach(self, pairs, want, protos=("tcp", "udp")):
        got = self.reach(pairs, protos)
        bad = {k: v for k, v in got.items() if v != want}
        self.assertFalse(bad, "expected %s: %s" % ("reachable" if want else "cut", sorted(bad)))

    ALL = [(a, b) for a in range(3) for b in range(3) if a != b] + [("c", 0), ("c", 1), ("c", 2)]

    def test_addresses(self):
        t = self.topo
        self.assertEqual(t.kind, "netns")
        self.assertTrue(t.supports_partitions)
        self.assertEqual([t.node_host(i) for i in range(3)], ["10.213.%d.%d" % (t.octet, 10 + i) for i in range(3)])
        self.assertEqual(t.client_host(1), t.node_host(1))
        self.assertEqual(t.service_host(), "10.213.%d.3" % t.octet)
        self.assertEqual(t.wrap(2, ["x"])[-1], "x")

    def test_reachable(self):
        self.assertReach(self.ALL, True)

    def test_partition_and_heal(self):
        self.topo.partition([[0], [1, 2]])
        self.assertReach([(0, 1), (1, 0), (0, 2), (2, 0)], False)
        self.assertReach([(1, 2), (2, 1), ("c", 0), ("c", 1), ("c", 2)], True)
        self.topo.heal()
        self.assertReach(self.ALL, True)

    def test_partition_unlisted_node_stays_connected(self):
        self.topo.partition([[0], [1]])
        self.assertReach([(0, 1), (1, 0)], False)
        self.assertReach([(0, 2), (2, 0), (1, 2), (2, 1)], True)

    def test_partition_replaces(self):
        self.topo.partition([[0], [1, 2]])
        self.topo.partition([[0, 1], [2]])
        self.assertReach([(0, 1), (1, 0)], True)
        self.assertReach([(0, 2), (2, 1)], False)

    def test_one_way(self):
        self.topo.partition_one_way([0], [1])
        got = self.reach([(0, 1), (1, 0)], protos=("udp",))
        # 0 -> 1 is dropped: 0's datagram never arrives.  1 -> 0 arrives, but its echo
        # (1 <- 0) is dropped too, so probe with a listener: UDP to 0 is seen by 0.
        self.assertFalse(got[(0, 1, "udp")])
        self.assertFalse(got[(1, 0, "udp")])
        self.assertTrue(self.one_way_datagram(1, 0), "1 -> 0 must flow")
        self.assertFalse(self.one_way_datagram(0, 1), "0 -> 1 must be dropped")
        self.assertReach([(1, 2), (2, 1), (0, 2), (2, 0), ("c", 0), ("c", 1)], True)

    def one_way_datagram(self, src, dst):
        """Does one UDP datagram from node src reach a listener in node dst?"""
        port = 7001
        code = ("import socket,sys;u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
                "u.bind((%r,%d));u.settimeout(%s);print('ready',flush=True);"
                "print(u.recv(100).decode())" % (self.host(dst), port, 2 * TIMEOUT))
        lis = subprocess.Popen(self.topo.wrap(dst, [sys.executable, "-c", code]),
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            self.assertEqual(lis.stdout.readline().strip(), "ready")
            send = ("import socket;u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
                    "u.sendto(b'hello',(%r,%d))" % (self.host(dst), port))
            subprocess.run(self.topo.wrap(src, [sys.executable, "-c", send]), check=True)
            out = lis.communicate(timeout=5)[0]
            return "hello" in out
        finally:
            if lis.poll() is None:
                lis.kill()
                lis.wait()

    def test_loss_100_is_a_cut(self):
        self.topo.loss(100)
        self.assertReach([(0, 1), (1, 2), (2, 0)], False)
        self.assertReach([("c", 0), ("c", 1), ("c", 2)], True)
        self.topo.loss(0)
        self.assertReach([(0, 1), (1, 2), (2, 0)], True)

    def test_loss_on_some_nodes(self):
        self.topo.loss(100, nodes=[2])
        self.assertReach([(0, 2), (2, 0), (1, 2), (2, 1)], False)
        self.assertReach([(0, 1), (1, 0), ("c", 2)], True)

    def test_loss_rule_is_probabilistic(self):
        self.topo.loss(30)
        rules = self.topo.rules()
        self.assertIn("numgen random mod 10000 < 3000 drop", rules[0])
        self.topo.heal()
        self.assertNotIn("numgen", self.topo.rules()[0])

    def test_loss_50_drops_some(self):
        # 40 UDP probes at 50% loss each way (the echo has to come back too): ~75% fail.
        self.topo.loss(50, nodes=[0])
        pids = []
        for _ in range(40):
            pid = str(next(_ids))
            self.agents[1].send(pid, "udp", self.host(0))
            pids.append(pid)
        ok = sum(self.agents[1].wait(p) == "ok" for p in pids)
        self.assertTrue(0 < ok < 30, "%d of 40 came back" % ok)

    def test_service_namespace(self):
        a = Agent(self.topo.wrap_service([]), self.topo.service_host())
        try:
            self.topo.partition([[0], [1], [2]])
            self.topo.loss(100)
            for s in (0, 1, 2, "c"):
                pid = str(next(_ids))
                self.agents[s].send(pid, "tcp", self.topo.service_host())
                self.assertEqual(self.agents[s].wait(pid), "ok", "node %s -> service" % s)
        finally:
            a.stop()

    def rtt_from(self, src, dst, tries=3):
        """Best TCP echo round trip from src (a node, or "c") to dst's agent, each on a new connection."""
        code = ("import socket, time\nbest = 9\n"
                "for _ in range(%d):\n"
                "    s = socket.create_connection((%r, %d), timeout=2)\n"
                "    t0 = time.monotonic(); s.sendall(b'x'); assert s.recv(1) == b'x'\n"
                "    best = min(best, time.monotonic() - t0); s.close()\n"
                "print(best)\n" % (tries, self.host(dst), PORT))
        argv = self.topo.wrap_client([]) if src == "c" else self.topo.wrap(src, [])
        r = subprocess.run(argv + [sys.executable, "-c", code], capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 0, r.stderr)
        return float(r.stdout)

    def test_add_latency(self):
        lat = self.topo.add_latency(1, PORT, 100)
        try:
            self.assertGreaterEqual(self.rtt_from(0, 1), 0.200)      # 100 ms each way
            self.assertGreaterEqual(self.rtt_from(2, 1), 0.200)
            self.assertLess(self.rtt_from("c", 1), 0.1)               # the client is not delayed
            self.assertLess(self.rtt_from(1, 0), 0.1)                 # nor node 1's own connections out
            self.assertReach([(0, 1)], True, protos=("udp",))         # nor UDP
            self.assertGreaterEqual(lat.stats()["accepted"], 6)
            lat.set_delay(0)
            self.assertLess(self.rtt_from(0, 1), 0.1)
            lat.set_delay(60, 0)
            self.assertGreaterEqual(self.rtt_from(0, 1), 0.120)
            self.topo.partition([[0], [1, 2]])                        # a cut still cuts
            self.assertReach([(0, 1)], False, protos=("tcp",))
            self.topo.heal()
            self.assertIn("redirect to", self.topo.rules()[1])        # heal keeps the latency
            with self.assertRaises(T.TopologyError):
                self.topo.add_latency(1, PORT, 10)
        finally:
            lat.stop()
        self.assertNotIn("redirect", self.topo.rules()[1])
        self.assertLess(self.rtt_from(0, 1), 0.1)

    def test_reexec_in_client(self):
        code = ("import sys; sys.path.insert(0, %r); from chaoslib import topology as T; import socket\n"
                "assert T.in_client()\n"
                "t = T.make_topology(3, %r)\n"
                "assert not t.owner and t.in_client()\n"
                "t.partition([[0], [1, 2]])\n"
                "s = socket.create_connection((t.node_host(0), %d), timeout=1); s.sendall(b'hi'); assert s.recv(2) == b'hi'\n"
                "t.setup(); t.teardown()\n"            # no-ops when attached
                "print('child ok')\n" % (os.path.dirname(HERE), self.topo.tag, PORT))
        self.assertFalse(self.topo.in_client())
        self.assertFalse(T.in_client())
        r = subprocess.run(self.topo.wrap_client([sys.executable, "-c", code]),
                           env=dict(os.environ, **{T.ENV: self.topo.env_value()}), capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("child ok", r.stdout)
        self.assertReach([(0, 1)], False)        # the child's partition is in force
        self.assertTrue(self.topo.exists())      # and its teardown() did nothing

    def test_enter_client(self):
        code = ("import sys, socket; sys.path.insert(0, %r); from chaoslib import topology as T\n"
                "t = T.NetnsTopology(3, %r)\n"
                "assert not t.in_client(); t.enter_client(); assert t.in_client()\n"
                "s = socket.create_connection((t.node_host(2), %d), timeout=1); s.sendall(b'hi'); assert s.recv(2) == b'hi'\n"
                "print('entered')\n" % (os.path.dirname(HERE), self.topo.tag, PORT))
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("entered", r.stdout)

    def test_setup_refuses_existing(self):
        with self.assertRaises(T.TopologyError):
            T.NetnsTopology(3, self.topo.tag).setup()
        self.assertTrue(self.topo.exists())      # the refusal removed nothing


@unittest.skipIf(SKIP, SKIP)
class NetnsLifecycleTest(unittest.TestCase):
    def test_teardown_leaves_nothing(self):
        links = root_links()
        t = T.NetnsTopology(4, "ul%d" % os.getpid())
        t.setup()
        self.assertEqual(len([l for l in netns_list().splitlines() if l.startswith(t.prefix)]), 4 + 3)
        self.assertEqual(root_links(), links, "setup must not touch the root namespace")
        # a process left running in a node namespace is killed by teardown
        p = subprocess.Popen(t.wrap(1, ["sleep", "60"]))
        time.sleep(0.1)
        t.teardown()
        self.assertEqual(p.wait(5), -9)
        self.assertFalse([l for l in netns_list().splitlines() if l.startswith(t.prefix)])
        self.assertEqual(root_links(), links)
        t.teardown()                             # idempotent
        print("\n  setup %.3f s, teardown %.3f s (4 nodes)" % (t.timings["setup"], t.timings["teardown"]),
              file=sys.stderr)

    def test_failed_setup_cleans_up(self):
        t = T.NetnsTopology(2, "uf%d" % os.getpid())
        orig = t._parallel
        calls = []

        def boom(jobs):
            calls.append(1)
            if len(calls) == 2:                  # the nft step
                raise T.TopologyError("injected")
            return orig(jobs)
        t._parallel = boom
        with self.assertRaises(T.TopologyError):
            t.setup()
        self.assertFalse(t.exists())

    def test_cleanup_by_tag(self):
        t = T.NetnsTopology(2, "uc%d" % os.getpid())
        t.setup()
        T.cleanup(t.tag)                         # knows neither n nor anything else
        self.assertFalse(t.exists())

    def test_sigterm_to_the_parent_stops_the_child_and_tears_down(self):
        code = ("import sys, time, subprocess; sys.path.insert(0, %r); from chaoslib import topology as T\n"
                "if T.in_client():\n"
                "    t = T.make_topology(2, 'x')\n"
                "    p = subprocess.Popen(t.wrap(0, ['sleep', '61.25']))\n"
                "    print('child up', flush=True)\n"
                "    try:\n"
                "        time.sleep(60)\n"
                "    finally:\n"
                "        print('child cleanup', flush=True)\n"
                "    sys.exit(0)\n"
                "T.exit_on_signals()\n"
                "t = T.make_topology(2, %r, 'netns')\n"
                "t.setup()\n"
                "try:\n"
                "    t.reexec_in_client([sys.executable, '-c', sys.argv[1]])\n"
                "finally:\n"
                "    t.teardown()\n"
                "    print('parent teardown', flush=True)\n" % (os.path.dirname(HERE), "us%d" % os.getpid()))
        p = subprocess.Popen([sys.executable, "-c", code, code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.assertEqual(p.stdout.readline().strip(), "child up")
        p.terminate()                            # the parent only, not its group
        out, err = p.communicate(timeout=20)
        self.assertEqual(p.returncode, 128 + 15, err)
        self.assertIn("child cleanup", out)      # the child was interrupted (SIGINT) and cleaned up
        self.assertIn("parent teardown", out)
        self.assertFalse([l for l in netns_list().splitlines() if l.startswith("dchaos-us%d-" % os.getpid())])
        r = subprocess.run(["pgrep", "-f", "^sleep 61.25$"], capture_output=True, text=True)
        self.assertEqual(r.stdout.strip(), "", "the node process survived")

    def test_context_manager_on_error(self):
        t = T.NetnsTopology(2, "ux%d" % os.getpid())
        with self.assertRaises(ZeroDivisionError):
            with t:
                1 / 0
        self.assertFalse(t.exists())


class LoopbackTest(unittest.TestCase):
    def test_loopback(self):
        t = T.make_topology(3, "lb", want="loopback")
        t.setup()
        self.assertEqual(t.kind, "loopback")
        self.assertFalse(t.supports_partitions)
        self.assertEqual(t.node_host(2), "127.0.0.1")
        self.assertEqual(t.service_host(), "127.0.0.1")
        self.assertEqual(t.wrap(1, ["a", "b"]), ["a", "b"])
        self.assertEqual(t.wrap_service(["a"]), ["a"])
        with self.assertRaises(NotImplementedError):
            t.partition([[0], [1]])
        with self.assertRaises(NotImplementedError):
            t.loss(10)
        t.heal()
        t.teardown()

    def test_bad_want(self):
        with self.assertRaises(ValueError):
            T.make_topology(3, "x", want="docker")


if __name__ == "__main__":
    unittest.main()
