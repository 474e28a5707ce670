"""Large bodies both ways with flat memory, measured on the gateway as its own process (the
1 GiB figures come from bench/transfer.py; this is the small, always-run version)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from tests.fixtures.gateway import base_config
from tests.fixtures.memory import PeakRss

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
SIZE = 96 * MiB
BLOCK = os.urandom(256 * 1024)


@pytest.fixture
async def bulk_upstream() -> AsyncIterator[str]:
    async def source(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for _ in range(SIZE // len(BLOCK)):
            await resp.write(BLOCK)
        await resp.write_eof()
        return resp

    async def sink(request: web.Request) -> web.Response:
        size = 0
        async for chunk in request.content.iter_any():
            size += len(chunk)
        return web.Response(text=str(size))

    app = web.Application(client_max_size=0)
    app.router.add_get("/bulk/source", source)
    app.router.add_post("/bulk/sink", sink)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_large_bodies_both_ways_keep_the_gateway_memory_flat(
    gateway_process, tmp_path, upstream, rsa_key, ec_key, bulk_upstream
):
    config = base_config(tmp_path, upstream, rsa_key, ec_key)
    config["routes"].append({"name": "bulk", "match": {"path_prefix": "/bulk"},
                             "upstream": bulk_upstream, "auth": "none", "max_body_size": 0})
    gw = await gateway_process(config)
    pid = gw.proc.pid

    async def body() -> AsyncIterator[bytes]:
        for _ in range(SIZE // len(BLOCK)):
            yield BLOCK

    async with aiohttp.ClientSession() as s:
        async with s.get(gw.url + "/bulk/source") as warm:  # imports, buffers, connections
            await warm.content.read(MiB)
        async with PeakRss(pid, interval=0.01) as down, s.get(gw.url + "/bulk/source") as r:
            received = 0
            async for chunk in r.content.iter_chunked(256 * 1024):
                received += len(chunk)
        async with PeakRss(pid, interval=0.01) as up, s.post(
            gw.url + "/bulk/sink", data=body(), headers={"Content-Length": str(SIZE)}
        ) as r:
            sent = int(await r.text())
    assert (received, sent) == (SIZE, SIZE)
    for name, sample in (("download", down), ("upload", up)):
        growth = sample.peak - sample.baseline
        assert growth < 16 * MiB, f"{name}: gateway RSS grew {growth / MiB:.1f} MiB for 96 MiB"
