#!/usr/bin/env python3
"""Send N requests at once (one connection each) and report how long the
whole burst took and what came back.  Standard library only.

    burst.py URL [-n 1000]

Prints one line: requests, statuses, wall seconds, and the slowest answer.
"""
import argparse
import asyncio
import resource
import time
import urllib.parse


async def one(host, port, target):
    start = time.monotonic()
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                 f"Connection: close\r\n\r\n".encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
    return status, time.monotonic() - start


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("-n", type=int, default=1000)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    u = urllib.parse.urlsplit(args.url)
    target = u.path + ("?" + u.query if u.query else "")
    start = time.monotonic()
    results = await asyncio.gather(
        *(one(u.hostname, u.port or 80, target) for _ in range(args.n)),
        return_exceptions=True)
    wall = time.monotonic() - start
    statuses = {}
    slowest = 0.0
    for r in results:
        key = "error" if isinstance(r, BaseException) else r[0]
        statuses[key] = statuses.get(key, 0) + 1
        if not isinstance(r, BaseException):
            slowest = max(slowest, r[1])
    print(f"requests={args.n} statuses={statuses} wall={wall:.3f}s "
          f"slowest={slowest:.3f}s")


if __name__ == "__main__":
    asyncio.run(main())
