"""Path rewrites, Host, header edits, the token, trace context and trusted proxies."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.fixtures.gateway import base_config

pytestmark = pytest.mark.integration

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
async def rewriting(start_gateway, tmp_path, upstream, rsa_key, ec_key):
    config = base_config(tmp_path, upstream, rsa_key, ec_key)
    config["routes"] += [
        {"name": "strip", "match": {"path_prefix": "/svc/orders"}, "upstream": upstream.url,
         "auth": "none", "strip_prefix": True},
        {"name": "strip-part", "match": {"path_prefix": "/edge/api/users"},
         "upstream": upstream.url + "/internal", "auth": "none", "strip_prefix": "/edge"},
        {"name": "rewrite", "match": {"path_prefix": "/old/api"}, "upstream": upstream.url,
         "auth": "none", "rewrite_prefix": "/new/api"},
        {"name": "host", "match": {"path_prefix": "/host"}, "upstream": upstream.url,
         "auth": "none", "preserve_host": True},
        {"name": "fixed-host", "match": {"path_prefix": "/fixed"}, "upstream": upstream.url,
         "auth": "none", "host_header": "Orders.Internal:8443"},
        {"name": "edits", "match": {"path_prefix": "/edits"}, "upstream": upstream.url,
         "require": {"scopes": ["orders:read"]}, "forward_token": False,
         "request_headers": {"remove": ["Cookie"], "set": {"X-Env": "prod"},
                             "add": {"X-Tag": "gw"}},
         "response_headers": {"remove": ["X-Upstream"], "set": {"Cache-Control": "no-store"},
                              "add": {"X-Served-By": "gateway"}}},
    ]
    return await start_gateway(config)


async def echo(url: str, headers: dict[str, str] | None = None) -> tuple[Any, Any]:
    async with aiohttp.ClientSession() as s, s.get(url, headers=headers or {}) as r:
        assert r.status == 200, await r.text()
        return await r.json(), r.headers


def upstream_headers(body: Any) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in body["headers"]:
        out.setdefault(name.lower(), []).append(value)
    return out


@pytest.mark.parametrize(("path", "forwarded"), [
    pytest.param("/svc/orders/7?x=1", "/7?x=1", id="strip_prefix true removes the matched prefix"),
    pytest.param("/svc/orders", "/", id="strip_prefix of the bare prefix forwards /"),
    pytest.param("/edge/api/users/9", "/internal/api/users/9",
                 id="strip_prefix path removes only that part, under the upstream's path"),
    pytest.param("/old/api/items/3", "/new/api/items/3", id="rewrite_prefix replaces the prefix"),
])
async def test_path_rewrites(rewriting, upstream, path, forwarded):
    body, _ = await echo(rewriting.url + path)
    assert body["raw_path"] == forwarded


async def test_preserve_host_and_host_header(rewriting, upstream):
    body, _ = await echo(rewriting.url + "/host/x", {"Host": "api.example.com"})
    assert upstream_headers(body)["host"] == ["api.example.com"]
    body, _ = await echo(rewriting.url + "/public/x", {"Host": "api.example.com"})
    assert upstream_headers(body)["host"] == [f"127.0.0.1:{upstream.port}"]
    body, _ = await echo(rewriting.url + "/fixed/x", {"Host": "api.example.com"})
    assert upstream_headers(body)["host"] == ["orders.internal:8443"]
    assert upstream_headers(body)["x-forwarded-host"] == ["api.example.com"]


async def test_header_edits_and_forward_token_false(rewriting, upstream, make_token):
    token = make_token(scope="orders:read")
    body, headers = await echo(rewriting.url + "/edits/x", {
        "Authorization": f"Bearer {token}", "Cookie": "session=1", "X-Env": "dev",
        "X-Tag": "client",
    })
    seen = upstream_headers(body)
    assert "authorization" not in seen  # forward_token: false
    assert "cookie" not in seen
    assert seen["x-env"] == ["prod"]
    assert seen["x-tag"] == ["client", "gw"]
    assert seen["x-auth-subject"] == ["alice"]  # the identity still goes upstream
    assert "X-Upstream" not in headers
    assert headers["Cache-Control"] == "no-store"
    assert headers["X-Served-By"] == "gateway"


async def test_token_is_forwarded_by_default_and_trace_context_passes(gateway, upstream,
                                                                     make_token):
    token = make_token(scope="orders:read")
    body, _ = await echo(gateway.url + "/api/orders/1", {
        "Authorization": f"Bearer {token}", "traceparent": TRACEPARENT,
        "tracestate": "vendor=1",
    })
    seen = upstream_headers(body)
    assert seen["authorization"] == [f"Bearer {token}"]
    assert seen["traceparent"] == [TRACEPARENT]
    assert seen["tracestate"] == ["vendor=1"]


CLIENT_FORWARDING = {
    "X-Forwarded-For": "203.0.113.9, 10.0.0.2",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "shop.example.com",
    "X-Real-IP": "203.0.113.9",
    "Forwarded": "for=203.0.113.9;proto=https",
}


@pytest.mark.parametrize(("trusted", "expected"), [
    pytest.param(["127.0.0.0/8"], {
        "x-forwarded-for": ["203.0.113.9, 10.0.0.2, 127.0.0.1"],
        "x-forwarded-proto": ["https"],
        "x-forwarded-host": ["shop.example.com"],
        "x-real-ip": ["203.0.113.9"],
        "forwarded": ['for=203.0.113.9;proto=https, for=127.0.0.1;proto=http;host="gw.test"'],
    }, id="a trusted peer's forwarding headers are kept and extended"),
    pytest.param(["10.0.0.0/8"], {
        "x-forwarded-for": ["127.0.0.1"],
        "x-forwarded-proto": ["http"],
        "x-forwarded-host": ["gw.test"],
        "forwarded": ['for=127.0.0.1;proto=http;host="gw.test"'],
    }, id="an untrusted peer's forwarding headers are replaced"),
])
async def test_trusted_proxies(start_gateway, tmp_path, upstream, rsa_key, ec_key,
                               trusted, expected):
    config = base_config(tmp_path, upstream, rsa_key, ec_key)
    config["server"]["trusted_proxies"] = trusted
    gw = await start_gateway(config)
    body, _ = await echo(gw.url + "/public/x", {**CLIENT_FORWARDING, "Host": "gw.test"})
    seen = upstream_headers(body)
    for name, values in expected.items():
        assert seen.get(name) == values, name
    if "x-real-ip" not in expected:
        assert "x-real-ip" not in seen
