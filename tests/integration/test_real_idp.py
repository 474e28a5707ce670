"""Against a real authorization server (Authlib): discovery, RFC 9068 tokens, rotation under
load, and RFC 7662 introspection of opaque tokens.

The rotation test measures the delay between the provider's key rotation and the first token
with the new kid that the gateway accepts; it is printed (``pytest -s``) and recorded as the
test's ``rotation_delay_ms`` property (``--junitxml``).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest

from gateway.auth.providers import IdentityProviders
from gateway.metrics import GatewayMetrics
from tests.fixtures.authlib_idp import (
    GATEWAY_CLIENT,
    JWT_CLIENT,
    OPAQUE_CLIENT,
    AuthlibIdp,
    start_authlib_idp,
)
from tests.fixtures.gateway import GatewayFactory, RunningGateway
from tests.fixtures.tokens import AUDIENCE
from tests.fixtures.upstream import Upstream

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def idp_config(
    tmp_path: Path, upstream: Upstream, idp: AuthlibIdp, *, introspection: bool = False,
    secret: str = GATEWAY_CLIENT[1],
) -> dict[str, Any]:
    issuer: dict[str, Any] = {
        "issuer": idp.issuer, "audiences": [AUDIENCE], "discovery": True,
        "allow_insecure_http": True, "algorithms": [idp.alg], "require_typ": "at+jwt",
        # RFC 9068 §2.2 claims; applied to introspection answers too (which carry no jti)
        "required_claims": ["sub", "client_id", "iat"] if introspection
        else ["sub", "client_id", "jti", "iat"],
    }
    if introspection:
        (tmp_path / "introspection-secret").write_text(secret + "\n")
        issuer["introspection"] = {
            "endpoint": idp.url + "/introspect", "client_id": GATEWAY_CLIENT[0],
            "secret_file": "introspection-secret", "cache_ttl": "1m", "inactive_ttl": "5s",
        }
    return {
        "server": {"listen": "127.0.0.1:0"},
        "admin": {"listen": "127.0.0.1:0"},
        "issuers": [issuer],
        "routes": [
            {"name": "orders", "match": {"path_prefix": "/api/orders"}, "upstream": upstream.url,
             "require": {"methods": {"GET, HEAD": {"scopes": ["orders:read"]},
                                     "POST": {"scopes": ["orders:write"]}}}},
            {"name": "reports", "match": {"path_prefix": "/api/reports"},
             "upstream": upstream.url, "require": {"scopes": ["reports:read"]}},
        ],
    }


async def ready(gw: RunningGateway) -> RunningGateway:
    [cache] = gw.server.providers.caches()
    assert await cache.wait_ready(5.0)
    return gw


async def call(
    session: aiohttp.ClientSession, gw: RunningGateway, token: str,
    method: str = "GET", path: str = "/api/orders/1",
) -> int:
    async with session.request(
        method, gw.url + path, headers={"Authorization": f"Bearer {token}"}
    ) as r:
        await r.read()
        return r.status


async def test_discovery_and_rfc9068_tokens_from_the_provider_are_accepted(
    start_gateway: GatewayFactory, upstream: Upstream, authlib_idp: AuthlibIdp, tmp_path: Path
) -> None:
    gw = await ready(await start_gateway(idp_config(tmp_path, upstream, authlib_idp)))
    read = await authlib_idp.token(scope="orders:read")
    assert jwt.get_unverified_header(read)["typ"] == "at+jwt"
    write = await authlib_idp.token(scope="orders:write")
    async with aiohttp.ClientSession() as s:
        assert await call(s, gw, read) == 200
        assert await call(s, gw, read, "HEAD") == 200
        assert await call(s, gw, read, "POST") == 403
        assert await call(s, gw, write, "POST") == 200
        assert await call(s, gw, write) == 403
        assert await call(s, gw, read, "DELETE") == 405  # not listed under require.methods
    assert authlib_idp.jwks_fetches == 1
    headers = dict(upstream.hits[0].headers)
    assert headers["X-Auth-Client-Id"] == JWT_CLIENT[0]


async def test_the_gateway_follows_a_key_rotation_without_401s_and_measures_the_delay(
    start_gateway: GatewayFactory, upstream: Upstream, authlib_idp: AuthlibIdp, tmp_path: Path,
    record_property: Any,
) -> None:
    gw = await ready(await start_gateway(idp_config(tmp_path, upstream, authlib_idp)))
    first_kid = authlib_idp.signing.kid
    results: list[tuple[str, int, float]] = []   # (kid, status, perf_counter when answered)
    stop = asyncio.Event()

    async def client() -> None:
        async with aiohttp.ClientSession() as s:
            while not stop.is_set():
                token = await authlib_idp.token()
                kid = jwt.get_unverified_header(token)["kid"]
                status = await call(s, gw, token)
                results.append((kid, status, time.perf_counter()))

    clients = [asyncio.create_task(client()) for _ in range(4)]
    try:
        async with asyncio.timeout(20):
            while len(results) < 40:
                await asyncio.sleep(0.01)  # polling the shared list, not waiting for time
            new_kid = authlib_idp.rotate()
            rotated_at = authlib_idp.rotations[-1][1]
            while sum(1 for kid, _, _ in results if kid == new_kid) < 40:
                await asyncio.sleep(0.01)
    finally:
        stop.set()
        await asyncio.gather(*clients)
    statuses = [status for _, status, _ in results]
    assert set(statuses) == {200}, f"non-200 answers: {[s for s in statuses if s != 200]}"
    accepted_new = [t for kid, status, t in results if kid == new_kid and status == 200]
    delay_ms = (min(accepted_new) - rotated_at) * 1000
    assert {kid for kid, _, _ in results} == {first_kid, new_kid}
    assert authlib_idp.jwks_fetches == 2  # start-up + exactly one refetch for the new kid
    assert gw.sample("gateway_jwks_unknown_kid_total",
                     {"issuer": authlib_idp.issuer, "action": "refetch"}) == 1
    assert delay_ms < 2000
    record_property("rotation_delay_ms", round(delay_ms, 1))
    print(f"\nkey rotation → first accepted token with the new kid: {delay_ms:.1f} ms "
          f"({len(results)} requests, {statuses.count(401)} answers 401)")


async def test_rotation_delay_over_several_rotations(
    start_gateway: GatewayFactory, upstream: Upstream, tmp_path: Path, record_property: Any,
) -> None:
    """Rotations a cooldown apart (the cache's clock is moved on, never slept): each new
    kid's first token is accepted, at the cost of exactly one refetch."""
    idp, runner = await start_authlib_idp("ES256")
    clock = Clock()
    metrics = GatewayMetrics()
    try:
        gw = await ready(await start_gateway(
            idp_config(tmp_path, upstream, idp), metrics=metrics,
            providers=IdentityProviders(metrics, clock=clock)))
        delays = []
        async with aiohttp.ClientSession() as s:
            for _ in range(5):
                clock.now += 10  # the default cooldown
                idp.rotate()
                token = await idp.token()
                assert await call(s, gw, token) == 200
                delays.append((time.perf_counter() - idp.rotations[-1][1]) * 1000)
        # every rotation cost exactly one refetch; forged kids would have met the cooldown
        assert idp.jwks_fetches == 6
    finally:
        await runner.cleanup()
    record_property("rotation_delay_ms_median", round(statistics.median(delays), 1))
    print(f"\nES256 rotations: delay median {statistics.median(delays):.1f} ms, "
          f"max {max(delays):.1f} ms")


# -- RFC 7662 introspection ------------------------------------------------------------------


async def test_opaque_tokens_are_introspected_cached_and_checked_per_route(
    start_gateway: GatewayFactory, upstream: Upstream, authlib_idp: AuthlibIdp, tmp_path: Path
) -> None:
    gw = await ready(await start_gateway(
        idp_config(tmp_path, upstream, authlib_idp, introspection=True)))
    opaque = await authlib_idp.token(OPAQUE_CLIENT, scope="orders:read")
    assert opaque.count(".") == 0
    async with aiohttp.ClientSession() as s:
        assert await call(s, gw, opaque) == 200
        assert await call(s, gw, opaque) == 200
        assert authlib_idp.introspections == 1  # the second answer came from the cache
        # The cached answer is about the token, not a decision: another route's (and
        # another method's) requirements are checked again and refused.
        assert await call(s, gw, opaque, path="/api/reports/1") == 403
        assert await call(s, gw, opaque, "POST") == 403
        assert authlib_idp.introspections == 1
        # an unknown opaque token: inactive, 401, cached briefly
        assert await call(s, gw, "not-a-token-the-provider-knows") == 401
        assert await call(s, gw, "not-a-token-the-provider-knows") == 401
        assert authlib_idp.introspections == 2
        # JWTs of the same issuer are still verified locally
        assert await call(s, gw, await authlib_idp.token()) == 200
        assert authlib_idp.introspections == 2
    labels = {"issuer": authlib_idp.issuer}
    assert gw.sample("gateway_introspection_requests_total", {**labels, "result": "active"}) == 1
    assert gw.sample("gateway_introspection_requests_total",
                     {**labels, "result": "inactive"}) == 1
    assert gw.sample("gateway_auth_decisions_total",
                     {"route": "orders", "result": "deny", "reason": "inactive"}) == 2
    assert gw.sample("gateway_auth_decisions_total",
                     {"route": "reports", "result": "deny",
                      "reason": "insufficient_scope"}) == 1
    assert len(upstream.hits) == 3


async def test_concurrent_requests_with_one_opaque_token_share_one_introspection(
    start_gateway: GatewayFactory, upstream: Upstream, authlib_idp: AuthlibIdp, tmp_path: Path
) -> None:
    gw = await ready(await start_gateway(
        idp_config(tmp_path, upstream, authlib_idp, introspection=True)))
    opaque = await authlib_idp.token(OPAQUE_CLIENT, scope="orders:read")
    async with aiohttp.ClientSession() as s:
        statuses = await asyncio.gather(*(call(s, gw, opaque) for _ in range(20)))
    assert statuses == [200] * 20
    assert authlib_idp.introspections == 1


async def test_introspection_with_wrong_client_credentials_fails_closed_with_503(
    start_gateway: GatewayFactory, upstream: Upstream, authlib_idp: AuthlibIdp, tmp_path: Path
) -> None:
    config = idp_config(tmp_path, upstream, authlib_idp, introspection=True, secret="wrong")
    gw = await ready(await start_gateway(config))
    opaque = await authlib_idp.token(OPAQUE_CLIENT, scope="orders:read")
    async with aiohttp.ClientSession() as s, s.get(
        gw.url + "/api/orders/1", headers={"Authorization": f"Bearer {opaque}"}
    ) as r:
        assert r.status == 503
        assert (await r.json())["error"] == "temporarily_unavailable"
    assert upstream.hits == []
    assert gw.sample("gateway_introspection_requests_total",
                     {"issuer": authlib_idp.issuer, "result": "error"}) == 1
    assert gw.sample("gateway_auth_decisions_total",
                     {"route": "orders", "result": "deny",
                      "reason": "introspection_unavailable"}) == 1
