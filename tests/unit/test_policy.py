"""RoutePolicy: all_of, any_of, both, and the scopes named in a 403 challenge."""

from __future__ import annotations

import pytest

from gateway.auth.policy import RoutePolicy
from gateway.auth.principal import ANONYMOUS, Principal
from gateway.errors import InsufficientScope


def principal(*scopes: str) -> Principal:
    return Principal(
        issuer="https://idp.unit/", subject="alice", client_id="web", scopes=frozenset(scopes),
        token_id="j", issued_at=0.0, expires_at=1e12,
    )


def policy(all_of: tuple[str, ...] = (), any_of: tuple[str, ...] = ()) -> RoutePolicy:
    return RoutePolicy(all_of=frozenset(all_of), any_of=frozenset(any_of))


@pytest.mark.parametrize(
    ("pol", "scopes"),
    [
        pytest.param(policy(), (), id="no requirement and no scopes"),
        pytest.param(policy(("a",)), ("a",), id="all_of with its one scope"),
        pytest.param(policy(("a", "b")), ("b", "a", "c"), id="all_of with every scope and more"),
        pytest.param(policy(any_of=("a", "b")), ("b",), id="any_of with the second scope"),
        pytest.param(policy(any_of=("a", "b")), ("a", "b"), id="any_of with both scopes"),
        pytest.param(policy(("a",), ("x", "y")), ("a", "y"), id="both satisfied"),
    ],
)
def test_allowed(pol: RoutePolicy, scopes: tuple[str, ...]) -> None:
    pol.check(principal(*scopes))  # no exception


@pytest.mark.parametrize(
    ("pol", "scopes"),
    [
        pytest.param(policy(("a",)), (), id="all_of without scopes"),
        pytest.param(policy(("a", "b")), ("a",), id="all_of missing one of two"),
        pytest.param(policy(("a",)), ("A",), id="scopes are case-sensitive"),
        pytest.param(policy(("orders:read",)), ("orders:read:extra",), id="no prefix matching"),
        pytest.param(policy(any_of=("a", "b")), ("c",), id="any_of with none of them"),
        pytest.param(policy(any_of=("a", "b")), (), id="any_of without scopes"),
        pytest.param(policy(("a",), ("x", "y")), ("a",), id="both: all_of met, any_of not"),
        pytest.param(policy(("a",), ("x", "y")), ("x",), id="both: any_of met, all_of not"),
    ],
)
def test_refused(pol: RoutePolicy, scopes: tuple[str, ...]) -> None:
    with pytest.raises(InsufficientScope) as exc_info:
        pol.check(principal(*scopes))
    err = exc_info.value
    assert err.status == 403
    assert err.reason == "insufficient_scope"
    assert err.error == "insufficient_scope"
    assert err.required == pol.challenge_scopes


def test_anonymous_principal_fails_any_requirement() -> None:
    with pytest.raises(InsufficientScope):
        policy(("a",)).check(ANONYMOUS)
    policy().check(ANONYMOUS)


@pytest.mark.parametrize(
    ("pol", "expected"),
    [
        pytest.param(policy(), (), id="no requirement names no scope"),
        pytest.param(policy(("orders:write",)), ("orders:write",), id="single all_of scope"),
        pytest.param(policy(("b", "a")), ("a", "b"), id="all_of sorted"),
        pytest.param(policy(any_of=("reports:read", "admin")), ("admin", "reports:read"),
                     id="any_of sorted"),
        pytest.param(policy(("z", "m"), ("b", "a")), ("m", "z", "a", "b"),
                     id="all_of first, then any_of"),
        pytest.param(policy(("a", "b"), ("b", "c")), ("a", "b", "c"),
                     id="a scope in both lists is named once"),
    ],
)
def test_challenge_scopes(pol: RoutePolicy, expected: tuple[str, ...]) -> None:
    assert pol.challenge_scopes == expected


def test_detail_names_the_missing_scopes_only() -> None:
    with pytest.raises(InsufficientScope) as exc_info:
        policy(("a", "b", "c")).check(principal("b"))
    assert exc_info.value.detail == "missing scopes: a c"
    assert exc_info.value.description == "token lacks the required scope"
