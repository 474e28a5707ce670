"""``Expect: 100-continue`` is answered after the authorization decision, and a refused
request's body is never read: its connection is closed instead of drained.

aiohttp's own Expect handler answers 100 before any middleware runs; the gateway replaces it
(app.defer_expectation) and writes the 100 when it starts to read the body, i.e. once the
request is authorised and an upstream connection is open. Raw sockets: a client library would
hide which interim responses arrive.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from tests.fixtures.gateway import base_config
from tests.fixtures.raw import RawResponse, port_of, read_response, request_bytes

pytestmark = pytest.mark.integration


async def expect_exchange(port: int, head: bytes, body: bytes) -> tuple[RawResponse, bool, bool]:
    """Send a head with Expect: 100-continue; send the body only when 100 arrives.

    Returns (final response, whether a 100 came first, whether the connection was closed).
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        first = await read_response(reader)
        continued = first.status == 100
        if continued:
            writer.write(body)
            first = await read_response(reader)
        async with asyncio.timeout(2):
            closed = await reader.read() == b""
        return first, continued, closed
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def post_head(path: str, *extra: str, length: int = 1000) -> bytes:
    return request_bytes(f"POST {path} HTTP/1.1", "Host: localhost",
                         f"Content-Length: {length}", "Expect: 100-continue", *extra)


async def test_authorised_request_gets_100_then_its_body_is_forwarded(
    gateway, upstream, make_token
):
    token = make_token(scope="orders:write")
    head = post_head("/api/orders/1", f"Authorization: Bearer {token}", "Connection: close")
    response, continued, _ = await expect_exchange(port_of(gateway.url), head, b"x" * 1000)
    assert continued
    assert response.status == 200
    assert response.json()["body_bytes"] == 1000
    # The expectation was met by the gateway: it is not passed on.
    assert [n for n, _ in upstream.hits[0].headers if n.lower() == "expect"] == []


@pytest.mark.parametrize(("path", "extra", "status"), [
    pytest.param("/api/orders/1", (), 401, id="no token: 401 without 100"),
    pytest.param("/api/orders/1", ("Authorization: Bearer not-a-jwt",), 401,
                 id="bad token: 401 without 100"),
    pytest.param("/api/orders/1", ("Authorization: Bearer {read_token}",), 403,
                 id="token without the scope: 403 without 100"),
    pytest.param("/nowhere", (), 404, id="no route: 404 without 100"),
])
async def test_refused_request_never_gets_100_and_its_connection_closes(
    gateway, upstream, make_token, path, extra, status
):
    extra = tuple(e.format(read_token=make_token(scope="orders:read")) for e in extra)
    response, continued, closed = await expect_exchange(
        port_of(gateway.url), post_head(path, *extra), b"x" * 1000
    )
    assert not continued
    assert response.status == status
    assert response.headers["Connection"] == "close"
    assert closed
    assert upstream.hits == []


async def test_body_over_the_limit_is_refused_before_100(
    start_gateway, tmp_path, upstream, rsa_key, ec_key
):
    config = base_config(tmp_path, upstream, rsa_key, ec_key)
    config["server"]["max_body_size"] = "1KiB"
    gw = await start_gateway(config)
    response, continued, closed = await expect_exchange(
        port_of(gw.url), post_head("/public/big", length=5000), b"x" * 5000
    )
    assert (continued, response.status, closed) == (False, 413, True)
    assert response.json()["error"] == "invalid_request"
    assert upstream.hits == []
    assert gw.sample("gateway_request_rejections_total",
                     {"route": "public", "reason": "body_too_large"}) == 1


async def test_unknown_expectation_gets_417(gateway, upstream):
    head = request_bytes("POST /public/x HTTP/1.1", "Host: localhost", "Content-Length: 3",
                         "Expect: teapot")
    response, continued, _ = await expect_exchange(port_of(gateway.url), head, b"abc")
    assert (continued, response.status) == (False, 417)
    assert upstream.hits == []


async def test_unreachable_upstream_answers_502_without_asking_for_the_body(
    start_gateway, tmp_path, upstream, rsa_key, ec_key
):
    config = base_config(tmp_path, upstream, rsa_key, ec_key)
    config["routes"].append({"name": "down", "match": {"path_prefix": "/down"},
                             "upstream": "http://127.0.0.1:9", "auth": "none"})
    gw = await start_gateway(config)
    response, continued, closed = await expect_exchange(
        port_of(gw.url), post_head("/down/x"), b"x" * 1000
    )
    assert (continued, response.status, closed) == (False, 502, True)


async def test_refused_upload_is_not_drained_but_closed(gateway, upstream):
    """A client pushing a large body without a token: 401 at once, then the connection is
    closed; the gateway does not read (linger over) the rest of the upload."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(gateway.url))
    try:
        writer.write(request_bytes("POST /api/orders/1 HTTP/1.1", "Host: localhost",
                                   "Content-Length: 100000000") + b"x" * 65536)
        response = await read_response(reader)
        assert response.status == 401
        assert response.headers["Connection"] == "close"
        async with asyncio.timeout(2):
            # closed (a reset when our unread upload is still in the gateway's socket)
            with contextlib.suppress(ConnectionResetError):
                assert await reader.read() == b""
    finally:
        writer.close()
    assert upstream.hits == []


async def test_refused_request_without_a_body_keeps_its_connection(gateway, upstream):
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(gateway.url))
    try:
        writer.write(request_bytes("GET /api/orders/1 HTTP/1.1", "Host: localhost"))
        refused = await read_response(reader)
        writer.write(request_bytes("GET /public/after HTTP/1.1", "Host: localhost"))
        served = await read_response(reader)
    finally:
        writer.close()
    assert (refused.status, refused.closed, served.status) == (401, False, 200)
