"""A route's ``require`` section → RoutePolicy, and the methods it implies (pure).

``require.methods`` adds requirements per method. The route then accepts exactly the methods
listed there: with ``match.methods`` absent they become the route's methods (others get 405);
with ``match.methods`` given, both lists must name the same methods, so no method can slip
through with only the route-wide requirements by accident.
"""

from __future__ import annotations

from types import MappingProxyType

from ..auth.claims import ClaimCondition, Scalar, parse_path
from ..auth.policy import RoutePolicy
from .auth_model import ClaimConditionSpec, MethodRequireSpec, split_methods
from .model import RequireSpec, RouteSpec


def compile_condition(spec: ClaimConditionSpec) -> ClaimCondition:
    path = parse_path(spec.claim)
    if spec.equals is not None:
        return ClaimCondition(path, "equals", (spec.equals,))
    if spec.one_of is not None:
        return ClaimCondition(path, "one_of", tuple(spec.one_of))
    if spec.contains is not None:
        values: tuple[Scalar, ...] = (
            tuple(spec.contains) if isinstance(spec.contains, list) else (spec.contains,)
        )
        return ClaimCondition(path, "contains", values)
    assert spec.present is not None
    return ClaimCondition(path, "present", (spec.present,))


def _policy(spec: RequireSpec | MethodRequireSpec) -> RoutePolicy:
    return RoutePolicy(
        frozenset(spec.scopes), frozenset(spec.any_of),
        tuple(compile_condition(c) for c in spec.claims),
    )


def compile_policy(spec: RequireSpec) -> RoutePolicy:
    base = _policy(spec)
    if not spec.methods:
        return base
    per_method = {
        method: _policy(extra)
        for key, extra in spec.methods.items() for method in split_methods(key)
    }
    return RoutePolicy(base.all_of, base.any_of, base.claims, MappingProxyType(per_method))


def route_methods(spec: RouteSpec) -> tuple[frozenset[str] | None, str | None]:
    """(the methods the route accepts or None for any, a problem message or None)."""
    matched = frozenset(spec.match.methods) if spec.match.methods else None
    if not spec.require.methods:
        return matched, None
    listed = frozenset(m for key in spec.require.methods for m in split_methods(key))
    if matched is None:
        return listed, None
    if matched != listed:
        missing = ", ".join(sorted(matched - listed))
        extra = ", ".join(sorted(listed - matched))
        parts = [f"no requirement for {missing} (use {{}} for none)" if missing else "",
                 f"{extra} not in match.methods" if extra else ""]
        return matched, "must list the same methods as match.methods: " + "; ".join(
            p for p in parts if p)
    return matched, None
