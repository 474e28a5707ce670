"""The access log: configured fields, sampling, per-route query redaction, never a token."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from gateway.logs import JsonFormatter
from tests.fixtures.gateway import GatewayFactory, RunningGateway, base_config
from tests.fixtures.keys import KeyPair
from tests.fixtures.tokens import ISSUER, TokenFactory
from tests.fixtures.upstream import Upstream

pytestmark = pytest.mark.integration


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def config(tmp_path: Path, upstream: Upstream, rsa_key: KeyPair, ec_key: KeyPair
           ) -> dict[str, Any]:
    return base_config(tmp_path, upstream, rsa_key, ec_key)


async def send(http: aiohttp.ClientSession, gw: RunningGateway, method: str, path: str,
               token: str | None = None, data: bytes | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    headers["User-Agent"] = "probe/1.0"
    async with http.request(method, gw.url + path, headers=headers, data=data) as resp:
        await resp.read()
    deadline = time.monotonic() + 5
    while gw.sample("gateway_requests_in_flight") != 0:  # its log line is written
        assert time.monotonic() < deadline
        await asyncio.sleep(0.001)
    return resp.status


def lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    formatter = JsonFormatter()
    return [json.loads(formatter.format(r)) for r in caplog.records if r.name == "gateway.access"]


META = {"time", "level", "logger", "message"}


async def test_the_default_line_tells_timing_bytes_and_identity(
    start_gateway: GatewayFactory, config: dict[str, Any], http: aiohttp.ClientSession,
    make_token: TokenFactory, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.access")
    gw = await start_gateway(config)
    token = make_token(scope="orders:write", client_id="web-app")
    assert await send(http, gw, "POST", "/api/orders?x=1", token, data=b"x" * 1000) == 200
    assert await send(http, gw, "GET", "/api/orders", token) == 403
    ok, refused = lines(caplog)
    assert set(ok) - META == {
        "request_id", "route", "method", "path", "status", "duration_ms", "upstream_ms",
        "bytes_in", "bytes_out", "client", "subject", "client_id", "issuer", "jti", "decision",
        "reason", "detail",
    }
    assert (ok["route"], ok["path"], ok["status"], ok["bytes_in"]) == (
        "orders-write", "/api/orders", 200, 1000)
    assert ok["upstream_ms"] > 0 and ok["duration_ms"] >= ok["upstream_ms"]
    assert ok["bytes_out"] > 200  # status line, headers and the echoed JSON
    assert (ok["client"], ok["client_id"], ok["issuer"]) == ("127.0.0.1", "web-app", ISSUER)
    assert (refused["status"], refused["upstream_ms"], refused["reason"]) == (
        403, None, "insufficient_scope")
    assert 0 < refused["bytes_out"] < ok["bytes_out"]


async def test_fields_are_configurable(
    start_gateway: GatewayFactory, config: dict[str, Any], http: aiohttp.ClientSession,
    make_token: TokenFactory, caplog: pytest.LogCaptureFixture, upstream: Upstream,
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.access")
    config["access_log"] = {"fields": ["status", "route", "host", "user_agent", "scopes",
                                       "upstream"]}
    gw = await start_gateway(config)
    await send(http, gw, "GET", "/api/orders/1", make_token(scope="orders:read b"))
    (line,) = lines(caplog)
    assert {k: v for k, v in line.items() if k not in META} == {
        "status": 200, "route": "orders-read", "host": gw.url.removeprefix("http://"),
        "user_agent": "probe/1.0", "scopes": "b orders:read", "upstream": upstream.url,
    }


async def test_sampling_keeps_every_refusal_and_error(
    start_gateway: GatewayFactory, config: dict[str, Any], http: aiohttp.ClientSession,
    make_token: TokenFactory, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.access")
    config["access_log"] = {"sample": 0.0, "fields": ["status", "reason"]}
    config["routes"][0]["enforce"] = False   # orders-read in shadow mode
    gw = await start_gateway(config)
    good = make_token(scope="orders:read")
    statuses = [
        await send(http, gw, "GET", "/status"),              # 200: sampled out
        await send(http, gw, "GET", "/api/reports/1", good),  # 403: logged
        await send(http, gw, "GET", "/nothing"),              # 404: logged
        await send(http, gw, "GET", "/api/orders/1"),         # 200 shadow_deny: logged
        await send(http, gw, "GET", "/api/orders/1", good),   # 200 allowed: sampled out
    ]
    assert statuses == [200, 403, 404, 200, 200]
    assert [(x["status"], x["reason"]) for x in lines(caplog)] == [
        (403, "insufficient_scope"), (404, None), (200, "missing_token")]


async def test_query_strings_per_route_and_never_a_token(
    start_gateway: GatewayFactory, config: dict[str, Any], http: aiohttp.ClientSession,
    make_token: TokenFactory, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.access")
    config["access_log"] = {"query": "keep", "fields": ["route"]}
    for route in config["routes"]:
        if route["name"] == "public":
            route["log_query"] = "redact"
        if route["name"] == "status":
            route["log_query"] = "drop"
    gw = await start_gateway(config)
    jwt = make_token()
    await send(http, gw, "GET", f"/api/orders?page=2&access_token={jwt}&q={jwt}&flag",
               make_token())
    await send(http, gw, "GET", "/public/p?email=a%40b.c&page=2")
    await send(http, gw, "GET", "/status?x=1")
    await send(http, gw, "GET", "/nothing?page=3")  # unmatched: the access_log default
    assert [(x["route"], x.get("query")) for x in lines(caplog)] == [
        ("orders-read", "page=2&access_token=REDACTED&q=REDACTED&flag"),
        ("public", "email=REDACTED&page=REDACTED"),
        ("status", None),
        ("unmatched", "page=3"),
    ]
    assert jwt not in caplog.text


async def test_the_access_log_can_be_switched_off_and_on_by_a_reload(
    start_gateway: GatewayFactory, config: dict[str, Any], http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.access")
    config["access_log"] = {"enabled": False}
    gw = await start_gateway(config)
    await send(http, gw, "GET", "/nothing")
    assert lines(caplog) == []
    config["access_log"] = {"enabled": True}
    gw.config_path.write_text(yaml.safe_dump(config))
    assert (await gw.server.reload()).result == "success"
    await send(http, gw, "GET", "/nothing")
    assert len(lines(caplog)) == 1
