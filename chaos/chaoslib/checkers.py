"""Checkers over a history. Each returns a count and a few examples.

Real time orders operations: A precedes B when A ended before B started.
An operation that failed or timed out may still have taken effect, at any
time after it started, so it can excuse a result but never convict one.

- lost writes: after heal and settle, a final read returns a value older
  than an acknowledged write that followed it, or nothing although an
  acknowledged write was followed by no delete of any kind;
- resurrections: a read that started after an acknowledged DELETE or
  invalidation (key or pattern) ended returns a value whose acknowledged
  write ended before that delete started; reads served by a node on the
  minority side of a partition while it lasted are counted apart, and so
  are reads that start within the heal window after a partition (the time
  the failure detector needs to notice the heal, plus the repair interval:
  after a heal, no resurrection "within --repair-interval");
- stale reads: a read that started after an acknowledged write ended
  returns an older acknowledged write's value, or nothing though no delete
  could have followed that write (outside partitions and their heal
  windows: bounded staleness);
- final reads failed: after heal and settle, a key could not be read;
- failed requests: 5xx and timeouts, overall and for clients that only
  talk to nodes that are up (reported, not an invariant).
"""

import bisect
import collections
import fnmatch

INF = float("inf")
EXAMPLES = 5


def acked(op):
    st = op.get("status")
    if op["op"] == "put":
        return st in (200, 201)
    if op["op"] in ("delete", "invalidate", "invalidate_pattern"):
        return st == 200
    return st == 200 or st == 404


def _deletes_for(key, deletes, patterns):
    out = list(deletes.get(key, []))
    for p in patterns:
        if fnmatch.fnmatchcase(key, p["pattern"]):
            out.append(p)
    return out


class Intervals:
    """Operations sorted by start, to ask: is there one that started after
    t0 and ended before t1? (a suffix minimum of ends)."""

    def __init__(self, ops):
        self.ops = sorted(ops, key=lambda o: o["start"])
        self.starts = [o["start"] for o in self.ops]
        self.sufmin = [None] * (len(self.ops) + 1)
        best = None
        for k in range(len(self.ops) - 1, -1, -1):
            if best is None or self.ops[k]["end"] < best["end"]:
                best = self.ops[k]
            self.sufmin[k] = best

    def first_between(self, t0, t1, inclusive=False):
        k = (bisect.bisect_left if inclusive else bisect.bisect_right)(self.starts, t0)
        best = self.sufmin[k] if k < len(self.ops) else None
        return best if best is not None and best["end"] < t1 else None


class KeyIndex:
    def __init__(self, acked_puts, dels):
        self.puts = Intervals(acked_puts)
        self.acked_dels = Intervals([d for d in dels if acked(d)])
        # Every delete, acknowledged or not, by start: the latest time among
        # those that started before t at which one may have landed. One that
        # got no answer (a timeout) has no such bound: its request may sit
        # in a stopped node's socket and be carried out, and stamped, when
        # the node wakes, long after the client gave up (chaos pause saw
        # exactly that). One that was answered was stamped by then.
        self.dels = sorted(dels, key=lambda o: o["start"])
        self.del_starts = [d["start"] for d in self.dels]
        self.prefmax = []
        m = float("-inf")
        for d in self.dels:
            m = max(m, INF if d.get("status") is None else d["end"])
            self.prefmax.append(m)

    def last_delete_end(self, t):
        k = bisect.bisect_left(self.del_starts, t)
        return self.prefmax[k - 1] if k else float("-inf")


class Result:
    def __init__(self, name, invariant, what):
        self.name = name
        self.invariant = invariant
        self.what = what
        self.count = 0
        self.examples = []

    def add(self, text):
        self.count += 1
        if len(self.examples) < EXAMPLES:
            self.examples.append(text)


def in_minority(op, partitions):
    """True when op ran on a node cut off from the majority while a
    partition lasted."""
    for p in partitions:
        if op["start"] < p["end"] and op["end"] > p["start"] and op["node"] in p["minority"]:
            return True
    return False


def in_partition(op, partitions, heal_window=0.0):
    return any(op["start"] < p["end"] + heal_window and op["end"] > p["start"] for p in partitions)


def healing(op, partitions, heal_window):
    """True when op started after a partition healed, within the window the
    cluster has to repair it."""
    return any(p["end"] <= op["start"] < p["end"] + heal_window for p in partitions)


def check(ops, partitions, keys, heal_window=0.0):
    puts = collections.defaultdict(list)
    by_value = {}
    deletes = collections.defaultdict(list)
    patterns = []
    reads = []
    for op in ops:
        kind = op["op"]
        if kind == "put":
            puts[op["key"]].append(op)
            by_value[op["value"]] = op
        elif kind in ("delete", "invalidate"):
            deletes[op["key"]].append(op)
        elif kind == "invalidate_pattern":
            patterns.append(op)
        elif kind == "get":
            reads.append(op)

    lost = Result("lost_writes", True, "final reads older than an acknowledged write, or missing one")
    resur = Result("resurrections", True, "reads after an acknowledged delete/invalidation that return a value written before it")
    resur_min = Result("resurrections_minority", False, "the same, served on the minority side of a partition while it lasted")
    resur_heal = Result("resurrections_healing", False,
                        "the same, read within the repair interval after a partition healed")
    stale = Result("stale_reads", True, "reads outside partitions that miss an acknowledged write completed before they started")
    unreadable = Result("final_reads_failed", True, "keys that could not be read after heal and settle")
    unknown = Result("unknown_values", True, "reads returning a value no PUT wrote")
    failed = Result("failed_requests", False, "5xx and timeouts, all clients")
    failed_up = Result("failed_requests_up", False, "5xx and timeouts of clients that talk only to nodes that are up")

    for op in ops:
        if op.get("phase") != "run":
            continue
        st = op.get("status")
        if st is None or st >= 500:
            desc = "%s %s on n%d at %.2fs: %s" % (op["op"], op.get("key", op.get("pattern")), op["node"], op["start"],
                                                 op.get("error") or st)
            failed.add(desc)
            if op.get("up_only") and op.get("node_up"):
                failed_up.add(desc)

    index = {}
    for g in reads:
        key = g["key"]
        st = g.get("status")
        if g["phase"] == "final" and (st is None or st >= 500):
            unreadable.add("%s through n%d: %s" % (key, g["node"], g.get("error") or st))
            continue
        if st not in (200, 404):
            continue
        if key not in index:
            index[key] = KeyIndex([p for p in puts.get(key, []) if acked(p)],
                                  _deletes_for(key, deletes, patterns))
        ix = index[key]
        w = None
        if st == 200:
            w = by_value.get(g["value"])
            if w is None or w["key"] != key:
                unknown.add("%s through n%d returned %r" % (key, g["node"], g["value"]))
                continue
        w_end = w["end"] if w is not None and acked(w) else INF

        # Resurrection: an acknowledged delete strictly between the write and the read.
        if w_end < INF:
            d = ix.acked_dels.first_between(w_end, g["start"])
            if d is not None:
                text = "%s read %r through n%d at %.2fs (%s); %s through n%d ended at %.2fs; written by c%d ending %.2fs" % (
                    key, g["value"], g["node"], g["start"], g["phase"], d["op"], d["node"], d["end"], w["client"], w["end"])
                if in_minority(g, partitions):
                    resur_min.add(text)
                elif healing(g, partitions, heal_window):
                    resur_heal.add(text)
                else:
                    resur.add(text)

        if st == 200:
            # A newer acknowledged write that ended before the read started:
            # the value read is older than it (a delete after it would not
            # bring the older value back either).
            p = ix.puts.first_between(w_end, g["start"])
        else:
            # Missing: an acknowledged write that ended before the read, which
            # no delete that could have reached the read can have followed.
            p = ix.puts.first_between(ix.last_delete_end(g["end"]) - 1e-9, g["start"], inclusive=True)
        if p is None:
            continue
        text = "%s through n%d at %.2fs (%s) gave %s; %r (c%d) was acknowledged at %.2fs" % (
            key, g["node"], g["start"], g["phase"], repr(g.get("value")) if st == 200 else "404", p["value"],
            p["client"], p["end"])
        if g["phase"] == "final":
            lost.add(text)
        elif not in_partition(g, partitions, heal_window):
            stale.add(text)

    return [lost, resur, stale, unreadable, unknown, resur_min, resur_heal, failed, failed_up]
