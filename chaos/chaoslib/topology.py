"""Placeholder: loopback only. Replaced by the namespace topology."""


class Topology:
    kind = "loopback"
    supports_partitions = False

    def __init__(self, n, tag):
        self.n = n
        self.tag = tag
        self.reason = "namespaces not built yet"

    def setup(self):
        pass

    def node_host(self, i):
        return "127.0.0.1"

    def client_host(self, i):
        return "127.0.0.1"

    def wrap(self, i, argv):
        return list(argv)

    def wrap_service(self, argv):
        return list(argv)

    def service_host(self):
        return "127.0.0.1"

    def partition(self, groups):
        raise NotImplementedError

    def partition_one_way(self, src, dst):
        raise NotImplementedError

    def loss(self, pct, nodes=None):
        raise NotImplementedError

    def heal(self):
        pass

    def teardown(self):
        pass


def make_topology(n, tag, want="auto"):
    return Topology(n, tag)
