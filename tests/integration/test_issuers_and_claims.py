"""Several issuers with their own rules, routes restricted to issuers, claim conditions and
per-method requirements, end to end through the gateway."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.fixtures.gateway import GatewayFactory, RunningGateway
from tests.fixtures.keys import KeyPair
from tests.fixtures.tokens import AUDIENCE, ISSUER, ISSUER2, claims, sign
from tests.fixtures.upstream import Upstream

pytestmark = pytest.mark.integration


@pytest.fixture
async def gw(
    start_gateway: GatewayFactory, tmp_path: Path, upstream: Upstream, rsa_key: KeyPair,
    second_issuer_key: KeyPair,
) -> RunningGateway:
    (tmp_path / "idp1.jwks").write_text(json.dumps({"keys": [rsa_key.jwk()]}))
    (tmp_path / "idp2.jwks").write_text(json.dumps({"keys": [second_issuer_key.jwk()]}))
    up = upstream.url
    return await start_gateway({
        "server": {"listen": "127.0.0.1:0"},
        "admin": {"listen": "127.0.0.1:0"},
        "issuers": [
            {"issuer": ISSUER, "audiences": [AUDIENCE], "keys": ["idp1.jwks"]},
            {"issuer": ISSUER2, "audiences": [AUDIENCE], "keys": ["idp2.jwks"],
             "require_typ": "at+jwt", "scope_claim": "scp",
             "required_claims": ["client_id", "realm_access.roles"]},
        ],
        "routes": [
            {"name": "orders", "match": {"path_prefix": "/orders"}, "upstream": up,
             "issuers": [ISSUER],
             "require": {"methods": {"GET": {"scopes": ["orders:read"]},
                                     "POST": {"scopes": ["orders:write"]}}}},
            {"name": "partner", "match": {"path_prefix": "/partner"}, "upstream": up,
             "issuers": [ISSUER2], "require": {"scopes": ["partner"]}},
            {"name": "admin", "match": {"path_prefix": "/admin"}, "upstream": up,
             "require": {"claims": [
                 {"claim": "realm_access.roles", "contains": "admin"},
                 {"claim": "tenant", "one_of": ["acme", "globex"]}]}},
        ],
    })


def t1(rsa_key: KeyPair, **overrides: Any) -> str:
    return sign(rsa_key, claims(**overrides))


def t2(key: KeyPair, *, typ: str = "at+jwt", **overrides: Any) -> str:
    base = {"iss": ISSUER2, "scp": ["partner"], "realm_access": {"roles": ["admin"]},
            "tenant": "acme", "scope": None}
    return sign(key, claims(**{**base, **overrides}), headers={"typ": typ})


async def request(gw: RunningGateway, path: str, token: str,
                  method: str = "GET") -> tuple[int, dict[str, str]]:
    async with aiohttp.ClientSession() as s, s.request(
        method, gw.url + path, headers={"Authorization": f"Bearer {token}"}
    ) as r:
        await r.read()
        return r.status, dict(r.headers)


def denied(gw: RunningGateway, route: str, reason: str) -> float:
    return gw.sample("gateway_auth_decisions_total",
                     {"route": route, "result": "deny", "reason": reason})


async def test_each_route_accepts_only_its_issuers(
    gw: RunningGateway, upstream: Upstream, rsa_key: KeyPair, second_issuer_key: KeyPair
) -> None:
    assert (await request(gw, "/orders/1", t1(rsa_key)))[0] == 200
    assert (await request(gw, "/partner/1", t2(second_issuer_key)))[0] == 200
    status, headers = await request(gw, "/orders/1", t2(second_issuer_key, scp=["orders:read"]))
    assert status == 401
    assert 'error_description="token issuer not accepted"' in headers["WWW-Authenticate"]
    assert (await request(gw, "/partner/1", t1(rsa_key, scope="partner")))[0] == 401
    assert denied(gw, "orders", "issuer") == 1 and denied(gw, "partner", "issuer") == 1
    # a route without issuers: accepts both
    assert (await request(gw, "/admin", t2(second_issuer_key)))[0] == 200
    assert len(upstream.hits) == 3


async def test_claims_of_one_issuer_signed_with_the_other_issuers_key(
    gw: RunningGateway, upstream: Upstream, rsa_key: KeyPair, second_issuer_key: KeyPair
) -> None:
    # iss says issuer 1; signed by issuer 2's key under its own kid, then under issuer 1's kid
    own_kid = sign(second_issuer_key, claims())
    borrowed_kid = sign(second_issuer_key, claims(), headers={"kid": rsa_key.kid})
    assert (await request(gw, "/orders/1", own_kid))[0] == 401
    assert (await request(gw, "/orders/1", borrowed_kid))[0] == 401
    assert denied(gw, "orders", "unknown_key") == 1
    assert denied(gw, "orders", "bad_signature") == 1
    assert upstream.hits == []


async def test_issuer_rules_typ_required_claims_and_scope_claim(
    gw: RunningGateway, second_issuer_key: KeyPair
) -> None:
    assert (await request(gw, "/partner/1", t2(second_issuer_key, typ="JWT")))[0] == 401
    assert denied(gw, "partner", "token_type") == 1
    assert (await request(gw, "/partner/1",
                          t2(second_issuer_key, typ="application/AT+JWT")))[0] == 200
    assert (await request(gw, "/partner/1", t2(second_issuer_key, realm_access={})))[0] == 401
    assert denied(gw, "partner", "missing_claim") == 1
    # only scp counts for this issuer: a "scope" string with the scope does not help
    status, headers = await request(
        gw, "/partner/1", t2(second_issuer_key, scp=["other"], scope="partner"))
    assert status == 403
    assert 'scope="partner"' in headers["WWW-Authenticate"]


async def test_claim_conditions_refuse_with_403_without_a_scope_hint(
    gw: RunningGateway, upstream: Upstream, rsa_key: KeyPair
) -> None:
    good = {"realm_access": {"roles": ["user", "admin"]}, "tenant": "globex"}
    assert (await request(gw, "/admin", t1(rsa_key, **good)))[0] == 200
    for bad in ({**good, "tenant": "initech"}, {**good, "realm_access": {"roles": "admin"}},
                {"tenant": "acme"}):
        status, headers = await request(gw, "/admin", t1(rsa_key, **bad))
        assert status == 403
        assert headers["WWW-Authenticate"] == (
            'Bearer realm="gateway", error="insufficient_scope", error_description="token '
            "claims do not meet the route's requirements\"")
    assert denied(gw, "admin", "claim_mismatch") == 3
    assert len(upstream.hits) == 1


async def test_per_method_requirements_and_the_methods_they_imply(
    gw: RunningGateway, rsa_key: KeyPair
) -> None:
    read, write = t1(rsa_key, scope="orders:read"), t1(rsa_key, scope="orders:write")
    assert (await request(gw, "/orders/1", read))[0] == 200
    assert (await request(gw, "/orders/1", read, "POST"))[0] == 403
    assert (await request(gw, "/orders/1", write, "POST"))[0] == 200
    assert (await request(gw, "/orders/1", write))[0] == 403
    status, headers = await request(gw, "/orders/1", write, "DELETE")
    assert (status, headers["Allow"]) == (405, "GET, POST")
