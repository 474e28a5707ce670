"""The benchmark's baseline: a plain aiohttp reverse proxy, no authentication at all.

Runs as its own process on loopback::

    python bench/passthrough.py --port 8001 --upstream http://127.0.0.1:9001 [--uvloop]

What a careful developer writes in an afternoon, and what the gateway is measured against: one
pooled keep-alive ``ClientSession``; every request forwarded to the same path and query on the
upstream; request and response bodies streamed; headers copied without the hop-by-hop ones
(RFC 9110 §7.6.1) and with ``Host`` and ``X-Forwarded-For`` set; no access log, no metrics,
no routing table, no token check. The difference between this and the gateway is the cost of
everything the gateway adds.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import signal
import sys
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import hdrs, web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade",
    "proxy-authorization", "proxy-authenticate", "proxy-connection", "host",
})
SESSION = web.AppKey("session", aiohttp.ClientSession)
UPSTREAM = web.AppKey("upstream", URL)


def forward_headers(incoming: CIMultiDictProxy[str], host: str, client: str | None
                    ) -> CIMultiDict[str]:
    out = CIMultiDict((k, v) for k, v in incoming.items() if k.lower() not in HOP_BY_HOP)
    out[hdrs.HOST] = host
    if client:
        out["X-Forwarded-For"] = client
    return out


def backward_headers(incoming: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    return CIMultiDict((k, v) for k, v in incoming.items() if k.lower() not in HOP_BY_HOP)


async def proxy(request: web.Request) -> web.StreamResponse:
    base = request.app[UPSTREAM]
    url = base.with_path(request.raw_path.split("?", 1)[0], encoded=True) \
        .with_query(request.query_string)
    headers = forward_headers(request.headers, base.raw_authority, request.remote)
    try:
        upstream = await request.app[SESSION].request(
            request.method, url, headers=headers,
            data=request.content if request.body_exists else None,
            allow_redirects=False,
        )
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        return web.json_response({"error": "bad_gateway", "detail": str(exc)}, status=502)
    async with upstream:
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        response.headers.extend(backward_headers(upstream.headers))
        await response.prepare(request)
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
        return response


def create_app(upstream: str) -> web.Application:
    app = web.Application(client_max_size=0)
    app[UPSTREAM] = URL(upstream)

    async def session_ctx(app: web.Application) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
        async with aiohttp.ClientSession(
            connector=connector, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=(hdrs.USER_AGENT, hdrs.ACCEPT, hdrs.ACCEPT_ENCODING),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
        ) as session:
            app[SESSION] = session
            yield

    app.cleanup_ctx.append(session_ctx)
    app.router.add_route("*", "/{tail:.*}", proxy)
    return app


async def serve(host: str, port: int, upstream: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(create_app(upstream), access_log=None, handle_signals=False,
                           auto_decompress=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    print(f"pass-through proxy on http://{host}:{port} -> {upstream}", file=sys.stderr,
          flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="upstream base URL, e.g. http://h:p")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop's event loop")
    args = parser.parse_args()
    if args.uvloop:
        uvloop = importlib.import_module("uvloop")
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(serve(args.host, args.port, args.upstream))
    return 0


if __name__ == "__main__":
    sys.exit(main())
