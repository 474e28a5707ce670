"""CORS per route: preflights answered without a token, headers on every answer."""

from __future__ import annotations

import aiohttp
import pytest

from tests.fixtures.gateway import base_config

pytestmark = pytest.mark.integration

APP = "https://app.example.com"


@pytest.fixture
async def cors_gateway(start_gateway, tmp_path, upstream, rsa_key, ec_key):
    config = base_config(tmp_path, upstream, rsa_key, ec_key)
    for route in config["routes"]:
        if route["name"] in ("orders-read", "orders-write"):
            route["cors"] = {
                "allow_origins": [APP], "allow_methods": ["GET", "POST", "PUT"],
                "allow_headers": ["Authorization", "Content-Type"],
                "expose_headers": ["X-Request-ID"], "allow_credentials": True, "max_age": "10m",
            }
    config["routes"].append({"name": "open-cors", "match": {"path_prefix": "/open"},
                             "upstream": upstream.url, "auth": "none",
                             "cors": {"allow_origins": ["*"]}})
    return await start_gateway(config)


async def request(url: str, method: str, headers: dict[str, str]) -> aiohttp.ClientResponse:
    async with aiohttp.ClientSession() as s, s.request(method, url, headers=headers) as r:
        await r.read()
        return r


@pytest.mark.parametrize("asked", ["GET", "POST"])
async def test_preflight_is_answered_without_a_token(cors_gateway, upstream, asked):
    r = await request(cors_gateway.url + "/api/orders/1", "OPTIONS", {
        "Origin": APP, "Access-Control-Request-Method": asked,
        "Access-Control-Request-Headers": "authorization, content-type",
    })
    assert r.status == 204
    assert r.headers["Access-Control-Allow-Origin"] == APP
    assert r.headers["Access-Control-Allow-Credentials"] == "true"
    assert r.headers["Access-Control-Allow-Methods"] == "GET, POST, PUT"
    assert r.headers["Access-Control-Allow-Headers"] == "Authorization, Content-Type"
    assert r.headers["Access-Control-Max-Age"] == "600"
    assert upstream.hits == []


@pytest.mark.parametrize(("headers", "status"), [
    pytest.param({"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
                 403, id="preflight from another origin is refused"),
    pytest.param({"Origin": APP, "Access-Control-Request-Method": "GET",
                  "Access-Control-Request-Headers": "x-admin"},
                 403, id="preflight asking for a header not allowed is refused"),
])
async def test_refused_preflights(cors_gateway, upstream, headers, status):
    r = await request(cors_gateway.url + "/api/orders/1", "OPTIONS", headers)
    assert r.status == status
    assert "Access-Control-Allow-Origin" not in r.headers
    assert upstream.hits == []
    assert cors_gateway.sample("gateway_request_rejections_total",
                               {"route": "orders-read", "reason": "cors_rejected"}) == 1


async def test_preflight_on_a_route_without_cors_is_an_ordinary_request(cors_gateway,
                                                                        upstream):
    r = await request(cors_gateway.url + "/reports/1", "OPTIONS", {
        "Origin": APP, "Access-Control-Request-Method": "GET"})
    assert r.status == 404  # no CORS anywhere on this path: nothing special
    r = await request(cors_gateway.url + "/api/reports/1", "OPTIONS", {
        "Origin": APP, "Access-Control-Request-Method": "GET"})
    assert r.status == 401  # the route needs a token, OPTIONS included
    assert "Access-Control-Allow-Origin" not in r.headers


async def test_actual_requests_carry_cors_headers_errors_included(cors_gateway, upstream,
                                                                  make_token):
    refused = await request(cors_gateway.url + "/api/orders/1", "GET", {"Origin": APP})
    assert refused.status == 401
    assert refused.headers["Access-Control-Allow-Origin"] == APP
    assert refused.headers["Access-Control-Expose-Headers"] == "X-Request-ID"
    served = await request(cors_gateway.url + "/api/orders/1", "GET", {
        "Origin": APP, "Authorization": "Bearer " + make_token(scope="orders:read")})
    assert served.status == 200
    assert served.headers["Access-Control-Allow-Origin"] == APP
    assert "Origin" in served.headers.getall("Vary")
    other = await request(cors_gateway.url + "/api/orders/1", "GET", {
        "Origin": "https://evil.example",
        "Authorization": "Bearer " + make_token(scope="orders:read")})
    assert other.status == 200
    assert "Access-Control-Allow-Origin" not in other.headers


async def test_any_origin(cors_gateway, upstream):
    r = await request(cors_gateway.url + "/open/x", "GET", {"Origin": "https://a.example"})
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in r.headers
