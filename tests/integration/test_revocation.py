"""Revocation on the public listener: revoked → 401 before scopes, store outage policy."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.auth.principal import Principal
from gateway.revocation.memory import MemoryRevocationStore
from gateway.revocation.store import StoreError
from tests.fixtures.gateway import ADMIN_TOKEN, GatewayFactory, RunningGateway, base_config
from tests.fixtures.keys import KeyPair
from tests.fixtures.tokens import AUDIENCE, ISSUER, ISSUER2, TokenFactory
from tests.fixtures.upstream import Upstream

pytestmark = pytest.mark.integration

REVOKED = (
    'Bearer realm="gateway", error="invalid_token", error_description="token revoked"'
)
ORDERS = "/api/orders/7"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def get(
    http: aiohttp.ClientSession, gw: RunningGateway, token: str | None, path: str = ORDERS
) -> tuple[int, dict[str, str], Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.get(gw.url + path, headers=headers) as resp:
        body = await resp.json() if resp.content_type == "application/json" else None
        return resp.status, dict(resp.headers), body


async def settled(gw: RunningGateway) -> None:
    """Wait until the proxied responses have left the middleware (their metrics come last)."""
    deadline = time.monotonic() + 5
    while gw.sample("gateway_requests_in_flight") != 0:
        assert time.monotonic() < deadline, "requests still in flight"
        await asyncio.sleep(0.001)


async def admin(
    http: aiohttp.ClientSession, gw: RunningGateway, method: str, **kwargs: Any
) -> Any:
    async with http.request(
        method, gw.admin_url + "/admin/revocations",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, **kwargs,
    ) as resp:
        assert resp.status in (200, 201), await resp.text()
        return await resp.json()


def assert_revoked(status: int, headers: dict[str, str], body: Any) -> None:
    assert status == 401
    assert headers["WWW-Authenticate"] == REVOKED
    assert body == {
        "error": "invalid_token", "error_description": "token revoked",
        "request_id": headers["X-Request-ID"],
    }


async def test_a_revoked_jti_is_refused_and_not_forwarded(
    gateway: RunningGateway, upstream: Upstream, http: aiohttp.ClientSession,
    make_token: TokenFactory,
) -> None:
    token = make_token(jti="jti-revoked", sub="alice")
    sibling = make_token(jti="jti-other", sub="alice")
    assert (await get(http, gateway, token))[0] == 200  # verified once: now in the cache
    await admin(http, gateway, "POST", json={"jti": "jti-revoked", "exp": time.time() + 300})
    upstream.hits.clear()

    assert_revoked(*await get(http, gateway, token))
    assert upstream.hits == []
    assert (await get(http, gateway, sibling))[0] == 200
    assert len(upstream.hits) == 1
    assert gateway.sample("gateway_auth_decisions_total",
                          {"route": "orders-read", "result": "deny", "reason": "revoked"}) == 1
    assert gateway.sample("gateway_revocation_lookups_total", {"result": "revoked"}) == 1
    assert gateway.sample("gateway_revocation_lookups_total", {"result": "not_revoked"}) == 2


async def test_un_revoking_lets_the_token_through_again(
    gateway: RunningGateway, http: aiohttp.ClientSession, make_token: TokenFactory
) -> None:
    token = make_token(jti="jti-1")
    await admin(http, gateway, "POST", json={"jti": "jti-1"})
    assert (await get(http, gateway, token))[0] == 401
    await admin(http, gateway, "DELETE", params={"jti": "jti-1"})
    assert (await get(http, gateway, token))[0] == 200


async def test_a_revoked_token_without_the_scope_gets_401_not_403(
    gateway: RunningGateway, upstream: Upstream, http: aiohttp.ClientSession,
    make_token: TokenFactory,
) -> None:
    token = make_token(jti="jti-2", scope="reports:read")
    await admin(http, gateway, "POST", json={"jti": "jti-2"})
    assert_revoked(*await get(http, gateway, token))
    assert upstream.hits == []
    assert gateway.sample("gateway_auth_decisions_total", {
        "route": "orders-read", "result": "deny", "reason": "insufficient_scope",
    }) == 0


async def test_an_expired_jti_entry_no_longer_revokes(
    gateway: RunningGateway, http: aiohttp.ClientSession, make_token: TokenFactory
) -> None:
    token = make_token(jti="jti-3")
    await admin(http, gateway, "POST", json={"jti": "jti-3", "exp": time.time() - 1})
    assert (await get(http, gateway, token))[0] == 200


async def test_a_subject_cutoff_refuses_older_tokens_and_accepts_newer_ones(
    gateway: RunningGateway, http: aiohttp.ClientSession, make_token: TokenFactory
) -> None:
    now = int(time.time())
    before = now - 100
    await admin(http, gateway, "POST", json={"sub": "alice", "before": before})

    assert_revoked(*await get(http, gateway, make_token(sub="alice", iat=before - 50)))
    assert_revoked(*await get(http, gateway, make_token(sub="alice", iat=before)))
    # issued after the cutoff: a new login after the revocation is accepted
    assert (await get(http, gateway, make_token(sub="alice", iat=before + 1)))[0] == 200
    assert (await get(http, gateway, make_token(sub="alice", iat=now)))[0] == 200
    # another subject is not touched
    assert (await get(http, gateway, make_token(sub="bob", iat=before - 50)))[0] == 200


async def test_a_token_without_iat_is_refused_by_a_cutoff(
    gateway: RunningGateway, http: aiohttp.ClientSession, make_token: TokenFactory
) -> None:
    token = make_token(sub="alice", iat=None)
    assert (await get(http, gateway, token))[0] == 200
    await admin(http, gateway, "POST", json={"sub": "alice", "before": time.time() - 3600})
    assert_revoked(*await get(http, gateway, token))


async def test_a_client_cutoff_refuses_that_clients_tokens(
    gateway: RunningGateway, http: aiohttp.ClientSession, make_token: TokenFactory
) -> None:
    # Tokens issued before the cutoff (minted after it, their whole-second iat could pass it).
    alice, bob = (make_token(sub=s, client_id="web-app") for s in ("alice", "bob"))
    mobile = make_token(sub="alice", client_id="mobile")
    await admin(http, gateway, "POST", json={"client_id": "web-app"})
    assert_revoked(*await get(http, gateway, alice))
    assert_revoked(*await get(http, gateway, bob))
    assert (await get(http, gateway, mobile))[0] == 200


async def test_revocations_of_one_issuer_leave_another_issuers_tokens_alone(
    start_gateway: GatewayFactory, tmp_path: Path, upstream: Upstream, rsa_key: KeyPair,
    ec_key: KeyPair, second_issuer_key: KeyPair, http: aiohttp.ClientSession,
    make_token: TokenFactory,
) -> None:
    config = base_config(tmp_path, upstream, rsa_key, ec_key)
    (tmp_path / "idp2.pem").write_bytes(second_issuer_key.public_pem())
    config["issuers"].append({"issuer": ISSUER2, "audiences": [AUDIENCE], "keys": ["idp2.pem"]})
    gw = await start_gateway(config)
    alice = make_token(sub="alice")  # issued before the cutoff below
    await admin(http, gw, "POST", json={"sub": "alice", "iss": ISSUER})
    await admin(http, gw, "POST", json={"jti": "shared-jti", "iss": ISSUER})

    assert_revoked(*await get(http, gw, alice))
    assert_revoked(*await get(http, gw, make_token(sub="carol", jti="shared-jti")))
    other = make_token(key=second_issuer_key, iss=ISSUER2, sub="alice", jti="shared-jti")
    assert (await get(http, gw, other))[0] == 200


class FailingStore(MemoryRevocationStore):
    """A store whose lookups fail, as a backend outage would; counts the lookups."""

    def __init__(self) -> None:
        super().__init__()
        self.lookups = 0

    async def is_revoked(self, principal: Principal) -> bool:
        self.lookups += 1
        raise StoreError("backend down")


def outage_config(
    tmp_path: Path, upstream: Upstream, rsa_key: KeyPair, ec_key: KeyPair, policy: str | None
) -> dict[str, Any]:
    config = base_config(tmp_path, upstream, rsa_key, ec_key)
    if policy is None:
        del config["revocation"]
    else:
        config["revocation"]["on_unavailable"] = policy
    return config


async def test_a_failing_store_denies_with_503_by_policy(
    start_gateway: GatewayFactory, tmp_path: Path, upstream: Upstream, rsa_key: KeyPair,
    ec_key: KeyPair, http: aiohttp.ClientSession, make_token: TokenFactory,
) -> None:
    store = FailingStore()
    gw = await start_gateway(outage_config(tmp_path, upstream, rsa_key, ec_key, "deny"),
                             store=store)
    status, headers, body = await get(http, gw, make_token())
    assert status == 503
    assert headers["Retry-After"] == "1"
    assert headers["Content-Type"] == "application/json"
    assert "WWW-Authenticate" not in headers
    assert body == {
        "error": "temporarily_unavailable",
        "error_description": "revocation status is not available",
        "request_id": headers["X-Request-ID"],
    }
    assert upstream.hits == []
    assert store.lookups == 1
    assert gw.sample("gateway_revocation_lookups_total", {"result": "error"}) == 1
    assert gw.sample("gateway_revocation_store_errors_total") == 1
    assert gw.sample("gateway_auth_decisions_total", {
        "route": "orders-read", "result": "deny", "reason": "revocation_unavailable",
    }) == 1
    assert gw.sample("gateway_requests_total",
                     {"route": "orders-read", "method": "GET", "code": "503"}) == 1


async def test_a_failing_store_lets_requests_through_when_allowed(
    start_gateway: GatewayFactory, tmp_path: Path, upstream: Upstream, rsa_key: KeyPair,
    ec_key: KeyPair, http: aiohttp.ClientSession, make_token: TokenFactory,
) -> None:
    store = FailingStore()
    gw = await start_gateway(outage_config(tmp_path, upstream, rsa_key, ec_key, "allow"),
                             store=store)
    assert (await get(http, gw, make_token()))[0] == 200
    await settled(gw)
    assert len(upstream.hits) == 1
    assert store.lookups == 1
    assert gw.sample("gateway_revocation_lookups_total", {"result": "error"}) == 1
    assert gw.sample("gateway_auth_decisions_total",
                     {"route": "orders-read", "result": "allow", "reason": "ok"}) == 1


@pytest.mark.parametrize(
    ("policy", "path", "token", "status"),
    [
        pytest.param(None, ORDERS, "good", 200, id="no revocation section"),
        pytest.param("deny", "/public/x", "good", 200, id="a public route"),
        pytest.param("deny", ORDERS, None, 401, id="a request without token"),
        pytest.param("deny", ORDERS, "expired", 401, id="an invalid token"),
    ],
)
async def test_the_store_is_not_asked_when_there_is_nothing_to_check(
    start_gateway: GatewayFactory, tmp_path: Path, upstream: Upstream, rsa_key: KeyPair,
    ec_key: KeyPair, http: aiohttp.ClientSession, token_catalogue: dict[str, str],
    policy: str | None, path: str, token: str | None, status: int,
) -> None:
    store = FailingStore()
    gw = await start_gateway(outage_config(tmp_path, upstream, rsa_key, ec_key, policy),
                             store=store)
    assert (await get(http, gw, token_catalogue[token] if token else None, path))[0] == status
    assert store.lookups == 0
    for result in ("error", "revoked", "not_revoked"):
        assert gw.sample("gateway_revocation_lookups_total", {"result": result}) == 0
