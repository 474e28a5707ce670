"""``explain`` decides exactly as the running gateway does, and says why."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from yarl import URL

from gateway.config.compile import compile_runtime
from gateway.config.load import load_config
from gateway.explain import explain, split_url
from gateway.metrics import GatewayMetrics
from gateway.revocation.memory import MemoryRevocationStore
from gateway.runtime import Runtime
from tests.fixtures.gateway import GatewayFactory, RunningGateway, base_config
from tests.fixtures.keys import KeyPair
from tests.fixtures.tokens import TokenFactory
from tests.fixtures.upstream import Upstream

pytestmark = pytest.mark.integration


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def setup(
    start_gateway: GatewayFactory, tmp_path: Path, upstream: Upstream, rsa_key: KeyPair,
    ec_key: KeyPair,
) -> tuple[RunningGateway, Runtime]:
    config = base_config(tmp_path, upstream, rsa_key, ec_key)
    config["routes"].append({"name": "trial", "match": {"path_prefix": "/trial"},
                             "upstream": upstream.url, "enforce": False,
                             "require": {"scopes": ["trial"]}})
    gw = await start_gateway(config)
    loaded = load_config(gw.config_path)
    runtime = compile_runtime(loaded, metrics=GatewayMetrics(),
                              revocation_store=MemoryRevocationStore())
    return gw, runtime


TOKENS: dict[str, dict[str, Any] | None] = {
    "no token": None,
    "orders:read": {"scope": "orders:read"},
    "orders:write": {"scope": "orders:write"},
    "admin": {"scope": "admin"},
    "expired": {"exp": 1000},
    "wrong audience": {"aud": "https://elsewhere"},
}
REQUESTS = [
    ("GET", "/api/orders/1"), ("POST", "/api/orders"), ("DELETE", "/api/orders/7"),
    ("GET", "/api/reports/q"), ("GET", "/admin/users"), ("GET", "/public/x"),
    ("PATCH", "/status"), ("GET", "/nothing"), ("GET", "/api/orders/..%2fadmin"),
    ("GET", "/trial/x"), ("GET", "/api/orders/%2e%2e/admin"), ("GET", "/admin/../public/x"),
]


@pytest.mark.parametrize("token_name", list(TOKENS))
async def test_explain_agrees_with_the_gateway(
    setup: tuple[RunningGateway, Runtime], http: aiohttp.ClientSession,
    make_token: TokenFactory, token_name: str,
) -> None:
    gw, runtime = setup
    claims = TOKENS[token_name]
    token = make_token(**claims) if claims is not None else None
    for method, path in REQUESTS:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        url = URL(gw.url + path, encoded=True)  # sent as written, not normalised by yarl
        async with http.request(method, url, headers=headers) as resp:
            await resp.read()
            status = resp.status
        result = await explain(runtime, method, path, token=token)
        expected = result.status if result.decision == "deny" else 200
        assert (method, path, status) == (method, path, expected), result.lines()
        assert result.decision in ("allow", "deny", "shadow_deny")
        assert (result.decision == "deny") == (status >= 400)


async def test_the_explanation_of_a_refusal(
    setup: tuple[RunningGateway, Runtime], make_token: TokenFactory,
) -> None:
    _, runtime = setup
    token = make_token(scope="orders:read", sub="alice", client_id="web-app", jti="j-1")
    result = await explain(runtime, "POST", "http://api.test:8080/api/orders/7?x=1", token=token)
    assert result.host == "api.test:8080" and result.target == "/api/orders/7?x=1"
    assert result.route == "orders-write"
    assert result.matched_by == ("path prefix /api/orders (on a segment boundary), any host, "
                                 "methods DELETE PATCH POST PUT")
    assert result.candidates == [
        "orders-read: path matches; method POST is not one of GET HEAD"]
    assert result.forwards_to is not None and result.forwards_to.endswith("/api/orders/7?x=1")
    assert [(c.name, c.outcome) for c in result.checks] == [
        ("token", "ok"), ("revocation", "unchecked"), ("requirements", "failed")]
    assert "subject alice, client_id web-app, scopes orders:read, jti j-1" in \
        result.checks[0].detail
    assert (result.decision, result.status, result.reason) == (
        "deny", 403, "insufficient_scope")
    text = "\n".join(result.lines())
    assert "decision     deny: 403 insufficient_scope (missing scopes: orders:write)" in text
    assert token not in text and token.split(".")[2] not in json.dumps(result.as_json())


async def test_assumed_scopes_and_shadow_mode(setup: tuple[RunningGateway, Runtime]) -> None:
    _, runtime = setup
    allowed = await explain(runtime, "GET", "/api/reports/1", scopes="admin other")
    assert (allowed.decision, allowed.reason) == ("allow", "ok")
    assert allowed.checks[0].outcome == "assumed"
    assert allowed.checks[-1].detail == "has admin"
    shadow = await explain(runtime, "GET", "/trial/1", scopes="")
    assert (shadow.decision, shadow.status, shadow.reason) == (
        "shadow_deny", 403, "insufficient_scope")
    assert shadow.lines()[-1] == ("decision     shadow_deny: would be 403 insufficient_scope "
                                  "(missing scopes: trial); forwarded anyway (enforce: false)")
    missing = await explain(runtime, "GET", "/admin/x")
    assert (missing.status, missing.reason) == (401, "missing_token")
    assert [c.outcome for c in missing.checks] == ["failed", "skipped"]


async def test_unmatched_requests_list_the_routes_that_came_close(
    setup: tuple[RunningGateway, Runtime],
) -> None:
    _, runtime = setup
    result = await explain(runtime, "PUT", "/status")
    assert (result.route, result.decision, result.status) == ("status", "allow", None)
    nothing = await explain(runtime, "GET", "/nope")
    assert (nothing.route, nothing.status, nothing.reason) == (None, 404, "no_route")
    bad = await explain(runtime, "GET", "/a/../../etc")
    assert (bad.status, bad.reason, bad.path) == (400, "bad_path", None)


@pytest.mark.parametrize(("url", "target", "host"), [
    ("/a?b=1", "/a?b=1", None),
    ("http://h.example/a%2Fb?x", "/a%2Fb?x", "h.example"),
    ("https://h.example:8443", "/", "h.example:8443"),
    ("http://[::1]:80/p", "/p", "[::1]:80"),
])
def test_split_url(url: str, target: str, host: str | None) -> None:
    assert split_url(url) == (target, host)
