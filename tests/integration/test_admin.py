"""The admin listener: open health/metrics endpoints and the token-protected revocation API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from yarl import URL

from gateway import __version__
from gateway.auth.principal import Principal
from gateway.revocation.memory import MemoryRevocationStore
from gateway.revocation.store import Kind, Page, Revocation, StoreError
from tests.fixtures.gateway import ADMIN_TOKEN, GatewayFactory, RunningGateway, base_config
from tests.fixtures.keys import KeyPair
from tests.fixtures.tokens import ISSUER, ISSUER2
from tests.fixtures.upstream import Upstream

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CHALLENGE = 'Bearer realm="admin"'


ONE_KIND = 'give exactly one of: jti, sub, client_id, or "kind": "issuer"'


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession, method: str, url: str, *, headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> tuple[int, dict[str, str], Any]:
    async with http.request(method, url, headers=AUTH if headers is None else headers,
                            **kwargs) as resp:
        body = await resp.json() if resp.content_type == "application/json" else await resp.text()
        return resp.status, dict(resp.headers), body


# -- open endpoints ------------------------------------------------------------------------


async def test_health_and_readiness_are_open(
    gateway: RunningGateway, http: aiohttp.ClientSession
) -> None:
    status, _, body = await call(http, "GET", gateway.admin_url + "/healthz", headers={})
    assert (status, body) == (200, {"status": "ok"})
    status, _, body = await call(http, "GET", gateway.admin_url + "/readyz", headers={})
    assert (status, body) == (200, {"status": "ready"})


async def test_metrics_are_open_and_in_prometheus_text_format(
    gateway: RunningGateway, http: aiohttp.ClientSession
) -> None:
    async with http.get(gateway.admin_url + "/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = await resp.text()
    assert f'gateway_build_info{{version="{__version__}"}} 1.0' in text
    assert "# TYPE gateway_requests_total counter" in text


async def test_status_describes_the_running_config(
    gateway: RunningGateway, http: aiohttp.ClientSession
) -> None:
    status, _, body = await call(http, "GET", gateway.admin_url + "/status", headers={})
    assert status == 200
    assert body["version"] == __version__
    config = body["config"]
    assert config["source"] == str(gateway.config_path)
    assert config["sha256"] == gateway.server.holder.current.sha256  # type: ignore[union-attr]
    assert config["generation"] == 1 and config["restart_required"] == []
    assert config["settings"]["server.listen"] == str(gateway.server.settings.public)
    assert body["routes"] == len(gateway.server.loaded.spec.routes) == 7
    assert body["issuers"] == [ISSUER]
    assert body["revocation"] == {"store": "MemoryRevocationStore", "on_unavailable": "deny"}
    assert isinstance(body["uptime_seconds"], float | int) and body["uptime_seconds"] >= 0


# -- the admin token -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no Authorization header"),
        pytest.param({"Authorization": "Bearer wrong-token"}, id="a wrong token"),
        pytest.param({"Authorization": f"Bearer {ADMIN_TOKEN}x"}, id="the token with a suffix"),
        pytest.param({"Authorization": f"Bearer {ADMIN_TOKEN[:-1]}"}, id="a token prefix"),
        pytest.param({"Authorization": f"Basic {ADMIN_TOKEN}"}, id="another scheme"),
        pytest.param({"Authorization": "Bearer "}, id="an empty bearer credential"),
        pytest.param({"X-Admin-Token": ADMIN_TOKEN}, id="the token in another header"),
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
async def test_the_admin_api_needs_the_admin_token(
    gateway: RunningGateway, http: aiohttp.ClientSession, headers: dict[str, str], method: str
) -> None:
    status, resp_headers, body = await call(
        http, method, gateway.admin_url + "/admin/revocations", headers=headers,
        json={"sub": "alice"} if method == "POST" else None,
    )
    assert status == 401
    assert resp_headers["WWW-Authenticate"] == CHALLENGE
    assert body == {"error": "invalid_token", "error_description": "admin token required"}
    assert (await gateway.server.store.list()).entries == []


@pytest.mark.parametrize(
    ("path", "status"),
    [
        pytest.param("/admin/%72evocations", 401, id="an escaped letter"),
        pytest.param("/admin/revocations/", 401, id="a trailing slash"),
        pytest.param("/admin/./revocations", 401, id="a dot segment"),
        pytest.param("/admin//revocations", 401, id="a doubled inner slash"),
        pytest.param("//admin/revocations", 404, id="a doubled leading slash matches nothing"),
    ],
)
async def test_path_variants_never_reach_the_revocation_list_without_a_token(
    gateway: RunningGateway, http: aiohttp.ClientSession, path: str, status: int
) -> None:
    await gateway.server.store.revoke(Revocation("jti", ISSUER, "j1", expires_at=4e9))
    async with http.get(URL(gateway.admin_url + path, encoded=True)) as resp:
        assert resp.status == status
        assert "j1" not in await resp.text()


async def test_the_admin_api_is_disabled_without_a_configured_token(
    start_gateway: GatewayFactory, tmp_path: Path, upstream: Upstream, rsa_key: KeyPair,
    ec_key: KeyPair, http: aiohttp.ClientSession,
) -> None:
    config = base_config(tmp_path, upstream, rsa_key, ec_key)
    del config["admin"]["token_file"]
    gw = await start_gateway(config)
    for headers in ({}, AUTH):
        status, _, body = await call(
            http, "GET", gw.admin_url + "/admin/revocations", headers=headers
        )
        assert status == 403
        assert body == {
            "error": "access_denied",
            "error_description": "admin API disabled: set admin.token_file or admin.token_env",
        }
    status, _, _ = await call(http, "GET", gw.admin_url + "/healthz", headers={})
    assert status == 200


async def test_the_admin_token_can_come_from_the_environment(
    start_gateway: GatewayFactory, tmp_path: Path, upstream: Upstream, rsa_key: KeyPair,
    ec_key: KeyPair, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GATEWAY_TEST_ADMIN_TOKEN", "token-from-env")
    config = base_config(tmp_path, upstream, rsa_key, ec_key)
    config["admin"] = {"listen": "127.0.0.1:0", "token_env": "GATEWAY_TEST_ADMIN_TOKEN"}
    gw = await start_gateway(config)
    url = gw.admin_url + "/admin/revocations"
    assert (await call(http, "GET", url))[0] == 401
    assert (await call(http, "GET", url, headers={"Authorization": "Bearer token-from-env"}))[
        0
    ] == 200


# -- revoking ------------------------------------------------------------------------------


async def test_revoking_a_jti_keeps_it_until_the_given_exp(
    gateway: RunningGateway, http: aiohttp.ClientSession
) -> None:
    status, _, body = await call(
        http, "POST", gateway.admin_url + "/admin/revocations",
        json={"jti": "j-1", "exp": 4_000_000_000, "reason": "leaked", "actor": "ops"},
    )
    assert status == 201
    created = body.pop("created_at")
    assert body == {
        "kind": "jti", "issuer": ISSUER, "value": "j-1", "expires_at": 4_000_000_000.0,
        "reason": "leaked", "actor": "ops",
    }
    [entry] = (await gateway.server.store.list()).entries
    assert entry == Revocation("jti", ISSUER, "j-1", 4e9, None, "leaked", "ops", created)


async def test_a_jti_without_exp_is_kept_for_the_max_token_lifetime(
    gateway: RunningGateway, http: aiohttp.ClientSession
) -> None:
    status, _, body = await call(
        http, "POST", gateway.admin_url + "/admin/revocations", json={"jti": "j-2"}
    )
    assert status == 201
    assert body["expires_at"] == body["created_at"] + 86400
    assert "before" not in body


@pytest.mark.parametrize(
    ("field", "kind"),
    [pytest.param("sub", "sub", id="a subject"),
     pytest.param("client_id", "client", id="a client")],
)
async def test_a_cutoff_defaults_to_now(
    gateway: RunningGateway, http: aiohttp.ClientSession, field: str, kind: Kind
) -> None:
    status, _, body = await call(
        http, "POST", gateway.admin_url + "/admin/revocations", json={field: "alice"}
    )
    assert status == 201
    assert (body["kind"], body["issuer"], body["value"]) == (kind, ISSUER, "alice")
    assert body["before"] == body["created_at"]
    assert body["expires_at"] == body["before"] + 86400
    [entry] = (await gateway.server.store.list()).entries
    assert (entry.kind, entry.value, entry.before) == (kind, "alice", body["before"])


async def test_a_cutoff_takes_an_explicit_before(
    gateway: RunningGateway, http: aiohttp.ClientSession
) -> None:
    status, _, body = await call(
        http, "POST", gateway.admin_url + "/admin/revocations",
        json={"sub": "alice", "before": 1_700_000_000, "iss": ISSUER},
    )
    assert status == 201
    assert body["before"] == 1_700_000_000
    assert body["expires_at"] == 1_700_000_000 + 86400


@pytest.mark.parametrize(
    ("body", "description"),
    [
        pytest.param(b"{", "body must be JSON", id="not JSON"),
        pytest.param(b"jti=abc", "body must be JSON", id="a form body"),
        pytest.param(b'["jti"]', "body must be a JSON object", id="a JSON array"),
        pytest.param(b"{}", ONE_KIND, id="an empty object"),
        pytest.param(b'{"jti": "a", "sub": "b"}', ONE_KIND,
                     id="two kinds at once"),
        pytest.param(b'{"sub": "b", "client_id": "c"}',
                     ONE_KIND, id="subject and client at once"),
        pytest.param(b'{"jti": ""}', ONE_KIND,
                     id="an empty jti"),
        pytest.param(b'{"jti": "a", "kind": "issuer"}', ONE_KIND,
                     id="a jti and the issuer-wide kind at once"),
        pytest.param(b'{"jti": 42}', "jti must be a string", id="a numeric jti"),
        pytest.param(b'{"jti": "a", "exp": "1700000000"}', "exp must be a unix time (number)",
                     id="exp as a string"),
        pytest.param(b'{"jti": "a", "exp": true}', "exp must be a unix time (number)",
                     id="exp as a boolean"),
        pytest.param(b'{"sub": "a", "before": "yesterday"}',
                     "before must be a unix time (number)", id="before as a string"),
        pytest.param(b'{"sub": "a", "iss": "https://evil.test/"}',
                     "iss 'https://evil.test/' is not configured", id="an unknown issuer"),
        pytest.param(b'{"sub": "a", "iss": 5}', "iss must be a string", id="a numeric issuer"),
        pytest.param(b'{"sub": "a", "reason": 5}', "reason must be a string",
                     id="a numeric reason"),
        pytest.param(b'{"sub": "a", "actor": ["x"]}', "actor must be a string",
                     id="a list as actor"),
    ],
)
async def test_bad_revocation_requests_are_refused(
    gateway: RunningGateway, http: aiohttp.ClientSession, body: bytes, description: str
) -> None:
    status, _, answer = await call(
        http, "POST", gateway.admin_url + "/admin/revocations", data=body,
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert (status, answer) == (
        400, {"error": "invalid_request", "error_description": description}
    )
    assert (await gateway.server.store.list()).entries == []


async def test_with_several_issuers_the_issuer_must_be_named(
    start_gateway: GatewayFactory, tmp_path: Path, upstream: Upstream, rsa_key: KeyPair,
    ec_key: KeyPair, second_issuer_key: KeyPair, http: aiohttp.ClientSession,
) -> None:
    config = base_config(tmp_path, upstream, rsa_key, ec_key)
    (tmp_path / "idp2.pem").write_bytes(second_issuer_key.public_pem())
    config["issuers"].append(
        {"issuer": ISSUER2, "audiences": ["https://api.test"], "keys": ["idp2.pem"]}
    )
    gw = await start_gateway(config)
    url = gw.admin_url + "/admin/revocations"
    status, _, body = await call(http, "POST", url, json={"sub": "alice"})
    assert (status, body["error_description"]) == (
        400, "iss is required when several issuers are configured"
    )
    status, _, body = await call(http, "POST", url, json={"sub": "alice", "iss": ISSUER2})
    assert (status, body["issuer"]) == (201, ISSUER2)


# -- un-revoking and listing ---------------------------------------------------------------


async def test_delete_un_revokes_by_query_or_body(
    gateway: RunningGateway, http: aiohttp.ClientSession
) -> None:
    url = gateway.admin_url + "/admin/revocations"
    store = gateway.server.store
    await store.revoke(Revocation("jti", ISSUER, "j-1", expires_at=4e9))
    await store.revoke(Revocation("sub", ISSUER, "alice", expires_at=4e9, before=1.0))

    status, _, body = await call(http, "DELETE", url, params={"jti": "j-1"})
    assert (status, body) == (
        200, {"removed": True, "kind": "jti", "iss": ISSUER, "value": "j-1"}
    )
    status, _, body = await call(http, "DELETE", url, json={"sub": "alice"})
    assert (status, body) == (
        200, {"removed": True, "kind": "sub", "iss": ISSUER, "value": "alice"}
    )
    assert (await store.list()).entries == []
    status, _, body = await call(http, "DELETE", url, params={"jti": "j-1"})
    assert (status, body) == (
        404, {"error": "not_found", "error_description": "no such revocation"}
    )


async def test_delete_needs_exactly_one_kind(
    gateway: RunningGateway, http: aiohttp.ClientSession
) -> None:
    status, _, body = await call(
        http, "DELETE", gateway.admin_url + "/admin/revocations",
        params={"jti": "a", "sub": "b"},
    )
    assert (status, body["error"]) == (400, "invalid_request")


async def test_the_listing_filters_and_pages(
    gateway: RunningGateway, http: aiohttp.ClientSession
) -> None:
    url = gateway.admin_url + "/admin/revocations"
    for i in range(5):
        assert (await call(http, "POST", url, json={"jti": f"j{i}", "exp": 4e9}))[0] == 201
    assert (await call(http, "POST", url, json={"sub": "alice"}))[0] == 201
    assert (await call(http, "POST", url, json={"client_id": "web-app"}))[0] == 201

    status, _, page = await call(http, "GET", url)
    assert status == 200
    assert [(e["kind"], e["value"]) for e in page["entries"]] == [
        ("client", "web-app"), ("jti", "j0"), ("jti", "j1"), ("jti", "j2"), ("jti", "j3"),
        ("jti", "j4"), ("sub", "alice"),
    ]
    assert page["next_cursor"] is None

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"kind": "jti", "limit": "2", **({"cursor": cursor} if cursor else {})}
        status, _, page = await call(http, "GET", url, params=params)
        assert status == 200
        seen += [e["value"] for e in page["entries"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert (seen, pages) == (["j0", "j1", "j2", "j3", "j4"], 3)

    status, _, page = await call(http, "GET", url, params={"value": "alice", "iss": ISSUER})
    assert [e["kind"] for e in page["entries"]] == ["sub"]
    status, _, page = await call(http, "GET", url, params={"iss": ISSUER2})
    assert page == {"entries": [], "next_cursor": None}


@pytest.mark.parametrize(
    ("params", "description"),
    [
        pytest.param({"kind": "user"}, "kind must be one of ['jti', 'sub', 'client', 'issuer']",
                     id="an unknown kind"),
        pytest.param({"limit": "ten"}, "limit must be a number", id="a limit that is no number"),
    ],
)
async def test_bad_listing_queries_are_refused(
    gateway: RunningGateway, http: aiohttp.ClientSession, params: dict[str, str],
    description: str,
) -> None:
    status, _, body = await call(
        http, "GET", gateway.admin_url + "/admin/revocations", params=params
    )
    assert (status, body) == (400, {"error": "invalid_request", "error_description": description})


async def test_without_a_revocation_section_the_api_answers_409(
    start_gateway: GatewayFactory, tmp_path: Path, upstream: Upstream, rsa_key: KeyPair,
    ec_key: KeyPair, http: aiohttp.ClientSession,
) -> None:
    config = base_config(tmp_path, upstream, rsa_key, ec_key)
    del config["revocation"]
    gw = await start_gateway(config)
    url = gw.admin_url + "/admin/revocations"
    expected = {"error": "revocation_disabled",
                "error_description": "the config has no revocation section"}
    assert (await call(http, "POST", url, json={"sub": "alice"}))[::2] == (409, expected)
    assert (await call(http, "DELETE", url, params={"sub": "alice"}))[::2] == (409, expected)
    assert (await call(http, "GET", url))[::2] == (409, expected)
    assert (await gw.server.store.list()).entries == []


class BrokenStore(MemoryRevocationStore):
    """Every admin operation fails as a backend outage would."""

    async def is_revoked(self, principal: Principal) -> bool:
        raise StoreError("connection refused")

    async def revoke(self, entry: Revocation) -> None:
        raise StoreError("connection refused")

    async def unrevoke(self, kind: Kind, issuer: str, value: str) -> bool:
        raise StoreError("connection refused")

    async def list(self, **kwargs: Any) -> Page:
        raise StoreError("connection refused")


async def test_a_failing_store_answers_503_and_is_counted(
    start_gateway: GatewayFactory, tmp_path: Path, upstream: Upstream, rsa_key: KeyPair,
    ec_key: KeyPair, http: aiohttp.ClientSession,
) -> None:
    gw = await start_gateway(base_config(tmp_path, upstream, rsa_key, ec_key), store=BrokenStore())
    url = gw.admin_url + "/admin/revocations"
    expected = {"error": "temporarily_unavailable",
                "error_description": "revocation store: connection refused"}
    assert (await call(http, "POST", url, json={"sub": "alice"}))[::2] == (503, expected)
    assert (await call(http, "DELETE", url, params={"sub": "alice"}))[::2] == (503, expected)
    assert (await call(http, "GET", url))[::2] == (503, expected)
    assert gw.sample("gateway_revocation_store_errors_total") == 3
