#!/usr/bin/env python3
"""A slow origin for benchmarks: every request waits DELAY seconds, then
gets a small JSON answer.  asyncio, so thousands of requests can wait at
once without a thread each (the demo app's thread per request would be the
bottleneck, not Strata).  Standard library only.

    slow_origin.py [--port 8000] [--delay 1.0]
"""
import argparse
import asyncio
import json
import os
import resource
import signal


async def handle(reader, writer, delay):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            close = False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value.strip() or 0)
                elif name == b"connection":
                    close = b"close" in value.lower()
            if length:
                await reader.readexactly(length)
            await asyncio.sleep(delay)
            body = json.dumps({"message": "computed slowly",
                               "pid": os.getpid()}).encode()
            writer.write(b"HTTP/1.1 200 OK\r\n"
                         b"Content-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body) + body)
            await writer.drain()
            if close:
                break
    except (asyncio.IncompleteReadError, asyncio.CancelledError,
            ConnectionError):
        pass
    finally:
        writer.close()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--delay", type=float, default=1.0)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, args.delay), args.host, args.port,
        backlog=4096)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
