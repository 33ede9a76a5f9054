"""LatencyProxy: delay both ways, bytes intact, jitter keeps order, set_delay at
run time, half-close, a refused target, and stop() closing everything."""

import os
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from chaoslib.proxy import LatencyProxy  # noqa: E402


class EchoServer:
    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            while True:
                b = c.recv(65536)
                if not b:
                    c.shutdown(socket.SHUT_WR)       # echo the half-close too
                    c.close()
                    return
                c.sendall(b)
        except OSError:
            c.close()

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


def recv_exactly(s, n):
    buf = bytearray()
    while len(buf) < n:
        b = s.recv(min(1 << 20, n - len(buf)))
        if not b:
            break
        buf += b
    return bytes(buf)


def rtt(s, msg=b"x"):
    t0 = time.monotonic()
    s.sendall(msg)
    got = recv_exactly(s, len(msg))
    assert got == msg, got
    return time.monotonic() - t0


def open_fds():
    return len(os.listdir("/proc/self/fd"))


class LatencyProxyTest(unittest.TestCase):
    def setUp(self):
        self.echo = EchoServer()
        self.fds = open_fds()

    def tearDown(self):
        self.echo.close()

    def proxy(self, delay, jitter=0, **kw):
        p = LatencyProxy("127.0.0.1", 0, "127.0.0.1", self.echo.port, delay, jitter, **kw).start()
        self.addCleanup(p.stop)
        return p

    def connect(self, p):
        s = socket.create_connection(("127.0.0.1", p.port), timeout=5)
        self.addCleanup(s.close)
        return s

    def test_delay_round_trip(self):
        p = self.proxy(100)
        s = self.connect(p)
        times = [rtt(s) for _ in range(3)]
        # 100 ms each way: a round trip takes >= 200 ms (and well under a second here)
        for t in times:
            self.assertGreaterEqual(t, 0.200)
            self.assertLess(t, 0.6)

    def test_no_delay_is_fast(self):
        p = self.proxy(0)
        s = self.connect(p)
        rtt(s)
        self.assertLess(min(rtt(s) for _ in range(5)), 0.05)

    def test_one_megabyte_intact(self):
        p = self.proxy(100, max_buffer=256 * 1024)
        s = self.connect(p)
        data = os.urandom(1 << 20)
        got = []
        reader = threading.Thread(target=lambda: got.append(recv_exactly(s, len(data))))
        reader.start()
        t0 = time.monotonic()
        s.sendall(data)
        reader.join(30)
        self.assertFalse(reader.is_alive())
        self.assertGreaterEqual(time.monotonic() - t0, 0.2)
        self.assertEqual(got[0], data)
        deadline = time.monotonic() + 2          # the proxy counts just after its send() returns
        while p.bytes_down < len(data) and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertEqual(p.bytes_up, len(data))
        self.assertEqual(p.bytes_down, len(data))

    def test_jitter_keeps_order(self):
        p = self.proxy(20, jitter=15, seed=1)
        s = self.connect(p)
        sent = b"".join(b"%06d" % i for i in range(2000))
        got = []
        reader = threading.Thread(target=lambda: got.append(recv_exactly(s, len(sent))))
        reader.start()
        for i in range(0, len(sent), 600):
            s.sendall(sent[i:i + 600])
            time.sleep(0.001)
        reader.join(10)
        self.assertEqual(got[0], sent)

    def test_set_delay_at_run_time(self):
        p = self.proxy(150)
        s = self.connect(p)
        self.assertGreaterEqual(rtt(s), 0.300)
        p.set_delay(0)
        self.assertLess(rtt(s), 0.1)
        p.set_delay(50, jitter_ms=0)
        self.assertGreaterEqual(rtt(s), 0.100)

    def test_half_close_passes_through_delayed(self):
        p = self.proxy(50)
        s = self.connect(p)
        s.sendall(b"bye")
        t0 = time.monotonic()
        s.shutdown(socket.SHUT_WR)
        self.assertEqual(recv_exactly(s, 100), b"bye")     # then EOF, not a reset
        self.assertGreaterEqual(time.monotonic() - t0, 0.09)
        deadline = time.monotonic() + 2
        while p.active and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertEqual(p.active, 0)

    def test_target_refused_closes_client(self):
        dead = socket.socket()
        dead.bind(("127.0.0.1", 0))
        port = dead.getsockname()[1]
        dead.close()                                        # nothing listens there now
        p = LatencyProxy("127.0.0.1", 0, "127.0.0.1", port, 10).start()
        self.addCleanup(p.stop)
        try:                                     # the reset may even beat connect() home
            s = socket.create_connection(("127.0.0.1", p.port), timeout=2)
            try:
                s.sendall(b"x")
                self.assertEqual(s.recv(10), b"")
            finally:
                s.close()
        except ConnectionResetError:
            pass
        self.assertEqual(p.failed, 1)
        self.assertEqual(p.active, 0)

    def test_many_connections(self):
        p = self.proxy(30)
        socks = [self.connect(p) for _ in range(20)]
        t0 = time.monotonic()
        for i, s in enumerate(socks):
            s.sendall(b"%d" % i)
        for i, s in enumerate(socks):
            self.assertEqual(recv_exactly(s, len(b"%d" % i)), b"%d" % i)
        # concurrent, not one after another: about 60 ms, not 20 x 60 ms
        self.assertLess(time.monotonic() - t0, 0.6)
        self.assertEqual(p.active, 20)

    def test_stop_closes_everything(self):
        p = LatencyProxy("127.0.0.1", 0, "127.0.0.1", self.echo.port, 50).start()
        s = socket.create_connection(("127.0.0.1", p.port), timeout=2)
        rtt(s)
        s.sendall(b"in flight")        # held in the proxy when it stops
        p.stop()
        try:
            self.assertEqual(s.recv(100), b"")
        except ConnectionResetError:
            pass
        s.close()
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", p.port), timeout=1).close()
        self.assertEqual(p.active, 0)
        self.assertFalse(any(t.name.startswith("LatencyProxy:%d" % p.port) for t in threading.enumerate()))
        deadline = time.monotonic() + 2            # (the echo server's side closes on its own time)
        while open_fds() != self.fds and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertEqual(open_fds(), self.fds, "proxy left file descriptors open")
        p.stop()                      # idempotent

    def test_close_connections(self):
        p = self.proxy(0)
        s = self.connect(p)
        rtt(s)
        p.close_connections()
        try:
            self.assertEqual(s.recv(10), b"")
        except ConnectionResetError:
            pass
        s2 = self.connect(p)           # still accepting
        rtt(s2)


class ProxyCommandLineTest(unittest.TestCase):
    def test_cli(self):
        import subprocess
        echo = EchoServer()
        self.addCleanup(echo.close)
        here = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "chaoslib", "proxy.py")
        p = subprocess.Popen([sys.executable, here, "127.0.0.1", "0", "127.0.0.1", str(echo.port), "80"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        try:
            word, port = p.stdout.readline().split()
            self.assertEqual(word, "ready")
            s = socket.create_connection(("127.0.0.1", int(port)), timeout=5)
            self.assertGreaterEqual(rtt(s), 0.160)

            def cmd(c):
                p.stdin.write(c + "\n")
                return p.stdout.readline().strip()
            self.assertEqual(cmd("delay 0"), "ok")
            self.assertLess(rtt(s), 0.1)
            self.assertEqual(cmd("stats").split()[:4], ["ok", "1", "0", "1"])
            self.assertTrue(cmd("bogus").startswith("error"))
            self.assertEqual(cmd("reset"), "ok")
            try:
                self.assertEqual(s.recv(1), b"")
            except ConnectionResetError:
                pass
            s.close()
            p.stdin.close()                           # EOF: the proxy stops
            self.assertEqual(p.wait(5), 0)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdout.close()


if __name__ == "__main__":
    unittest.main()
