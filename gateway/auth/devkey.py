"""The local development signing key and admin token: created on first run, never committed.

``oauth2-gateway token`` signs with it (ES256, kid = RFC 7638 thumbprint) so the quickstart
needs no identity provider. Production issuers use ``keys`` files (or JWKS URLs) instead.
"""

from __future__ import annotations

import os
import secrets
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .keys import KeyEntry, thumbprint

DEV_ALGORITHM = "ES256"


def ensure_dev_key(path: Path) -> bool:
    """Create a P-256 private key at ``path`` (mode 0600) unless it exists. True if created."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    _ignore_folder(path.parent)
    return True


def ensure_dev_token(path: Path) -> bool:
    """Write a random admin token to ``path`` (mode 0600) unless it exists. True if created."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(32) + "\n")
    _ignore_folder(path.parent)
    return True


def _ignore_folder(folder: Path) -> None:
    gitignore = folder / ".gitignore"
    if not gitignore.exists():
        gitignore.write_text("*\n")


def _private_key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("the development signing key must be an EC P-256 private key")
    return key


def dev_public_entry(pem: bytes, source: str) -> KeyEntry:
    """The verification key for tokens signed with the development key."""
    public = _private_key(pem).public_key()
    return KeyEntry(thumbprint(public), public, frozenset({DEV_ALGORITHM}), source)


def sign_dev_token(
    pem: bytes,
    *,
    issuer: str,
    audience: str,
    subject: str,
    scopes: str,
    ttl: float,
    client_id: str | None = None,
    now: float | None = None,
) -> str:
    """A signed access token for local development."""
    key = _private_key(pem)
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "iss": issuer, "aud": audience, "sub": subject, "scope": scopes,
        "iat": issued, "nbf": issued, "exp": issued + int(ttl), "jti": uuid.uuid4().hex,
        "client_id": client_id or "dev-cli",
    }
    return jwt.encode(
        claims, key, algorithm=DEV_ALGORITHM,
        headers={"kid": thumbprint(key.public_key()), "typ": "at+jwt"},
    )
