"""A test helper run inside a namespace: TCP and UDP echo on HOST:PORT, and
probes on demand.  Prints "ready" once listening, then reads commands on
stdin, one a line, "ID tcp|udp HOST PORT TIMEOUT", runs each in a thread and
answers "ID ok" or "ID fail REASON" (in any order).  Exits on EOF."""

import socket
import sys
import threading

lock = threading.Lock()


def say(line):
    with lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def tcp_echo(srv):
    while True:
        try:
            c, _ = srv.accept()
        except OSError:
            return
        threading.Thread(target=tcp_serve, args=(c,), daemon=True).start()


def tcp_serve(c):
    with c:
        while True:
            try:
                b = c.recv(65536)
            except OSError:
                return
            if not b:
                return
            c.sendall(b)


def udp_echo(u):
    while True:
        try:
            b, a = u.recvfrom(65536)
            u.sendto(b, a)
        except OSError:
            return


def probe(pid, proto, host, port, timeout):
    msg = ("ping %s" % pid).encode()
    try:
        if proto == "tcp":
            with socket.create_connection((host, port), timeout=timeout) as s:
                s.sendall(msg)
                got = b""
                while len(got) < len(msg):
                    b = s.recv(65536)
                    if not b:
                        break
                    got += b
        else:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(timeout)
                s.sendto(msg, (host, port))
                got, _ = s.recvfrom(65536)
        say("%s %s" % (pid, "ok" if got == msg else "fail garbled"))
    except OSError as e:
        say("%s fail %s" % (pid, type(e).__name__))


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, port))
    srv.listen(64)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind((host, port))
    threading.Thread(target=tcp_echo, args=(srv,), daemon=True).start()
    threading.Thread(target=udp_echo, args=(u,), daemon=True).start()
    say("ready")
    for line in sys.stdin:
        parts = line.split()
        if len(parts) != 5:
            continue
        pid, proto, h, p, t = parts
        threading.Thread(target=probe, args=(pid, proto, h, int(p), float(t)), daemon=True).start()


if __name__ == "__main__":
    main()
