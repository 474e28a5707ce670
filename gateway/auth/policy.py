"""Route requirements checked against a verified principal (pure).

A policy holds scopes (``all_of``, ``any_of``) and claim conditions. A route's policy may add a
policy per method (``methods``): the request's method must then have an entry (the compiler
makes sure every method the route accepts has one), and both the route-wide and the method's
requirements must hold.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ..errors import ClaimConditionFailed, InsufficientScope
from .claims import ClaimCondition
from .principal import Principal

_NO_METHODS: Mapping[str, RoutePolicy] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class RoutePolicy:
    """``all_of``: every scope needed; ``any_of``: at least one needed (when not empty);
    ``claims``: every condition must hold; ``methods``: extra requirements per method."""

    all_of: frozenset[str] = frozenset()
    any_of: frozenset[str] = frozenset()
    claims: tuple[ClaimCondition, ...] = ()
    methods: Mapping[str, RoutePolicy] = field(default_factory=lambda: _NO_METHODS)

    @property
    def challenge_scopes(self) -> tuple[str, ...]:
        """The scopes named in a 403 challenge: everything that would satisfy the route."""
        return tuple(sorted(self.all_of)) + tuple(sorted(self.any_of - self.all_of))

    def check(self, principal: Principal, method: str | None = None) -> None:
        extra: RoutePolicy | None = None
        if self.methods:
            extra = self.methods.get(method) if method is not None else None
            if extra is None:  # fail closed: a method without a requirement of its own
                raise InsufficientScope(self.challenge_scopes, f"no requirement for {method}")
        self._check_own(principal, self, extra)
        if extra is not None:
            extra._check_own(principal, self, extra)

    def _challenge(self, extra: RoutePolicy | None) -> tuple[str, ...]:
        """The challenge scopes of this route policy with the method's ``extra`` (if any)."""
        if extra is None:
            return self.challenge_scopes
        every = self.all_of | extra.all_of
        return tuple(dict.fromkeys(
            (*sorted(every), *sorted(self.any_of - every), *sorted(extra.any_of - every))
        ))

    def _check_own(
        self, principal: Principal, route: RoutePolicy, extra: RoutePolicy | None
    ) -> None:
        """This policy's requirements; a refusal names ``route``'s challenge (built only then)."""
        if not self.all_of <= principal.scopes:
            missing = " ".join(sorted(self.all_of - principal.scopes))
            raise InsufficientScope(route._challenge(extra), f"missing scopes: {missing}")
        if self.any_of and self.any_of.isdisjoint(principal.scopes):
            raise InsufficientScope(route._challenge(extra), "none of the any_of scopes present")
        for condition in self.claims:
            if not condition.holds(principal.claims):
                raise ClaimConditionFailed(f"claim condition failed: {condition.describe()}")
