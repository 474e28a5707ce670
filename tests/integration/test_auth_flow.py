"""The authorization flow through a real gateway: RFC 6750 challenges, bodies, metrics."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from tests.fixtures.gateway import GatewayFactory, RunningGateway, base_config
from tests.fixtures.keys import KeyPair
from tests.fixtures.tokens import AUDIENCE, claims
from tests.fixtures.upstream import Upstream
from tests.fixtures.waiting import eventually

pytestmark = pytest.mark.integration

AUTH_METRIC = "gateway_auth_decisions_total"
HS_ISSUER = "https://hs.test/"
HS_SECRET_ENV = "GW_TEST_AUTH_FLOW_HS256_SECRET"
HS_SECRET = "auth-flow-hmac-secret-long-enough-even-for-hs512-0123456789abcdef"
MISSING = 'Bearer realm="gateway"'


def invalid(description: str, realm: str = "gateway") -> str:
    return f'Bearer realm="{realm}", error="invalid_token", error_description="{description}"'


def insufficient(scope: str) -> str:
    return ('Bearer realm="gateway", error="insufficient_scope", '
            f'error_description="token lacks the required scope", scope="{scope}"')


@dataclass
class Reply:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


Call = Callable[..., Any]


@pytest.fixture
def call(http: aiohttp.ClientSession) -> Call:
    async def do(gw: RunningGateway, method: str, path: str, token: str | None = None,
                 headers: Any = None) -> Reply:
        sent: CIMultiDict[str] = CIMultiDict(headers or {})
        if token is not None:
            sent["Authorization"] = "Bearer " + token
        async with http.request(method, gw.url + path, headers=sent) as r:
            return Reply(r.status, r.headers, await r.read())

    return do


def assert_error_body(reply: Reply, error: str, description: str) -> None:
    assert reply.headers["Content-Type"].startswith("application/json")
    body = reply.json()
    assert set(body) == {"error", "error_description", "request_id"}
    assert body["error"] == error
    assert body["error_description"] == description
    assert body["request_id"] == reply.headers["X-Request-ID"]
    assert body["request_id"]


def decisions(gw: RunningGateway, route: str, result: str, reason: str) -> float:
    return gw.sample(AUTH_METRIC, {"route": route, "result": result, "reason": reason})


# -- allowed ------------------------------------------------------------------------------


async def test_good_token_reaches_upstream_with_identity_headers(
    gateway: RunningGateway, upstream: Upstream, call: Call, make_token: Callable[..., str]
) -> None:
    token = make_token(sub="alice", client_id="web-app", scope="orders:read profile")
    reply = await call(gateway, "GET", "/api/orders/7", token)
    assert reply.status == 200
    assert reply.headers["X-Upstream"] == "echo"
    (hit,) = upstream.hits
    seen = CIMultiDict(hit.headers)
    assert seen.getall("X-Auth-Subject") == ["alice"]
    assert seen.getall("X-Auth-Client-Id") == ["web-app"]
    assert seen.getall("X-Auth-Scopes") == ["orders:read profile"]
    await eventually(lambda: decisions(gateway, "orders-read", "allow", "ok") == 1.0, timeout=2)
    assert gateway.sample(AUTH_METRIC, {"route": "orders-read", "result": "deny",
                                        "reason": "missing_token"}) == 0.0


async def test_client_id_falls_back_to_azp_and_scopes_to_scp(
    gateway: RunningGateway, upstream: Upstream, call: Call, make_token: Callable[..., str]
) -> None:
    token = make_token(client_id=None, azp="mobile", scope=None, scp=["orders:read", "extra"])
    reply = await call(gateway, "GET", "/api/orders", token)
    assert reply.status == 200
    seen = CIMultiDict(upstream.hits[0].headers)
    assert seen["X-Auth-Client-Id"] == "mobile"
    assert seen["X-Auth-Scopes"] == "extra orders:read"


@pytest.mark.parametrize(
    "scheme",
    [pytest.param("bearer", id="lower-case scheme"),
     pytest.param("BEARER", id="upper-case scheme")],
)
async def test_bearer_scheme_is_case_insensitive(
    gateway: RunningGateway, upstream: Upstream, call: Call, make_token: Callable[..., str],
    scheme: str,
) -> None:
    reply = await call(gateway, "GET", "/api/orders/1",
                       headers={"Authorization": f"{scheme} {make_token()}"})
    assert reply.status == 200
    assert len(upstream.hits) == 1


async def test_es256_token_is_accepted(
    gateway: RunningGateway, upstream: Upstream, call: Call, make_token: Callable[..., str],
    ec_key: KeyPair,
) -> None:
    reply = await call(gateway, "GET", "/api/orders/2", make_token(key=ec_key))
    assert reply.status == 200
    assert upstream.paths() == ["/api/orders/2"]


@pytest.mark.parametrize(
    "scope",
    [pytest.param("reports:read", id="reports:read alone"), pytest.param("admin", id="admin alone"),
     pytest.param("admin reports:read", id="both any_of scopes")],
)
async def test_any_of_route_accepts_either_scope(
    gateway: RunningGateway, upstream: Upstream, call: Call, make_token: Callable[..., str],
    scope: str,
) -> None:
    reply = await call(gateway, "GET", "/api/reports/q1", make_token(scope=scope))
    assert reply.status == 200
    assert upstream.paths() == ["/api/reports/q1"]
    await eventually(lambda: decisions(gateway, "reports", "allow", "ok") == 1.0, timeout=2)


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no Authorization header"),
        pytest.param({"Authorization": "Bearer !!garbage!!"}, id="malformed bearer header"),
        pytest.param({"Authorization": "Bearer a.b.c"}, id="invalid token"),
    ],
)
async def test_auth_none_route_needs_no_token(
    gateway: RunningGateway, upstream: Upstream, call: Call, headers: dict[str, str]
) -> None:
    reply = await call(gateway, "GET", "/status", headers=headers)
    assert reply.status == 200
    assert upstream.paths() == ["/status"]
    seen = CIMultiDict(upstream.hits[0].headers)
    assert "X-Auth-Subject" not in seen and "X-Auth-Scopes" not in seen
    await eventually(lambda: decisions(gateway, "status", "allow", "none") == 1.0, timeout=2)
    assert decisions(gateway, "status", "deny", "missing_token") == 0.0


# -- refused -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no Authorization header"),
        pytest.param({"Authorization": "Basic dXNlcjpwYXNz"}, id="Basic scheme is no token"),
        pytest.param({"Authorization": "Token abc"}, id="unknown scheme is no token"),
        pytest.param({"Cookie": "access_token=abc"}, id="token in a cookie is no token"),
    ],
)
async def test_missing_token_is_401_without_error(
    gateway: RunningGateway, upstream: Upstream, call: Call, headers: dict[str, str]
) -> None:
    reply = await call(gateway, "GET", "/api/orders/7", headers=headers)
    assert reply.status == 401
    assert reply.headers.getall("WWW-Authenticate") == [MISSING]
    assert_error_body(reply, "invalid_token", "bearer token required")
    assert upstream.hits == []
    assert decisions(gateway, "orders-read", "deny", "missing_token") == 1.0


async def test_token_in_query_string_is_no_token(
    gateway: RunningGateway, upstream: Upstream, call: Call, make_token: Callable[..., str]
) -> None:
    reply = await call(gateway, "GET", "/api/orders?access_token=" + make_token())
    assert reply.status == 401
    assert reply.headers["WWW-Authenticate"] == MISSING
    assert upstream.hits == []


@pytest.mark.parametrize(
    ("overrides", "description", "reason"),
    [
        pytest.param({"exp": 1_000_000}, "token expired", "expired", id="expired token"),
        pytest.param({"aud": "https://other.test"}, "token audience not accepted", "audience",
                     id="token for another audience"),
        pytest.param({"iss": "https://evil.test/"}, "token issuer not accepted", "issuer",
                     id="token of an unknown issuer"),
        pytest.param({"exp": None}, "token lacks a required claim", "missing_claim",
                     id="token without exp"),
        pytest.param({"exp": "9999999999"}, "token has an invalid claim", "invalid_claim",
                     id="token with exp as a string"),
        pytest.param({"sub": 7}, "token has an invalid claim", "invalid_claim",
                     id="token with a numeric sub"),
    ],
)
async def test_invalid_token_is_401_invalid_token(
    gateway: RunningGateway, upstream: Upstream, call: Call, make_token: Callable[..., str],
    overrides: dict[str, Any], description: str, reason: str,
) -> None:
    reply = await call(gateway, "GET", "/api/orders/7", make_token(**overrides))
    assert reply.status == 401
    assert reply.headers.getall("WWW-Authenticate") == [invalid(description)]
    assert_error_body(reply, "invalid_token", description)
    assert upstream.hits == []
    assert decisions(gateway, "orders-read", "deny", reason) == 1.0


async def test_missing_scope_is_403_naming_the_scope(
    gateway: RunningGateway, upstream: Upstream, call: Call, make_token: Callable[..., str]
) -> None:
    reply = await call(gateway, "POST", "/api/orders", make_token(scope="orders:read"))
    assert reply.status == 403
    assert reply.headers.getall("WWW-Authenticate") == [insufficient("orders:write")]
    assert_error_body(reply, "insufficient_scope", "token lacks the required scope")
    assert upstream.hits == []
    assert decisions(gateway, "orders-write", "deny", "insufficient_scope") == 1.0


async def test_any_of_route_refuses_other_scopes_naming_both(
    gateway: RunningGateway, upstream: Upstream, call: Call, make_token: Callable[..., str]
) -> None:
    reply = await call(gateway, "GET", "/api/reports", make_token(scope="orders:read reports"))
    assert reply.status == 403
    assert reply.headers["WWW-Authenticate"] == insufficient("admin reports:read")
    assert upstream.hits == []


async def test_invalid_token_is_401_even_when_scope_is_missing_too(
    gateway: RunningGateway, upstream: Upstream, call: Call, make_token: Callable[..., str]
) -> None:
    reply = await call(gateway, "POST", "/api/orders", make_token(scope="none", exp=1_000_000))
    assert reply.status == 401
    assert reply.headers["WWW-Authenticate"] == invalid("token expired")
    assert decisions(gateway, "orders-write", "deny", "expired") == 1.0
    assert decisions(gateway, "orders-write", "deny", "insufficient_scope") == 0.0


async def test_a_verified_token_is_still_checked_per_route(
    gateway: RunningGateway, upstream: Upstream, call: Call, make_token: Callable[..., str]
) -> None:
    token = make_token(scope="orders:read")
    assert (await call(gateway, "GET", "/api/orders/1", token)).status == 200
    assert (await call(gateway, "POST", "/api/orders", token)).status == 403
    assert (await call(gateway, "GET", "/api/orders/2", token)).status == 200
    assert upstream.paths() == ["/api/orders/1", "/api/orders/2"]


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([("Authorization", "Bearer a.b.c"), ("Authorization", "Bearer a.b.c")],
                     id="two Authorization headers"),
        pytest.param([("Authorization", "Basic dXNlcjpwYXNz"), ("Authorization", "Bearer a.b.c")],
                     id="a Basic and a Bearer header"),
        pytest.param([("Authorization", "Bearer")], id="Bearer without credentials"),
        pytest.param([("Authorization", "Bearer    ")], id="Bearer with whitespace only"),
        pytest.param([("Authorization", "Bearer a b")], id="two words as credentials"),
        pytest.param([("Authorization", 'Bearer "abc"')], id="quoted credentials"),
    ],
)
async def test_malformed_authorization_is_400_invalid_request(
    gateway: RunningGateway, upstream: Upstream, call: Call, headers: list[tuple[str, str]]
) -> None:
    reply = await call(gateway, "GET", "/api/orders/7", headers=headers)
    assert reply.status == 400
    assert reply.headers.getall("WWW-Authenticate") == [
        'Bearer realm="gateway", error="invalid_request", '
        'error_description="malformed authorization header"'
    ]
    assert_error_body(reply, "invalid_request", "malformed authorization header")
    assert upstream.hits == []
    assert decisions(gateway, "orders-read", "deny", "invalid_request") == 1.0


async def test_client_request_id_is_echoed_in_header_and_body(
    gateway: RunningGateway, call: Call, make_token: Callable[..., str]
) -> None:
    reply = await call(gateway, "GET", "/api/orders", headers={"X-Request-ID": "req-123.abc"})
    assert reply.status == 401
    assert reply.headers["X-Request-ID"] == "req-123.abc"
    assert reply.json()["request_id"] == "req-123.abc"


async def test_generated_request_ids_differ(gateway: RunningGateway, call: Call) -> None:
    first = await call(gateway, "GET", "/api/orders")
    second = await call(gateway, "GET", "/api/orders")
    assert first.json()["request_id"] != second.json()["request_id"]


# -- configuration: realm, HMAC issuer, size limit --------------------------------------


@pytest.mark.parametrize(
    ("realm", "quoted"),
    [
        pytest.param("orders-api", "orders-api", id="plain realm"),
        pytest.param('my "api"', 'my \\"api\\"', id="realm with quotes is escaped"),
    ],
)
async def test_realm_is_configurable(
    start_gateway: GatewayFactory, tmp_path: Path, upstream: Upstream, rsa_key: KeyPair,
    ec_key: KeyPair, call: Call, make_token: Callable[..., str], realm: str, quoted: str,
) -> None:
    config = base_config(tmp_path, upstream, rsa_key, ec_key)
    config["server"]["realm"] = realm
    gw = await start_gateway(config)
    missing = await call(gw, "GET", "/api/orders")
    assert missing.headers["WWW-Authenticate"] == f'Bearer realm="{quoted}"'
    bad = await call(gw, "GET", "/api/orders", make_token(exp=1_000_000))
    assert bad.headers["WWW-Authenticate"] == invalid("token expired", quoted)
    scope = await call(gw, "POST", "/api/orders", make_token())
    assert scope.headers["WWW-Authenticate"].startswith(f'Bearer realm="{quoted}", ')
    assert upstream.hits == []


@pytest.fixture
async def hs_gateway(
    start_gateway: GatewayFactory, tmp_path: Path, upstream: Upstream, rsa_key: KeyPair,
    ec_key: KeyPair, monkeypatch: pytest.MonkeyPatch,
) -> RunningGateway:
    monkeypatch.setenv(HS_SECRET_ENV, HS_SECRET)
    config = base_config(tmp_path, upstream, rsa_key, ec_key)
    config["issuers"].append({
        "issuer": HS_ISSUER, "audiences": [AUDIENCE], "algorithms": ["HS256"],
        "secret_env": HS_SECRET_ENV, "leeway": "5s",
    })
    return await start_gateway(config)


def hs_token(secret: str = HS_SECRET, alg: str = "HS256", **overrides: Any) -> str:
    return jwt.encode(claims(iss=HS_ISSUER, **overrides), secret, algorithm=alg)


async def test_hs256_issuer_with_secret_env(
    hs_gateway: RunningGateway, upstream: Upstream, call: Call, make_token: Callable[..., str]
) -> None:
    reply = await call(hs_gateway, "GET", "/api/orders/9", hs_token(sub="hmac-user"))
    assert reply.status == 200
    assert CIMultiDict(upstream.hits[0].headers)["X-Auth-Subject"] == "hmac-user"
    # the RSA issuer keeps working next to it
    assert (await call(hs_gateway, "GET", "/api/orders/10", make_token())).status == 200
    assert len(upstream.hits) == 2


@pytest.mark.parametrize(
    ("token_kwargs", "description", "reason"),
    [
        pytest.param({"secret": HS_SECRET + "x"}, "token signature is invalid", "bad_signature",
                     id="HS256 with the wrong secret"),
        pytest.param({"alg": "HS512"}, "token algorithm not allowed", "algorithm",
                     id="HS512 when only HS256 is allowed"),
        pytest.param({"exp": 1_000_000}, "token expired", "expired", id="expired HS256 token"),
    ],
)
async def test_hs256_issuer_refusals(
    hs_gateway: RunningGateway, upstream: Upstream, call: Call, token_kwargs: dict[str, Any],
    description: str, reason: str,
) -> None:
    reply = await call(hs_gateway, "GET", "/api/orders/9", hs_token(**token_kwargs))
    assert reply.status == 401
    assert reply.headers["WWW-Authenticate"] == invalid(description)
    assert HS_SECRET not in reply.body.decode()
    assert upstream.hits == []
    assert decisions(hs_gateway, "orders-read", "deny", reason) == 1.0


async def test_rsa_token_cannot_claim_the_hmac_issuer(
    hs_gateway: RunningGateway, upstream: Upstream, call: Call, make_token: Callable[..., str]
) -> None:
    reply = await call(hs_gateway, "GET", "/api/orders", make_token(iss=HS_ISSUER))
    assert reply.status == 401
    assert reply.headers["WWW-Authenticate"] == invalid("token algorithm not allowed")
    assert upstream.hits == []


async def test_configured_token_size_limit(
    start_gateway: GatewayFactory, tmp_path: Path, upstream: Upstream, rsa_key: KeyPair,
    ec_key: KeyPair, call: Call, make_token: Callable[..., str],
) -> None:
    config = base_config(tmp_path, upstream, rsa_key, ec_key)
    config["server"]["max_token_bytes"] = 1024
    gw = await start_gateway(config)
    small = make_token()
    assert len(small) <= 1024
    assert (await call(gw, "GET", "/api/orders", small)).status == 200
    big = make_token(pad="x" * 1000)
    assert 1024 < len(big) < 8000
    reply = await call(gw, "GET", "/api/orders", big)
    assert reply.status == 401
    assert reply.headers["WWW-Authenticate"] == invalid("token is too large")
    assert decisions(gw, "orders-read", "deny", "oversized") == 1.0
    assert len(upstream.hits) == 1


# -- metrics and secrecy ------------------------------------------------------------------


async def test_auth_decision_metric_counts_allow_and_deny_by_reason(
    gateway: RunningGateway, upstream: Upstream, call: Call, make_token: Callable[..., str]
) -> None:
    good = make_token(scope="orders:read orders:write")
    for _ in range(3):
        assert (await call(gateway, "GET", "/api/orders", good)).status == 200
    assert (await call(gateway, "POST", "/api/orders", good)).status == 200
    assert (await call(gateway, "GET", "/api/orders")).status == 401
    assert (await call(gateway, "GET", "/api/orders")).status == 401
    assert (await call(gateway, "GET", "/api/orders", make_token(exp=1_000_000))).status == 401
    assert (await call(gateway, "DELETE", "/api/orders/1", make_token())).status == 403
    assert (await call(gateway, "GET", "/public/x")).status == 200
    await eventually(lambda: decisions(gateway, "public", "allow", "none") == 1.0, timeout=2)
    await eventually(lambda: decisions(gateway, "orders-read", "allow", "ok") == 3.0, timeout=2)
    await eventually(lambda: decisions(gateway, "orders-write", "allow", "ok") == 1.0, timeout=2)
    assert decisions(gateway, "orders-read", "deny", "missing_token") == 2.0
    assert decisions(gateway, "orders-read", "deny", "expired") == 1.0
    assert decisions(gateway, "orders-write", "deny", "insufficient_scope") == 1.0
    assert decisions(gateway, "orders-write", "deny", "missing_token") == 0.0
    async with aiohttp.ClientSession() as s, s.get(gateway.admin_url + "/metrics") as r:
        text = await r.text()
    assert ('gateway_auth_decisions_total{reason="expired",result="deny",route="orders-read"} 1.0'
            in text)


async def test_refusals_never_reveal_the_token_or_key_material(
    hs_gateway: RunningGateway, upstream: Upstream, call: Call, make_token: Callable[..., str],
    rsa_key: KeyPair, other_rsa_key: KeyPair, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    n = rsa_key.jwk()["n"]
    tokens = [
        make_token(exp=1_000_000),
        make_token(key=other_rsa_key),
        make_token(aud="https://other.test"),
        make_token(scope="nothing"),
        hs_token(secret="wrong-secret-wrong-secret-wrong-secret-wrong"),
        hs_token(alg="HS384"),
        make_token(headers={"kid": "no-such-kid"}),
    ]
    for token in tokens:
        for method in ("GET", "POST"):
            reply = await call(hs_gateway, method, "/api/orders", token)
            assert reply.status in (401, 403)
            visible = reply.body.decode() + "\n" + "\n".join(
                f"{k}: {v}" for k, v in reply.headers.items())
            for secret in (token, *token.split("."), HS_SECRET, n, n[:40]):
                assert secret not in visible
    assert upstream.hits == []
    logged = "\n".join(r.getMessage() + " " + json.dumps(vars(r), default=str)
                       for r in caplog.records)
    assert "request" in logged  # the access log was captured
    for token in tokens:
        assert token not in logged
        assert token.split(".")[2] not in logged
    assert HS_SECRET not in logged
