"""A minimal, fast upstream for the benchmark: every request gets the same small JSON body.

Runs as its own process on loopback::

    python bench/upstream.py --port 9001 [--uvloop]

It uses aiohttp's low-level server (no router, no middlewares, no access log), so the upstream
costs as little as an aiohttp server can and the proxies in front of it are what is measured.
The request body, if any, is read and discarded.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import signal
import sys

from aiohttp import web

BODY = b'{"id":42,"name":"bench","items":[1,2,3],"ok":true}'
HEADERS = {"Content-Type": "application/json"}


async def handler(request: web.BaseRequest) -> web.Response:
    if request.body_exists:
        await request.read()
    return web.Response(body=BODY, headers=HEADERS)


async def serve(host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runner = web.ServerRunner(web.Server(handler), handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    print(f"upstream listening on http://{host}:{port}", file=sys.stderr, flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop's event loop")
    args = parser.parse_args()
    if args.uvloop:
        uvloop = importlib.import_module("uvloop")
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
