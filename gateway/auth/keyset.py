"""A key set (static or fetched) and the lenient parsing of JWKS documents from the network.

A static key file that holds something unusable is a configuration error (``keys.py``). A JWKS
fetched from an identity provider is judged key by key instead: keys of an unusable type, for
encryption (``use: enc``), with private material or with an ``alg`` outside the issuer's
allowlist are skipped with a log line, and the rest are used. Each key goes through PyJWT's
``PyJWK`` (what ``PyJWKSet`` does internally, but with a reason for each skipped key). A key
without ``alg`` may verify the algorithms its type allows, never "RS256 by default".
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..errors import AlgorithmNotAllowed, KeyNotFound, TokenMalformed
from .keys import KeyEntry, KeyFileError, jwk_entry, thumbprint

log = logging.getLogger("gateway.jwks")


@dataclass(frozen=True, slots=True)
class KeySet:
    """Verification keys by kid. ``generation`` changes whenever a fetched set changes."""

    keys: tuple[KeyEntry, ...]
    by_kid: Mapping[str, KeyEntry]
    generation: int = 0
    fingerprint: frozenset[tuple[str, str, frozenset[str]]] = field(default=frozenset())

    @classmethod
    def build(cls, keys: Iterable[KeyEntry], generation: int = 0) -> KeySet:
        entries = tuple(keys)
        by_kid: dict[str, KeyEntry] = {}
        prints = set()
        for entry in entries:
            if isinstance(entry.key, bytes):
                prints.add((entry.kid or "", "secret", entry.algorithms))
                continue
            own = thumbprint(entry.key)
            prints.add((entry.kid or "", own, entry.algorithms))
            # A key without a kid of its own (PEM) answers to its RFC 7638 thumbprint.
            by_kid.setdefault(entry.kid if entry.kid is not None else own, entry)
        return cls(entries, MappingProxyType(by_kid), generation, frozenset(prints))

    def select(self, kid: object, alg: str, issuer: str) -> KeyEntry:
        """The key for a token's ``kid`` and ``alg``; raises KeyNotFound / AlgorithmNotAllowed.

        ``KeyNotFound.kid`` is the token's kid when a refetch of the key set might find it.
        """
        if kid is not None:
            if not isinstance(kid, str):
                raise TokenMalformed("kid is not a string")
            entry = self.by_kid.get(kid)
            if entry is None:
                # A key without a kid of its own (PEM) serves any kid when it is the only key.
                if len(self.keys) == 1 and self.keys[0].kid is None:
                    entry = self.keys[0]
                else:
                    err = KeyNotFound(f"no key with kid {kid[:64]!r} for issuer {issuer}")
                    err.kid = kid
                    raise err
        elif len(self.keys) == 1:
            entry = self.keys[0]
        else:
            raise KeyNotFound(f"token has no kid and issuer {issuer} has several keys")
        if alg not in entry.algorithms:
            raise AlgorithmNotAllowed(f"alg {alg} does not fit key {entry.kid or entry.source}")
        return entry

    def kids(self) -> list[str]:
        return sorted(self.by_kid)


class JwksInvalid(ValueError):
    """A fetched document that is not a usable JWKS (the previous keys stay in use)."""


def parse_jwks(document: Any, algorithms: frozenset[str], source: str) -> list[KeyEntry]:
    """The usable signature keys of a fetched JWKS; unusable ones are skipped and logged.

    Raises JwksInvalid when the document is not a JWKS or holds no usable key.
    """
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JwksInvalid('not a JWK Set: expected an object with a "keys" list')
    entries: list[KeyEntry] = []
    seen: set[str] = set()
    for index, jwk in enumerate(document["keys"]):
        why = _skip_reason(jwk, algorithms)
        entry = None
        if why is None:
            try:
                entry = jwk_entry(jwk, source)
            except KeyFileError as exc:
                why = str(exc)
        if entry is not None:
            usable = entry.algorithms & algorithms
            if not usable:
                why = f"fits none of the allowed algorithms ({', '.join(sorted(entry.algorithms))})"
            elif entry.kid is not None and entry.kid in seen:
                why = "duplicate kid (the first key with it is used)"
            else:
                entries.append(KeyEntry(entry.kid, entry.key, usable, source))
                if entry.kid is not None:
                    seen.add(entry.kid)
                continue
        kid = jwk.get("kid") if isinstance(jwk, dict) else None
        log.warning(
            "JWKS key skipped: %s", why,
            extra={"source": source, "index": index, "kid": str(kid)[:64] if kid else None},
        )
    if not entries:
        raise JwksInvalid("the JWK Set holds no usable signature key")
    return entries


def _skip_reason(jwk: Any, algorithms: frozenset[str]) -> str | None:
    if not isinstance(jwk, dict):
        return "entry is not an object"
    if jwk.get("use") not in (None, "sig"):
        return f"use is {str(jwk.get('use'))[:16]!r}, not sig"
    ops = jwk.get("key_ops")
    if isinstance(ops, list) and "verify" not in ops:
        return "key_ops does not include verify"
    if jwk.get("kty") == "oct":
        return "symmetric key (kty oct) in a public key set"
    alg = jwk.get("alg")
    if alg is not None and (not isinstance(alg, str) or alg not in algorithms):
        return f"alg {str(alg)[:16]!r} is not in the issuer's allowlist"
    kid = jwk.get("kid")
    if kid is not None and not isinstance(kid, str):
        return "kid is not a string"
    return None
