"""Authorization server metadata: OpenID Connect Discovery 1.0, then RFC 8414.

For issuer ``https://idp.example/tenant`` the gateway asks, in order:

1. ``https://idp.example/tenant/.well-known/openid-configuration`` (OIDC Discovery §4: appended);
2. ``https://idp.example/.well-known/oauth-authorization-server/tenant`` (RFC 8414 §3.1: the
   well-known segment inserted between the host and the issuer's path).

The document's ``issuer`` must equal the configured issuer exactly (OIDC Discovery §4.3,
RFC 8414 §3.3), and its ``jwks_uri`` must be https unless the issuer allows plain http.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

from .fetch import FetchError, FetchLimits, check_url, fetch_json

OIDC_SUFFIX = "/.well-known/openid-configuration"
RFC8414_SEGMENT = "/.well-known/oauth-authorization-server"


def metadata_urls(issuer: str) -> tuple[str, str]:
    """The OIDC and RFC 8414 metadata URLs of an issuer, in the order they are tried."""
    url = URL(issuer)
    base = url.with_query(None).with_fragment(None)
    path = base.raw_path.rstrip("/")
    origin = str(base.origin())
    return origin + path + OIDC_SUFFIX, origin + RFC8414_SEGMENT + path


@dataclass(frozen=True, slots=True)
class Metadata:
    issuer: str
    jwks_uri: str
    url: str                          # where the document came from


async def discover(
    session: aiohttp.ClientSession, issuer: str, limits: FetchLimits
) -> Metadata:
    """The issuer's metadata; FetchError when neither document is usable."""
    failures: list[str] = []
    worst: FetchError | None = None
    for url in metadata_urls(issuer):
        try:
            fetched = await fetch_json(session, url, limits)
            return _metadata(fetched.document, issuer, fetched.url, limits)
        except FetchError as exc:
            failures.append(exc.detail)
            if worst is None or exc.result != "http_error":
                worst = exc  # a 404 on the first URL is expected; report what matters
    assert worst is not None
    raise FetchError(worst.result, "discovery failed: " + "; ".join(failures))


def _metadata(document: Any, issuer: str, url: str, limits: FetchLimits) -> Metadata:
    if not isinstance(document, dict):
        raise FetchError("invalid", f"{url}: metadata is not a JSON object")
    found = document.get("issuer")
    if found != issuer:
        raise FetchError(
            "invalid", f"{url}: issuer {str(found)[:200]!r} is not the configured {issuer!r}"
        )
    jwks_uri = document.get("jwks_uri")
    if not isinstance(jwks_uri, str):
        raise FetchError("invalid", f"{url}: metadata has no jwks_uri")
    check_url(jwks_uri, limits)
    return Metadata(issuer, jwks_uri, url)
