"""Shadow mode (``enforce: false``): every check runs and is counted, the request is forwarded."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from gateway.auth.principal import Principal
from gateway.revocation.memory import MemoryRevocationStore
from gateway.revocation.store import Revocation, StoreError
from tests.fixtures.gateway import GatewayFactory, RunningGateway, base_config
from tests.fixtures.keys import KeyPair
from tests.fixtures.tokens import ISSUER, TokenFactory
from tests.fixtures.upstream import Upstream

pytestmark = pytest.mark.integration


class DownStore(MemoryRevocationStore):
    async def is_revoked(self, principal: Principal) -> bool:
        raise StoreError("backend down")


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def shadow_config(tmp_path: Any, upstream: Upstream, rsa_key: KeyPair, ec_key: KeyPair
                  ) -> dict[str, Any]:
    config = base_config(tmp_path, upstream, rsa_key, ec_key)
    for route in config["routes"]:
        if route["name"] == "orders-read":
            route["enforce"] = False
    return config


@pytest.fixture
async def shadow(
    start_gateway: GatewayFactory, tmp_path: Any, upstream: Upstream, rsa_key: KeyPair,
    ec_key: KeyPair,
) -> RunningGateway:
    gw = await start_gateway(shadow_config(tmp_path, upstream, rsa_key, ec_key))
    await gw.server.store.revoke(Revocation(
        "sub", ISSUER, "mallory", time.time() + 3600, time.time(), None, None, time.time()
    ))
    return gw


async def fetch(http: aiohttp.ClientSession, gw: RunningGateway, method: str, path: str,
                headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    async with http.request(method, gw.url + path, headers=headers) as resp:
        body = await resp.json() if resp.content_type == "application/json" else {}
    upstream_headers = dict(body.get("headers", [])) if "raw_path" in body else {}
    await settled(gw)
    return resp.status, upstream_headers


async def settled(gw: RunningGateway) -> None:
    """Until the request has left the middleware (its metrics and log line are written)."""
    deadline = time.monotonic() + 5
    while gw.sample("gateway_requests_in_flight") != 0:
        assert time.monotonic() < deadline, "requests still in flight"
        await asyncio.sleep(0.001)


CASES = [
    pytest.param({}, "missing_token", False, id="no token is forwarded without identity"),
    pytest.param({"scope": "orders:write"}, "insufficient_scope", True,
                 id="a valid token without the scope is forwarded with its identity"),
    pytest.param({"exp": 1000}, "expired", False,
                 id="an expired token is forwarded without identity"),
    pytest.param({"sub": "mallory"}, "revoked", False,
                 id="a revoked token is forwarded without identity"),
    pytest.param({"scope": "orders:read"}, "ok", True, id="a good token is simply allowed"),
]


@pytest.mark.parametrize(("claims", "reason", "identity"), CASES)
async def test_shadow_route_forwards_and_counts_what_it_would_have_refused(
    shadow: RunningGateway, http: aiohttp.ClientSession, make_token: TokenFactory,
    upstream: Upstream, caplog: pytest.LogCaptureFixture, claims: dict[str, Any], reason: str,
    identity: bool,
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.access")
    headers = {"X-Auth-Subject": "forged"}
    if claims:
        headers["Authorization"] = f"Bearer {make_token(**claims)}"
    status, seen = await fetch(http, shadow, "GET", "/api/orders/1", headers)
    assert status == 200 and len(upstream.hits) == 1
    assert seen.get("X-Auth-Subject") == (claims.get("sub", "alice") if identity else None)
    result = "allow" if reason == "ok" else "shadow_deny"
    assert shadow.sample("gateway_auth_decisions_total",
                         {"route": "orders-read", "result": result, "reason": reason}) == 1
    line = next(r for r in caplog.records if r.name == "gateway.access")
    assert (line.decision, line.reason) == (result, reason)  # type: ignore[attr-defined]


async def test_enforced_routes_next_to_a_shadow_route_still_refuse(
    shadow: RunningGateway, http: aiohttp.ClientSession, upstream: Upstream,
) -> None:
    status, _ = await fetch(http, shadow, "POST", "/api/orders/1", {})
    assert status == 401 and upstream.hits == []
    assert shadow.sample("gateway_auth_decisions_total", {
        "route": "orders-write", "result": "deny", "reason": "missing_token"}) == 1


async def test_a_failing_revocation_store_does_not_block_a_shadow_route(
    start_gateway: GatewayFactory, tmp_path: Any, upstream: Upstream, rsa_key: KeyPair,
    ec_key: KeyPair, http: aiohttp.ClientSession, make_token: TokenFactory,
) -> None:
    gw = await start_gateway(shadow_config(tmp_path, upstream, rsa_key, ec_key),
                             store=DownStore())
    token = {"Authorization": f"Bearer {make_token()}"}
    status, seen = await fetch(http, gw, "GET", "/api/orders/1", token)
    assert status == 200 and "X-Auth-Subject" not in seen
    assert gw.sample("gateway_auth_decisions_total", {
        "route": "orders-read", "result": "shadow_deny", "reason": "revocation_unavailable"}) == 1
    status, _ = await fetch(http, gw, "GET", "/api/reports/1", token)
    assert status == 503  # the enforced route fails closed as configured


async def test_a_malformed_authorization_header_is_shadow_denied_too(
    shadow: RunningGateway, http: aiohttp.ClientSession,
) -> None:
    status, _ = await fetch(http, shadow, "GET", "/api/orders/1",
                            {"Authorization": "Bearer a b c"})
    assert status == 200
    assert shadow.sample("gateway_auth_decisions_total", {
        "route": "orders-read", "result": "shadow_deny", "reason": "invalid_request"}) == 1
