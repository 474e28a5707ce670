"""Token verification: token → Principal, with every failure translated to our error tree.

Cheap checks come first (size, shape, issuer, route's issuers, algorithm, typ, key); an unknown
issuer or kid never costs a signature check. Time claims are checked by us with an injectable
clock (and again on every cache hit), so PyJWT's own time checks are switched off.

The verified-token cache holds identities, never decisions. An entry remembers the generation
of its issuer's key set: when a JWKS refresh changes the set, the issuer's cached tokens are
verified again (so a key removed by the provider stops working at once). Opaque tokens, and
JWTs of issuers that only introspect, go to the issuer's RFC 7662 introspector (its own cache).
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import jwt
from jwt.types import Options

from ..errors import (
    AlgorithmNotAllowed,
    AudienceMismatch,
    ClaimMissing,
    GatewayError,
    IntrospectionUnavailable,
    InvalidToken,
    IssuerUnknown,
    KeyNotFound,
    KeysUnavailable,
    TokenInactive,
    TokenMalformed,
    TokenTooLarge,
)
from .issuer import Issuer
from .jwks import JwksCache
from .jws import (
    B64URL,
    REQUIRED_CLAIMS,
    TIME_CLAIMS,
    check_times,
    decode_segment,
    number_claim,
    principal_from_claims,
    translate_jwt_error,
)
from .principal import Principal

__all__ = ["TokenVerifier"]

Clock = Callable[[], float]

#: PyJWT checks signature, iss, aud and the presence of the required claims; the time claims
#: are ours (injectable clock, re-checked on cache hits). Built once: constant per request.
#: (PyJWT copies the options it is given, so this one is never changed.)
_DECODE_OPTIONS: Options = {
    "require": list(REQUIRED_CLAIMS),
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
}

@dataclass(frozen=True, slots=True)
class _Jws:
    issuer: Issuer
    header: Mapping[str, Any]
    payload: Mapping[str, Any]
    alg: str


class _NeedsKeys(Exception):
    """Internal: the issuer's remote keys may answer after a fetch (unknown kid, no keys)."""

    def __init__(self, source: JwksCache, error: GatewayError, reason: str) -> None:
        super().__init__(reason)
        self.source = source
        self.error = error
        self.reason = reason


class _NeedsIntrospection(Exception):
    """Internal: an opaque token (or one of an introspection-only issuer) to introspect."""

    def __init__(self, issuer: Issuer) -> None:
        super().__init__(issuer.issuer)
        self.issuer = issuer


class TokenVerifier:
    """Verifies bearer tokens against the configured issuers, with a bounded result cache.

    ``authenticate`` is the request path: it awaits I/O only for a key fetch (unknown kid, no
    usable keys) or an introspection call. ``verify`` is the same without any I/O.
    """

    def __init__(
        self,
        issuers: Mapping[str, Issuer],
        *,
        max_token_bytes: int = 8192,
        cache_size: int = 10_000,
        clock: Clock = time.time,
    ) -> None:
        self._issuers = MappingProxyType(dict(issuers))
        self._introspecting = tuple(i for i in issuers.values() if i.introspector is not None)
        self._max_token_bytes = max_token_bytes
        self._cache_size = cache_size
        # token digest → (principal, its issuer, key set generation it was verified with)
        self._cache: OrderedDict[bytes, tuple[Principal, Issuer, int]] = OrderedDict()
        # a route's accepted issuers → the introspecting issuer for its opaque tokens (memo)
        self._opaque: dict[frozenset[str] | None, Issuer | None] = {}
        self._clock = clock

    @property
    def issuers(self) -> Mapping[str, Issuer]:
        return self._issuers

    def verify(self, token: str, accepted: frozenset[str] | None = None) -> Principal:
        """The token's principal using the keys at hand (no I/O); raises an AuthError."""
        try:
            return self._verify_local(token, accepted)
        except _NeedsKeys as need:
            raise need.error from None
        except _NeedsIntrospection as need:
            raise IntrospectionUnavailable(
                f"opaque token for {need.issuer.issuer}: introspection needs authenticate()"
            ) from None

    async def authenticate(self, token: str, accepted: frozenset[str] | None = None) -> Principal:
        """The request path: ``verify`` plus the I/O it may need. ``accepted``: the route's
        issuers (None: any configured issuer)."""
        try:
            return self._verify_local(token, accepted)
        except _NeedsIntrospection as need:
            return await self._introspect(token, need.issuer)
        except _NeedsKeys as need:
            if not await need.source.refetch(need.reason):
                raise need.error from None
        return self.verify(token, accepted)  # once more, with what the fetch brought

    # -- local verification ----------------------------------------------------------------

    def _verify_local(self, token: str, accepted: frozenset[str] | None) -> Principal:
        if len(token) > self._max_token_bytes:
            raise TokenTooLarge(f"token of {len(token)} bytes")
        now = self._clock()
        digest = hashlib.sha256(token.encode()).digest()
        cached = self._cache.get(digest)
        if cached is not None:
            principal = self._cache_hit(digest, cached, now, accepted)
            if principal is not None:
                return principal
        jws = self._inspect(token, accepted)
        principal, generation = self._verify_jws(jws, token, now)
        if self._cache_size > 0:
            self._cache[digest] = (principal, jws.issuer, generation)
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return principal

    def _cache_hit(
        self, digest: bytes, cached: tuple[Principal, Issuer, int], now: float,
        accepted: frozenset[str] | None,
    ) -> Principal | None:
        principal, issuer, generation = cached
        _accept(issuer, accepted)
        if issuer.remote is not None:
            try:
                current = issuer.remote.key_set().generation
            except KeysUnavailable as exc:
                raise _NeedsKeys(issuer.remote, exc, "no usable keys") from None
            if current != generation:  # the key set changed: verify again
                del self._cache[digest]
                return None
        try:
            check_times(principal, issuer.leeway, now)
        except InvalidToken:
            self._cache.pop(digest, None)
            raise
        self._cache.move_to_end(digest)
        return principal

    def _introspector_for(self, accepted: frozenset[str] | None) -> Issuer | None:
        try:
            return self._opaque[accepted]
        except KeyError:
            pass
        found = [i for i in self._introspecting if accepted is None or i.issuer in accepted]
        # compile refuses ambiguous routes; one entry per route's issuer set
        opaque = self._opaque[accepted] = found[0] if len(found) == 1 else None
        return opaque

    def _inspect(self, token: str, accepted: frozenset[str] | None) -> _Jws:
        """Cheap checks before any crypto: shape, issuer, algorithm, typ, time claim types."""
        parts = token.split(".")
        try:
            if len(parts) != 3:
                raise TokenMalformed(f"{len(parts)} segments, a JWS has 3")
            header = decode_segment(parts[0])
            payload = decode_segment(parts[1])
            if not B64URL.issuperset(parts[2].encode("ascii", "replace")):
                # PyJWT accepts a padded signature ("sig=="): a second spelling of one token.
                raise TokenMalformed("signature is not base64url")
            if not isinstance(header, dict) or not isinstance(payload, dict):
                raise TokenMalformed("header or payload is not a JSON object")
            iss = payload.get("iss")
            if not isinstance(iss, str):
                if iss is None:
                    raise ClaimMissing("no iss claim")
                raise TokenMalformed("iss not a string")
        except InvalidToken:
            opaque = self._introspector_for(accepted)
            if opaque is not None:  # not a JWT of ours: an opaque token to introspect
                raise _NeedsIntrospection(opaque) from None
            raise
        issuer = self._issuers.get(iss)
        if issuer is None:
            raise IssuerUnknown(f"issuer {iss[:128]!r} is not configured")
        _accept(issuer, accepted)
        if not issuer.verifies_signatures:
            raise _NeedsIntrospection(issuer)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in issuer.algorithms:
            raise AlgorithmNotAllowed(f"alg {str(alg)[:32]!r} not allowed for {issuer.issuer}")
        issuer.check_typ(header)
        for name in TIME_CLAIMS:
            number_claim(payload, name)
        return _Jws(issuer, header, payload, alg)

    def _verify_jws(self, jws: _Jws, token: str, now: float) -> tuple[Principal, int]:
        issuer = jws.issuer
        try:
            keys = issuer.key_set()
            entry = keys.select(jws.header.get("kid"), jws.alg, issuer.issuer)
        except KeysUnavailable as exc:
            if issuer.remote is None:
                raise
            raise _NeedsKeys(issuer.remote, exc, "no usable keys") from None
        except KeyNotFound as exc:
            if issuer.remote is None or exc.kid is None:
                raise
            raise _NeedsKeys(issuer.remote, exc, f"unknown kid {exc.kid[:64]!r}") from None
        try:
            claims = jwt.decode(
                token,
                key=entry.key,
                algorithms=(jws.alg,),
                audience=issuer.audiences,
                issuer=issuer.issuer,
                options=_DECODE_OPTIONS,
            )
        except jwt.PyJWTError as exc:
            raise translate_jwt_error(exc) from None
        issuer.check_required(claims)
        principal = principal_from_claims(claims, issuer.scopes(claims))
        check_times(principal, issuer.leeway, now)
        return principal, keys.generation

    # -- introspection ---------------------------------------------------------------------

    async def _introspect(self, token: str, issuer: Issuer) -> Principal:
        assert issuer.introspector is not None
        claims = await issuer.introspector.introspect(token)
        if claims is None:
            raise TokenInactive(f"introspection at {issuer.issuer}: token not active")
        iss = claims.get("iss")
        if iss is not None and iss != issuer.issuer:
            raise IssuerUnknown(f"introspection answered for issuer {str(iss)[:128]!r}")
        if "aud" in claims and not issuer.accepts_audience(claims["aud"]):
            raise AudienceMismatch("introspection: aud has none of the issuer's audiences")
        for name in TIME_CLAIMS:
            number_claim(claims, name)
        issuer.check_required(claims)
        principal = principal_from_claims(
            {**claims, "iss": issuer.issuer}, issuer.scopes(claims), require_exp=False
        )
        check_times(principal, issuer.leeway, self._clock())
        return principal


def _accept(issuer: Issuer, accepted: frozenset[str] | None) -> None:
    if accepted is not None and issuer.issuer not in accepted:
        raise IssuerUnknown(f"issuer {issuer.issuer!r} is not accepted on this route")

