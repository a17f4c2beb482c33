#!/usr/bin/env python3
"""A deliberately slow web application to put Strata in front of.

It stands for the expensive view of a real app: every answer says when it
was computed and by which process, so a client can tell a fresh answer from
a cached one.  Python 3 standard library only.

Endpoints (GET and HEAD):
  /                 this list, fast
  /health           {"status": "ok"}, fast
  /slow             sleeps DEMO_DELAY seconds (default 2), then
                    {"message": "computed slowly", "computed_at": ..., "pid": ...}
  /api/users/<id>   sleeps DEMO_DELAY / 2 seconds (default 1), then a user
                    whose greeting follows Accept-Language (en, fr, de, es)
  /echo             any method: what the app received (method, path, headers,
                    body size), to see the headers Strata adds and removes

Usage: slow_app.py [--host HOST] [--port PORT]   (default 127.0.0.1:8000;
port 0 picks a free port, printed on stderr at start).  SIGTERM and SIGINT
stop it cleanly with status 0.  One log line per request on stderr.
"""

import argparse
import json
import os
import re
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

DELAY = float(os.environ.get("DEMO_DELAY", "2"))

GREETINGS = {"en": "Hello", "fr": "Bonjour", "de": "Hallo", "es": "Hola"}

ENDPOINTS = {
    "/": "this list",
    "/health": "liveness, fast",
    "/slow": "sleeps %gs, then JSON with computed_at and pid" % DELAY,
    "/api/users/<id>": "sleeps %gs, then a user greeted per Accept-Language"
    % (DELAY / 2),
    "/echo": "any method: what the app received",
}

USER_PATH = re.compile(r"^/api/users/([0-9]{1,18})$")

# Set by the signal handler: sleeping handlers wake up early and the server
# stops instead of making the shutdown wait for a slow answer.
stopping = threading.Event()


def preferred_language(header):
    """The first language of Accept-Language that we have a greeting for."""
    for part in (header or "").split(","):
        tag = part.split(";")[0].strip().lower()
        lang = tag.split("-")[0]
        if lang in GREETINGS:
            return lang
    return "en"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so Strata can reuse connections
    # Headers and body go out in separate writes; without TCP_NODELAY the
    # second one can wait ~40 ms for a delayed ACK, which would blur the
    # timings this app exists to show.
    disable_nagle_algorithm = True

    def version_string(self):
        return "slow_app/1.0"

    def send_json(self, status, document, extra_headers=()):
        body = (json.dumps(document, indent=2) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra_headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def handle_get(self):
        path = urlsplit(self.path).path
        if path == "/":
            self.send_json(200, {"app": "strata demo", "endpoints": ENDPOINTS})
        elif path == "/health":
            self.send_json(200, {"status": "ok"})
        elif path == "/slow":
            stopping.wait(DELAY)
            self.send_json(200, {
                "message": "computed slowly",
                "computed_at": time.time(),
                "pid": os.getpid(),
            })
        elif USER_PATH.match(path):
            user_id = int(USER_PATH.match(path).group(1))
            lang = preferred_language(self.headers.get("Accept-Language"))
            stopping.wait(DELAY / 2)
            self.send_json(200, {
                "id": user_id,
                "name": "User %d" % user_id,
                "greeting": "%s, user %d" % (GREETINGS[lang], user_id),
                "language": lang,
                "computed_at": time.time(),
                "pid": os.getpid(),
            }, [("Content-Language", lang), ("Vary", "Accept-Language")])
        elif path == "/echo":
            self.handle_echo()
        else:
            self.send_json(404, {"error": "no such endpoint", "path": path})

    def handle_echo(self):
        body = self.read_body()
        self.send_json(200, {
            "method": self.command,
            "path": self.path,
            "headers": ["%s: %s" % item for item in self.headers.items()],
            "body_bytes": len(body),
            "client": self.client_address[0],
        })

    def do_GET(self):
        self.started = time.monotonic()
        self.handle_get()

    do_HEAD = do_GET

    def do_other(self):
        self.started = time.monotonic()
        if urlsplit(self.path).path == "/echo":
            self.handle_echo()
            return
        self.read_body()
        self.send_json(405, {"error": "method not allowed"},
                       [("Allow", "GET, HEAD")])

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_other

    def log_request(self, code="-", size="-"):
        elapsed = time.monotonic() - getattr(self, "started", time.monotonic())
        sys.stderr.write('slow_app: %s "%s" %s %.2fs\n'
                         % (self.client_address[0], self.requestline,
                            code, elapsed))

    def log_message(self, format, *args):
        sys.stderr.write("slow_app: %s\n" % (format % args))


class Server(ThreadingHTTPServer):
    daemon_threads = True       # an in-flight request never blocks exit
    block_on_close = False
    allow_reuse_address = True


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000,
                        help="port to listen on (default 8000; 0 = any free)")
    args = parser.parse_args()

    if ":" in args.host:
        Server.address_family = socket.AF_INET6
    try:
        server = Server((args.host, args.port), Handler)
    except OSError as exc:
        sys.stderr.write("slow_app: cannot listen on %s:%d: %s\n"
                         % (args.host, args.port, exc.strerror or exc))
        return 1

    def stop(signum, frame):
        stopping.set()
        # shutdown() waits for serve_forever() to return, which runs in this
        # very thread: ask from another one.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    host, port = server.server_address[:2]
    sys.stderr.write("slow_app: listening on http://%s:%d (pid %d, delay %gs)\n"
                     % (host if ":" not in host else "[%s]" % host, port,
                        os.getpid(), DELAY))
    sys.stderr.flush()
    server.serve_forever(poll_interval=0.1)
    server.server_close()
    sys.stderr.write("slow_app: stopped\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
