"""A userspace TCP proxy that adds latency (and optional jitter), for a kernel
without tc netem.

    p = LatencyProxy("10.213.7.10", 17946, "10.213.7.10", 7946, delay_ms=100)
    p.start()            # listening when start() returns; p.port is the port bound
    p.set_delay(300)     # at run time; applies to bytes read from then on
    p.stop()             # closes the listener and every connection, joins the thread

Every connection accepted on (listen_host, listen_port) is joined to a new
connection to (target_host, target_port).  Bytes going either way are held
for delay_ms (+ a uniform draw in [-jitter_ms, +jitter_ms], never below 0)
after they were read, then written on: a round trip through the proxy gains
about 2 x delay_ms.  Order is kept (a chunk is never released before the one
read before it, so jitter cannot reorder the byte stream); an end of stream
(FIN) is delayed like data; a reset or error on either side closes both.
Bandwidth is not shaped, but each direction buffers at most max_buffer bytes
(then it stops reading and TCP flow control pushes back on the sender), so a
throughput of about max_buffer per delay is the most a connection gets.

One thread and a selector serve every connection.  Only the TCP byte stream
is delayed: the connection handshake is not (a connect through the proxy
succeeds at once when the target accepts), and UDP (SWIM probes) does not go
through it at all.
"""

import errno
import random
import selectors
import socket
import struct
import threading
import time
from collections import deque

CHUNK = 65536


class _Pipe:
    """One direction: bytes read from src, held, written to dst."""

    __slots__ = ("src", "dst", "q", "buffered", "eof", "shut", "last_due", "bytes")

    def __init__(self, src, dst):
        self.src = src
        self.dst = dst
        self.q = deque()          # [due, bytes or None (EOF), offset]
        self.buffered = 0
        self.eof = False          # src sent its FIN (queued as None)
        self.shut = False         # the FIN was passed on (dst.shutdown(SHUT_WR))
        self.last_due = 0.0
        self.bytes = 0


class _Conn:
    __slots__ = ("client", "upstream", "connected", "up", "down", "closed")

    def __init__(self, client, upstream):
        self.client = client
        self.upstream = upstream
        self.connected = False
        self.up = _Pipe(client, upstream)
        self.down = _Pipe(upstream, client)
        self.closed = False


class LatencyProxy:
    def __init__(self, listen_host, listen_port, target_host, target_port, delay_ms, jitter_ms=0,
                 max_buffer=1 << 20, seed=None):
        self.listen_host = listen_host
        self.listen_port = listen_port
        self.target = (target_host, target_port)
        self.max_buffer = max_buffer
        self._rng = random.Random(seed)
        self._wake_lock = threading.Lock()
        self._wake_r = self._wake_w = None
        self.set_delay(delay_ms, jitter_ms)
        self.port = None
        self._sel = None
        self._lsock = None
        self._thread = None
        self._stopping = False
        self._conns = set()
        self._registered = {}     # sock -> events
        self.accepted = 0         # connections accepted so far
        self.failed = 0           # of which the target refused or errored
        self.bytes_up = 0         # client -> target, written
        self.bytes_down = 0       # target -> client, written
        self.error = None         # the exception that ended the loop, if any

    # -- control
    def set_delay(self, delay_ms, jitter_ms=None):
        """Change the delay (and jitter, unless None); bytes read from now on get it."""
        if delay_ms < 0 or (jitter_ms is not None and jitter_ms < 0):
            raise ValueError("delay and jitter must be >= 0")
        self.delay_ms = float(delay_ms)
        if jitter_ms is not None:
            self.jitter_ms = float(jitter_ms)
        self._wake()

    @property
    def active(self):
        return len(self._conns)

    def start(self):
        if self._thread:
            raise RuntimeError("already started")
        self._lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._lsock.bind((self.listen_host, self.listen_port))
            self._lsock.listen(128)
        except OSError:
            self._lsock.close()
            raise
        self._lsock.setblocking(False)
        self.port = self._lsock.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._lsock, selectors.EVENT_READ, "listen")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._thread = threading.Thread(target=self._run, name="LatencyProxy:%d" % self.port, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout=5):
        """Close the listener and every connection (both sides); idempotent."""
        if not self._thread:
            return
        self._stopping = True
        self._wake()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError("proxy thread did not stop")
        self._thread = None

    def close_connections(self):
        """Reset every open connection now (new ones are still accepted)."""
        self._reset_pending = True
        self._wake()

    _reset_pending = False

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def _wake(self):
        with self._wake_lock:
            if self._wake_w is not None:
                try:
                    self._wake_w.send(b"x")
                except OSError:           # full: the loop is awake anyway
                    pass

    # -- the loop
    def _run(self):
        try:
            while not self._stopping:
                if self._reset_pending:
                    self._reset_pending = False
                    for c in list(self._conns):
                        self._close(c, reset=True)
                timeout = self._update_interest()
                for key, ev in self._sel.select(timeout):
                    d = key.data
                    if d == "listen":
                        self._accept()
                    elif d == "wake":
                        try:
                            while self._wake_r.recv(4096):
                                pass
                        except BlockingIOError:
                            pass
                    else:
                        self._event(d, key.fileobj, ev)
        except Exception as e:            # keep the error for the caller; still close everything
            self.error = e
        finally:
            for c in list(self._conns):
                self._close(c, reset=True)
            self._sel.close()
            self._lsock.close()
            with self._wake_lock:
                self._wake_w.close()
                self._wake_w = None
            self._wake_r.close()
            self._registered.clear()

    def _accept(self):
        for _ in range(64):
            try:
                cs, _ = self._lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.ECONNABORTED):
                    return
                raise
            self.accepted += 1
            cs.setblocking(False)
            cs.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            us = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            us.setblocking(False)
            us.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c = _Conn(cs, us)
            self._conns.add(c)
            rc = us.connect_ex(self.target)
            if rc == 0:
                c.connected = True
            elif rc not in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
                self.failed += 1
                self._close(c, reset=True)

    def _update_interest(self):
        """Register each socket for what it can do now; return the select timeout."""
        now = time.monotonic()
        timeout = None
        want = {}
        for c in self._conns:
            ev_c = ev_u = 0
            if not c.connected:
                ev_u |= selectors.EVENT_WRITE
            for p in (c.up, c.down):
                if not p.eof and p.buffered < self.max_buffer and (c.connected or p.src is c.client):
                    if p.src is c.client:
                        ev_c |= selectors.EVENT_READ
                    else:
                        ev_u |= selectors.EVENT_READ
                if p.q and c.connected:
                    due = p.q[0][0]
                    if due <= now:
                        if p.dst is c.client:
                            ev_c |= selectors.EVENT_WRITE
                        else:
                            ev_u |= selectors.EVENT_WRITE
                    else:
                        t = due - now
                        timeout = t if timeout is None else min(timeout, t)
            want[c.client] = (ev_c, c)
            want[c.upstream] = (ev_u, c)
        for s in list(self._registered):
            if s not in want or want[s][0] == 0:
                self._sel.unregister(s)
                del self._registered[s]
        for s, (ev, c) in want.items():
            if ev == 0:
                continue
            old = self._registered.get(s)
            if old is None:
                self._sel.register(s, ev, c)
            elif old != ev:
                self._sel.modify(s, ev, c)
            self._registered[s] = ev
        return timeout

    def _event(self, c, sock, ev):
        if c.closed:
            return
        try:
            if sock is c.upstream and not c.connected:
                err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    self.failed += 1
                    self._close(c, reset=True)
                    return
                c.connected = True
            if ev & selectors.EVENT_READ:
                self._read(c, c.up if sock is c.client else c.down)
            if ev & selectors.EVENT_WRITE and not c.closed:
                self._write(c, c.down if sock is c.client else c.up)
        except OSError:
            self._close(c, reset=True)

    def _due(self, p):
        d = self.delay_ms
        if self.jitter_ms:
            d += self._rng.uniform(-self.jitter_ms, self.jitter_ms)
        due = max(time.monotonic() + max(d, 0.0) / 1000.0, p.last_due)
        p.last_due = due
        return due

    def _read(self, c, p):
        if p.eof:
            return
        try:
            b = p.src.recv(min(CHUNK, max(self.max_buffer - p.buffered, 1)))
        except (BlockingIOError, InterruptedError):
            return
        if not b:
            p.eof = True
            p.q.append([self._due(p), None, 0])
            return
        p.q.append([self._due(p), b, 0])
        p.buffered += len(b)

    def _write(self, c, p):
        now = time.monotonic()
        while p.q and p.q[0][0] <= now:
            item = p.q[0]
            data = item[1]
            if data is None:              # the FIN, passed on at its time
                p.q.popleft()
                try:
                    p.dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                p.shut = True
                if c.up.shut and c.down.shut:
                    self._close(c)
                return
            try:
                n = p.dst.send(memoryview(data)[item[2]:])
            except (BlockingIOError, InterruptedError):
                return
            item[2] += n
            p.buffered -= n
            p.bytes += n
            if p is c.up:
                self.bytes_up += n
            else:
                self.bytes_down += n
            if item[2] < len(data):
                return
            p.q.popleft()

    def _close(self, c, reset=False):
        if c.closed:
            return
        c.closed = True
        self._conns.discard(c)
        for s in (c.client, c.upstream):
            if s in self._registered:
                try:
                    self._sel.unregister(s)
                except (KeyError, ValueError):
                    pass
                del self._registered[s]
            if reset:
                try:                      # pass an abort on as an abort (RST), not as a clean end
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                except OSError:
                    pass
            s.close()


def main(argv=None):
    """Command line, for running the proxy in another namespace (wrap() it):

        python3 proxy.py LISTEN_HOST LISTEN_PORT TARGET_HOST TARGET_PORT DELAY_MS [JITTER_MS]

    Prints "ready PORT" once listening.  Then reads commands on stdin, one a
    line, each answered with one line, "ok ..." or "error ...":
    "delay MS [JITTER_MS]"; "reset" (close the open connections); "stats"
    (answers "ok ACCEPTED FAILED ACTIVE BYTES_UP BYTES_DOWN").  Stops on EOF,
    SIGTERM or SIGINT."""
    import signal
    import sys
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) not in (5, 6):
        print(main.__doc__, file=sys.stderr)
        return 2
    lh, lp, th, tp, d = args[:5]
    j = float(args[5]) if len(args) == 6 else 0.0
    p = LatencyProxy(lh, int(lp), th, int(tp), float(d), j)
    p.start()
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    print("ready %d" % p.port, flush=True)
    try:
        for line in sys.stdin:
            w = line.split()
            if not w:
                continue
            try:
                reply = "ok"
                if w[0] == "delay" and len(w) in (2, 3):
                    p.set_delay(float(w[1]), float(w[2]) if len(w) == 3 else None)
                elif w == ["reset"]:
                    p.close_connections()
                elif w == ["stats"]:
                    reply = "ok %d %d %d %d %d" % (p.accepted, p.failed, p.active, p.bytes_up, p.bytes_down)
                else:
                    raise ValueError("unknown command %r" % line.strip())
            except ValueError as e:
                reply = "error %s" % e
            print(reply, flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        p.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
