"""The nodes under test (and Redis when asked for): start, kill -9, restart
with the same name and ports, pause, resume, graceful leave; and the
questions the harness asks of them over HTTP (members, ring, metrics)."""

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

# Repair within a short scenario's settling time, not the default 30 s.
REPAIR_INTERVAL_S = 3

# Fast failure detection, so a short run sees suspicion, death and rejoin.
FAST_FLAGS = [
    "--workers", "1",
    "--probe-interval", "200ms",
    "--probe-timeout", "100ms",
    "--gossip-interval", "50ms",
    "--push-pull-interval", "2s",
    "--suspicion-mult", "4",
    "--peer-timeout", "1s",
    "--repair-interval", "%ds" % REPAIR_INTERVAL_S,
    "--log-level", "info",
]


FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


def faketime_available():
    return os.path.exists(FAKETIME_LIB)


def free_port(host="127.0.0.1"):
    """A port free now on host, below the ephemeral range so an outgoing
    connection of another process is unlikely to hold it later."""
    import random
    for _ in range(200):
        port = random.randint(20000, 31999)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            try:
                u.bind((host, port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port")


def http_json(url, timeout=2.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read().decode())


class Node:
    def __init__(self, idx, name, http_port, cluster_port):
        self.idx = idx
        self.name = name
        self.http_port = http_port
        self.cluster_port = cluster_port
        self.proc = None
        self.state = "down"       # up, paused, down
        self.runs = 0
        self.skew = 0.0           # seconds its wall clock is off (libfaketime)


class Redis:
    """A redis-server with AOF fsync always (it keeps what it acknowledged),
    in its own directory."""

    def __init__(self, topo, workdir):
        self.topo = topo
        self.dir = os.path.join(workdir, "redis")
        os.makedirs(self.dir, exist_ok=True)
        self.host = topo.service_host()
        self.port = free_port() if topo.kind == "loopback" else 6379
        self.proc = None
        self.state = "down"

    @property
    def url(self):
        return "redis://%s:%d" % (self.host, self.port)

    def start(self, empty=False):
        if empty:
            for f in os.listdir(self.dir):
                p = os.path.join(self.dir, f)
                shutil.rmtree(p) if os.path.isdir(p) else os.unlink(p)
        argv = ["redis-server", "--port", str(self.port), "--bind", self.host, "--save", "",
                "--appendonly", "yes", "--appendfsync", "always", "--dir", self.dir, "--daemonize", "no",
                # Inside our own namespaces the harness connects from another address.
                "--protected-mode", "no"]
        log = open(os.path.join(self.dir, "redis.log"), "ab")
        self.proc = subprocess.Popen(self.topo.wrap_service(argv), stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        self.state = "up"
                        return
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError("redis-server exited at start (see %s)" % self.dir)
            time.sleep(0.05)
        raise RuntimeError("redis-server did not answer")

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.state = "down"

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)
        self.state = "paused"

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)
        self.state = "up"


class Cluster:
    def __init__(self, binary, topo, n, workdir, replicas=2, extra=None, redis=None):
        self.binary = binary
        self.topo = topo
        self.workdir = workdir
        self.replicas = replicas
        self.extra = list(extra or [])
        # Sealed, as a cluster on a real network runs: faults then also hit
        # the peer channel's handshakes (connections opened to a paused or
        # restarted node, sessions cut by a partition).
        self.cluster_key = base64.b64encode(os.urandom(32)).decode()
        self.redis = redis
        self.nodes = []
        self.mounts = []
        self.latency = {}
        self.skew_possible = faketime_available()
        loop = topo.kind == "loopback"
        for i in range(n):
            hp = free_port() if loop else 8080
            cp = free_port() if loop else 7946
            self.nodes.append(Node(i, "n%d" % i, hp, cp))

    def url(self, i):
        return "http://%s:%d" % (self.topo.client_host(i), self.nodes[i].http_port)

    def argv(self, i):
        n = self.nodes[i]
        host = self.topo.node_host(i)
        # A few seeds, as an operator would name them: a seed that left
        # and comes back must find the cluster through the others.
        seeds = ",".join("%s:%d" % (self.topo.node_host(k), self.nodes[k].cluster_port)
                         for k in range(min(3, len(self.nodes))))
        argv = [self.binary, "--name", n.name, "--http-host", host, "--http-port", str(n.http_port),
                "--cluster-host", host, "--cluster-port", str(n.cluster_port), "--replicas", str(self.replicas),
                "--seeds", seeds, "--cluster-key", self.cluster_key,
                "--audit-dir", os.path.join(self.workdir, "audit")] + FAST_FLAGS + self.extra
        if not self.topo.node_host(i).startswith("127."):
            # Namespaces' addresses are not loopback; nothing else reaches them.
            argv += ["--allow-anonymous"]
        if self.redis:
            argv += ["--redis", self.redis.url, "--l2-timeout", "500ms"]
            if "--l2-write-mode" in self.extra:
                argv += ["--l2-journal-dir", self.journal_dir(i)]
        return argv

    def journal_dir(self, i):
        return os.path.join(self.workdir, "journal-%s" % self.nodes[i].name)

    def small_journals(self, size="256k"):
        """Each node's journal directory on a tmpfs of `size` (root only):
        a full disk under the journal."""
        for i in range(len(self.nodes)):
            d = self.journal_dir(i)
            os.makedirs(d, exist_ok=True)
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size, "tmpfs", d], check=True)
            self.mounts.append(d)

    def add_latency(self):
        """A latency proxy in front of every node's peer channel, delay 0 for
        now (set before the nodes start: only new connections go through)."""
        for i, n in enumerate(self.nodes):
            self.latency[i] = self.topo.add_latency(i, n.cluster_port, 0)

    def start(self, i, wait=True, skew=None):
        n = self.nodes[i]
        if skew is not None:
            n.skew = skew
        env = None
        if n.skew:
            # Only the wall clock (the HLC's input) moves; monotonic timers stay true.
            env = dict(os.environ, LD_PRELOAD=FAKETIME_LIB, FAKETIME="%+gs" % n.skew, FAKETIME_DONT_FAKE_MONOTONIC="1",
                       FAKETIME_NO_CACHE="1")
        log = open(os.path.join(self.workdir, "%s.log" % n.name), "ab")
        n.proc = subprocess.Popen(self.topo.wrap(i, self.argv(i)), stdout=log, stderr=log, env=env)
        n.runs += 1
        n.state = "up"
        if wait:
            self.wait_healthy(i)

    def wait_healthy(self, i, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.nodes[i].proc.poll() is not None:
                raise RuntimeError("node %s exited (rc %s)" % (self.nodes[i].name, self.nodes[i].proc.returncode))
            try:
                http_json(self.url(i) + "/health", timeout=0.5)
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("node %s not healthy" % self.nodes[i].name)

    def start_all(self):
        for i in range(len(self.nodes)):
            self.start(i, wait=False)
        for i in range(len(self.nodes)):
            self.wait_healthy(i)

    def kill(self, i):
        n = self.nodes[i]
        if n.proc and n.proc.poll() is None:
            if n.state == "paused":
                n.proc.send_signal(signal.SIGCONT)
            n.proc.kill()
            n.proc.wait()
        n.state = "down"

    def leave(self, i, timeout=10):
        """SIGTERM: a graceful leave; a node that does not exit in time is killed."""
        n = self.nodes[i]
        if n.proc and n.proc.poll() is None:
            n.proc.terminate()
            try:
                n.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                n.proc.kill()
                n.proc.wait()
        n.state = "down"

    def pause(self, i):
        self.nodes[i].proc.send_signal(signal.SIGSTOP)
        self.nodes[i].state = "paused"

    def resume(self, i):
        self.nodes[i].proc.send_signal(signal.SIGCONT)
        self.nodes[i].state = "up"

    def crashed(self):
        """Nodes whose process exited although the harness did not stop it."""
        return ["%s (exit %s)" % (n.name, n.proc.returncode) for n in self.nodes
                if n.state != "down" and n.proc is not None and n.proc.poll() is not None]

    def up(self):
        return [n.idx for n in self.nodes if n.state == "up"]

    def stop_all(self):
        for n in self.nodes:
            if n.proc and n.proc.poll() is None:
                if n.state == "paused":
                    n.proc.send_signal(signal.SIGCONT)
                n.proc.kill()
                n.proc.wait()
            n.state = "down"
        for lat in self.latency.values():
            lat.stop()
        self.latency.clear()
        for d in self.mounts:
            subprocess.run(["umount", d])
        self.mounts.clear()

    def converged(self):
        """True when every node sees every node alive and routes with a ring
        of the same members."""
        names = sorted(n.name for n in self.nodes)
        for i in range(len(self.nodes)):
            try:
                members = http_json(self.url(i) + "/api/cluster/members", timeout=1)
                ring = http_json(self.url(i) + "/api/cluster/ring", timeout=1)
            except (OSError, ValueError):
                return False
            alive = sorted(m["name"] for m in members.get("members", []) if m.get("state") == "alive")
            if alive != names or sorted(x["name"] for x in ring.get("nodes", [])) != names:
                return False
        return True

    def settled(self):
        """Converged and no handoff running anywhere."""
        if not self.converged():
            return False
        for i in range(len(self.nodes)):
            try:
                m = http_json(self.url(i) + "/api/metrics", timeout=1)
            except (OSError, ValueError):
                return False
            if m.get("cluster", {}).get("handoff_running"):
                return False
            # With Redis: every node's L2 breaker closed again (clients
            # reconnect with backoff after an outage).
            if self.redis and m.get("l2", {}).get("status") != "ok":
                return False
        return True

    def ready(self):
        """Settled, and every node answers /ready with 200 (not syncing, not
        in a minority)."""
        if not self.settled():
            return False
        for i in range(len(self.nodes)):
            try:
                with urllib.request.urlopen(self.url(i) + "/ready", timeout=1) as r:
                    if r.status != 200:
                        return False
            except OSError:
                return False
        return True

    def wait(self, cond, timeout):
        """Seconds until cond() held, or None at the deadline."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if cond():
                return time.monotonic() - t0
            time.sleep(0.1)
        return None
