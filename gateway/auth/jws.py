"""JWS and claim-set helpers shared by JWT verification and introspection (pure).

The PyJWT exception table (walked along the MRO), strict base64url/JSON segment decoding, JSON
number checks for the time claims, the time checks themselves and claims → Principal.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping
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
    SignatureInvalid,
    TokenExpired,
    TokenMalformed,
    TokenNotYetValid,
)
from .principal import Principal, scopes_from_claims

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

REQUIRED_CLAIMS = ("exp", "iss", "aud")
TIME_CLAIMS = ("exp", "nbf", "iat")
B64URL = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def translate_jwt_error(exc: jwt.PyJWTError) -> InvalidToken:
    for cls in type(exc).__mro__:
        ours = _JWT_ERRORS.get(cls)
        if ours is not None:
            return ours(f"{type(exc).__name__}: {exc}")
    return TokenMalformed(f"{type(exc).__name__}: {exc}")


def decode_segment(segment: str) -> Any:
    raw = segment.encode("ascii", "replace")
    if not raw or not B64URL.issuperset(raw):
        raise TokenMalformed("segment is not base64url")
    try:
        return json.loads(base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise TokenMalformed(f"segment does not decode to JSON: {exc}") from None


def number_claim(claims: Mapping[str, Any], name: str) -> float | None:
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


def _optional_str(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ClaimInvalid(f"{name} is not a string")
    return value


def principal_from_claims(
    claims: Mapping[str, Any], scopes: frozenset[str] | None = None, *, require_exp: bool = True
) -> Principal:
    exp = number_claim(claims, "exp")
    if exp is None:
        if require_exp:
            raise ClaimMissing("no exp claim")
        exp = math.inf  # an introspection answer without exp: cached at most cache_ttl
    client_id = _optional_str(claims, "client_id") or _optional_str(claims, "azp")
    return Principal(
        issuer=str(claims["iss"]),
        subject=_optional_str(claims, "sub"),
        client_id=client_id,
        scopes=scopes_from_claims(claims) if scopes is None else scopes,
        token_id=_optional_str(claims, "jti"),
        issued_at=number_claim(claims, "iat"),
        expires_at=exp,
        not_before=number_claim(claims, "nbf"),
        claims=MappingProxyType(dict(claims)),
    )
