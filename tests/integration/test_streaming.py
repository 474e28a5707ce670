"""Streaming both ways: nothing is buffered whole, chunks arrive as the upstream sends them."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

from tests.fixtures.gateway import base_config
from tests.fixtures.memory import PeakRss
from tests.fixtures.raw import port_of, read_response, request_bytes
from tests.fixtures.waiting import eventually

pytestmark = pytest.mark.integration

MB = 1024 * 1024
BLOCK = os.urandom(64 * 1024)


# -- responses ---------------------------------------------------------------------------


async def test_chunks_reach_the_client_as_the_upstream_sends_them(gateway, upstream):
    arrivals: list[tuple[float, bytes]] = []
    async with aiohttp.ClientSession(auto_decompress=False) as s:
        started = time.perf_counter()
        async with s.get(gateway.url + "/public/s?_behave=stream&chunks=5&delay=0.15") as r:
            assert r.status == 200
            assert r.headers["Transfer-Encoding"] == "chunked"
            assert "Content-Length" not in r.headers
            assert r.headers["X-Upstream"] == "stream"
            async for chunk in r.content.iter_any():
                arrivals.append((time.perf_counter() - started, chunk))
        total = time.perf_counter() - started
    assert b"".join(c for _, c in arrivals) == b"".join(f"chunk-{i}\n".encode()
                                                         for i in range(5))
    first = arrivals[0][0]
    assert total >= 0.7  # the upstream sleeps 0.15 s after each of its 5 chunks
    assert first < 0.3, f"first chunk after {first:.3f}s of {total:.3f}s: buffered?"
    # The chunks came spread out over time, not in one burst at the end.
    assert len(arrivals) >= 4
    assert arrivals[-1][0] - first >= 0.4


async def test_route_timeout_does_not_cut_a_response_that_has_started(gateway, upstream):
    """The `slow` route's 300 ms covers the response headers only, not the streamed body."""
    async with aiohttp.ClientSession() as s, s.get(
        gateway.url + "/slow/s?_behave=stream&chunks=4&delay=0.15"
    ) as r:
        assert r.status == 200
        body = await r.read()
    assert body == b"".join(f"chunk-{i}\n".encode() for i in range(4))
    assert gateway.sample("gateway_upstream_errors_total", {
        "route": "slow", "reason": "upstream_timeout"}) == 0


async def test_streamed_response_to_an_http10_client_is_delimited_by_close(gateway, upstream):
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(gateway.url))
    try:
        writer.write(request_bytes("GET /public/s?_behave=stream&chunks=3 HTTP/1.0",
                                   "Host: localhost"))
        response = await read_response(reader)
    finally:
        writer.close()
    assert response.status == 200
    assert "Transfer-Encoding" not in response.headers
    assert response.body == b"chunk-0\nchunk-1\nchunk-2\n"


@pytest.fixture
async def big_upstream() -> AsyncIterator[str]:
    """An upstream streaming ``size`` bytes of a repeated random block (chunked)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        size = int(request.query["size"])
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        sent = 0
        while sent < size:
            await resp.write(BLOCK[: size - sent])
            sent += len(BLOCK)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_large_response_is_streamed_not_buffered(start_gateway, tmp_path, upstream,
                                                       rsa_key, ec_key, big_upstream):
    config = base_config(tmp_path, upstream, rsa_key, ec_key)
    config["routes"].append({"name": "big", "match": {"path_prefix": "/big"},
                             "upstream": big_upstream, "auth": "none"})
    gw = await start_gateway(config)
    size = 50 * MB
    expected = hashlib.sha256()
    for offset in range(0, size, len(BLOCK)):
        expected.update(BLOCK[: size - offset])
    received = hashlib.sha256()
    count = 0
    async with PeakRss() as rss, aiohttp.ClientSession() as s, s.get(
        gw.url + f"/big/x?size={size}"
    ) as r:
        assert r.status == 200
        async for chunk in r.content.iter_chunked(256 * 1024):
            received.update(chunk)
            count += len(chunk)
    assert count == size
    assert received.hexdigest() == expected.hexdigest()
    assert rss.growth < 20 * MB, f"RSS grew by {rss.growth / MB:.1f} MB for a 50 MB body"


# -- requests ----------------------------------------------------------------------------


def generated_body(size: int, hasher: hashlib._Hash) -> Callable[[], Awaitable[None]]:
    async def gen() -> AsyncIterator[bytes]:
        sent = 0
        while sent < size:
            block = BLOCK[: size - sent]
            hasher.update(block)
            sent += len(block)
            yield block

    return gen  # type: ignore[return-value]


async def test_large_request_body_is_streamed_not_buffered(gateway, upstream, make_token):
    size = 50 * MB
    sent = hashlib.sha256()
    body = generated_body(size, sent)
    async with PeakRss() as rss, aiohttp.ClientSession() as s, s.post(
        gateway.url + "/api/orders/upload", data=body(),
        headers={"Authorization": "Bearer " + make_token(scope="orders:write"),
                 "Content-Length": str(size)},
    ) as r:
        assert r.status == 200
        echo = await r.json()
    assert echo["body_bytes"] == size
    assert echo["body_sha256"] == sent.hexdigest()
    hit = upstream.hits[0]
    assert [v for k, v in hit.headers if k.lower() == "content-length"] == [str(size)]
    assert rss.growth < 20 * MB, f"RSS grew by {rss.growth / MB:.1f} MB for a 50 MB body"


async def test_chunked_request_body_arrives_intact(gateway, upstream):
    pieces = [b"a", b"bc" * 1000, os.urandom(70_000), b"", b"tail\r\n0\r\n\r\n"]

    async def gen() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece
            await asyncio.sleep(0)

    async with aiohttp.ClientSession() as s, s.put(gateway.url + "/public/up", data=gen()) as r:
        assert r.status == 200
        echo = await r.json()
    whole = b"".join(pieces)
    assert echo["body_bytes"] == len(whole)
    assert echo["body_sha256"] == hashlib.sha256(whole).hexdigest()
    hit = upstream.hits[0]
    assert [v for k, v in hit.headers if k.lower() == "transfer-encoding"] == ["chunked"]
    assert [v for k, v in hit.headers if k.lower() == "content-length"] == []


async def test_raw_chunked_request_with_extensions_and_trailers(gateway, upstream):
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(gateway.url))
    try:
        writer.write(
            request_bytes("POST /public/raw HTTP/1.1", "Host: localhost",
                          "Transfer-Encoding: chunked", "Trailer: X-Sum")
            + b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 1\r\n\r\n"
        )
        response = await read_response(reader)
    finally:
        writer.close()
    assert response.status == 200
    assert response.json()["body_sha256"] == hashlib.sha256(b"hello world").hexdigest()
    assert [k.lower() for k, _ in upstream.hits[0].headers].count("trailer") == 0


# -- clients going away ---------------------------------------------------------------


async def test_client_leaving_mid_response_frees_the_request(gateway, upstream):
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(gateway.url))
    writer.write(request_bytes("GET /public/s?_behave=stream&chunks=20&delay=0.05 HTTP/1.1",
                               "Host: localhost"))
    await reader.readuntil(b"chunk-0\n")
    assert gateway.sample("gateway_requests_in_flight") == 1
    writer.close()
    await eventually(lambda: gateway.sample("gateway_requests_in_flight") == 0)
    async with aiohttp.ClientSession() as s, s.get(gateway.url + "/status") as r:
        assert r.status == 200


async def test_client_leaving_mid_upload_frees_the_request(gateway, upstream):
    _reader, writer = await asyncio.open_connection("127.0.0.1", port_of(gateway.url))
    writer.write(request_bytes("POST /public/partial HTTP/1.1", "Host: localhost",
                               "Content-Length: 100000") + b"x" * 1000)
    await writer.drain()
    await eventually(lambda: gateway.sample("gateway_requests_in_flight") == 1)
    writer.close()
    await eventually(lambda: gateway.sample("gateway_requests_in_flight") == 0)
    async with aiohttp.ClientSession() as s, s.get(gateway.url + "/status") as r:
        assert r.status == 200


@pytest.mark.parametrize("target", [
    pytest.param("/public/s?_behave=stream&chunks=2&delay=0.8", id="while the stream is silent"),
    pytest.param("/public/s?_behave=slow&delay=0.8", id="while waiting for response headers"),
])
async def test_client_leaving_while_the_upstream_is_silent_frees_the_request(gateway, upstream,
                                                                           target):
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(gateway.url))
    writer.write(request_bytes(f"GET {target} HTTP/1.1", "Host: localhost"))
    if "stream" in target:
        await reader.readuntil(b"chunk-0\n")
    else:
        await eventually(lambda: len(upstream.hits) == 1)
    writer.close()
    await eventually(lambda: gateway.sample("gateway_requests_in_flight") == 0, timeout=0.4)
    assert gateway.sample("gateway_requests_total", {
        "route": "public", "method": "GET", "code": "499"}) == 1
