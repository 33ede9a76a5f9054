#!/usr/bin/env python3
"""A small HTTP origin for the integration tests and tools/bench/warm.

GET /items/ID answers {"id": ID, "n": N} (N: how many times this path was
asked), as application/json with Cache-Control: max-age when one is set.
GET /_control?fail=0|1&delay=SECONDS&max_age=SECONDS|-1&no_store=0|1
changes how it answers from then on; GET /_stats gives the count of every
path asked. Prints its port on stdout once it listens (port 0: any free one).
"""
import http.server
import json
import sys
import threading
import time
import urllib.parse

lock = threading.Lock()
counts = {}
settings = {"fail": 0, "delay": 0.0, "max_age": -1, "no_store": 0}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/_control":
            with lock:
                for k, v in urllib.parse.parse_qsl(url.query):
                    settings[k] = float(v) if k == "delay" else int(v)
            return self.answer(200, b"ok")
        if url.path == "/_stats":
            with lock:
                body = json.dumps(counts).encode()
            return self.answer(200, body, [("Content-Type", "application/json")])
        with lock:
            n = counts[url.path] = counts.get(url.path, 0) + 1
            s = dict(settings)
        if s["delay"]:
            time.sleep(s["delay"])
        if s["fail"]:
            return self.answer(500, b"down")
        if not url.path.startswith("/items/"):
            return self.answer(404)
        item = urllib.parse.unquote(url.path[len("/items/"):])
        if item.startswith("missing"):
            return self.answer(404)
        headers = [("Content-Type", "application/json")]
        if s["no_store"]:
            headers.append(("Cache-Control", "no-store"))
        elif s["max_age"] >= 0:
            headers.append(("Cache-Control", "public, max-age=%d" % s["max_age"]))
        self.answer(200, json.dumps({"id": item, "n": n}).encode(), headers)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024


server = Server(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
