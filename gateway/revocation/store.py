"""The revocation model and the store interface every backend implements.

Kinds of entry, all keyed by issuer (a ``sub`` or ``jti`` is unique only within its issuer):

- ``jti``: one token, until it expires (``expires_at``);
- ``sub``: every token of a subject issued at or before ``before``;
- ``client``: every token of a client (``client_id``) issued at or before ``before``;
- ``issuer``: every token of the issuer issued at or before ``before`` (key compromise).

A cutoff rejects tokens without ``iat``: their issue time cannot be shown to be after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

from ..auth.principal import Principal

Kind = Literal["jti", "sub", "client", "issuer"]
KINDS: tuple[Kind, ...] = ("jti", "sub", "client", "issuer")
#: What identifies an entry: (kind, issuer, value).
Key = tuple[Kind, str, str]


class StoreError(Exception):
    """The store could not answer (backend down, timeout). Mapped by the revocation checker."""


@dataclass(frozen=True, slots=True)
class Revocation:
    kind: Kind
    issuer: str
    value: str                 # the jti, sub or client_id; the issuer itself for kind "issuer"
    expires_at: float          # when the entry may be forgotten
    before: float | None = None  # cutoff kinds: tokens with iat <= before are revoked
    reason: str | None = None
    actor: str | None = None
    created_at: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def revokes(self, principal: Principal) -> bool:
        """Whether this entry revokes the principal's token (same issuer assumed)."""
        if self.kind == "jti":
            return True
        return principal.issued_at is None or (
            self.before is not None and principal.issued_at <= self.before
        )


@dataclass(frozen=True, slots=True)
class Page:
    entries: Sequence[Revocation]
    next_cursor: str | None


class RevocationStore(Protocol):
    """What the gateway asks of a revocation backend. Every method may raise StoreError."""

    async def is_revoked(self, principal: Principal) -> bool: ...

    async def revoke(self, entry: Revocation) -> None: ...

    async def unrevoke(self, kind: Kind, issuer: str, value: str) -> bool: ...

    async def list(
        self,
        *,
        kind: Kind | None = None,
        issuer: str | None = None,
        value: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page: ...

    async def close(self) -> None: ...
