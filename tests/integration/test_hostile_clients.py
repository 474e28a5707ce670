"""Hostile and idle clients, on raw sockets: the header-read deadline, the keep-alive idle
timeout, and the parser's limits. One slow client never affects the others."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
import pytest

from tests.fixtures.gateway import base_config
from tests.fixtures.raw import port_of, raw_exchange, read_response, request_bytes

pytestmark = pytest.mark.integration


@pytest.fixture
async def strict(start_gateway, tmp_path, upstream, rsa_key, ec_key):
    config = base_config(tmp_path, upstream, rsa_key, ec_key)
    config["server"].update(header_timeout="500ms", keepalive_timeout="1s")
    return await start_gateway(config)


async def read_all(reader: asyncio.StreamReader, timeout: float = 5.0) -> bytes:
    async with asyncio.timeout(timeout):
        with contextlib.suppress(ConnectionResetError):
            return await reader.read()
    return b""


async def test_a_client_dribbling_its_head_gets_408_while_others_are_served(strict, upstream):
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(strict.url))
    started = loop.time()
    writer.write(b"GET /public/dribble HTTP/1.1\r\nHost: localhost\r\n")

    async def dribble() -> None:
        with contextlib.suppress(ConnectionError):
            for _ in range(100):
                writer.write(b"X")  # one byte of a header name every 50 ms, never finished
                await writer.drain()
                await asyncio.sleep(0.05)

    dribbler = asyncio.create_task(dribble())
    try:
        # Meanwhile, others are served without delay.
        async with aiohttp.ClientSession() as s:
            for i in range(3):
                async with s.get(f"{strict.url}/public/other{i}") as r:
                    assert r.status == 200
        response = await read_response(reader, timeout=5)
        waited = loop.time() - started
    finally:
        dribbler.cancel()
        writer.close()
    assert response.status == 408
    assert response.headers["Connection"] == "close"
    assert 0.45 <= waited < 2.0
    assert upstream.paths() == ["/public/other0", "/public/other1", "/public/other2"]
    assert strict.sample("gateway_connections_dropped_total", {"reason": "header_timeout"}) == 1


async def test_a_connection_without_any_request_is_closed_after_the_header_timeout(
    strict, upstream
):
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(strict.url))
    started = loop.time()
    try:
        assert await read_all(reader) == b""  # closed without an answer
    finally:
        writer.close()
    assert 0.45 <= loop.time() - started < 2.0
    assert strict.sample("gateway_connections_dropped_total", {"reason": "idle_accept"}) == 1


async def test_the_header_deadline_does_not_cover_a_slow_body(strict, upstream):
    async def slow_body():  # type: ignore[no-untyped-def]
        for _ in range(8):
            yield b"x" * 100
            await asyncio.sleep(0.15)  # 1.2 s in all, the header timeout is 0.5 s

    async with aiohttp.ClientSession() as s, s.post(strict.url + "/public/up",
                                                   data=slow_body()) as r:
        assert r.status == 200
        assert (await r.json())["body_bytes"] == 800


async def test_a_kept_alive_connection_may_idle_longer_than_the_header_timeout(
    strict, upstream
):
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(strict.url))
    try:
        writer.write(request_bytes("GET /public/one HTTP/1.1", "Host: localhost"))
        assert (await read_response(reader)).status == 200
        await asyncio.sleep(0.7)  # idle past the header timeout, within the keep-alive one
        writer.write(request_bytes("GET /public/two HTTP/1.1", "Host: localhost"))
        assert (await read_response(reader)).status == 200
    finally:
        writer.close()


async def test_an_idle_kept_alive_connection_is_closed_after_the_keepalive_timeout(
    strict, upstream
):
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(strict.url))
    try:
        writer.write(request_bytes("GET /public/one HTTP/1.1", "Host: localhost"))
        response = await read_response(reader)
        assert response.status == 200 and not response.closed
        idle_since = loop.time()
        assert await read_all(reader) == b""
        assert 0.9 <= loop.time() - idle_since < 3.0
    finally:
        writer.close()


async def test_a_pipelined_partial_head_is_bounded_too(strict, upstream):
    """A head that starts in the same packet as the previous request: its deadline starts
    with its next byte (without one, the keep-alive timeout closes the connection)."""
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(strict.url))
    try:
        writer.write(request_bytes("GET /public/first HTTP/1.1", "Host: localhost")
                     + b"GET /public/second HTTP/1.1\r\nHost: loc")
        first = await read_response(reader)
        writer.write(b"a")
        started = loop.time()
        second = await read_response(reader)
    finally:
        writer.close()
    assert (first.status, second.status) == (200, 408)
    assert loop.time() - started < 2.0
    assert upstream.paths() == ["/public/first"]


@pytest.mark.parametrize("data", [
    pytest.param(request_bytes("GET /public/x HTTP/1.1", "Host: localhost",
                               "X-Big: " + "a" * 40_000),
                 id="a header line over the 32 KiB field limit is refused"),
    pytest.param(request_bytes("GET /public/x HTTP/1.1", "Host: localhost",
                               *(f"X-H{i}: {'b' * 100}" for i in range(1000))),
                 id="a head of 100 KiB in many lines is refused"),
])
async def test_oversized_heads_are_refused_before_the_gateway(strict, upstream, data):
    response = await raw_exchange(port_of(strict.url), data)
    assert response.status == 400
    assert upstream.hits == []
