"""Per-route limits: own connection pool, concurrent requests (503), body size (413)."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
import pytest

from tests.fixtures.gateway import base_config
from tests.fixtures.raw import port_of, read_response, request_bytes
from tests.fixtures.waiting import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
async def limited(start_gateway, tmp_path, upstream, rsa_key, ec_key):
    config = base_config(tmp_path, upstream, rsa_key, ec_key)
    config["routes"] += [
        {"name": "narrow", "match": {"path_prefix": "/narrow"}, "upstream": upstream.url,
         "auth": "none", "max_connections": 1, "timeout": "500ms"},
        {"name": "single", "match": {"path_prefix": "/single"}, "upstream": upstream.url,
         "auth": "none", "max_concurrent_requests": 1},
        {"name": "tiny", "match": {"path_prefix": "/tiny"}, "upstream": upstream.url,
         "auth": "none", "max_body_size": "1KiB"},
    ]
    return await start_gateway(config)


async def test_long_streams_on_one_route_do_not_starve_the_others(limited, upstream):
    async with aiohttp.ClientSession() as s:
        stream = await s.get(limited.url + "/narrow/s?_behave=stream&chunks=6&delay=0.25")
        assert stream.status == 200  # holds the route's only upstream connection
        started = asyncio.get_running_loop().time()
        async with s.get(limited.url + "/public/other") as other:
            assert other.status == 200
        assert asyncio.get_running_loop().time() - started < 0.4
        # The same route waits for its one connection, within its timeout.
        async with s.get(limited.url + "/narrow/second") as second:
            assert second.status == 504
        assert (await stream.read()).count(b"chunk-") == 6
        stream.release()
        async with s.get(limited.url + "/narrow/third") as third:
            assert third.status == 200


async def test_concurrent_request_limit_answers_503(limited, upstream):
    async with aiohttp.ClientSession() as s:
        slow = asyncio.create_task(s.get(limited.url + "/single/a?_behave=slow&delay=0.5"))
        await eventually(lambda: len(upstream.hits) == 1)
        async with s.get(limited.url + "/single/b") as refused:
            assert refused.status == 503
            assert refused.headers["Retry-After"] == "1"
            assert (await refused.json())["error"] == "temporarily_unavailable"
        response = await slow
        assert response.status == 200
        response.release()
        async with s.get(limited.url + "/single/c") as after:
            assert after.status == 200
    assert upstream.paths() == ["/single/a?_behave=slow&delay=0.5", "/single/c"]
    assert limited.sample("gateway_request_rejections_total",
                          {"route": "single", "reason": "route_overloaded"}) == 1


async def test_chunked_body_over_the_limit_is_cut_with_413(limited, upstream):
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(limited.url))
    try:
        chunk = b"400\r\n" + b"x" * 1024 + b"\r\n"
        writer.write(request_bytes("POST /tiny/up HTTP/1.1", "Host: localhost",
                                   "Transfer-Encoding: chunked") + chunk * 1024)  # 1 MiB
        response = await read_response(reader)
        async with asyncio.timeout(2):
            # The rest is not read: the connection is closed (reset, with data unread).
            with contextlib.suppress(ConnectionResetError):
                assert await reader.read() == b""
    finally:
        writer.close()
    assert response.status == 413
    assert response.headers["Connection"] == "close"
    assert limited.sample("gateway_request_rejections_total",
                          {"route": "tiny", "reason": "body_too_large"}) == 1


async def test_body_within_the_limit_passes(limited, upstream):
    async with aiohttp.ClientSession() as s, s.post(limited.url + "/tiny/up",
                                                   data=b"x" * 1024) as r:
        assert r.status == 200
        assert (await r.json())["body_bytes"] == 1024
