"""RFC 7662 token introspection for opaque tokens, with a cache keyed by the token's hash.

The cache holds the provider's *answer about the token* (its claims, or "inactive"), never an
authorization decision: the verifier turns the claims into a Principal and every request runs
its own route's issuer, scope and claim checks on it (the Oathkeeper CVE-2021-32701 class).
Active answers are kept until min(exp, cache_ttl); inactive ones for ``inactive_ttl``.
Concurrent requests with the same token share one call (single flight).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import quote

import aiohttp

from ..errors import IntrospectionUnavailable
from ..metrics import GatewayMetrics
from .fetch import FetchError, FetchLimits, fetch_json

log = logging.getLogger("gateway.introspection")

Claims = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class IntrospectionSettings:
    issuer: str
    endpoint: str
    client_id: str
    client_secret: str = field(repr=False)
    auth_method: Literal["client_secret_basic", "client_secret_post"] = "client_secret_basic"
    cache_ttl: float = 300.0
    inactive_ttl: float = 10.0
    cache_size: int = 10_000
    limits: FetchLimits = field(default_factory=FetchLimits)


class Introspector:
    def __init__(
        self,
        settings: IntrospectionSettings,
        session: Callable[[], aiohttp.ClientSession],
        metrics: GatewayMetrics,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._session = session
        self._metrics = metrics
        self._clock = clock
        self._cache: OrderedDict[bytes, tuple[Claims | None, float]] = OrderedDict()
        self._pending: dict[bytes, asyncio.Task[Claims | None]] = {}
        # The client authentication is the same on every call: built once.
        self._auth_form: dict[str, str] = {}
        self._auth_headers: dict[str, str] = {}
        if settings.auth_method == "client_secret_basic":
            # RFC 6749 §2.3.1: both parts form-urlencoded before base64
            pair = f"{quote(settings.client_id, safe='')}:{quote(settings.client_secret, safe='')}"
            self._auth_headers["Authorization"] = "Basic " + base64.b64encode(
                pair.encode()).decode()
        else:
            self._auth_form.update(
                client_id=settings.client_id, client_secret=settings.client_secret)

    def cached(self, digest: bytes, now: float) -> tuple[bool, Claims | None]:
        """(hit, claims-or-None-when-inactive) from the cache, without I/O."""
        entry = self._cache.get(digest)
        if entry is None:
            return False, None
        claims, until = entry
        if now >= until:
            del self._cache[digest]
            return False, None
        self._cache.move_to_end(digest)
        return True, claims

    async def introspect(self, token: str) -> Claims | None:
        """The active token's claims, or None when inactive; IntrospectionUnavailable on error."""
        digest = hashlib.sha256(token.encode()).digest()
        hit, claims = self.cached(digest, self._clock())
        if hit:
            return claims
        task = self._pending.get(digest)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._call(token, digest))
            self._pending[digest] = task
            task.add_done_callback(lambda t: self._forget(digest, t))
        return await asyncio.shield(task)

    def _forget(self, digest: bytes, task: asyncio.Task[Claims | None]) -> None:
        self._pending.pop(digest, None)
        if not task.cancelled():
            task.exception()  # retrieved: every waiter may have gone away

    async def _call(self, token: str, digest: bytes) -> Claims | None:
        s = self.settings
        form = {"token": token, "token_type_hint": "access_token", **self._auth_form}
        t0 = time.perf_counter()
        try:
            fetched = await fetch_json(
                self._session(), s.endpoint, s.limits, data=form, headers=self._auth_headers
            )
            claims = self._answer(fetched.document)
        except FetchError as exc:
            self._metrics.record_introspection(s.issuer, "error", time.perf_counter() - t0)
            log.warning("introspection at %s failed (%s): %s", s.endpoint, exc.result, exc.detail)
            raise IntrospectionUnavailable(f"{exc.result}: {exc.detail}") from None
        result = "inactive" if claims is None else "active"
        self._metrics.record_introspection(s.issuer, result, time.perf_counter() - t0)
        self._store(digest, claims, self._clock())
        return claims

    @staticmethod
    def _answer(document: Any) -> Claims | None:
        if not isinstance(document, dict) or not isinstance(document.get("active"), bool):
            raise FetchError("invalid", "introspection answer without a boolean 'active'")
        if not document["active"]:
            return None
        return MappingProxyType(dict(document))

    def _store(self, digest: bytes, claims: Claims | None, now: float) -> None:
        s = self.settings
        if claims is None:
            ttl = s.inactive_ttl
        else:
            ttl = s.cache_ttl
            exp = claims.get("exp")
            if isinstance(exp, int | float) and not isinstance(exp, bool):
                ttl = min(ttl, float(exp) - now)
        if ttl <= 0 or s.cache_size <= 0:
            return
        self._cache[digest] = (claims, now + ttl)
        self._cache.move_to_end(digest)
        while len(self._cache) > s.cache_size:
            self._cache.popitem(last=False)
