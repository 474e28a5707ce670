"""Verification keys: reading PEM, JWK and JWKS files into typed, immutable key entries.

The algorithms a key may verify are derived here from its type (and its JWK ``alg``), never
from PyJWK's defaults (which take a key without ``alg`` as RS256).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

HMAC_ALGORITHMS_SET = frozenset({"HS256", "HS384", "HS512"})
RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_EC_ALGORITHM = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
MIN_RSA_BITS = 2048

VerificationKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey | bytes  # noqa: E501


class KeyFileError(ValueError):
    """A key file that cannot be used; the message says why (never the key material)."""


@dataclass(frozen=True, slots=True)
class KeyEntry:
    kid: str | None            # None: the key had no kid of its own (PEM)
    key: VerificationKey
    algorithms: frozenset[str]  # what this key may verify
    source: str                 # file name, for logs


def algorithms_for(key: object) -> frozenset[str]:
    """The JWS algorithms a public key of this type can verify."""
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise KeyFileError(f"RSA key of {key.key_size} bits; at least {MIN_RSA_BITS} needed")
        return RSA_ALGORITHMS
    if isinstance(key, ec.EllipticCurvePublicKey):
        alg = _EC_ALGORITHM.get(key.curve.name)
        if alg is None:
            raise KeyFileError(f"unsupported EC curve {key.curve.name}")
        return frozenset({alg})
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return frozenset({"EdDSA"})
    raise KeyFileError(f"unsupported key type {type(key).__name__}")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int_b64(value: int) -> str:
    return _b64(value.to_bytes((value.bit_length() + 7) // 8 or 1, "big"))


def public_jwk(key: PublicKeyTypes) -> dict[str, str]:
    """The RFC 7517 JWK members that identify a public key (for thumbprints and JWKS)."""
    if isinstance(key, rsa.RSAPublicKey):
        numbers = key.public_numbers()
        return {"e": _int_b64(numbers.e), "kty": "RSA", "n": _int_b64(numbers.n)}
    if isinstance(key, ec.EllipticCurvePublicKey):
        crv = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}[key.curve.name]
        size = (key.curve.key_size + 7) // 8
        nums = key.public_numbers()
        return {
            "crv": crv, "kty": "EC",
            "x": _b64(nums.x.to_bytes(size, "big")), "y": _b64(nums.y.to_bytes(size, "big")),
        }
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        crv = "Ed25519" if isinstance(key, ed25519.Ed25519PublicKey) else "Ed448"
        return {"crv": crv, "kty": "OKP", "x": _b64(raw)}
    raise KeyFileError(f"unsupported key type {type(key).__name__}")


def thumbprint(key: PublicKeyTypes) -> str:
    """RFC 7638 JWK thumbprint (SHA-256), used as the kid of keys that have none."""
    canonical = json.dumps(public_jwk(key), separators=(",", ":"), sort_keys=True)
    return _b64(hashlib.sha256(canonical.encode()).digest())


def _pem_keys(data: bytes, source: str) -> list[KeyEntry]:
    entries = []
    blocks = data.split(b"-----BEGIN ")[1:]
    if not blocks:
        raise KeyFileError("no PEM block found")
    for block in blocks:
        pem = b"-----BEGIN " + block
        label = block.split(b"-----", 1)[0]
        key: PublicKeyTypes
        try:
            if label == b"CERTIFICATE":
                key = x509.load_pem_x509_certificate(pem).public_key()
            elif b"PRIVATE KEY" in label:
                raise KeyFileError("holds a private key; give the public key or a certificate")
            else:
                key = serialization.load_pem_public_key(pem)
        except KeyFileError:
            raise
        except ValueError as exc:
            name = label.decode(errors="replace")
            raise KeyFileError(f"unreadable PEM block {name}: {exc}") from None
        entries.append(KeyEntry(None, key, algorithms_for(key), source))  # type: ignore[arg-type]
    return entries


def jwk_entry(jwk: Mapping[str, Any], source: str) -> KeyEntry | None:
    """A KeyEntry for one JWK, or None when the key is not for signatures."""
    if jwk.get("use") not in (None, "sig"):
        return None
    if "d" in jwk or "p" in jwk or jwk.get("kty") == "oct":
        raise KeyFileError("holds private or symmetric key material; give public keys only")
    try:
        parsed = jwt.PyJWK(dict(jwk))
    except (
        jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError, KeyError, NotImplementedError,
    ) as exc:  # NotImplementedError: PyJWK's answer to "alg": "none"
        raise KeyFileError(f"unusable JWK (kid={jwk.get('kid')!r}): {exc}") from None
    key = parsed.key
    allowed = algorithms_for(key)
    alg = jwk.get("alg")
    if alg is not None:
        if alg not in allowed:
            raise KeyFileError(f"JWK kid={jwk.get('kid')!r} has alg {alg} unfit for its key type")
        allowed = frozenset({alg})
    kid = jwk.get("kid")
    return KeyEntry(kid if isinstance(kid, str) else None, key, allowed, source)


def _jwk_keys(data: bytes, source: str) -> list[KeyEntry]:
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"invalid JSON: {exc}") from None
    if isinstance(document, dict) and isinstance(document.get("keys"), list):
        jwks: Iterable[Any] = document["keys"]
    elif isinstance(document, dict) and "kty" in document:
        jwks = [document]
    else:
        raise KeyFileError("neither a JWK nor a JWKS ({\"keys\": [...]})")
    entries = []
    for jwk in jwks:
        if not isinstance(jwk, dict):
            raise KeyFileError("a JWKS entry is not an object")
        entry = jwk_entry(jwk, source)
        if entry is not None:
            entries.append(entry)
    return entries


def parse_key_file(data: bytes, source: str) -> list[KeyEntry]:
    """Every verification key in a PEM, JWK or JWKS file's content."""
    stripped = data.lstrip()
    entries = _jwk_keys(data, source) if stripped.startswith(b"{") else _pem_keys(data, source)
    if not entries:
        raise KeyFileError("contains no signature verification key")
    return entries
