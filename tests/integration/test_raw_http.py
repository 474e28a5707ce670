"""Requests written byte for byte on a socket: what aiohttp's parser refuses never reaches us.

The aiohttp client normalises what it sends (request line, header framing), so these tests
talk to the gateway over plain asyncio streams (tests/fixtures/raw.py).
"""

from __future__ import annotations

import asyncio

import pytest

from tests.fixtures.raw import port_of, raw_exchange, read_response, request_bytes

pytestmark = pytest.mark.integration


# -- requests refused by the HTTP parser, before any middleware ---------------------------

PARSER_REJECTS = [
    pytest.param(
        request_bytes("POST /public/x HTTP/1.1", "Host: localhost", "Content-Length: 5",
                      "Content-Length: 5", body=b"hello"),
        id="duplicate Content-Length with equal values is refused",
    ),
    pytest.param(
        request_bytes("POST /public/x HTTP/1.1", "Host: localhost", "Content-Length: 5",
                      "Content-Length: 50", body=b"hello"),
        id="duplicate Content-Length with different values is refused",
    ),
    pytest.param(
        request_bytes("POST /public/x HTTP/1.1", "Host: localhost", "Content-Length: 5",
                      "Transfer-Encoding: chunked", body=b"5\r\nhello\r\n0\r\n\r\n"),
        id="Content-Length together with Transfer-Encoding is refused (request smuggling)",
    ),
    pytest.param(
        request_bytes("POST /public/x HTTP/1.1", "Host: localhost",
                      "Transfer-Encoding: identity", body=b"hello"),
        id="Transfer-Encoding that does not end in chunked is refused",
    ),
    pytest.param(
        request_bytes("GET /public/" + "a" * 8200 + " HTTP/1.1", "Host: localhost"),
        id="request line over 8190 bytes is refused",
    ),
    pytest.param(
        request_bytes("GET /public/x HTTP/1.1", "Host: localhost", "Host: evil.example"),
        id="duplicate Host header is refused",
    ),
    pytest.param(
        request_bytes("GET /public/x HTTP/1.1", "Host: localhost", "X-Bad Name: 1"),
        id="header name with a space is refused",
    ),
    pytest.param(
        request_bytes("GET /public/x HTTP/1.1", "Host: localhost", " X-Folded: 1"),
        id="obsolete line folding is refused",
    ),
    pytest.param(
        b"GET /public/x HTTP/1.1\nHost: localhost\n\n",
        id="bare LF line endings are refused",
    ),
    pytest.param(
        request_bytes("GET /public/x HTTP/1.1", "Host: localhost", "X-Nul: a\x00b"),
        id="NUL in a header value is refused",
    ),
    pytest.param(
        request_bytes("GET /public/x HTTP/9.9", "Host: localhost"),
        id="unknown HTTP version is refused",
    ),
]


@pytest.mark.parametrize("data", PARSER_REJECTS)
async def test_parser_rejects_never_reach_upstream(gateway, upstream, data):
    response = await raw_exchange(port_of(gateway.url), data)
    assert response.status == 400
    assert upstream.hits == []
    # Nothing got past the parser: no request was routed or counted.
    assert gateway.sample("gateway_requests_total", {"route": "public", "method": "GET",
                                                     "code": "200"}) == 0
    assert gateway.sample("gateway_requests_total", {"route": "public", "method": "POST",
                                                     "code": "200"}) == 0


async def test_connection_close_gets_its_answer_then_close(gateway, upstream):
    response = await raw_exchange(
        port_of(gateway.url),
        request_bytes("GET /public/x?_behave=echo HTTP/1.1", "Host: localhost",
                      "Connection: close"),
    )
    assert response.status == 200
    assert response.json()["raw_path"] == "/public/x?_behave=echo"
    assert response.closed
    # The client's Connection: close is hop-by-hop: it is not forwarded.
    assert [n for n, _ in upstream.hits[0].headers if n.lower() == "connection"] == []


async def test_http10_request_is_served(gateway, upstream):
    response = await raw_exchange(
        port_of(gateway.url), request_bytes("GET /public/ten HTTP/1.0", "Host: localhost"),
    )
    assert response.status == 200
    assert response.version == "HTTP/1.0"
    assert response.json()["raw_path"] == "/public/ten"
    assert response.closed
    assert upstream.paths() == ["/public/ten"]


async def test_http10_request_without_host_is_served(gateway, upstream):
    response = await raw_exchange(port_of(gateway.url), b"GET /public/nohost HTTP/1.0\r\n\r\n")
    assert response.status == 200
    assert upstream.paths() == ["/public/nohost"]


async def test_keep_alive_serves_two_requests_on_one_connection(gateway, upstream):
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(gateway.url))
    try:
        writer.write(request_bytes("GET /public/one HTTP/1.1", "Host: localhost"))
        first = await read_response(reader)
        writer.write(request_bytes("GET /public/two HTTP/1.1", "Host: localhost"))
        second = await read_response(reader)
    finally:
        writer.close()
        await writer.wait_closed()
    assert (first.status, second.status) == (200, 200)
    assert not first.closed
    assert upstream.paths() == ["/public/one", "/public/two"]


async def test_pipelined_requests_are_answered_in_order(gateway, upstream):
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(gateway.url))
    try:
        writer.write(
            request_bytes("GET /public/p1 HTTP/1.1", "Host: localhost")
            + request_bytes("GET /public/p2 HTTP/1.1", "Host: localhost", "Connection: close")
        )
        first = await read_response(reader)
        second = await read_response(reader)
    finally:
        writer.close()
        await writer.wait_closed()
    assert [first.json()["raw_path"], second.json()["raw_path"]] == ["/public/p1", "/public/p2"]


async def test_expect_100_continue_body_is_forwarded(gateway, upstream):
    body = b"x" * 1000
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(gateway.url))
    try:
        writer.write(request_bytes("POST /public/expect HTTP/1.1", "Host: localhost",
                                   "Content-Length: 1000", "Expect: 100-continue"))
        interim = await read_response(reader)
        assert interim.status == 100
        writer.write(body)
        final = await read_response(reader)
    finally:
        writer.close()
        await writer.wait_closed()
    assert final.status == 200
    assert final.json()["body_bytes"] == 1000


async def test_unknown_transfer_coding_is_not_forwarded(gateway, upstream):
    response = await raw_exchange(
        port_of(gateway.url),
        request_bytes("POST /public/x HTTP/1.1", "Host: localhost",
                      "Transfer-Encoding: gzip, chunked", body=b"0\r\n\r\n"),
    )
    assert response.status == 501
    assert upstream.hits == []
