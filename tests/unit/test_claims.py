"""Claim conditions on nested paths, and route policies with claims and per-method parts."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import pytest

from gateway.auth.claims import ClaimCondition, is_present, parse_path
from gateway.auth.policy import RoutePolicy
from gateway.auth.principal import Principal, scopes_from_claim
from gateway.errors import ClaimConditionFailed, InsufficientScope

CLAIMS: dict[str, Any] = {
    "tenant": "acme",
    "level": 3,
    "ratio": 0.5,
    "admin": True,
    "email_verified": False,
    "nothing": None,
    "groups": ["eng", "ops", 7, True],
    "realm_access": {"roles": ["offline_access", "orders-admin"]},
    "resource_access": {"orders.api": {"roles": ["reader"]}},
    "roles": "orders-admin",
}


def cond(path: Any, op: str, *values: Any) -> ClaimCondition:
    return ClaimCondition(parse_path(path), op, values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("condition", "holds"),
    [
        pytest.param(cond("tenant", "equals", "acme"), True, id="equals a string"),
        pytest.param(cond("tenant", "equals", "ACME"), False, id="equals is case-sensitive"),
        pytest.param(cond("level", "equals", 3), True, id="equals a number"),
        pytest.param(cond("level", "equals", 3.0), True, id="3 equals 3.0"),
        pytest.param(cond("level", "equals", "3"), False, id="a string never equals a number"),
        pytest.param(cond("admin", "equals", True), True, id="equals true"),
        pytest.param(cond("admin", "equals", 1), False, id="true never equals 1"),
        pytest.param(cond("email_verified", "equals", False), True, id="equals false"),
        pytest.param(cond("email_verified", "equals", 0), False, id="false never equals 0"),
        pytest.param(cond("missing", "equals", "x"), False, id="equals on a missing claim"),
        pytest.param(cond("groups", "equals", "eng"), False, id="equals on a list claim"),
        pytest.param(cond("tenant", "one_of", "globex", "acme"), True, id="one_of"),
        pytest.param(cond("tenant", "one_of", "globex"), False, id="one_of without a match"),
        pytest.param(cond("realm_access.roles", "contains", "orders-admin"), True,
                     id="contains on a nested list"),
        pytest.param(cond("realm_access.roles", "contains", "orders-admin", "offline_access"),
                     True, id="contains every value"),
        pytest.param(cond("realm_access.roles", "contains", "orders-admin", "root"), False,
                     id="contains but one value is missing"),
        pytest.param(cond("groups", "contains", 7), True, id="contains a number"),
        pytest.param(cond("groups", "contains", 1), False, id="1 is not the true in the list"),
        pytest.param(cond("roles", "contains", "orders-admin"), False,
                     id="contains on a string claim is false"),
        pytest.param(cond(["resource_access", "orders.api", "roles"], "contains", "reader"),
                     True, id="a list path for a member name with a dot"),
        pytest.param(cond("resource_access.orders.api.roles", "contains", "reader"), False,
                     id="the dotted form splits that name"),
        pytest.param(cond("tenant.name", "present", True), False,
                     id="a path through a string is absent"),
        pytest.param(cond("groups.0", "present", True), False, id="paths never index lists"),
        pytest.param(cond("nothing", "present", True), False, id="null counts as absent"),
        pytest.param(cond("nothing", "present", False), True, id="present false on null"),
        pytest.param(cond("realm_access", "present", True), True, id="present on an object"),
        pytest.param(cond("missing", "present", False), True, id="must be absent"),
        pytest.param(cond("tenant", "present", False), False, id="must be absent but is there"),
    ],
)
def test_conditions(condition: ClaimCondition, holds: bool) -> None:
    assert condition.holds(CLAIMS) is holds


@pytest.mark.parametrize("bad", ["", ".", "a..b", "a.", [], ["a", ""]])
def test_empty_path_segments_are_refused(bad: Any) -> None:
    with pytest.raises(ValueError):
        parse_path(bad)


def test_is_present() -> None:
    assert is_present(CLAIMS, ("realm_access", "roles"))
    assert not is_present(CLAIMS, ("realm_access", "groups"))


def test_descriptions_name_the_path_and_values() -> None:
    assert cond("realm_access.roles", "contains", "a").describe() == \
        "realm_access.roles contains 'a'"
    assert cond("tenant", "one_of", "a", "b").describe() == "tenant one of 'a', 'b'"
    assert cond("x", "present", False).describe() == "x absent"


@pytest.mark.parametrize(
    ("value", "scopes"),
    [
        pytest.param("a b  c", {"a", "b", "c"}, id="a space-separated string"),
        pytest.param(["a", "b"], {"a", "b"}, id="a list of strings"),
        pytest.param(None, set(), id="absent"),
        pytest.param(["a", 1], None, id="a list with a number"),
        pytest.param(7, None, id="a number"),
        pytest.param({"a": 1}, None, id="an object"),
    ],
)
def test_the_configured_scope_claim(value: Any, scopes: set[str] | None) -> None:
    claims = {} if value is None else {"scp": value}
    found = scopes_from_claim(claims, "scp")
    assert (None if found is None else set(found)) == scopes


# -- route policies ------------------------------------------------------------------------


def principal(*scopes: str, **claims: Any) -> Principal:
    return Principal(
        issuer="https://idp.unit/", subject="alice", client_id="web", scopes=frozenset(scopes),
        token_id="j", issued_at=0.0, expires_at=1e12, claims=MappingProxyType(claims),
    )


def test_claim_conditions_give_403_claim_mismatch() -> None:
    pol = RoutePolicy(frozenset({"orders:read"}), claims=(cond("tenant", "equals", "acme"),))
    pol.check(principal("orders:read", tenant="acme"))
    with pytest.raises(ClaimConditionFailed) as info:
        pol.check(principal("orders:read", tenant="globex"))
    err = info.value
    assert (err.status, err.reason, err.error, err.required) == (
        403, "claim_mismatch", "insufficient_scope", ())
    assert "tenant equals 'acme'" in err.detail
    # scopes are checked first: a token lacking both gets the scope challenge
    with pytest.raises(InsufficientScope) as scope_info:
        pol.check(principal(tenant="globex"))
    assert not isinstance(scope_info.value, ClaimConditionFailed)


@pytest.fixture
def per_method() -> RoutePolicy:
    return RoutePolicy(
        claims=(cond("tenant", "present", True),),
        methods=MappingProxyType({
            "GET": RoutePolicy(frozenset({"orders:read"})),
            "HEAD": RoutePolicy(frozenset({"orders:read"})),
            "POST": RoutePolicy(frozenset({"orders:write"}), frozenset({"a", "b"})),
            "DELETE": RoutePolicy(claims=(cond("roles", "equals", "orders-admin"),)),
            "OPTIONS": RoutePolicy(),
        }),
    )


@pytest.mark.parametrize(
    ("method", "scopes", "claims", "allowed"),
    [
        pytest.param("GET", ("orders:read",), {"tenant": "t"}, True, id="GET with read"),
        pytest.param("GET", ("orders:write",), {"tenant": "t"}, False, id="GET with write"),
        pytest.param("GET", ("orders:read",), {}, False, id="GET without the route's claim"),
        pytest.param("POST", ("orders:write", "b"), {"tenant": "t"}, True, id="POST all met"),
        pytest.param("POST", ("orders:write",), {"tenant": "t"}, False,
                     id="POST without its any_of"),
        pytest.param("DELETE", (), {"tenant": "t", "roles": "orders-admin"}, True,
                     id="DELETE by claim alone"),
        pytest.param("DELETE", ("orders:write",), {"tenant": "t"}, False,
                     id="DELETE without its claim"),
        pytest.param("OPTIONS", (), {"tenant": "t"}, True, id="an empty requirement"),
        pytest.param("PUT", ("orders:write",), {"tenant": "t"}, False,
                     id="a method without an entry fails closed"),
        pytest.param(None, ("orders:read",), {"tenant": "t"}, False,
                     id="no method given fails closed"),
    ],
)
def test_per_method_requirements(
    per_method: RoutePolicy, method: str | None, scopes: tuple[str, ...],
    claims: dict[str, Any], allowed: bool,
) -> None:
    p = principal(*scopes, **claims)
    if allowed:
        per_method.check(p, method)
    else:
        with pytest.raises(InsufficientScope):
            per_method.check(p, method)


def test_the_challenge_names_the_route_and_method_scopes() -> None:
    pol = RoutePolicy(frozenset({"api"}), frozenset({"x"}), methods=MappingProxyType({
        "POST": RoutePolicy(frozenset({"orders:write"}), frozenset({"b", "a", "x"}))}))
    with pytest.raises(InsufficientScope) as info:
        pol.check(principal("x"), "POST")
    assert info.value.required == ("api", "orders:write", "x", "a", "b")


def test_a_method_refusal_names_the_combined_challenge_too() -> None:
    pol = RoutePolicy(frozenset({"api"}), frozenset({"x"}), methods=MappingProxyType({
        "POST": RoutePolicy(frozenset({"orders:write"}), frozenset({"b", "a", "x"}))}))
    with pytest.raises(InsufficientScope) as info:
        pol.check(principal("api", "x"), "POST")  # the route's own requirements hold
    assert info.value.required == ("api", "orders:write", "x", "a", "b")
    assert info.value.detail == "missing scopes: orders:write"
