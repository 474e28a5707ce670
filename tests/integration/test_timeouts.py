"""Long streams are bounded by an idle timeout, never by a total one; the response-head
timeout starts once the request body has been sent."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
import pytest

from tests.fixtures.gateway import base_config
from tests.fixtures.raw import port_of, read_response, request_bytes

pytestmark = pytest.mark.integration


@pytest.fixture
async def idle_gateway(start_gateway, tmp_path, upstream, rsa_key, ec_key):
    config = base_config(tmp_path, upstream, rsa_key, ec_key)
    config["routes"].append({
        "name": "events", "match": {"path_prefix": "/events"}, "upstream": upstream.url,
        "auth": "none", "timeout": "300ms", "idle_timeout": "400ms",
    })
    return await start_gateway(config)


async def test_a_stream_outlasting_every_timeout_lives_while_it_moves(idle_gateway, upstream):
    """8 chunks 150 ms apart: 1.2 s in all, three times the idle and four times the head
    timeout, yet every gap is shorter than the idle timeout."""
    async with aiohttp.ClientSession() as s, s.get(
        idle_gateway.url + "/events/sse?_behave=stream&chunks=8&delay=0.15"
    ) as r:
        body = await r.read()
    assert body == b"".join(f"chunk-{i}\n".encode() for i in range(8))
    assert idle_gateway.sample("gateway_upstream_errors_total",
                               {"route": "events", "reason": "upstream_timeout"}) == 0


async def test_a_stream_silent_longer_than_the_idle_timeout_is_cut(idle_gateway, upstream):
    async with aiohttp.ClientSession() as s, s.get(
        idle_gateway.url + "/events/sse?_behave=stream&chunks=3&delay=1.5"
    ) as r:
        assert r.status == 200
        assert await r.content.readuntil(b"\n") == b"chunk-0\n"
        with pytest.raises(aiohttp.ClientPayloadError):
            await r.read()
    assert idle_gateway.sample("gateway_upstream_errors_total",
                               {"route": "events", "reason": "upstream_timeout"}) == 1


async def test_a_slow_but_moving_upload_is_not_cut_by_the_head_timeout(idle_gateway, upstream):
    async def slow_body():  # type: ignore[no-untyped-def]
        for _ in range(10):
            yield b"x" * 100
            await asyncio.sleep(0.1)

    async with aiohttp.ClientSession() as s, s.post(
        idle_gateway.url + "/events/upload", data=slow_body()
    ) as r:
        assert r.status == 200
        assert (await r.json())["body_bytes"] == 1000


async def test_a_stalled_upload_gets_408_and_its_connection_closed(idle_gateway, upstream):
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(idle_gateway.url))
    try:
        writer.write(request_bytes("POST /events/upload HTTP/1.1", "Host: localhost",
                                   "Content-Length: 1000") + b"x" * 10)
        response = await read_response(reader, timeout=5)
        assert response.status == 408
        assert response.json()["error"] == "request_timeout"
        assert response.headers["Connection"] == "close"
        async with asyncio.timeout(2):
            assert await reader.read() == b""
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    assert idle_gateway.sample("gateway_request_rejections_total",
                               {"route": "events", "reason": "client_timeout"}) == 1
