"""Route requirements checked against a verified principal (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InsufficientScope
from .principal import Principal


@dataclass(frozen=True, slots=True)
class RoutePolicy:
    """``all_of``: every scope needed; ``any_of``: at least one needed (when not empty)."""

    all_of: frozenset[str] = frozenset()
    any_of: frozenset[str] = frozenset()

    @property
    def challenge_scopes(self) -> tuple[str, ...]:
        """The scopes named in a 403 challenge: everything that would satisfy the route."""
        return tuple(sorted(self.all_of)) + tuple(sorted(self.any_of - self.all_of))

    def check(self, principal: Principal) -> None:
        if not self.all_of <= principal.scopes:
            missing = " ".join(sorted(self.all_of - principal.scopes))
            raise InsufficientScope(self.challenge_scopes, f"missing scopes: {missing}")
        if self.any_of and self.any_of.isdisjoint(principal.scopes):
            raise InsufficientScope(self.challenge_scopes, "none of the any_of scopes present")
