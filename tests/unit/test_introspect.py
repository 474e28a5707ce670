"""The introspection cache: active answers until min(exp, cache_ttl), inactive ones briefly,
bounded; client authentication encoding."""

from __future__ import annotations

import hashlib
from types import MappingProxyType
from typing import Any

import pytest

from gateway.auth.introspect import IntrospectionSettings, Introspector
from gateway.metrics import GatewayMetrics

NOW = 1_700_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def introspector(clock: Clock, **overrides: Any) -> Introspector:
    values: dict[str, Any] = {
        "issuer": "https://idp.unit/", "endpoint": "https://idp.unit/introspect",
        "client_id": "gateway", "client_secret": "s3cret", "cache_ttl": 300.0,
        "inactive_ttl": 10.0, "cache_size": 3,
    }
    values.update(overrides)

    def no_session() -> Any:
        raise AssertionError("no I/O in these tests")

    return Introspector(IntrospectionSettings(**values), no_session, GatewayMetrics(),
                        clock=clock)


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@pytest.mark.parametrize(
    ("answer", "kept_for"),
    [
        pytest.param({"active": True}, 300.0, id="active without exp: cache_ttl"),
        pytest.param({"active": True, "exp": NOW + 60}, 60.0, id="active, exp sooner: exp"),
        pytest.param({"active": True, "exp": NOW + 3600}, 300.0, id="active, exp later: ttl"),
        pytest.param({"active": True, "exp": NOW - 1}, 0.0, id="already expired: not cached"),
        pytest.param({"active": True, "exp": "soon"}, 300.0, id="exp not a number: ttl"),
        pytest.param(None, 10.0, id="inactive: inactive_ttl"),
    ],
)
def test_how_long_answers_are_kept(answer: dict[str, Any] | None, kept_for: float) -> None:
    clock = Clock()
    found = introspector(clock)
    claims = None if answer is None else MappingProxyType(answer)
    found._store(digest("t"), claims, clock.now)
    if kept_for == 0:
        assert found.cached(digest("t"), clock.now) == (False, None)
        return
    clock.now += kept_for - 0.001
    assert found.cached(digest("t"), clock.now) == (True, claims)
    clock.now += 0.001
    assert found.cached(digest("t"), clock.now) == (False, None)


def test_the_cache_is_bounded_least_recently_used_first() -> None:
    clock = Clock()
    found = introspector(clock)
    for name in ("a", "b", "c"):
        found._store(digest(name), MappingProxyType({"active": True, "n": name}), clock.now)
    assert found.cached(digest("a"), clock.now)[0]  # a is now the most recently used
    found._store(digest("d"), None, clock.now)       # evicts b
    assert [found.cached(digest(n), clock.now)[0] for n in "abcd"] == [True, False, True, True]


def test_zero_ttls_disable_caching() -> None:
    clock = Clock()
    found = introspector(clock, cache_ttl=0.0, inactive_ttl=0.0)
    found._store(digest("a"), MappingProxyType({"active": True}), clock.now)
    found._store(digest("b"), None, clock.now)
    assert found.cached(digest("a"), clock.now) == (False, None)
    assert found.cached(digest("b"), clock.now) == (False, None)


def test_the_secret_never_appears_in_the_settings_repr() -> None:
    assert "s3cret" not in repr(introspector(Clock()).settings)
