"""A compiled issuer: everything needed to accept its tokens, prebuilt at compile time.

Keys come from files (``static``), from a JWKS URI or discovery (``remote``, a JwksCache that
changes underneath), or not at all when the issuer only uses introspection. The rules beyond
the signature (RFC 9068 ``typ``, required claims, the scope claim) are plain data here and are
applied by ``verify.py`` to JWTs and introspection answers alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ClaimInvalid, ClaimMissing, TokenTypeInvalid
from .claims import is_present
from .introspect import Introspector
from .jwks import JwksCache
from .keys import KeyEntry
from .keyset import KeySet
from .principal import scopes_from_claim, scopes_from_claims


@dataclass(frozen=True, slots=True)
class Issuer:
    issuer: str
    audiences: tuple[str, ...]
    algorithms: frozenset[str]
    leeway: float
    static: KeySet
    remote: JwksCache | None = None
    introspector: Introspector | None = None
    require_typ: str | None = None          # lower case, without "application/"
    required_claims: tuple[tuple[str, ...], ...] = ()
    scope_claim: str | None = None          # None: "scope" string, else the "scp" claim
    audience_set: frozenset[str] = field(default=frozenset())

    @classmethod
    def build(
        cls,
        issuer: str,
        audiences: tuple[str, ...],
        algorithms: frozenset[str],
        leeway: float,
        keys: Iterable[KeyEntry] = (),
        **options: Any,
    ) -> Issuer:
        typ = options.pop("require_typ", None)
        if typ is not None:
            typ = typ.lower().removeprefix("application/")
        return cls(
            issuer, audiences, algorithms, leeway, KeySet.build(keys), require_typ=typ,
            audience_set=frozenset(audiences), **options,
        )

    @property
    def keys(self) -> tuple[KeyEntry, ...]:
        return self.static.keys

    @property
    def verifies_signatures(self) -> bool:
        """False for an issuer whose tokens are only introspected."""
        return self.remote is not None or bool(self.static.keys)

    def key_set(self) -> KeySet:
        """The keys to use now (KeysUnavailable for a remote source without usable keys)."""
        return self.remote.key_set() if self.remote is not None else self.static

    def check_typ(self, header: Mapping[str, Any]) -> None:
        """RFC 9068 §4 / RFC 8725 §3.11: explicit typing, ``at+jwt`` or ``application/at+jwt``."""
        if self.require_typ is None:
            return
        typ = header.get("typ")
        if not isinstance(typ, str) or (
            typ.lower().removeprefix("application/") != self.require_typ
        ):
            raise TokenTypeInvalid(f"typ {str(typ)[:40]!r}, {self.require_typ} required")

    def check_required(self, claims: Mapping[str, Any]) -> None:
        for path in self.required_claims:
            if not is_present(claims, path):
                raise ClaimMissing(f"required claim {'.'.join(path)} missing")

    def scopes(self, claims: Mapping[str, Any]) -> frozenset[str]:
        if self.scope_claim is None:
            return scopes_from_claims(claims)
        found = scopes_from_claim(claims, self.scope_claim)
        if found is None:
            raise ClaimInvalid(f"{self.scope_claim} is neither a string nor a list of strings")
        return found

    def accepts_audience(self, aud: Any) -> bool:
        if isinstance(aud, str):
            return aud in self.audience_set
        return isinstance(aud, list) and any(
            isinstance(a, str) and a in self.audience_set for a in aud
        )
