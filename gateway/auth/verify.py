"""JWT verification: token → Principal, with every failure translated to our error tree.

Cheap checks come first (size, shape, issuer, algorithm, key); an unknown issuer or kid never
costs a signature check. Time claims are checked by us with an injectable clock (and again on
every cache hit), so PyJWT's own time checks are switched off.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import jwt

from ..errors import (
    AlgorithmNotAllowed,
    AudienceMismatch,
    ClaimInvalid,
    ClaimMissing,
    InvalidToken,
    IssuerUnknown,
    KeyNotFound,
    SignatureInvalid,
    TokenExpired,
    TokenMalformed,
    TokenNotYetValid,
    TokenTooLarge,
)
from .keys import KeyEntry, thumbprint
from .principal import Principal, scopes_from_claims

Clock = Callable[[], float]

#: PyJWT exceptions → ours, looked up along the raised exception's MRO (most specific first).
_JWT_ERRORS: Mapping[type[Exception], type[InvalidToken]] = {
    jwt.InvalidSignatureError: SignatureInvalid,
    jwt.InvalidAudienceError: AudienceMismatch,
    jwt.InvalidIssuerError: IssuerUnknown,
    jwt.MissingRequiredClaimError: ClaimMissing,
    jwt.ExpiredSignatureError: TokenExpired,
    jwt.ImmatureSignatureError: TokenNotYetValid,
    jwt.InvalidAlgorithmError: AlgorithmNotAllowed,
    jwt.InvalidKeyError: AlgorithmNotAllowed,
    jwt.exceptions.InvalidIssuedAtError: ClaimInvalid,
    jwt.exceptions.InvalidSubjectError: ClaimInvalid,
    jwt.exceptions.InvalidJTIError: ClaimInvalid,
    jwt.DecodeError: TokenMalformed,
    jwt.InvalidTokenError: TokenMalformed,
}

_REQUIRED_CLAIMS = ("exp", "iss", "aud")
_TIME_CLAIMS = ("exp", "nbf", "iat")
_B64URL = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def translate_jwt_error(exc: jwt.PyJWTError) -> InvalidToken:
    for cls in type(exc).__mro__:
        ours = _JWT_ERRORS.get(cls)
        if ours is not None:
            return ours(f"{type(exc).__name__}: {exc}")
    return TokenMalformed(f"{type(exc).__name__}: {exc}")


@dataclass(frozen=True, slots=True)
class Issuer:
    """A compiled issuer: everything needed to verify its tokens, prebuilt."""

    issuer: str
    audiences: tuple[str, ...]
    algorithms: frozenset[str]
    leeway: float
    keys: tuple[KeyEntry, ...]
    keys_by_kid: Mapping[str, KeyEntry]

    @classmethod
    def build(
        cls,
        issuer: str,
        audiences: tuple[str, ...],
        algorithms: frozenset[str],
        leeway: float,
        keys: tuple[KeyEntry, ...],
    ) -> Issuer:
        by_kid: dict[str, KeyEntry] = {}
        for entry in keys:
            if entry.kid is not None:
                by_kid.setdefault(entry.kid, entry)
            elif not isinstance(entry.key, bytes):
                # A key without a kid of its own (PEM) answers to its RFC 7638 thumbprint.
                by_kid.setdefault(thumbprint(entry.key), entry)
        return cls(issuer, audiences, algorithms, leeway, keys, MappingProxyType(by_kid))

    def select_key(self, kid: object, alg: str) -> KeyEntry:
        """The key for a token's ``kid`` and ``alg``; raises KeyNotFound / AlgorithmNotAllowed."""
        if kid is not None:
            if not isinstance(kid, str):
                raise TokenMalformed("kid is not a string")
            entry = self.keys_by_kid.get(kid)
            if entry is None:
                # A key without a kid of its own (PEM) serves any kid when it is the only key.
                if len(self.keys) == 1 and self.keys[0].kid is None:
                    entry = self.keys[0]
                else:
                    raise KeyNotFound(f"no key with kid {kid[:64]!r} for issuer {self.issuer}")
        elif len(self.keys) == 1:
            entry = self.keys[0]
        else:
            raise KeyNotFound(f"token has no kid and issuer {self.issuer} has several keys")
        if alg not in entry.algorithms:
            raise AlgorithmNotAllowed(f"alg {alg} does not fit key {entry.kid or entry.source}")
        return entry


def _b64decode_json(segment: str) -> Any:
    raw = segment.encode("ascii", "replace")
    if not raw or not _B64URL.issuperset(raw):
        raise TokenMalformed("segment is not base64url")
    try:
        return json.loads(base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise TokenMalformed(f"segment does not decode to JSON: {exc}") from None


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ClaimInvalid(f"{name} is not a JSON number")
    try:
        number = float(value)
    except OverflowError:  # an integer literal of hundreds of digits
        raise ClaimInvalid(f"{name} is out of range") from None
    if not math.isfinite(number):  # Python's json accepts NaN and Infinity; JSON does not
        raise ClaimInvalid(f"{name} is not a finite number")
    return number


def check_times(principal: Principal, leeway: float, now: float) -> None:
    """exp / nbf / iat against ``now`` with leeway; run on every use, cached or not."""
    if now >= principal.expires_at + leeway:
        raise TokenExpired("token expired")
    if principal.not_before is not None and principal.not_before > now + leeway:
        raise TokenNotYetValid("nbf is in the future")
    if principal.issued_at is not None and principal.issued_at > now + leeway:
        raise TokenNotYetValid("iat is in the future")


class TokenVerifier:
    """Verifies bearer tokens against the configured issuers, with a bounded result cache."""

    def __init__(
        self,
        issuers: Mapping[str, Issuer],
        *,
        max_token_bytes: int = 8192,
        cache_size: int = 10_000,
        clock: Clock = time.time,
    ) -> None:
        self._issuers = MappingProxyType(dict(issuers))
        self._max_token_bytes = max_token_bytes
        self._cache_size = cache_size
        self._cache: OrderedDict[bytes, tuple[Principal, float]] = OrderedDict()
        self._clock = clock

    @property
    def issuers(self) -> Mapping[str, Issuer]:
        return self._issuers

    def verify(self, token: str) -> Principal:
        """The token's principal; raises an InvalidToken subclass when it is not acceptable."""
        if len(token) > self._max_token_bytes:
            raise TokenTooLarge(f"token of {len(token)} bytes")
        now = self._clock()
        digest = hashlib.sha256(token.encode()).digest()
        cached = self._cache.get(digest)
        if cached is not None:
            principal, leeway = cached
            try:
                check_times(principal, leeway, now)
            except InvalidToken:
                self._cache.pop(digest, None)
                raise
            self._cache.move_to_end(digest)
            return principal
        principal, leeway = self._verify_uncached(token, now)
        if self._cache_size > 0:
            self._cache[digest] = (principal, leeway)
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return principal

    def _verify_uncached(self, token: str, now: float) -> tuple[Principal, float]:
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenMalformed(f"{len(parts)} segments, a JWS has 3")
        header = _b64decode_json(parts[0])
        payload = _b64decode_json(parts[1])
        if not _B64URL.issuperset(parts[2].encode("ascii", "replace")):
            # PyJWT accepts a padded signature ("sig=="): a second spelling of one token.
            # Header and payload are held to unpadded base64url already (RFC 7515 §2).
            raise TokenMalformed("signature is not base64url")
        if not isinstance(header, dict) or not isinstance(payload, dict):
            raise TokenMalformed("header or payload is not a JSON object")
        iss = payload.get("iss")
        if not isinstance(iss, str):
            if iss is None:
                raise ClaimMissing("no iss claim")
            raise TokenMalformed("iss not a string")
        issuer = self._issuers.get(iss)
        if issuer is None:
            raise IssuerUnknown(f"issuer {iss[:128]!r} is not configured")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in issuer.algorithms:
            raise AlgorithmNotAllowed(f"alg {str(alg)[:32]!r} not allowed for {issuer.issuer}")
        for name in _TIME_CLAIMS:
            _number(payload, name)
        entry = issuer.select_key(header.get("kid"), alg)
        try:
            claims = jwt.decode(
                token,
                key=entry.key,
                algorithms=[alg],
                audience=list(issuer.audiences),
                issuer=issuer.issuer,
                options={
                    "require": list(_REQUIRED_CLAIMS),
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError as exc:
            raise translate_jwt_error(exc) from None
        principal = principal_from_claims(claims)
        check_times(principal, issuer.leeway, now)
        return principal, issuer.leeway


def _optional_str(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ClaimInvalid(f"{name} is not a string")
    return value


def principal_from_claims(claims: Mapping[str, Any]) -> Principal:
    exp = _number(claims, "exp")
    if exp is None:
        raise ClaimMissing("no exp claim")
    client_id = _optional_str(claims, "client_id") or _optional_str(claims, "azp")
    return Principal(
        issuer=str(claims["iss"]),
        subject=_optional_str(claims, "sub"),
        client_id=client_id,
        scopes=scopes_from_claims(claims),
        token_id=_optional_str(claims, "jti"),
        issued_at=_number(claims, "iat"),
        expires_at=exp,
        not_before=_number(claims, "nbf"),
        claims=MappingProxyType(dict(claims)),
    )
