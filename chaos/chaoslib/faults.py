"""Scenarios: which faults to inject, on a schedule drawn from the run's
seeded generator, while the workload runs. Each fault is recorded with its
start and end (seconds since the run started) for the report and the
checkers (partitions name their minority side)."""

import threading
import time


class FaultContext:
    def __init__(self, cluster, topo, redis, rng, history, duration):
        self.cluster = cluster
        self.topo = topo
        self.redis = redis
        self.rng = rng
        self.history = history
        self.deadline = history.now() + duration
        self.faults = []
        self.partitions = []
        self.stop = threading.Event()

    def now(self):
        return self.history.now()

    def sleep(self, seconds):
        """Sleeps up to seconds or the end of the run; False when the run is over."""
        left = self.deadline - self.now()
        if left <= 0:
            return False
        self.stop.wait(min(seconds, left))
        return self.now() < self.deadline and not self.stop.is_set()

    def record(self, kind, target, start, end=None, **extra):
        f = {"kind": kind, "target": target, "start": start, "end": self.now() if end is None else end}
        f.update(extra)
        self.faults.append(f)
        return f

    def pick_node(self, states=("up",)):
        idx = [n.idx for n in self.cluster.nodes if n.state in states]
        return self.rng.choice(idx) if idx else None


# Suspicion with the harness's flags (probe 200 ms, mult 4, 5 members) is
# about 1-5 s; a pause of 8 s is declared dead, one of 0.5 s is not.
PAUSE_LONG = 8.0
PAUSE_SHORT = 0.5


def kill_restart(ctx, delay=0.0, every=(4.0, 7.0)):
    label = "kill -9, restart after %gs" % delay if delay else "kill -9 + restart"
    while ctx.sleep(ctx.rng.uniform(*every)):
        i = ctx.pick_node()
        if i is None:
            continue
        t = ctx.now()
        ctx.cluster.kill(i)
        if delay:
            ctx.sleep(delay)   # cut short at the end of the run: the node comes back anyway
        ctx.cluster.start(i)
        ctx.record(label, "n%d" % i, t)


def pause(ctx, seconds=PAUSE_LONG, every=(2.0, 4.0)):
    while ctx.sleep(ctx.rng.uniform(*every)):
        i = ctx.pick_node()
        if i is None:
            continue
        t = ctx.now()
        ctx.cluster.pause(i)
        ctx.sleep(seconds)
        ctx.cluster.resume(i)
        ctx.record("SIGSTOP %gs" % seconds, "n%d" % i, t)


def leave_rejoin(ctx, every=(3.0, 6.0)):
    while ctx.sleep(ctx.rng.uniform(*every)):
        i = ctx.pick_node()
        if i is None:
            continue
        t = ctx.now()
        ctx.cluster.leave(i)
        ctx.sleep(2.0)
        ctx.cluster.start(i)
        ctx.record("leave (SIGTERM), rejoin", "n%d" % i, t)


def rolling_restart(ctx):
    for i in range(len(ctx.cluster.nodes)):
        if not ctx.sleep(1.0):
            return
        t = ctx.now()
        ctx.cluster.leave(i)
        ctx.cluster.start(i)
        ctx.cluster.wait(ctx.cluster.converged, 15)
        ctx.record("rolling restart", "n%d" % i, t)


def _partition(ctx, groups, label, seconds):
    minority = set(min(groups, key=len))
    t = ctx.now()
    ctx.topo.partition(groups)
    ctx.sleep(seconds)
    ctx.topo.heal()
    f = ctx.record(label, " | ".join(",".join("n%d" % i for i in g) for g in groups), t,
                   minority=sorted(minority))
    ctx.partitions.append(f)


def partition(ctx, seconds=6.0, every=(2.0, 4.0)):
    n = len(ctx.cluster.nodes)
    while ctx.sleep(ctx.rng.uniform(*every)):
        nodes = list(range(n))
        ctx.rng.shuffle(nodes)
        if ctx.rng.random() < 0.5:
            groups = [nodes[: n // 2], nodes[n // 2:]]
            _partition(ctx, groups, "partition (halves)", seconds)
        else:
            groups = [[nodes[0]], nodes[1:]]
            _partition(ctx, groups, "partition (one isolated)", seconds)


def partition_one_way(ctx, seconds=5.0, every=(2.0, 4.0)):
    n = len(ctx.cluster.nodes)
    while ctx.sleep(ctx.rng.uniform(*every)):
        src = ctx.rng.randrange(n)
        dst = [i for i in range(n) if i != src]
        t = ctx.now()
        ctx.topo.partition_one_way([src], dst)
        ctx.sleep(seconds)
        ctx.topo.heal()
        f = ctx.record("one-way partition", "n%d -> others dropped" % src, t, minority=[src])
        ctx.partitions.append(f)


def loss(ctx, pct=10.0, seconds=6.0, every=(2.0, 4.0)):
    while ctx.sleep(ctx.rng.uniform(*every)):
        t = ctx.now()
        ctx.topo.loss(pct)
        ctx.sleep(seconds)
        ctx.topo.heal()
        ctx.record("packet loss %g%%" % pct, "all links", t)


def redis_kill(ctx, down=3.0, every=(3.0, 6.0)):
    while ctx.sleep(ctx.rng.uniform(*every)):
        t = ctx.now()
        ctx.redis.kill()
        ctx.sleep(down)
        ctx.redis.start()
        ctx.record("Redis kill -9, restart (AOF)", "redis", t)


def redis_pause(ctx, seconds=3.0, every=(3.0, 6.0)):
    while ctx.sleep(ctx.rng.uniform(*every)):
        t = ctx.now()
        ctx.redis.pause()
        ctx.sleep(seconds)
        ctx.redis.resume()
        ctx.record("Redis SIGSTOP %gs" % seconds, "redis", t)


def latency(ctx, ms=200, seconds=6.0, every=(2.0, 4.0)):
    """Added delay on one node's peer channel (a userspace proxy: this
    kernel has no netem), then back to none."""
    while ctx.sleep(ctx.rng.uniform(*every)):
        i = ctx.rng.randrange(len(ctx.cluster.nodes))
        lat = ctx.cluster.latency.get(i)
        if lat is None:
            continue
        t = ctx.now()
        lat.set_delay(ms)
        ctx.sleep(seconds)
        lat.set_delay(0)
        ctx.record("peer channel +%d ms each way" % ms, "n%d" % i, t)


def clock_skew(ctx, skews=(-3.0, 3.0, 30.0), restore_after=None):
    """One node restarted with its wall clock off (libfaketime); it stays
    skewed for the rest of the run, or, with restore_after (seconds), is
    restarted with a true clock again after that long (in `mixed`, where
    faults come one at a time: skewed nodes piling up would leave most of
    the cluster outside --max-clock-drift of the rest)."""
    while ctx.sleep(ctx.rng.uniform(2.0, 4.0)):
        i = ctx.pick_node()
        if i is None or ctx.cluster.nodes[i].skew:
            continue
        skew = ctx.rng.choice(skews)
        t = ctx.now()
        ctx.cluster.kill(i)
        ctx.cluster.start(i, skew=skew)
        if restore_after is None:
            ctx.record("clock skew %+gs (restarted under faketime)" % skew, "n%d" % i, t, end=ctx.deadline)
            return
        ctx.sleep(restore_after)
        ctx.cluster.kill(i)
        ctx.cluster.start(i, skew=0.0)
        ctx.record("clock skew %+gs for %gs (restarted under faketime, then without)" % (skew, restore_after),
                   "n%d" % i, t)
        return


def redis_restart_empty(ctx, every=(4.0, 7.0)):
    while ctx.sleep(ctx.rng.uniform(*every)):
        t = ctx.now()
        ctx.redis.kill()
        ctx.redis.start(empty=True)
        ctx.record("Redis restarted empty (data lost)", "redis", t)


def journal_full(ctx, down=6.0, every=(2.0, 4.0)):
    """Redis down long enough for the nodes' small journals (a 256 KiB
    tmpfs each) to fill: writes must then be refused, never lost."""
    while ctx.sleep(ctx.rng.uniform(*every)):
        t = ctx.now()
        ctx.redis.kill()
        ctx.sleep(down)
        ctx.redis.start()
        ctx.record("Redis down %gs, journals full" % down, "redis", t)


def mixed(ctx):
    """Every fault the topology allows, one at a time, in random order."""
    kinds = [kill_restart, pause, leave_rejoin]
    if ctx.topo.supports_partitions:
        kinds += [partition, partition_one_way, loss, latency]
    if ctx.redis:
        kinds += [redis_kill, redis_pause]
    if ctx.cluster.skew_possible:
        kinds.append(lambda c: clock_skew(c, restore_after=6.0))
    while ctx.now() < ctx.deadline:
        fn = ctx.rng.choice(kinds)
        # One round of the chosen fault: a sub-deadline a few seconds out.
        end = ctx.deadline
        ctx.deadline = min(end, ctx.now() + ctx.rng.uniform(8.0, 14.0))
        fn(ctx)
        ctx.deadline = end


def none(ctx):
    """No faults: the control run (any violation is the harness's or a plain bug)."""
    ctx.sleep(ctx.deadline - ctx.now())


# name -> (what, function, needs, extra node flags)
SCENARIOS = {
    "none": ("no faults: the control run", none, (), []),
    "kill-restart": ("kill -9 a node and restart it at once with the same name and ports, every 4-7 s",
                     kill_restart, (), []),
    "kill-restart-late": ("kill -9 a node and restart it 8 s later (after it was declared dead)",
                          lambda ctx: kill_restart(ctx, delay=8.0, every=(2.0, 4.0)), (), []),
    "pause": ("SIGSTOP a node for 8 s (past the suspicion timeout), then SIGCONT", pause, (), []),
    "pause-short": ("SIGSTOP a node for 0.5 s (shorter than the suspicion timeout)",
                    lambda ctx: pause(ctx, PAUSE_SHORT, (0.5, 1.5)), (), []),
    "leave": ("graceful leave (SIGTERM) and rejoin 2 s later", leave_rejoin, (), []),
    "rolling-restart": ("restart every node one by one (SIGTERM, start, wait for the ring)", rolling_restart, (), []),
    "partition": ("partitions that heal: halves, or one node isolated, 6 s each", partition, ("partitions",), []),
    "partition-one-way": ("one node's outgoing packets to the others dropped for 5 s", partition_one_way,
                          ("partitions",), []),
    "loss": ("10 % packet loss between nodes for 6 s at a time", loss, ("partitions",), []),
    "redis-kill": ("Redis killed (kill -9) and restarted with its AOF, journal mode", redis_kill, ("redis",),
                   ["--l2-write-mode", "journal"]),
    "redis-pause": ("Redis paused 3 s at a time, journal mode", redis_pause, ("redis",),
                    ["--l2-write-mode", "journal"]),
    "latency": ("200 ms added each way on one node's peer channel for 6 s at a time", latency, ("partitions",), []),
    "clock-skew": ("one node restarted with its clock off by -3, +3 or +30 s (libfaketime)", clock_skew,
                   ("faketime",), []),
    "redis-restart-empty": ("Redis restarted with no data (its files lost), sync mode", redis_restart_empty,
                            ("redis",), []),
    "journal-full": ("Redis down 6 s at a time, journal mode, each node's journal on a 256 KiB tmpfs",
                     journal_full, ("redis", "tmpfs"), ["--l2-write-mode", "journal", "--l2-journal-max", "256k"]),
    "mixed": ("every fault the topology allows, one at a time (with --redis: Redis's too)", mixed, (), []),
}
