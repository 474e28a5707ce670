"""Forwarding fidelity and upstream failures, against the echo upstream and its hit log."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import os
import socket
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from tests.fixtures.gateway import base_config
from tests.fixtures.raw import port_of, raw_exchange, request_bytes

pytestmark = pytest.mark.integration

GATEWAY_ADDED = {"host", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host",
                 "forwarded", "via", "x-request-id"}


def header_names(hit) -> list[str]:
    return [name.lower() for name, _ in hit.headers]


def header_values(hit, name: str) -> list[str]:
    return [v for k, v in hit.headers if k.lower() == name.lower()]


def client() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(auto_decompress=False)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- method, path, query, body -----------------------------------------------------------


async def test_get_forwards_method_canonical_path_and_raw_query(gateway, upstream):
    target = "/public//a/./b/../c?a=%2F&b=..&c=%zz&d=a+b&e=/../admin&&f&g=%2e%2E"
    response = await raw_exchange(
        port_of(gateway.url), request_bytes(f"GET {target} HTTP/1.1", "Host: localhost"))
    assert response.status == 200
    assert upstream.paths() == ["/public/a/c?a=%2F&b=..&c=%zz&d=a+b&e=/../admin&&f&g=%2e%2E"]
    assert upstream.hits[0].method == "GET"


async def test_empty_query_is_forwarded_as_no_query(gateway, upstream):
    response = await raw_exchange(
        port_of(gateway.url), request_bytes("GET /public/q? HTTP/1.1", "Host: localhost"))
    assert response.status == 200
    assert upstream.paths() == ["/public/q"]


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"],
                         ids=lambda m: f"{m} body is forwarded")
async def test_body_bytes_are_forwarded_unchanged(gateway, upstream, make_token, method):
    body = os.urandom(1024 * 1024 + 7)
    async with client() as s, s.request(
        method, gateway.url + "/api/orders/1", data=body,
        headers={**bearer(make_token(scope="orders:write")),
                 "Content-Type": "application/octet-stream"},
    ) as r:
        assert r.status == 200
        echo = await r.json()
    assert echo["method"] == method
    assert echo["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert echo["body_bytes"] == len(body)
    hit = upstream.hits[0]
    assert header_values(hit, "Content-Length") == [str(len(body))]
    assert header_values(hit, "Transfer-Encoding") == []
    assert header_values(hit, "Content-Type") == ["application/octet-stream"]


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"],
                         ids=lambda m: f"{m} is forwarded without body framing")
async def test_request_without_body_is_forwarded_without_body(gateway, upstream, method):
    response = await raw_exchange(
        port_of(gateway.url),
        request_bytes(f"{method} /public/nobody HTTP/1.1", "Host: localhost"),
        head=method == "HEAD",
    )
    assert response.status == 200
    hit = upstream.hits[0]
    assert hit.method == method
    assert hit.body_bytes == 0
    assert header_values(hit, "Transfer-Encoding") == []
    assert header_values(hit, "Content-Length") == []


async def test_delete_without_body_is_forwarded_without_body(gateway, upstream, make_token):
    """aiohttp's client always adds ``Content-Length: 0`` to body-less requests of methods
    outside GET/HEAD/OPTIONS/TRACE (not suppressible by skip_auto_headers): still no body and
    no chunked framing."""
    response = await raw_exchange(
        port_of(gateway.url),
        request_bytes("DELETE /api/orders/1 HTTP/1.1", "Host: localhost",
                      f"Authorization: Bearer {make_token(scope='orders:write')}"),
    )
    assert response.status == 200
    hit = upstream.hits[0]
    assert (hit.method, hit.body_bytes) == ("DELETE", 0)
    assert header_values(hit, "Transfer-Encoding") == []
    assert header_values(hit, "Content-Length") == ["0"]


async def test_empty_body_with_content_length_zero_is_forwarded(gateway, upstream, make_token):
    response = await raw_exchange(
        port_of(gateway.url),
        request_bytes("POST /api/orders HTTP/1.1", "Host: localhost", "Content-Length: 0",
                      f"Authorization: Bearer {make_token(scope='orders:write')}"),
    )
    assert response.status == 200
    hit = upstream.hits[0]
    assert hit.body_bytes == 0
    assert header_values(hit, "Content-Length") == ["0"]
    assert header_values(hit, "Transfer-Encoding") == []


async def test_upstream_base_path_is_a_prefix(start_gateway, tmp_path, upstream, rsa_key,
                                              ec_key, make_token):
    config = base_config(tmp_path, upstream, rsa_key, ec_key)
    config["routes"][0]["upstream"] = upstream.url + "/base"
    config["routes"][4]["upstream"] = upstream.url + "/base/v2/"
    gw = await start_gateway(config)
    async with client() as s:
        async with s.get(URL(gw.url + "/api/orders/1?x=%2F", encoded=True),
                         headers=bearer(make_token())) as r:
            assert r.status == 200
        async with s.get(gw.url + "/public/p") as r:
            assert r.status == 200
    assert upstream.paths() == ["/base/api/orders/1?x=%2F", "/base/v2/public/p"]


# -- request headers -----------------------------------------------------------------------


async def test_gateway_adds_only_its_own_headers(gateway, upstream):
    """A bare request: the upstream sees Host, forwarding headers, Via and the request id only.

    No User-Agent, Accept, Accept-Encoding or Content-Type from the gateway's client library.
    """
    response = await raw_exchange(
        port_of(gateway.url),
        request_bytes("GET /public/bare HTTP/1.1", "Host: localhost:8080"),
    )
    assert response.status == 200
    hit = upstream.hits[0]
    assert sorted(header_names(hit)) == sorted(GATEWAY_ADDED)
    assert dict((k.lower(), v) for k, v in hit.headers) == {
        "host": f"127.0.0.1:{upstream.port}",
        "x-forwarded-for": "127.0.0.1",
        "x-forwarded-proto": "http",
        "x-forwarded-host": "localhost:8080",
        "forwarded": 'for=127.0.0.1;proto=http;host="localhost:8080"',
        "via": "1.1 oauth2-gateway",
        "x-request-id": response.headers["X-Request-ID"],
    }


async def test_client_headers_pass_in_order_with_duplicates(gateway, upstream):
    response = await raw_exchange(
        port_of(gateway.url),
        request_bytes("GET /public/h HTTP/1.1", "Host: localhost", "Accept: a/b",
                      "X-Custom: one", "accept: c/d", "User-Agent: curl/8", "Cookie: a=1",
                      "Accept-Encoding: gzip, br"),
    )
    assert response.status == 200
    # (aiohttp's parser gives well-known names their canonical case: compare lower-cased)
    end_to_end = [(k.lower(), v) for k, v in upstream.hits[0].headers
                  if k.lower() not in GATEWAY_ADDED]
    assert end_to_end == [("accept", "a/b"), ("x-custom", "one"), ("accept", "c/d"),
                          ("user-agent", "curl/8"), ("cookie", "a=1"),
                          ("accept-encoding", "gzip, br")]


async def test_forwarding_headers_from_the_client_are_replaced(gateway, upstream):
    response = await raw_exchange(
        port_of(gateway.url),
        request_bytes(
            "GET /public/f HTTP/1.1", "Host: gw.example", "X-Forwarded-For: 6.6.6.6",
            "X-Forwarded-Proto: https", "X-Forwarded-Host: evil.example",
            "Forwarded: for=6.6.6.6;host=evil.example", "X-Real-IP: 6.6.6.6",
            "x_forwarded_for: 6.6.6.7", "X-FORWARDED-PORT: 443", "X-Forwarded-Prefix: /evil",
            "Via: 1.0 client-proxy",
        ),
    )
    assert response.status == 200
    hit = upstream.hits[0]
    assert "6.6.6.6" not in str(hit.headers) and "6.6.6.7" not in str(hit.headers)
    assert "evil" not in str(hit.headers)
    assert header_values(hit, "X-Forwarded-For") == ["127.0.0.1"]
    assert header_values(hit, "X-Forwarded-Proto") == ["http"]
    assert header_values(hit, "X-Forwarded-Host") == ["gw.example"]
    assert header_values(hit, "Forwarded") == ['for=127.0.0.1;proto=http;host="gw.example"']
    assert header_values(hit, "Host") == [f"127.0.0.1:{upstream.port}"]
    assert header_values(hit, "Via") == ["1.0 client-proxy, 1.1 oauth2-gateway"]
    for name in ("X-Real-IP", "x_forwarded_for", "X-Forwarded-Port", "X-Forwarded-Prefix"):
        assert header_values(hit, name) == []


SPOOFED_IDENTITY = [
    "X-Auth-Subject: mallory", "x_auth_subject: mallory", "X-AUTH-SCOPES: admin",
    "x_auth_scopes: admin", "X-Auth-Client-Id: evil-app", "x-auth_client-id: evil-app",
    "X_AUTH_SUBJECT: mallory",
]


async def test_identity_headers_are_injected_and_client_copies_stripped(gateway, upstream,
                                                                        make_token):
    token = make_token(sub="alice", client_id="web-app", scope="orders:read reports:read")
    response = await raw_exchange(
        port_of(gateway.url),
        request_bytes("GET /api/orders/1 HTTP/1.1", "Host: localhost",
                      f"Authorization: Bearer {token}", *SPOOFED_IDENTITY),
    )
    assert response.status == 200
    hit = upstream.hits[0]
    identity = [(k, v) for k, v in hit.headers
                if k.lower().replace("_", "-").startswith("x-auth-")]
    assert identity == [("X-Auth-Subject", "alice"), ("X-Auth-Client-Id", "web-app"),
                        ("X-Auth-Scopes", "orders:read reports:read")]
    # The token itself is forwarded (the upstream may want it).
    assert header_values(hit, "Authorization") == [f"Bearer {token}"]


async def test_identity_headers_are_stripped_on_open_routes_and_none_added(gateway, upstream):
    response = await raw_exchange(
        port_of(gateway.url),
        request_bytes("GET /public/x HTTP/1.1", "Host: localhost", *SPOOFED_IDENTITY),
    )
    assert response.status == 200
    names = header_names(upstream.hits[0])
    assert [n for n in names if n.replace("_", "-").startswith("x-auth-")] == []


async def test_identity_header_names_are_configurable(start_gateway, tmp_path, upstream,
                                                      rsa_key, ec_key, make_token):
    config = base_config(tmp_path, upstream, rsa_key, ec_key)
    config["identity_headers"] = {"subject": "X-User", "client_id": None, "scopes": "X-Scopes",
                                  "issuer": "X-Issuer"}
    gw = await start_gateway(config)
    response = await raw_exchange(
        port_of(gw.url),
        request_bytes("GET /api/orders/1 HTTP/1.1", "Host: localhost",
                      f"Authorization: Bearer {make_token()}", "x_user: mallory",
                      "X-ISSUER: https://evil/", "X-Auth-Client-Id: kept-as-is"),
    )
    assert response.status == 200
    hit = upstream.hits[0]
    assert header_values(hit, "X-User") == ["alice"]
    assert header_values(hit, "x_user") == []
    assert header_values(hit, "X-Scopes") == ["orders:read"]
    assert header_values(hit, "X-Issuer") == ["https://idp.test/"]
    # Not an identity header any more: an ordinary client header.
    assert header_values(hit, "X-Auth-Client-Id") == ["kept-as-is"]


@pytest.mark.parametrize("claims", [
    pytest.param({"sub": "alice\r\nX-Admin: 1"}, id="CRLF in sub"),
    pytest.param({"sub": "alice\nX-Admin: 1"}, id="LF in sub"),
    pytest.param({"sub": "alice\rX"}, id="CR in sub"),
    pytest.param({"sub": "alice\x00"}, id="NUL in sub"),
    pytest.param({"client_id": "app\r\nX-Admin: 1"}, id="CRLF in client_id"),
    pytest.param({"sub": "al\x01ice"}, id="other control character in sub"),
    pytest.param({"sub": "al\x7fice"}, id="DEL in sub"),
    pytest.param({"scope": None, "scp": ["orders:read", "x\x1by"]},
                 id="control character in an scp list entry"),
])
async def test_claim_that_would_split_headers_is_refused(gateway, upstream, make_token,
                                                         claims):
    async with client() as s, s.get(gateway.url + "/api/orders/1",
                                    headers=bearer(make_token(**claims))) as r:
        assert r.status == 401
        assert r.headers["WWW-Authenticate"] == (
            'Bearer realm="gateway", error="invalid_token", '
            'error_description="token has an invalid claim"'
        )
        body = await r.json()
    assert body == {"error": "invalid_token", "error_description": "token has an invalid claim",
                    "request_id": r.headers["X-Request-ID"]}
    assert upstream.hits == []
    assert gateway.sample("gateway_auth_decisions_total", {
        "route": "orders-read", "result": "deny", "reason": "invalid_claim"}) == 1
    assert gateway.sample("gateway_auth_decisions_total", {
        "route": "orders-read", "result": "allow", "reason": "ok"}) == 0


@pytest.mark.parametrize("claims", [
    pytest.param({"sub": "ålice 日本"}, id="non-ASCII sub"),
    pytest.param({"sub": "al\tice"}, id="tab in sub"),
])
async def test_claim_with_ordinary_characters_is_forwarded(gateway, upstream, make_token,
                                                           claims):
    async with client() as s, s.get(gateway.url + "/api/orders/1",
                                    headers=bearer(make_token(**claims))) as r:
        assert r.status == 200
    assert header_values(upstream.hits[0], "X-Auth-Subject") == [claims["sub"]]


async def test_hop_by_hop_request_headers_are_removed(gateway, upstream):
    response = await raw_exchange(
        port_of(gateway.url),
        request_bytes(
            "GET /public/hop HTTP/1.1", "Host: localhost",
            "Connection: X-Drop-Me, keep-alive, x-also-dropped", "X-Drop-Me: 1",
            "X-Also-Dropped: 2", "Keep-Alive: timeout=5", "TE: trailers", "Trailer: X-T",
            "Upgrade: websocket", "Proxy-Authorization: Basic YTpi", "Proxy-Connection: keep-alive",
            "Proxy: http://evil.example", "X-Kept: yes",
        ),
    )
    assert response.status == 200
    hit = upstream.hits[0]
    assert header_values(hit, "X-Kept") == ["yes"]
    for name in ("Connection", "X-Drop-Me", "X-Also-Dropped", "Keep-Alive", "TE", "Trailer",
                 "Upgrade", "Proxy-Authorization", "Proxy-Connection", "Proxy"):
        assert header_values(hit, name) == [], name


async def test_hop_by_hop_response_headers_are_removed(gateway, upstream):
    async with client() as s, s.get(gateway.url + "/public/x?_behave=hopbyhop") as r:
        assert r.status == 200
        assert await r.read() == b"ok"
        assert r.headers["X-Kept"] == "yes"
        assert "X-Secret-Hop" not in r.headers
        assert "Keep-Alive" not in r.headers
        assert r.headers.get("Connection", "").lower() in ("", "keep-alive")


# -- request id ------------------------------------------------------------------------------


@pytest.mark.parametrize(("sent", "kept"), [
    pytest.param("req-123.abc:7_x", True, id="sane client id is kept"),
    pytest.param("a" * 128, True, id="128 characters is still sane"),
    pytest.param(None, False, id="absent id is generated"),
    pytest.param("a" * 300, False, id="300 characters is replaced"),
    pytest.param("has spaces in it", False, id="id with spaces is replaced"),
    pytest.param("semi;colon", False, id="id with a semicolon is replaced"),
    pytest.param("", False, id="empty id is replaced"),
])
async def test_request_id_is_taken_or_generated_passed_on_and_returned(gateway, upstream, sent,
                                                                       kept):
    headers = ["Host: localhost"] + ([f"X-Request-ID: {sent}"] if sent is not None else [])
    response = await raw_exchange(port_of(gateway.url),
                                  request_bytes("GET /public/rid HTTP/1.1", *headers))
    assert response.status == 200
    returned = response.headers.getall("X-Request-ID")
    assert len(returned) == 1
    if kept:
        assert returned == [sent]
    else:
        assert returned[0] != sent
        assert len(returned[0]) == 32 and int(returned[0], 16) >= 0
    assert header_values(upstream.hits[0], "X-Request-ID") == returned


async def test_request_id_on_gateway_errors(gateway, upstream):
    async with client() as s, s.get(gateway.url + "/api/orders/1",
                                    headers={"X-Request-ID": "err-42"}) as r:
        assert r.status == 401
        assert r.headers["X-Request-ID"] == "err-42"
        assert (await r.json())["request_id"] == "err-42"


# -- encodings, HEAD, status codes ------------------------------------------------------------


async def test_gzip_request_body_passes_through_compressed(gateway, upstream, make_token):
    raw = b'{"order": "' + b"x" * 10000 + b'"}'
    compressed = gzip.compress(raw)
    async with client() as s, s.post(
        gateway.url + "/api/orders", data=compressed,
        headers={**bearer(make_token(scope="orders:write")), "Content-Encoding": "gzip",
                 "Content-Type": "application/json"},
    ) as r:
        assert r.status == 200
        echo = await r.json()
    assert echo["body_sha256"] == hashlib.sha256(compressed).hexdigest()
    assert echo["body_bytes"] == len(compressed)
    assert header_values(upstream.hits[0], "Content-Encoding") == ["gzip"]


@pytest.fixture
async def gzip_upstream() -> AsyncIterator[str]:
    """An upstream answering with a gzip body (and two Set-Cookie headers)."""
    payload = gzip.compress(b"hello " * 1000)

    async def handler(request: web.Request) -> web.Response:
        return web.Response(
            body=payload,
            headers={"Content-Encoding": "gzip", "Content-Type": "text/plain",
                     "Set-Cookie": "a=1", "Vary": "Accept-Encoding"},
        )

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


async def test_gzip_response_passes_through_compressed(start_gateway, tmp_path, upstream,
                                                       rsa_key, ec_key, gzip_upstream):
    config = base_config(tmp_path, upstream, rsa_key, ec_key)
    config["routes"].append({"name": "zipped", "match": {"path_prefix": "/zipped"},
                             "upstream": gzip_upstream, "auth": "none"})
    gw = await start_gateway(config)
    expected = gzip.compress(b"hello " * 1000)
    async with client() as s, s.get(gw.url + "/zipped/x",
                                     headers={"Accept-Encoding": "gzip"}) as r:
        assert r.status == 200
        body = await r.read()
        assert r.headers["Content-Encoding"] == "gzip"
        assert r.headers["Content-Length"] == str(len(expected))
        assert r.headers.getall("Set-Cookie") == ["a=1"]
    assert body == expected
    assert gzip.decompress(body) == b"hello " * 1000


async def test_head_is_forwarded_and_answered_without_body(gateway, upstream, make_token):
    async with client() as s:
        async with s.get(gateway.url + "/api/orders/1", headers=bearer(make_token())) as r:
            get_length = len(await r.read())
        async with s.head(gateway.url + "/api/orders/1", headers=bearer(make_token())) as r:
            assert r.status == 200
            assert await r.read() == b""
            assert r.headers["X-Upstream"] == "echo"
            head_length = int(r.headers["Content-Length"])
    assert [h.method for h in upstream.hits] == ["GET", "HEAD"]
    # The echo differs only in the method name (GET vs HEAD) and the request id.
    assert abs(head_length - get_length) <= 1


@pytest.mark.parametrize("code", [200, 201, 202, 204, 301, 304, 400, 404, 409, 418, 500, 503],
                         ids=lambda c: f"upstream {c} passes through")
async def test_upstream_status_passes_through(gateway, upstream, code):
    async with client() as s, s.get(gateway.url + f"/public/x?_behave=status&code={code}",
                                    allow_redirects=False) as r:
        assert r.status == code
        body = await r.read()
    assert body == (b"" if code in (204, 304) else b"status\n")
    assert gateway.sample("gateway_requests_total", {
        "route": "public", "method": "GET", "code": str(code)}) == 1
    assert gateway.sample("gateway_upstream_errors_total", {
        "route": "public", "reason": "upstream_unavailable"}) == 0


async def test_upstream_redirect_is_not_followed(gateway, upstream):
    async with client() as s, s.get(gateway.url + "/public/x?_behave=status&code=302",
                                    allow_redirects=False) as r:
        assert r.status == 302
    assert len(upstream.hits) == 1


# -- upstream failures -------------------------------------------------------------------


async def test_upstream_refusing_connections_is_502(start_gateway, tmp_path, upstream, rsa_key,
                                                    ec_key):
    config = base_config(tmp_path, upstream, rsa_key, ec_key)
    config["routes"].append({"name": "dead", "match": {"path_prefix": "/dead"},
                             "upstream": f"http://127.0.0.1:{closed_port()}", "auth": "none"})
    gw = await start_gateway(config)
    async with client() as s, s.get(gw.url + "/dead/x", headers={"X-Request-ID": "r-502"}) as r:
        assert r.status == 502
        assert r.headers["Content-Type"] == "application/json"
        body = await r.json()
    assert body == {"error": "bad_gateway", "error_description": "upstream is unavailable",
                    "request_id": "r-502"}
    assert gw.sample("gateway_upstream_errors_total", {
        "route": "dead", "reason": "upstream_unavailable"}) == 1
    assert gw.sample("gateway_requests_total", {
        "route": "dead", "method": "GET", "code": "502"}) == 1


async def test_upstream_slower_than_the_route_timeout_is_504(gateway, upstream):
    started = time.perf_counter()
    async with client() as s, s.get(gateway.url + "/slow/x?_behave=slow&delay=1",
                                    headers={"X-Request-ID": "r-504"}) as r:
        elapsed = time.perf_counter() - started
        assert r.status == 504
        body = await r.json()
    assert 0.3 <= elapsed < 0.9
    assert body == {"error": "gateway_timeout", "error_description": "upstream timed out",
                    "request_id": "r-504"}
    assert gateway.sample("gateway_upstream_errors_total", {
        "route": "slow", "reason": "upstream_timeout"}) == 1
    assert gateway.sample("gateway_requests_total", {
        "route": "slow", "method": "GET", "code": "504"}) == 1


async def test_upstream_within_the_route_timeout_is_served(gateway, upstream):
    async with client() as s, s.get(gateway.url + "/slow/x?_behave=slow&delay=0.05") as r:
        assert r.status == 200
    assert gateway.sample("gateway_upstream_errors_total", {
        "route": "slow", "reason": "upstream_timeout"}) == 0


async def test_upstream_closing_mid_body_truncates_the_client_response(gateway, upstream):
    async with client() as s:
        async with s.get(gateway.url + "/public/x?_behave=abort") as r:
            assert r.status == 200
            assert r.headers["Content-Length"] == "1000"
            with pytest.raises(aiohttp.ClientPayloadError):
                await r.read()
        # The gateway stays healthy for the next request.
        async with s.get(gateway.url + "/status") as r:
            assert r.status == 200
    assert gateway.sample("gateway_upstream_errors_total", {
        "route": "public", "reason": "upstream_aborted"}) == 1
    assert upstream.paths() == ["/public/x?_behave=abort", "/status"]


async def test_aborted_response_is_truncated_on_the_wire(gateway, upstream):
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(gateway.url))
    try:
        writer.write(request_bytes("GET /public/x?_behave=abort HTTP/1.1", "Host: localhost"))
        head = await reader.readuntil(b"\r\n\r\n")
        async with asyncio.timeout(5):
            rest = await reader.read()  # until the gateway closes the connection
    finally:
        writer.close()
    assert head.startswith(b"HTTP/1.1 200")
    assert b"Content-Length: 1000" in head
    assert rest == b"x" * 100


async def test_upstream_failure_on_protected_route_is_counted_once(start_gateway, tmp_path,
                                                                   upstream, rsa_key, ec_key,
                                                                   make_token):
    config = base_config(tmp_path, upstream, rsa_key, ec_key)
    config["routes"][0]["upstream"] = f"http://127.0.0.1:{closed_port()}"
    gw = await start_gateway(config)
    async with client() as s, s.get(gw.url + "/api/orders/1", headers=bearer(make_token())) as r:
        assert r.status == 502
    assert gw.sample("gateway_upstream_errors_total", {
        "route": "orders-read", "reason": "upstream_unavailable"}) == 1
    assert gw.sample("gateway_auth_decisions_total", {
        "route": "orders-read", "result": "allow", "reason": "ok"}) == 1


@pytest.fixture
async def raw_upstream() -> AsyncIterator[tuple[str, list[bytes]]]:
    """A TCP upstream that answers every request head with the bytes in ``answers[0]``."""
    answers: list[bytes] = [b""]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(answers[0])
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", answers
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("answer", [
    pytest.param(b"", id="connection closed without a response"),
    pytest.param(b"NOT HTTP AT ALL\r\n\r\n", id="garbage instead of a status line"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
                 id="two Content-Length headers in the response"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"2\r\nok\r\n0\r\n\r\n", id="Content-Length with Transfer-Encoding"),
    pytest.param(b"HTTP/1.1 200 OK\r\nX-Bad: a\x01b\r\nContent-Length: 2\r\n\r\nok",
                 id="control character in a response header"),
    pytest.param(b"HTTP/1.1 200 O\x01K\r\nContent-Length: 2\r\n\r\nok",
                 id="control character in the reason phrase"),
    pytest.param(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\n\r\nraw", id="unsolicited protocol switch"),
    pytest.param(b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello",
                 id="204 with a body"),
])
async def test_broken_upstream_response_is_502(start_gateway, tmp_path, upstream, rsa_key,
                                               ec_key, raw_upstream, answer):
    url, answers = raw_upstream
    answers[0] = answer
    config = base_config(tmp_path, upstream, rsa_key, ec_key)
    config["routes"].append({"name": "raw", "match": {"path_prefix": "/raw"}, "upstream": url,
                             "auth": "none"})
    gw = await start_gateway(config)
    async with client() as s, s.get(gw.url + "/raw/x") as r:
        assert r.status == 502
        assert (await r.json())["error"] == "bad_gateway"
    assert gw.sample("gateway_upstream_errors_total", {
        "route": "raw", "reason": "upstream_unavailable"}) == 1


@pytest.mark.parametrize(("answer", "status", "reason", "body"), [
    pytest.param(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                 b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 200, "OK", b"ok",
                 id="interim 103 is skipped and the final answer relayed"),
    pytest.param(b"HTTP/1.1 299 Custom Thing\r\nContent-Length: 2\r\n\r\nok", 299,
                 "Custom Thing", b"ok", id="unknown status and its reason pass through"),
    pytest.param(b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok", 200, "", b"ok",
                 id="empty reason phrase passes through"),
])
async def test_unusual_but_valid_upstream_heads_are_relayed(start_gateway, tmp_path, upstream,
                                                            rsa_key, ec_key, raw_upstream,
                                                            answer, status, reason, body):
    url, answers = raw_upstream
    answers[0] = answer
    config = base_config(tmp_path, upstream, rsa_key, ec_key)
    config["routes"].append({"name": "raw", "match": {"path_prefix": "/raw"}, "upstream": url,
                             "auth": "none"})
    gw = await start_gateway(config)
    async with client() as s, s.get(gw.url + "/raw/x") as r:
        assert (r.status, r.reason) == (status, reason)
        assert await r.read() == body


async def test_close_delimited_upstream_body_is_relayed_whole(start_gateway, tmp_path, upstream,
                                                              rsa_key, ec_key, raw_upstream):
    url, answers = raw_upstream
    answers[0] = b"HTTP/1.0 200 OK\r\nX-Old: yes\r\n\r\n" + b"body until close" * 100
    config = base_config(tmp_path, upstream, rsa_key, ec_key)
    config["routes"].append({"name": "raw", "match": {"path_prefix": "/raw"}, "upstream": url,
                             "auth": "none"})
    gw = await start_gateway(config)
    async with client() as s, s.get(gw.url + "/raw/x") as r:
        assert r.status == 200
        assert r.headers["X-Old"] == "yes"
        assert await r.read() == b"body until close" * 100
    assert gw.sample("gateway_upstream_errors_total", {
        "route": "raw", "reason": "upstream_aborted"}) == 0
