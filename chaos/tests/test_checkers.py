"""The checkers on small hand-made histories: each finds what it must and
nothing else."""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from chaoslib import checkers  # noqa: E402


def op(kind, start, end, status, key=None, value=None, node=0, phase="run", pattern=None, client=1):
    o = {"op": kind, "start": start, "end": end, "status": status, "node": node, "phase": phase,
         "client": client, "up_only": True, "node_up": True}
    if key is not None:
        o["key"] = key
    if value is not None:
        o["value"] = value
    if pattern is not None:
        o["pattern"] = pattern
    return o


def counts(ops, partitions=(), heal_window=0.0):
    return {r.name: r.count for r in checkers.check(ops, list(partitions), [], heal_window)}


class Checkers(unittest.TestCase):
    def test_clean_history(self):
        ops = [op("put", 0, 1, 201, "k", "a"), op("get", 2, 3, 200, "k", "a"),
               op("put", 4, 5, 200, "k", "b"), op("get", 6, 7, 200, "k", "b"),
               op("delete", 8, 9, 200, "k"), op("get", 10, 11, 404, "k"),
               op("get", 12, 13, 404, "k", phase="final")]
        c = counts(ops)
        for name in ("lost_writes", "resurrections", "stale_reads", "final_reads_failed", "unknown_values"):
            self.assertEqual(c[name], 0, name)

    def test_final_read_older_than_an_acknowledged_write_is_lost(self):
        ops = [op("put", 0, 1, 201, "k", "a"), op("put", 2, 3, 200, "k", "b"),
               op("get", 10, 11, 200, "k", "a", phase="final")]
        self.assertEqual(counts(ops)["lost_writes"], 1)

    def test_final_miss_without_any_delete_is_lost(self):
        ops = [op("put", 0, 1, 201, "k", "a"), op("get", 10, 11, 404, "k", phase="final")]
        self.assertEqual(counts(ops)["lost_writes"], 1)

    def test_a_failed_delete_excuses_a_miss(self):
        ops = [op("put", 0, 1, 201, "k", "a"), op("delete", 2, 5, None, "k"),
               op("get", 10, 11, 404, "k", phase="final")]
        self.assertEqual(counts(ops)["lost_writes"], 0)

    def test_an_unanswered_invalidation_may_land_after_later_writes(self):
        # Sent to a node about to stop, carried out when it woke: after the
        # client gave up, and after a write acknowledged meanwhile.
        ops = [op("invalidate_pattern", 0, 3, None, pattern="k*"), op("put", 5, 6, 201, "k1", "a"),
               op("get", 10, 11, 404, "k1", phase="final")]
        self.assertEqual(counts(ops)["lost_writes"], 0)
        # Answered (even with an error), it was stamped before it answered.
        ops[0]["status"] = 503
        self.assertEqual(counts(ops)["lost_writes"], 1)

    def test_a_delete_after_the_read_excuses_nothing(self):
        ops = [op("put", 0, 1, 201, "k", "a"), op("get", 10, 11, 404, "k", phase="final"),
               op("delete", 12, 13, 200, "k")]
        self.assertEqual(counts(ops)["lost_writes"], 1)

    def test_concurrent_writes_either_may_win(self):
        ops = [op("put", 0, 3, 201, "k", "a"), op("put", 1, 2, 200, "k", "b"),
               op("get", 10, 11, 200, "k", "a", phase="final")]
        self.assertEqual(counts(ops)["lost_writes"], 0)

    def test_an_unacknowledged_write_may_land_late(self):
        ops = [op("put", 0, 1, 201, "k", "a"), op("put", 2, 3, None, "k", "b"),
               op("put", 4, 5, 200, "k", "c"), op("get", 10, 11, 200, "k", "b", phase="final")]
        self.assertEqual(counts(ops)["lost_writes"], 0)

    def test_resurrection_after_delete_and_after_pattern_invalidation(self):
        ops = [op("put", 0, 1, 201, "g0:k1", "a"), op("delete", 2, 3, 200, "g0:k1"),
               op("get", 4, 5, 200, "g0:k1", "a"),
               op("put", 0, 1, 201, "g1:k2", "x"), op("invalidate_pattern", 2, 3, 200, pattern="g1:*"),
               op("get", 4, 5, 200, "g1:k2", "x"),
               # a pattern that does not match excuses and convicts nothing
               op("put", 0, 1, 201, "g2:k3", "y"), op("invalidate_pattern", 2, 3, 200, pattern="g1:*"),
               op("get", 4, 5, 200, "g2:k3", "y")]
        self.assertEqual(counts(ops)["resurrections"], 2)

    def test_a_delete_concurrent_with_the_read_is_not_a_resurrection(self):
        ops = [op("put", 0, 1, 201, "k", "a"), op("delete", 2, 5, 200, "k"), op("get", 4, 6, 200, "k", "a")]
        self.assertEqual(counts(ops)["resurrections"], 0)

    def test_minority_reads_are_counted_apart(self):
        part = {"start": 3.5, "end": 8, "minority": [2]}
        ops = [op("put", 0, 1, 201, "k", "a"), op("delete", 2, 3, 200, "k"),
               op("get", 4, 5, 200, "k", "a", node=2)]
        c = counts(ops, [part])
        self.assertEqual((c["resurrections"], c["resurrections_minority"]), (0, 1))

    def test_heal_window(self):
        # A delete acknowledged on the majority side; the minority node still
        # serves the old value 1 s after the heal: within a 3 s repair
        # interval that is reported apart, after it a resurrection.
        part = {"start": 1.5, "end": 6, "minority": [2]}
        ops = [op("put", 0, 1, 201, "k", "a"), op("delete", 2, 3, 200, "k"),
               op("get", 7, 7.1, 200, "k", "a", node=2)]
        c = counts(ops, [part], heal_window=3.0)
        self.assertEqual((c["resurrections"], c["resurrections_healing"]), (0, 1))
        ops[-1] = op("get", 9.5, 9.6, 200, "k", "a", node=2)
        c = counts(ops, [part], heal_window=3.0)
        self.assertEqual((c["resurrections"], c["resurrections_healing"]), (1, 0))
        # Without a window every read after the heal counts.
        ops[-1] = op("get", 7, 7.1, 200, "k", "a", node=2)
        self.assertEqual(counts(ops, [part])["resurrections"], 1)
        # Stale reads the same: inside the window excused, after it not.
        ops = [op("put", 0, 1, 201, "k", "a"), op("put", 2, 3, 200, "k", "b"), op("get", 7, 7.1, 200, "k", "a")]
        self.assertEqual(counts(ops, [part], heal_window=3.0)["stale_reads"], 0)
        ops[-1] = op("get", 9.5, 9.6, 200, "k", "a")
        self.assertEqual(counts(ops, [part], heal_window=3.0)["stale_reads"], 1)

    def test_stale_read_outside_partitions_only(self):
        ops = [op("put", 0, 1, 201, "k", "a"), op("put", 2, 3, 200, "k", "b"), op("get", 4, 5, 200, "k", "a")]
        self.assertEqual(counts(ops)["stale_reads"], 1)
        self.assertEqual(counts(ops, [{"start": 3.5, "end": 6, "minority": [1]}])["stale_reads"], 0)

    def test_unknown_values_and_unreadable_keys(self):
        ops = [op("get", 0, 1, 200, "k", "never-written"), op("get", 2, 3, 503, "k", phase="final")]
        c = counts(ops)
        self.assertEqual((c["unknown_values"], c["final_reads_failed"]), (1, 1))

    def test_failed_requests_of_clients_of_up_nodes(self):
        a = op("put", 0, 1, 503, "k", "a")
        b = op("put", 0, 1, None, "k", "b")
        b["node_up"] = False
        c = counts([a, b])
        self.assertEqual((c["failed_requests"], c["failed_requests_up"]), (2, 1))


if __name__ == "__main__":
    unittest.main()
