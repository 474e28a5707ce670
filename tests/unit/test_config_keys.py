"""Compiling key sources, introspection and route requirements; caches reused across compiles."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.auth.providers import IdentityProviders
from gateway.cli import main
from gateway.config.compile import compile_runtime
from gateway.config.load import load_config
from gateway.errors import MethodNotAllowed
from gateway.metrics import GatewayMetrics
from gateway.revocation.memory import MemoryRevocationStore
from gateway.runtime import Runtime

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "tests" / "data" / "configs" / "valid" / "key-management.yaml"
KEYCLOAK = "https://keycloak.example.com/realms/main"
PARTNER = "https://login.partner.example/"
LEGACY = "https://legacy.example.com/"


@pytest.fixture
def environ(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "admin-token").write_text("introspection-client-secret\n")
    return {"KEYS_DIR": str(tmp_path)}


def compile_with(
    providers: IdentityProviders, environ: dict[str, str], text: str | None = None,
    tmp_path: Path | None = None,
) -> Runtime:
    path = CONFIG
    if text is not None:
        assert tmp_path is not None
        path = tmp_path / "gw.yaml"
        path.write_text(text)
    return compile_runtime(
        load_config(path, environ), metrics=providers.metrics,
        revocation_store=MemoryRevocationStore(), environ=environ, providers=providers,
    )


def test_issuers_compile_with_their_rules(environ: dict[str, str]) -> None:
    runtime = compile_with(IdentityProviders(GatewayMetrics()), environ)
    issuers = runtime.verifier.issuers
    keycloak = issuers[KEYCLOAK]
    assert keycloak.remote is not None and keycloak.remote.settings.discovery
    s = keycloak.remote.settings
    assert (s.refresh_interval, s.min_refresh_interval, s.max_refresh_interval, s.cooldown,
            s.max_stale) == (300, 30, 43_200, 15, 21_600)
    assert (s.limits.timeout, s.limits.connect_timeout, s.limits.max_bytes,
            s.limits.allow_insecure_http) == (3, 1, 131_072, False)
    assert keycloak.require_typ == "at+jwt"
    assert keycloak.required_claims == (("sub",), ("client_id",), ("jti",), ("iat",))
    partner = issuers[PARTNER]
    assert partner.remote is not None
    assert partner.remote.settings.jwks_uri == (
        "https://login.partner.example/.well-known/jwks.json?tenant=acme")
    assert partner.scope_claim == "scp"
    legacy = issuers[LEGACY]
    assert legacy.remote is None and not legacy.verifies_signatures
    assert legacy.introspector is not None
    settings = legacy.introspector.settings
    assert settings.client_secret == "introspection-client-secret"
    assert "introspection-client-secret" not in repr(settings)
    assert (settings.auth_method, settings.cache_ttl, settings.inactive_ttl) == (
        "client_secret_post", 120, 5)


def test_routes_compile_methods_issuers_and_conditions(environ: dict[str, str]) -> None:
    runtime = compile_with(IdentityProviders(GatewayMetrics()), environ)
    orders = runtime.routes.match("GET", None, "/api/orders/1").route
    assert orders.rule.methods == frozenset({"GET", "HEAD", "POST", "DELETE"})
    assert orders.issuers == frozenset({KEYCLOAK})
    assert [c.describe() for c in orders.policy.claims] == ["tenant one of 'acme', 'globex'"]
    delete = orders.policy.methods["DELETE"]
    assert [c.path for c in delete.claims] == [
        ("realm_access", "roles"), ("resource_access", "orders.api", "roles"),
        ("email_verified",)]
    with pytest.raises(MethodNotAllowed) as info:
        runtime.routes.match("PUT", None, "/api/orders/1")
    assert info.value.allowed == ("DELETE", "GET", "HEAD", "POST")
    partner = runtime.routes.match("POST", None, "/api/partner").route
    assert partner.issuers == frozenset({PARTNER, LEGACY})
    assert partner.policy.methods["POST"].any_of == frozenset({"partner:write", "admin"})


def test_an_unchanged_issuer_keeps_its_cache_across_compiles(
    environ: dict[str, str], tmp_path: Path
) -> None:
    providers = IdentityProviders(GatewayMetrics())
    first = compile_with(providers, environ)
    text = CONFIG.read_text()
    second = compile_with(providers, environ, text.replace("5m\n", "5m\n", 1), tmp_path)
    for name in (KEYCLOAK, PARTNER):
        assert second.verifier.issuers[name].remote is first.verifier.issuers[name].remote
    assert second.verifier.issuers[LEGACY].introspector is \
        first.verifier.issuers[LEGACY].introspector
    changed = compile_with(providers, environ, text.replace("cooldown: 15s", "cooldown: 20s"),
                           tmp_path)
    assert changed.verifier.issuers[KEYCLOAK].remote is not \
        first.verifier.issuers[KEYCLOAK].remote
    assert changed.verifier.issuers[PARTNER].remote is first.verifier.issuers[PARTNER].remote
    assert len(providers.caches()) == 3  # until retain() retires the old one


async def test_retain_closes_what_no_runtime_uses(environ: dict[str, str]) -> None:
    providers = IdentityProviders(GatewayMetrics())
    runtime = compile_with(providers, environ)
    partner = runtime.verifier.issuers[PARTNER].remote
    assert partner is not None
    providers.metrics.record_jwks_result(KEYCLOAK, "success")
    providers.metrics.record_jwks_result(PARTNER, "success")
    await providers.retain([partner])
    assert providers.caches() == [partner]
    assert providers.metrics.known_issuers() == {PARTNER}
    await providers.close()


def test_check_compiles_remote_issuers_without_fetching(
    environ: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KEYS_DIR", environ["KEYS_DIR"])
    assert main(["check", str(CONFIG)]) == 0
    assert "3 issuer(s)" in capsys.readouterr().out
