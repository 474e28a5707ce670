"""Hardened HTTP for identity-provider documents (JWKS, discovery, introspection).

aiohttp only (never a blocking client); connect and total timeouts; a maximum response size
checked on the decoded bytes (a gzip bomb is cut off); redirects followed by hand, at most a few
and only to the same host without a downgrade from https; JSON only. Every failure is a
``FetchError`` whose ``result`` is one of ``FETCH_RESULTS`` (a bounded metric label).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import hdrs
from yarl import URL

from .. import __version__

FETCH_RESULTS = (
    "success", "timeout", "unreachable", "http_error", "too_large", "redirect", "invalid",
)
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d{1,10})\"?\s*(?:,|$)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-cache|no-store)\s*(?:,|$)", re.IGNORECASE)
USER_AGENT = f"oauth2-gateway/{__version__}"


class FetchError(Exception):
    """A fetch that gave no usable document; ``result`` is the metric label."""

    def __init__(self, result: str, detail: str) -> None:
        super().__init__(detail)
        self.result = result
        self.detail = detail


@dataclass(frozen=True, slots=True)
class FetchLimits:
    timeout: float = 5.0           # the whole exchange, redirects included
    connect_timeout: float = 2.0
    max_bytes: int = 262_144
    allow_insecure_http: bool = False
    max_redirects: int = 3


@dataclass(frozen=True, slots=True)
class Fetched:
    document: Any
    max_age: float | None   # from Cache-Control; 0 for no-cache / no-store; None: not given
    url: str                # after redirects


def create_idp_session() -> aiohttp.ClientSession:
    """The session for identity-provider traffic: no cookies, no proxy from the environment."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=32, ttl_dns_cache=60),
        cookie_jar=aiohttp.DummyCookieJar(),
        headers={hdrs.USER_AGENT: USER_AGENT},
        trust_env=False,
        raise_for_status=False,
    )


def cache_max_age(value: str | None) -> float | None:
    """Seconds from ``Cache-Control: max-age``; 0 for no-cache/no-store; None when absent."""
    if not value:
        return None
    if _NO_CACHE.search(value):
        return 0.0
    m = _MAX_AGE.search(value)
    return float(m.group(1)) if m else None


def check_url(url: str, limits: FetchLimits) -> URL:
    """The URL, when it may be fetched under these limits; FetchError otherwise."""
    parsed = URL(url)
    scheme_ok = parsed.scheme == "https" or (
        parsed.scheme == "http" and limits.allow_insecure_http
    )
    if scheme_ok and parsed.host and not parsed.user and not parsed.fragment:
        return parsed
    raise FetchError("invalid", f"refusing to fetch {url[:200]!r}: https URL required")


async def fetch_json(
    session: aiohttp.ClientSession,
    url: str,
    limits: FetchLimits,
    *,
    data: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Fetched:
    """GET (or POST a form, when ``data`` is given) and parse a JSON document."""
    target = check_url(url, limits)
    timeout = aiohttp.ClientTimeout(
        total=limits.timeout, connect=limits.connect_timeout, sock_connect=limits.connect_timeout
    )
    send = {hdrs.ACCEPT: "application/json", **(headers or {})}
    try:
        async with asyncio.timeout(limits.timeout):
            return await _exchange(session, target, limits, data, send, timeout, url)
    except TimeoutError:  # before ClientError: ServerTimeoutError is both
        raise FetchError("timeout", f"{url[:200]}: no answer within {limits.timeout}s") from None
    except aiohttp.ClientError as exc:
        raise FetchError("unreachable", f"{url[:200]}: {type(exc).__name__}: {exc}") from None


async def _exchange(
    session: aiohttp.ClientSession, target: URL, limits: FetchLimits,
    data: Mapping[str, str] | None, send: Mapping[str, str], timeout: aiohttp.ClientTimeout,
    url: str,
) -> Fetched:
    for _ in range(limits.max_redirects + 1):
        method = "POST" if data is not None else "GET"
        async with session.request(
            method, target, data=data, headers=send, timeout=timeout,
            allow_redirects=False,
        ) as resp:
            if resp.status in _REDIRECTS and data is None:
                target = _redirect_target(target, resp.headers.get(hdrs.LOCATION), limits)
                continue
            if resp.status != 200:
                raise FetchError("http_error", f"{target} answered HTTP {resp.status}")
            body = await _read_limited(resp, limits.max_bytes)
            age = cache_max_age(resp.headers.get(hdrs.CACHE_CONTROL))
            try:
                document = json.loads(body)
            except (ValueError, UnicodeDecodeError) as exc:
                raise FetchError("invalid", f"{target}: not JSON ({exc})") from None
            return Fetched(document, age, str(target))
    raise FetchError("redirect", f"{url[:200]}: more than {limits.max_redirects} redirects")


def _redirect_target(current: URL, location: str | None, limits: FetchLimits) -> URL:
    if not location:
        raise FetchError("redirect", f"{current}: redirect without Location")
    try:
        nxt = current.join(URL(location))
    except ValueError:
        raise FetchError("redirect", f"{current}: unreadable Location") from None
    upgrade = current.scheme == "http" and nxt.scheme == "https"
    if nxt.host != current.host or (nxt.port != current.port and not upgrade):
        raise FetchError("redirect", f"{current}: redirect to another host refused ({nxt.host})")
    if current.scheme == "https" and nxt.scheme != "https":
        raise FetchError("redirect", f"{current}: redirect from https to {nxt.scheme} refused")
    check_url(str(nxt), limits)
    return nxt


async def _read_limited(resp: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    declared = resp.content_length
    if declared is not None and declared > max_bytes:
        raise FetchError("too_large", f"{resp.url}: {declared} bytes, limit {max_bytes}")
    body = bytearray()
    async for chunk in resp.content.iter_chunked(65536):
        body += chunk
        if len(body) > max_bytes:
            raise FetchError("too_large", f"{resp.url}: more than {max_bytes} bytes")
    return bytes(body)
