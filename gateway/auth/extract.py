"""Bearer token extraction from the Authorization header (RFC 6750 §2.1)."""

from __future__ import annotations

import re

from aiohttp import hdrs
from multidict import CIMultiDictProxy

from ..errors import InvalidRequest

# b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


def extract_bearer(headers: CIMultiDictProxy[str]) -> str | None:
    """The bearer token, or None when the request carries none.

    Another scheme counts as no token. More than one Authorization header, or a Bearer
    credential that is empty or not a b64token, raises InvalidRequest.
    """
    values = headers.getall(hdrs.AUTHORIZATION, ())
    if not values:
        return None
    if len(values) > 1:
        raise InvalidRequest("more than one Authorization header")
    scheme, _, credentials = values[0].strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = credentials.strip(" ")
    if not token:
        raise InvalidRequest("empty bearer credentials")
    if not _B64TOKEN.fullmatch(token):
        raise InvalidRequest("bearer credentials are not a b64token")
    return token
