#!/usr/bin/env python3
"""A counting origin for the expiry benchmark (expiry.sh): it answers GET
/obj with a 1 KiB body after a delay, and counts those requests, so that
a stampede on expiry shows up as a count.  Standard library only, asyncio,
so a stampede of hundreds of concurrent requests costs it nothing.

    counting_origin.py [--port 8000] [--delay 0.05] [--size 1024]

  /obj    the counted object: 200, SIZE bytes, after DELAY seconds.  No
          Cache-Control, so each cache applies its own configured TTL.
  /count  the number of /obj requests received so far, as text
  /log    one line per /obj request: seconds since the first one, and the
          number of /obj requests in flight when it arrived
  other   200 "ok" at once, not counted (readiness checks go here)

The delay keeps each fill in flight long enough for the requests that
arrive meanwhile to pile up: without it the stampede window on loopback is
a fraction of a millisecond and a cache that does not collapse would look
as if it did.  On SIGTERM or SIGINT it prints the count to stdout and
exits.
"""
import argparse
import asyncio
import resource
import signal
import sys
import time


class Origin:
    def __init__(self, delay, size):
        self.delay = delay
        self.body = bytes(ord("a") + i % 26 for i in range(size))
        self.count = 0
        self.in_flight = 0
        self.first = None
        self.log = []

    async def answer(self, path):
        """The status line, headers and body for PATH, as bytes."""
        if path == "/obj":
            now = time.monotonic()
            if self.first is None:
                self.first = now
            self.count += 1
            self.in_flight += 1
            self.log.append("%.3f %d" % (now - self.first, self.in_flight))
            try:
                await asyncio.sleep(self.delay)
            finally:
                self.in_flight -= 1
            return self.response(self.body, b"application/octet-stream")
        if path == "/count":
            return self.response(b"%d\n" % self.count, b"text/plain")
        if path == "/log":
            text = "".join(line + "\n" for line in self.log)
            return self.response(text.encode(), b"text/plain")
        return self.response(b"ok\n", b"text/plain")

    @staticmethod
    def response(body, content_type):
        return (b"HTTP/1.1 200 OK\r\n"
                b"Content-Type: " + content_type + b"\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body) + body)

    async def handle(self, reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                request_line = lines[0].split()
                target = request_line[1].decode("latin-1") \
                    if len(request_line) > 1 else "/"
                # nginx speaks HTTP/1.0 to upstreams and closes after each
                # answer; keep-alive only when the client asks for it.
                keep_alive = len(request_line) > 2 and \
                    request_line[2] == b"HTTP/1.1"
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    value = value.strip().lower()
                    if name == b"content-length":
                        length = int(value or 0)
                    elif name == b"connection":
                        if b"close" in value:
                            keep_alive = False
                        elif b"keep-alive" in value:
                            keep_alive = True
                if length:
                    await reader.readexactly(length)
                writer.write(await self.answer(target.split("?", 1)[0]))
                await writer.drain()
                if not keep_alive:
                    break
        except (asyncio.IncompleteReadError, asyncio.CancelledError,
                asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--delay", type=float, default=0.05,
                    help="seconds before each /obj answer (default 0.05)")
    ap.add_argument("--size", type=int, default=1024,
                    help="/obj body bytes (default 1024)")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    origin = Origin(args.delay, args.size)
    server = await asyncio.start_server(origin.handle, args.host, args.port,
                                        backlog=4096)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
        # Before the server closes: from Python 3.12 on, closing waits for
        # every open connection, and a keep-alive client may hold one.
        print(origin.count)
        sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main())
