"""A small echo upstream for the quickstart and local trials (development only).

It answers every request with JSON describing what it received, identity headers included,
so a newcomer sees exactly what the gateway forwards.
"""

from __future__ import annotations

from aiohttp import web

from .settings import Address


async def _echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response({
        "service": "demo-upstream",
        "method": request.method,
        "path": request.raw_path.split("?", 1)[0],
        "query": request.query_string,
        "headers": dict(request.headers),
        "body_bytes": len(body),
    })


def create_demo_app() -> web.Application:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", _echo)
    return app


async def start_demo_upstream(address: Address) -> web.AppRunner:
    runner = web.AppRunner(create_demo_app(), access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, address.host, address.port).start()
    return runner
