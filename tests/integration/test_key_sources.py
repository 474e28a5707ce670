"""Discovery and hardened fetching against a real server: well-known URLs, issuer check,
redirects, size limits (also after decompression)."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import pytest

from gateway import __version__
from gateway.auth.fetch import FetchError, FetchLimits, create_idp_session, fetch_json
from tests.fixtures.gateway import GatewayFactory
from tests.fixtures.idp import REALM_PATH, Idp, cache_of, call, jwks_config, ready
from tests.fixtures.upstream import Upstream

pytestmark = pytest.mark.integration


def discovery_config(upstream: Upstream, idp: Idp, **extra: Any) -> dict[str, Any]:
    config = jwks_config(upstream, idp, **extra)
    issuer = config["issuers"][0]
    del issuer["jwks_uri"]
    issuer["discovery"] = True
    return config


async def test_discovery_finds_the_jwks_through_openid_configuration(
    start_gateway: GatewayFactory, upstream: Upstream, idp: Idp
) -> None:
    gw = await ready(await start_gateway(discovery_config(upstream, idp)))
    assert await call(gw, idp.token()) == (200, "ok")
    assert idp.hits == [REALM_PATH + "/.well-known/openid-configuration", "/jwks.json"]


async def test_discovery_falls_back_to_rfc8414_with_the_segment_before_the_path(
    start_gateway: GatewayFactory, upstream: Upstream, idp: Idp
) -> None:
    idp.oidc = False
    gw = await ready(await start_gateway(discovery_config(upstream, idp)))
    assert await call(gw, idp.token()) == (200, "ok")
    assert idp.hits == [
        REALM_PATH + "/.well-known/openid-configuration",            # 404
        "/.well-known/oauth-authorization-server" + REALM_PATH,       # RFC 8414 §3.1
        "/jwks.json",
    ]


async def test_a_metadata_document_for_another_issuer_is_refused(
    start_gateway: GatewayFactory, upstream: Upstream, idp: Idp
) -> None:
    idp.metadata_issuer = "https://evil.example/realms/test"
    gw = await start_gateway(discovery_config(upstream, idp))
    assert await call(gw, idp.token()) == (503, "temporarily_unavailable")
    assert "/jwks.json" not in idp.hits  # the attacker-named jwks_uri was never used
    assert gw.sample("gateway_jwks_refreshes_total",
                     {"issuer": idp.issuer, "result": "invalid"}) >= 1
    status = cache_of(gw).status(time.time())
    assert "is not the configured" in status["last_error"]


async def test_a_redirect_on_the_same_host_is_followed(
    start_gateway: GatewayFactory, upstream: Upstream, idp: Idp
) -> None:
    config = jwks_config(upstream, idp)
    config["issuers"][0]["jwks_uri"] = idp.url + "/redirect-same"
    gw = await ready(await start_gateway(config))
    assert await call(gw, idp.token()) == (200, "ok")
    assert idp.hits == ["/redirect-same", "/jwks.json"]


async def test_a_redirect_to_another_host_is_refused(
    start_gateway: GatewayFactory, upstream: Upstream, idp: Idp
) -> None:
    config = jwks_config(upstream, idp)
    config["issuers"][0]["jwks_uri"] = idp.url + "/redirect-away"
    gw = await start_gateway(config)
    assert await call(gw, idp.token()) == (503, "temporarily_unavailable")
    assert idp.hits == ["/redirect-away"] * len(idp.hits)
    assert gw.sample("gateway_jwks_refreshes_total",
                     {"issuer": idp.issuer, "result": "redirect"}) >= 1


@pytest.mark.parametrize(
    ("mode", "max_bytes", "result"),
    [
        pytest.param("ok", 100, "too_large", id="a Content-Length over the limit"),
        pytest.param("huge", 262_144, "too_large", id="a chunked body over the limit"),
        pytest.param("gzip-bomb", 262_144, "too_large",
                     id="a gzip body over the limit once decoded"),
        pytest.param("garbage", 262_144, "invalid", id="HTML instead of JSON"),
        pytest.param("500", 262_144, "http_error", id="an HTTP 500"),
    ],
)
async def test_fetch_limits(idp: Idp, mode: str, max_bytes: int, result: str) -> None:
    idp.mode = mode
    session = create_idp_session()
    try:
        with pytest.raises(FetchError) as info:
            await fetch_json(session, idp.jwks_uri,
                             FetchLimits(max_bytes=max_bytes, allow_insecure_http=True))
    finally:
        await session.close()
    assert info.value.result == result


async def test_fetch_timeout_and_unreachable(idp: Idp) -> None:
    idp.mode = "hang"
    session = create_idp_session()
    limits = FetchLimits(timeout=0.2, connect_timeout=0.2, allow_insecure_http=True)
    try:
        t0 = time.perf_counter()
        with pytest.raises(FetchError) as info:
            await fetch_json(session, idp.jwks_uri, limits)
        assert info.value.result == "timeout"
        assert time.perf_counter() - t0 < 2
        with pytest.raises(FetchError) as info:
            await fetch_json(session, "http://127.0.0.1:1/jwks.json", limits)
        assert info.value.result == "unreachable"
    finally:
        idp.release.set()
        await session.close()


async def test_fetch_names_itself(idp: Idp) -> None:
    session = create_idp_session()
    try:
        fetched = await fetch_json(session, idp.jwks_uri, FetchLimits(allow_insecure_http=True))
    finally:
        await session.close()
    assert fetched.document == idp.jwks()
    assert idp.agents == [f"oauth2-gateway/{__version__}"]


# -- introspection requests on the wire -------------------------------------------------------


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
async def test_introspection_client_authentication_on_the_wire(
    start_gateway: GatewayFactory, upstream: Upstream, idp: Idp, tmp_path: Path, method: str
) -> None:
    (tmp_path / "secret").write_text("p@ss word/+:é\n")
    config = jwks_config(upstream, idp)
    config["issuers"][0]["introspection"] = {
        "endpoint": idp.url + "/introspect", "client_id": "gw:1", "secret_file": "secret",
        "auth_method": method,
    }
    idp.introspection_answer = {"active": True, "scope": "orders:read", "sub": "svc",
                                "iss": idp.issuer}
    gw = await ready(await start_gateway(config))
    assert await call(gw, "opaque-token-1") == (200, "ok")
    [(authorization, form)] = idp.introspection_calls
    assert form["token"] == "opaque-token-1"
    assert form["token_type_hint"] == "access_token"
    if method == "client_secret_basic":
        # RFC 6749 §2.3.1: form-urlencoded before base64
        expected = base64.b64encode(b"gw%3A1:p%40ss%20word%2F%2B%3A%C3%A9").decode()
        assert authorization == f"Basic {expected}"
        assert "client_secret" not in form
    else:
        assert authorization is None
        assert (form["client_id"], form["client_secret"]) == ("gw:1", "p@ss word/+:é")
    idp.introspection_answer = {"active": True, "scope": "orders:read", "iss": "https://evil/"}
    assert await call(gw, "opaque-token-2") == (401, "invalid_token")
    idp.introspection_answer = ["not", "an", "object"]
    assert await call(gw, "opaque-token-3") == (503, "temporarily_unavailable")
