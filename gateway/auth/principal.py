"""The verified identity: all the rest of a request ever sees of its token."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True, slots=True)
class Principal:
    issuer: str
    subject: str | None
    client_id: str | None
    scopes: frozenset[str]
    token_id: str | None
    issued_at: float | None
    expires_at: float
    not_before: float | None = None
    claims: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


#: The principal of requests on ``auth: none`` routes.
ANONYMOUS = Principal(
    issuer="", subject=None, client_id=None, scopes=frozenset(), token_id=None,
    issued_at=None, expires_at=float("inf"),
)


def scopes_from_claims(claims: Mapping[str, Any]) -> frozenset[str]:
    """Scopes from ``scope`` (space-separated string, RFC 8693/9068), else ``scp`` (list)."""
    scope = claims.get("scope")
    if isinstance(scope, str):
        return frozenset(scope.split())
    scp = claims.get("scp")
    if isinstance(scp, str):
        return frozenset(scp.split())
    if isinstance(scp, list) and all(isinstance(s, str) for s in scp):
        return frozenset(scp)
    return frozenset()


def scopes_from_claim(claims: Mapping[str, Any], name: str) -> frozenset[str] | None:
    """Scopes from the one configured claim: a space-separated string or a list of strings.

    None when the claim has another type (the caller refuses the token); empty when absent.
    """
    value = claims.get(name)
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return frozenset(value)
    return None
