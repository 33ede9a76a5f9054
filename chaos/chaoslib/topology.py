"""Where the nodes under test live, and the network faults between them.

Two kinds:

netns     One network namespace per node, one for the "client" (the harness's
          side, 10.213.X.2) and one for shared services such as Redis
          (10.213.X.3), all joined by veth pairs to a Linux bridge that lives in
          a "hub" namespace of its own.  Node i is 10.213.X.(i+10)/24; X comes
          from the tag.  Namespaces are named dchaos-<tag>-{hub,cl,svc,n<i>}.
          Nothing is created in the root namespace: every veth is created inside
          the hub with its peer moved straight into the member namespace, so the
          root namespace's links, routes and firewall are never touched, and
          concurrent runs (different tags) cannot collide on a name or an
          address.  Every namespace has lo up, so 127.0.0.1 works inside each
          (but is private to it).  Every node can use the same ports.

          Faults are nftables rules in each node's namespace (table
          "chaos_<tag>", family inet), matching only pairs of *node* addresses,
          so the client (.2) and the services (.3) are never cut off: during a
          partition the harness still reads from and writes to the minority
          side, and must count those operations separately.  Rules drop on the
          *receiver's input* hook: a drop on the sender's output hook would make
          send()/connect() fail at once with EPERM, which no real network does;
          an input drop is silent, as a lost packet is (TCP connects time out,
          established connections stall and retransmit, UDP vanishes).

          add_latency() puts a LatencyProxy (proxy.py) in a node's namespace and
          redirects other nodes' TCP connections to that node's port into it.

loopback  Everything on 127.0.0.1 (ports must differ); no faults possible
          (supports_partitions is False; partition, loss and add_latency raise
          NotImplementedError, heal is a no-op).

How the harness reaches the nodes (netns): the harness re-executes itself in
the client namespace.  The parent, still in the root namespace, calls setup(),
then reexec_in_client(argv) (which runs `ip netns exec <client-ns> argv` with
the topology described in the environment, DCACHE_CHAOS_TOPOLOGY) and, when the
child is done or on Ctrl-C, teardown():

    topo = make_topology(n, str(os.getpid()))   # in the child: the parent's, attached
    if topo.kind == "netns" and not topo.in_client():
        exit_on_signals()                  # SIGTERM/SIGHUP -> SystemExit, so finally runs
        topo.setup()
        try:
            sys.exit(topo.reexec_in_client([sys.executable] + sys.argv))
        finally:
            topo.teardown()
    # here: loopback (in_client() is True there), or the child in the client namespace

In the child, make_topology() (or NetnsTopology.attach()) sees the environment,
checks that the process really is in that client namespace, and returns a
Topology attached to the existing namespaces: wrap(), partition() and the rest
work (ip netns exec works from inside a namespace); setup() and teardown() do
nothing there (the parent owns them).  in_client() tells whether we already are
inside.  For a process that has not started threads yet, enter_client() does
the same without a new process (setns(2) through ctypes).  A run killed with
SIGKILL leaves its namespaces: cleanup(tag) removes them (and kills what runs
in them).  chaos/tests/dcache_netns_check.py is a complete example.
"""

import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import zlib

ENV = "DCACHE_CHAOS_TOPOLOGY"     # set in the re-executed child: which topology it is inside
NETNS_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000
BASE = "10.213"                    # the only range used, and only inside our own namespaces


class TopologyError(RuntimeError):
    pass


def _run(argv, input=None, check=True, timeout=20):
    p = subprocess.run(argv, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise TopologyError("%s failed (rc %d): %s" % (" ".join(argv[:6]), p.returncode,
                                                        (p.stderr or p.stdout).strip()))
    return p


def _sanitize(tag):
    s = re.sub(r"[^A-Za-z0-9]", "", str(tag))
    if not s:
        raise ValueError("tag %r has no letters or digits" % (tag,))
    return s[:16]


def _ns_inode(path):
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


class Topology:
    """Base class and loopback implementation; NetnsTopology overrides."""

    kind = "loopback"
    supports_partitions = False

    def __init__(self, n, tag):
        if n < 1:
            raise ValueError("n must be >= 1")
        self.n = n
        self.tag = _sanitize(tag)
        self.reason = ""          # why this kind was chosen (make_topology fills it for "auto")
        self.timings = {}         # seconds taken by setup / teardown

    # -- lifecycle
    def setup(self):
        self.timings["setup"] = 0.0

    def teardown(self):
        self.timings["teardown"] = 0.0

    def __enter__(self):
        self.setup()
        return self

    def __exit__(self, *exc):
        self.teardown()
        return False

    # -- addresses and processes
    def node_host(self, i):
        self._check(i)
        return "127.0.0.1"

    def client_host(self, i):
        return self.node_host(i)

    def service_host(self):
        return "127.0.0.1"

    def wrap(self, i, argv):
        self._check(i)
        return list(argv)

    def wrap_service(self, argv):
        return list(argv)

    def wrap_client(self, argv):
        return list(argv)

    def in_client(self):
        return True

    def reexec_in_client(self, argv, env=None):
        """Loopback: nothing to enter; runs argv as it is and returns its exit code."""
        return _call(self.wrap_client(argv), env)

    # -- faults
    def partition(self, groups):
        raise NotImplementedError("loopback topology cannot partition (%s)" % (self.reason or "no netns"))

    def partition_one_way(self, src, dst):
        raise NotImplementedError("loopback topology cannot partition (%s)" % (self.reason or "no netns"))

    def loss(self, pct, nodes=None):
        raise NotImplementedError("loopback topology cannot drop packets (%s)" % (self.reason or "no netns"))

    def heal(self):
        pass

    def add_latency(self, i, port, delay_ms, jitter_ms=0):
        raise NotImplementedError("loopback topology cannot redirect a node's port through a proxy: dcache-node "
                                  "advertises the port it listens on (%s)" % (self.reason or "no netns"))

    def rules(self):
        """The fault rules now in force, one string per node (for reports)."""
        return {}

    def describe(self):
        return {"kind": self.kind, "n": self.n, "tag": self.tag, "reason": self.reason,
                "nodes": [self.node_host(i) for i in range(self.n)],
                "service": self.service_host(), "timings": dict(self.timings)}

    def _check(self, i):
        if not 0 <= i < self.n:
            raise IndexError("node %d of %d" % (i, self.n))


class LoopbackTopology(Topology):
    pass


def _call(argv, env=None):
    """Run argv to completion and return its exit code.  If we are interrupted
    (Ctrl-C, or SystemExit from exit_on_signals()), the child is given 1 s to end
    by itself (a terminal's Ctrl-C reaches it too), then SIGINT, 5 s more, then
    SIGKILL; then the exception goes on, so the caller's finally can tear down."""
    p = subprocess.Popen(argv, env=env)
    try:
        return p.wait()
    except BaseException:
        for sig, grace in ((None, 1), (signal.SIGINT, 5), (signal.SIGKILL, 5)):
            if sig is not None and p.poll() is None:
                try:
                    p.send_signal(sig)
                except OSError:
                    pass
            try:
                p.wait(grace)
                break
            except subprocess.TimeoutExpired:
                continue
        raise


def exit_on_signals(signals=(signal.SIGTERM, signal.SIGHUP)):
    """Make these signals raise SystemExit(128 + signal) in the main thread, as
    Ctrl-C raises KeyboardInterrupt, so that `try: ... finally: topo.teardown()`
    also runs when the harness is terminated.  (SIGKILL cannot be caught: then
    cleanup(tag) removes what is left.)  Call it from the main thread."""
    def handler(signum, frame):
        raise SystemExit(128 + signum)
    for s in signals:
        signal.signal(s, handler)
    # Started in the background by a shell without job control, we inherit
    # SIGINT ignored, and so would the child _call() interrupts with SIGINT:
    # it would sit until the SIGKILL and never clean up. A handled signal is
    # reset to the default across exec, an ignored one is not.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


class NetnsTopology(Topology):
    kind = "netns"
    supports_partitions = True

    def __init__(self, n, tag):
        super().__init__(n, tag)
        if n > 240:
            raise ValueError("at most 240 nodes (10.213.X.10 .. .249)")
        self.octet = zlib.crc32(self.tag.encode()) % 250 + 1      # 1..250, from the tag
        self.prefix = "dchaos-%s-" % self.tag
        self.hub = self.prefix + "hub"
        self.client_ns = self.prefix + "cl"
        self.service_ns = self.prefix + "svc"
        self.node_ns = [self.prefix + "n%d" % i for i in range(n)]
        self.table = "chaos_%s" % self.tag
        self.owner = True         # False when attached from inside the client (the parent tears down)
        self._lock = threading.Lock()
        self._cut = {}            # node -> set of node indexes whose packets it drops on input
        self._loss = {}           # node -> (pct, set of node indexes)
        self._redir = {}          # node -> {port: proxy port}: other nodes' TCP to port goes to the proxy
        self._latencies = []      # NodeLatency handles alive

    # -- names and addresses
    def addr(self, last):
        return "%s.%d.%d" % (BASE, self.octet, last)

    def node_host(self, i):
        self._check(i)
        return self.addr(i + 10)

    def service_host(self):
        return self.addr(3)

    def client_addr(self):
        return self.addr(2)

    def all_namespaces(self):
        return [self.hub, self.client_ns, self.service_ns] + self.node_ns

    def _members(self):
        """(namespace, hub-side interface name, last octet) of every bridge member."""
        m = [(self.client_ns, "cl", 2), (self.service_ns, "svc", 3)]
        m += [(self.node_ns[i], "n%d" % i, i + 10) for i in range(self.n)]
        return m

    def exists(self):
        return any(os.path.exists(os.path.join(NETNS_DIR, ns)) for ns in self.all_namespaces())

    # -- lifecycle
    def setup(self):
        if not self.owner:
            return
        t0 = time.monotonic()
        if self.exists():
            raise TopologyError("namespaces %s* already exist (another run with tag %s? "
                                "Topology(n, %r).teardown() removes them)" % (self.prefix, self.tag, self.tag))
        try:
            self._setup()
        except BaseException:
            self.teardown()
            raise
        self.timings["setup"] = time.monotonic() - t0

    def _setup(self):
        # 1. the namespaces (one ip process for all)
        _run(["ip", "-batch", "-"], input="".join("netns add %s\n" % ns for ns in self.all_namespaces()))
        # 2. in the hub: the bridge, and every veth pair with its far end moved into its member namespace.
        #    addrgenmode none: no IPv6 link-local, so no DAD or router solicitations on the wire.
        cmds = ["link add br0 type bridge", "link set br0 addrgenmode none", "link set br0 up"]
        for ns, hub_if, _ in self._members():
            cmds += ["link add %s type veth peer name eth0 netns %s" % (hub_if, ns),
                     "link set %s addrgenmode none" % hub_if,
                     "link set %s master br0" % hub_if,
                     "link set %s up" % hub_if]
        _run(["ip", "-n", self.hub, "-batch", "-"], input="\n".join(cmds) + "\n")
        # 3. in each member: lo up, its address, eth0 up (in parallel, one ip process each)
        procs = []
        for ns, _, last in self._members():
            script = ("link set lo up\nlink set eth0 addrgenmode none\n"
                      "addr add %s/24 dev eth0\nlink set eth0 up\n" % self.addr(last))
            procs.append((ns, script))
        self._parallel([(["ip", "-n", ns, "-batch", "-"], s) for ns, s in procs])
        # 4. the (empty) fault table in each node namespace
        self._parallel([(["ip", "netns", "exec", self.node_ns[i], "nft", "-f", "-"], self._table_script(i, fresh=True))
                        for i in range(self.n)])

    def _parallel(self, jobs):
        """Run [(argv, stdin text)] concurrently; raise if any failed."""
        ps = []
        for argv, text in jobs:
            p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            ps.append((argv, p, text))
        errors = []
        for argv, p, text in ps:
            out, err = p.communicate(text, timeout=20)
            if p.returncode != 0:
                errors.append("%s: %s" % (" ".join(argv[:5]), (err or out).strip()))
        if errors:
            raise TopologyError("; ".join(errors))

    def teardown(self, kill_processes=True):
        """Remove every namespace of this tag (and with them the bridge and all veths).
        Idempotent; safe after a failed setup.  Processes still running in the node and
        service namespaces are SIGKILLed first (they are ours: nothing else runs there);
        the client namespace's are left alone when they are this process or its parents."""
        if not self.owner:
            return
        t0 = time.monotonic()
        try:
            listed = [ns for ns in os.listdir(NETNS_DIR) if ns.startswith(self.prefix)]
        except OSError:
            listed = []
        present = sorted(set(listed) | {ns for ns in self.all_namespaces() if os.path.exists(os.path.join(NETNS_DIR, ns))})
        if kill_processes and present:
            self._kill_inside(present)
        if present:
            _run(["ip", "-force", "-batch", "-"], input="".join("netns del %s\n" % ns for ns in present), check=False)
        left = [ns for ns in present if os.path.exists(os.path.join(NETNS_DIR, ns))]
        for ns in left:                  # one more try, one by one (a busy mount can need a retry)
            _run(["ip", "netns", "del", ns], check=False)
        self._cut.clear()
        self._loss.clear()
        self._redir.clear()
        for lat in self._latencies:
            lat._reap()
        self._latencies = []
        if present:
            self.timings["teardown"] = time.monotonic() - t0
        left = [ns for ns in left if os.path.exists(os.path.join(NETNS_DIR, ns))]
        if left:
            raise TopologyError("could not delete namespaces %s" % ", ".join(left))

    def _kill_inside(self, namespaces):
        spare = {os.getpid()}
        pid = os.getppid()
        while pid > 1 and pid not in spare:          # never kill ourselves or an ancestor
            spare.add(pid)
            try:
                with open("/proc/%d/stat" % pid) as f:
                    pid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                break
        victims = []
        for ns in namespaces:
            p = _run(["ip", "netns", "pids", ns], check=False)
            for tok in p.stdout.split():
                if tok.isdigit() and int(tok) not in spare:
                    victims.append(int(tok))
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 2
        for pid in victims:               # wait until they are gone (reaped by whoever owns them)
            while time.monotonic() < deadline and os.path.exists("/proc/%d" % pid):
                try:
                    with open("/proc/%d/stat" % pid) as f:
                        if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                            break
                except OSError:
                    break
                time.sleep(0.01)

    # -- processes
    def wrap(self, i, argv):
        self._check(i)
        return ["ip", "netns", "exec", self.node_ns[i]] + list(argv)

    def wrap_service(self, argv):
        return ["ip", "netns", "exec", self.service_ns] + list(argv)

    def wrap_client(self, argv):
        return ["ip", "netns", "exec", self.client_ns] + list(argv)

    def env_value(self):
        return json.dumps({"kind": self.kind, "n": self.n, "tag": self.tag})

    def reexec_in_client(self, argv, env=None):
        """Run argv in the client namespace with this topology described in the
        environment (so make_topology() there attaches to it); wait; return its exit code."""
        e = dict(os.environ if env is None else env)
        e[ENV] = self.env_value()
        return _call(self.wrap_client(argv), e)

    def in_client(self):
        """True when this process's network namespace is this topology's client namespace."""
        want = _ns_inode(os.path.join(NETNS_DIR, self.client_ns))
        return want is not None and want == _ns_inode("/proc/self/ns/net")

    def enter_client(self):
        """Move this (still single-threaded) process into the client namespace with setns(2).
        Sockets opened afterwards reach the nodes; teardown() still works from there.
        Child processes inherit the namespace."""
        if threading.active_count() != 1:
            raise TopologyError("enter_client() needs a single-threaded process (setns moves one thread)")
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(os.path.join(NETNS_DIR, self.client_ns), os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise TopologyError("setns: %s" % os.strerror(err))
        finally:
            os.close(fd)

    @classmethod
    def attach(cls, value=None):
        """The topology the parent set up, seen from the re-executed child (value: the
        environment variable's JSON, read from the environment when None)."""
        value = value if value is not None else os.environ.get(ENV)
        if not value:
            raise TopologyError("%s is not set: not started by reexec_in_client()" % ENV)
        d = json.loads(value)
        t = cls(d["n"], d["tag"])
        t.owner = False
        if not t.in_client():
            raise TopologyError("%s names %s but this process is not in that namespace" % (ENV, t.client_ns))
        t.reason = "attached to the parent's namespaces"
        t._load_rules()
        return t

    # -- faults
    def partition(self, groups, add=False):
        """Nodes in different groups exchange no packet (any protocol, both directions).
        Unlisted nodes stay connected to everyone; client and services are never cut.
        Replaces the cuts in force unless add=True."""
        groups = [list(g) for g in groups]
        seen = set()
        for g in groups:
            for i in g:
                self._check(i)
                if i in seen:
                    raise ValueError("node %d in two groups" % i)
                seen.add(i)
        cut = {} if not add else {k: set(v) for k, v in self._cut.items()}
        for gi, g in enumerate(groups):
            others = {j for gj, h in enumerate(groups) if gj != gi for j in h}
            for i in g:
                cut.setdefault(i, set()).update(others)
        self._apply(cut=cut)

    def partition_one_way(self, src, dst, add=False):
        """Packets from src nodes to dst nodes are dropped (at the dst side); the other
        direction flows.  Note for TCP this also stops connections dst->src from being
        established (the SYN-ACK is lost) and stalls established ones both ways (ACKs
        are lost); UDP is really one-way.  Replaces the cuts in force unless add=True."""
        for i in list(src) + list(dst):
            self._check(i)
        cut = {} if not add else {k: set(v) for k, v in self._cut.items()}
        for d in dst:
            cut.setdefault(d, set()).update(s for s in src if s != d)
        self._apply(cut=cut)

    def loss(self, pct, nodes=None):
        """Drop pct% (0..100, fractions to 0.01) of the packets between nodes where at
        least one end is in `nodes` (all nodes when None); each packet is judged once,
        at its receiver.  Client and services are not affected.  Replaces the loss in
        force; loss(0) removes it."""
        pct = float(pct)
        if not 0 <= pct <= 100:
            raise ValueError("pct must be within 0..100")
        L = set(range(self.n)) if nodes is None else set(nodes)
        for i in L:
            self._check(i)
        lossmap = {}
        if pct > 0:
            for r in range(self.n):
                senders = (set(range(self.n)) if r in L else L) - {r}
                if senders:
                    lossmap[r] = (pct, senders)
        self._apply(loss=lossmap)

    def heal(self):
        self._apply(cut={}, loss={})

    def _table_script(self, i, fresh=False):
        t = "inet %s" % self.table
        lines = []
        if fresh:
            lines += ["table %s {" % t,
                      "  chain input { type filter hook input priority -150; policy accept; jump cut; jump loss; }",
                      "  chain cut { }", "  chain loss { }",
                      "  chain redir { type nat hook prerouting priority -100; policy accept; }", "}"]
        else:
            lines += ["flush chain %s cut" % t, "flush chain %s loss" % t, "flush chain %s redir" % t]
        others = ", ".join(self.node_host(j) for j in range(self.n) if j != i)
        for port, pp in sorted(self._redir.get(i, {}).items()):
            if others:
                lines.append("add rule %s redir ip saddr { %s } tcp dport %d redirect to :%d" % (t, others, port, pp))
        cut = self._cut.get(i)
        if cut:
            lines.append("add rule %s cut ip saddr { %s } drop" % (t, ", ".join(self.node_host(j) for j in sorted(cut))))
        pl = self._loss.get(i)
        if pl:
            pct, senders = pl
            src = ", ".join(self.node_host(j) for j in sorted(senders))
            if pct >= 100:
                lines.append("add rule %s loss ip saddr { %s } drop" % (t, src))
            else:
                lines.append("add rule %s loss ip saddr { %s } numgen random mod 10000 < %d drop"
                             % (t, src, int(round(pct * 100))))
        return "\n".join(lines) + "\n"

    def _apply(self, cut=None, loss=None, redir=None):
        """Swap in the new cut and/or loss state: one atomic nft transaction per node,
        all nodes in parallel; only nodes whose rules change are touched."""
        with self._lock:
            old = (dict(self._cut), dict(self._loss), dict(self._redir))
            old_scripts = {i: self._table_script(i) for i in range(self.n)}
            if cut is not None:
                self._cut = {k: set(v) for k, v in cut.items() if v}
            if loss is not None:
                self._loss = dict(loss)
            if redir is not None:
                self._redir = {k: dict(v) for k, v in redir.items() if v}
            jobs = []
            for i in range(self.n):
                s = self._table_script(i)
                if s != old_scripts[i] or not self._rules_known:
                    jobs.append((["ip", "netns", "exec", self.node_ns[i], "nft", "-f", "-"], s))
            try:
                self._parallel(jobs)
            except BaseException:
                self._cut, self._loss, self._redir = old
                raise
            self._rules_known = True

    _rules_known = True           # False after attach(): push every node's rules on the first change

    def _load_rules(self):
        self._rules_known = False

    def add_latency(self, i, port, delay_ms, jitter_ms=0):
        """Delay the TCP connections other nodes open to node i's port (its peer
        channel: the cluster port, or --peer-port), by delay_ms each way (jitter
        optional), through a LatencyProxy (proxy.py) run in node i's namespace and
        an nftables redirect of other nodes' connections to it.  Node i need not
        know: it still listens on and advertises its own port.  Connections from
        the client and services are not delayed, nor is UDP (SWIM).  Only
        connections opened after this call are affected (NAT is decided on the
        first packet).  Latency on every node delays each peer connection once
        (at its acceptor).  Returns a NodeLatency: set_delay(), stats(), stop()."""
        self._check(i)
        if port in self._redir.get(i, {}):
            raise TopologyError("node %d port %d is already delayed" % (i, port))
        lat = NodeLatency(self, i, port, delay_ms, jitter_ms)
        try:
            redir = {k: dict(v) for k, v in self._redir.items()}
            redir.setdefault(i, {})[port] = lat.proxy_port
            self._apply(redir=redir)
        except BaseException:
            lat._reap()
            raise
        self._latencies.append(lat)
        return lat

    def _remove_redirect(self, i, port):
        redir = {k: dict(v) for k, v in self._redir.items()}
        redir.get(i, {}).pop(port, None)
        self._apply(redir=redir)

    def rules(self):
        out = {}
        for i in range(self.n):
            p = _run(["ip", "netns", "exec", self.node_ns[i], "nft", "list", "table", "inet", self.table], check=False)
            out[i] = p.stdout if p.returncode == 0 else p.stderr.strip()
        return out


class NodeLatency:
    """A LatencyProxy process in node i's namespace, in front of its port (see
    NetnsTopology.add_latency)."""

    def __init__(self, topo, i, port, delay_ms, jitter_ms=0):
        self.topo, self.i, self.port = topo, i, port
        here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "proxy.py")
        h = topo.node_host(i)
        self.proc = subprocess.Popen(topo.wrap(i, [sys.executable, here, h, "0", h, str(port), str(delay_ms), str(jitter_ms)]),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        line = self.proc.stdout.readline().split()
        if len(line) != 2 or line[0] != "ready":
            self._reap()
            raise TopologyError("latency proxy for node %d did not start (%r)" % (i, line))
        self.proxy_port = int(line[1])
        self._lock = threading.Lock()

    def _cmd(self, text):
        with self._lock:
            self.proc.stdin.write(text + "\n")
            reply = self.proc.stdout.readline().strip()
        if not reply.startswith("ok"):
            raise TopologyError("latency proxy: %s -> %r" % (text, reply))
        return reply

    def set_delay(self, delay_ms, jitter_ms=None):
        self._cmd("delay %s%s" % (delay_ms, "" if jitter_ms is None else " %s" % jitter_ms))

    def reset(self):
        """Close the connections now going through the proxy (new ones still do)."""
        self._cmd("reset")

    def stats(self):
        f = self._cmd("stats").split()[1:]
        return dict(zip(("accepted", "failed", "active", "bytes_up", "bytes_down"), map(int, f)))

    def stop(self):
        """Remove the redirect, then stop the proxy (which closes the connections
        through it: the nodes reconnect directly)."""
        if self.proc is None:
            return
        try:
            self.topo._remove_redirect(self.i, self.port)
        finally:
            self._reap()
            if self in self.topo._latencies:
                self.topo._latencies.remove(self)

    def _reap(self):
        p, self.proc = self.proc, None
        if p is None:
            return
        try:
            p.stdin.close()
        except OSError:
            pass
        try:
            p.wait(2)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        p.stdout.close()


def netns_unavailable_reason():
    """None when netns topologies can be built here, else why not."""
    if os.geteuid() != 0:
        return "not root (netns needs CAP_NET_ADMIN and CAP_SYS_ADMIN)"
    for tool in ("ip", "nft"):
        if not shutil.which(tool):
            return "%s not found (apt-get install -y %s)" % (tool, "iproute2" if tool == "ip" else "nftables")
    probe = "dchaos-probe-%d" % os.getpid()
    try:
        p = _run(["ip", "netns", "add", probe], check=False)
        if p.returncode != 0:
            return "ip netns add failed: %s" % p.stderr.strip()
        p = _run(["ip", "-n", probe, "link", "add", "br0", "type", "bridge"], check=False)
        if p.returncode != 0:
            return "cannot create a bridge: %s" % p.stderr.strip()
        p = _run(["ip", "-n", probe, "link", "add", "v0", "type", "veth", "peer", "name", "v1"], check=False)
        if p.returncode != 0:
            return "cannot create a veth pair: %s" % p.stderr.strip()
        p = _run(["ip", "netns", "exec", probe, "nft", "add", "table", "inet", "probe"], check=False)
        if p.returncode != 0:
            return "nft does not work in a namespace: %s" % p.stderr.strip()
        return None
    finally:
        if os.path.exists(os.path.join(NETNS_DIR, probe)):
            _run(["ip", "netns", "del", probe], check=False)


def in_client():
    """True in a process started by reexec_in_client() (and still in that namespace)."""
    value = os.environ.get(ENV)
    if not value:
        return False
    try:
        d = json.loads(value)
        return NetnsTopology(d["n"], d["tag"]).in_client()
    except (ValueError, KeyError, TypeError):
        return False


def make_topology(n, tag, want="auto"):
    """A Topology of n nodes.  In a process started by reexec_in_client() this returns
    the parent's topology, attached (setup/teardown are then no-ops; tag is ignored
    there: the parent's is used, so the child need not know it).  want: "auto"
    (netns when it can be built here, else loopback, saying why on stderr), "netns"
    (raise TopologyError when it cannot) or "loopback"."""
    if want not in ("auto", "netns", "loopback"):
        raise ValueError("want must be auto, netns or loopback")
    if want != "loopback" and os.environ.get(ENV):
        t = NetnsTopology.attach()
        if t.n != n:
            raise TopologyError("%s describes %d nodes, asked for %d" % (ENV, t.n, n))
        return t
    if want == "loopback":
        t = LoopbackTopology(n, tag)
        t.reason = "loopback asked for"
        return t
    why = netns_unavailable_reason()
    if why is None:
        t = NetnsTopology(n, tag)
        t.reason = "netns available" if want == "auto" else "netns asked for"
        return t
    if want == "netns":
        raise TopologyError("netns topology impossible: " + why)
    print("chaos: loopback topology (no partitions or loss): %s" % why, file=sys.stderr)
    t = LoopbackTopology(n, tag)
    t.reason = why
    return t


def cleanup(tag):
    """Remove what a crashed run with this tag left behind: every namespace named
    dchaos-<tag>-* (hence its bridge and veths), killing what still runs in them."""
    NetnsTopology(1, tag).teardown()
