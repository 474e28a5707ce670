"""Lints: warnings about configs that load, found by probing the compiled route table."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from gateway.config.compile import compile_runtime
from gateway.config.load import LoadedConfig, parse_config
from gateway.errors import RouteNotFound
from gateway.lint import PROBE_HOST, Lint, _loopback, lint, requirements
from gateway.metrics import GatewayMetrics
from gateway.revocation.memory import MemoryRevocationStore
from tests.fixtures.keys import KeyPair

UP = "http://127.0.0.1:9001"


@pytest.fixture
def keys(tmp_path: Path, rsa_key: KeyPair) -> Path:
    path = tmp_path / "idp.jwks.json"
    path.write_text(json.dumps({"keys": [rsa_key.jwk()]}))
    return path


def config_of(keys: Path, *routes: dict[str, Any]) -> dict[str, Any]:
    return {
        "issuers": [{"issuer": "https://idp.test/", "audiences": ["api"], "keys": [str(keys)]}],
        "routes": list(routes),
    }


def r(name: str, *, path: str | None = None, prefix: str | None = None,
      methods: list[str] | None = None, host: str | None = None, **rest: Any) -> dict[str, Any]:
    match: dict[str, Any] = {"path": path} if path else {"path_prefix": prefix}
    if methods:
        match["methods"] = methods
    if host:
        match["host"] = host
    return {"name": name, "match": match, "upstream": UP, **rest}


def lints(config: dict[str, Any]) -> list[Lint]:
    loaded = parse_config(yaml.safe_dump(config, sort_keys=False), "gw.yaml", {})
    runtime = compile_runtime(loaded, metrics=GatewayMetrics(),
                              revocation_store=MemoryRevocationStore())
    return lint(loaded, runtime)


def codes(config: dict[str, Any]) -> list[tuple[str, str]]:
    return [(w.code, w.path) for w in lints(config)]


SCOPED = {"require": {"scopes": ["read"]}}


def test_the_quickstart_and_a_tidy_config_have_no_warnings(keys: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    loaded = parse_config((root / "config/quickstart.yaml").read_text(), "q.yaml", {})
    runtime = compile_runtime(loaded, metrics=GatewayMetrics(),
                              revocation_store=MemoryRevocationStore(), missing_dev_key_ok=True)
    assert lint(loaded, runtime) == []
    assert codes(config_of(
        keys,
        r("read", prefix="/api/orders", methods=["GET", "HEAD"], **SCOPED),
        r("write", prefix="/api/orders", methods=["POST"], require={"scopes": ["write"]}),
        r("status", path="/status", auth="none"),
    )) == []


def test_a_narrower_route_that_requires_less_is_flagged_at_that_route(keys: Path) -> None:
    config = config_of(
        keys,
        r("orders", prefix="/api/orders", **SCOPED),
        r("orders-export", prefix="/api/orders/export", auth="none"),
    )
    found = lints(config)
    text = yaml.safe_dump(config, sort_keys=False).splitlines()
    line = [i for i, t in enumerate(text, 1) if t.strip().startswith("match:")][1]
    assert [(w.code, w.line, w.path) for w in found] == [("overlap", line, "routes[1].match")]
    assert found[0].message == (
        "route 'orders-export' takes requests that route 'orders' also matches (e.g. GET "
        "/api/orders/export/… on any host) and requires less: no token instead of a token "
        "with scopes read"
    )
    assert str(found[0]).startswith(f"gw.yaml:{line}: routes[1].match: warning[overlap]: ")


@pytest.mark.parametrize(("outer", "inner", "verb"), [
    pytest.param({"auth": "none"}, SCOPED, "requires something else",
                 id="a protected area inside a public one"),
    pytest.param(SCOPED, {"require": {"scopes": ["read", "admin"]}}, "requires something else",
                 id="more scopes inside"),
    pytest.param({"require": {"scopes": ["read", "admin"]}}, SCOPED, "requires less",
                 id="fewer scopes inside"),
    pytest.param(SCOPED, {**SCOPED, "enforce": False}, "requires less",
                 id="a shadow-mode route inside an enforced one"),
    pytest.param({"require": {"any_of": ["a"]}}, {"require": {"any_of": ["a", "b"]}},
                 "requires less", id="more choices inside"),
])
def test_overlaps_say_which_way_they_differ(
    keys: Path, outer: dict[str, Any], inner: dict[str, Any], verb: str
) -> None:
    found = [w for w in lints(config_of(keys, r("outer", prefix="/", **outer),
                                        r("inner", prefix="/api", **inner)))
             if w.code == "overlap"]
    assert len(found) == 1 and f" and {verb}: " in found[0].message


@pytest.mark.parametrize("routes", [
    pytest.param([r("a", prefix="/api", methods=["GET"], **SCOPED),
                  r("b", prefix="/api/x", methods=["POST"], auth="none")],
                 id="disjoint methods never overlap"),
    pytest.param([r("a", prefix="/api", host="a.example", **SCOPED),
                  r("b", prefix="/api/x", host="b.example", auth="none")],
                 id="different hosts never overlap"),
    pytest.param([r("a", prefix="/api", **SCOPED), r("b", prefix="/apix", auth="none")],
                 id="prefixes match on segment boundaries"),
    pytest.param([r("a", prefix="/api", **SCOPED), r("b", prefix="/api/x", **SCOPED)],
                 id="the same requirements are no concern"),
])
def test_no_overlap_warning(keys: Path, routes: list[dict[str, Any]]) -> None:
    assert [w for w in lints(config_of(keys, *routes)) if w.code == "overlap"] == []


def test_a_host_specific_route_overlapping_a_generic_one(keys: Path) -> None:
    found = lints(config_of(keys, r("generic", path="/x", **SCOPED),
                            r("special", path="/x", host="a.example", auth="none")))
    assert [(w.code, w.path) for w in found] == [("overlap", "routes[1].match")]
    assert "GET /x on host a.example" in found[0].message


def test_methods_refused_by_a_more_specific_route_are_flagged(keys: Path) -> None:
    found = lints(config_of(
        keys,
        r("orders-item", path="/api/orders", methods=["GET"], **SCOPED),
        r("orders", prefix="/api/orders", methods=["GET", "POST"], **SCOPED),
    ))
    assert [(w.code, w.path) for w in found] == [("shadowed", "routes[1].match")]
    assert found[0].message.startswith(
        "route 'orders' never gets POST /api/orders on any host: the more specific route "
        "'orders-item' answers 405 there"
    )


def test_protected_routes_without_scope_and_shadow_routes_are_flagged(keys: Path) -> None:
    assert codes(config_of(
        keys, r("open-door", prefix="/a"), r("trial", prefix="/b", enforce=False, **SCOPED),
        r("public", prefix="/c", auth="none", enforce=False),
    )) == [("no_scope", "routes[0]"), ("shadow_mode", "routes[1].enforce")]


def test_a_route_nothing_reaches_is_unreachable(keys: Path) -> None:
    """The matcher's precedence rules leave no such route in a valid config today; the lint
    guards the matcher of tomorrow. Here a table that answers 404 to everything stands in."""
    loaded = parse_config(yaml.safe_dump(config_of(keys, r("lost", prefix="/lost", **SCOPED))),
                          "gw.yaml", {})
    runtime = compile_runtime(loaded, metrics=GatewayMetrics(),
                              revocation_store=MemoryRevocationStore())

    class NothingMatches:
        def entries(self) -> Any:
            return runtime.routes.entries()

        def match(self, method: str, host: str | None, target: str) -> Any:
            raise RouteNotFound("nothing")

    fake = SimpleNamespace(routes=NothingMatches())
    found = lint(loaded, fake)  # type: ignore[arg-type]
    assert [(w.code, w.message) for w in found] == [
        ("unreachable", "route 'lost' can never match: its requests go to no route (404/405)")]


class FakeIssuer:
    """An issuer spec with the `allow_insecure_http` key of the key-management issue."""

    def __init__(self, **settings: Any) -> None:
        self.settings = settings

    def model_dump(self) -> dict[str, Any]:
        return self.settings


@pytest.mark.parametrize(("settings", "flagged"), [
    pytest.param({"allow_insecure_http": True, "jwks_uri": "http://idp.internal/jwks"}, True,
                 id="a plain-http key URL on another host is flagged"),
    pytest.param({"allow_insecure_http": True, "issuer": "http://127.0.0.1:8080/",
                  "discovery": True}, False, id="loopback is what the setting is for"),
    pytest.param({"allow_insecure_http": True, "jwks_uri": "http://localhost:1/jwks"}, False,
                 id="localhost too"),
    pytest.param({"allow_insecure_http": False, "jwks_uri": "http://idp.internal/jwks"}, False,
                 id="without the setting the loader refuses http itself"),
    pytest.param({"jwks_uri": "https://idp/jwks"}, False,
                 id="configs without the key are skipped"),
])
def test_allow_insecure_http_on_a_remote_host(
    keys: Path, settings: dict[str, Any], flagged: bool
) -> None:
    text = yaml.safe_dump(config_of(keys, r("a", prefix="/a", **SCOPED)))
    loaded = parse_config(text, "gw.yaml", {})
    runtime = compile_runtime(loaded, metrics=GatewayMetrics(),
                              revocation_store=MemoryRevocationStore())
    spec = SimpleNamespace(issuers=[FakeIssuer(**settings)], routes=loaded.spec.routes)
    fake = LoadedConfig(loaded.path, spec, loaded.sha256, loaded.lines)  # type: ignore[arg-type]
    found = [w for w in lint(fake, runtime) if w.code == "insecure_http"]
    assert bool(found) is flagged
    if flagged:
        assert found[0].path == "issuers[0].allow_insecure_http"
        assert "http://idp.internal/jwks" in found[0].message


@pytest.mark.parametrize(("url", "loopback"), [
    ("http://127.0.0.1:8080/x", True), ("http://127.8.9.10/", True), ("http://[::1]:80/", True),
    ("http://localhost/", True), ("http://idp.localhost/", True), ("http://10.0.0.1/", False),
    ("http://example.com/", False), ("http://[::ffff:10.0.0.1]/", False), ("http://%zz/", False),
], ids=lambda v: str(v))
def test_loopback_hosts(url: str, loopback: bool) -> None:
    assert _loopback(url) is loopback


def test_requirements_in_words(keys: Path) -> None:
    loaded = parse_config(yaml.safe_dump(config_of(
        keys, r("a", prefix="/a", require={"scopes": ["x", "y"], "any_of": ["p", "q"]}),
        r("b", prefix="/b"), r("c", prefix="/c", auth="none"),
    )), "gw.yaml", {})
    runtime = compile_runtime(loaded, metrics=GatewayMetrics(),
                              revocation_store=MemoryRevocationStore())
    texts = {route.name: requirements(route) for _, route in runtime.routes.entries()}
    assert texts == {"a": "a token with scopes x y and one of p q", "b": "any valid token",
                     "c": "no token"}
    assert PROBE_HOST.endswith(".invalid")  # RFC 6761: never a real host
