"""IdentityProviders: the long-lived, reload-safe side of remote key sources and introspection.

Owned by ``app.py`` (one per process). ``config.compile`` receives it as a factory: asking for
the JWKS cache of the same settings twice gives the same cache, so a config reload that leaves
an issuer's settings unchanged keeps its keys (no refetch, no 503 window). Compiling creates
objects only; ``start()`` starts the background fetches of caches that are not running yet and
``retain()`` / ``retain_for(verifiers)`` close the ones no active configuration uses any more.

A reload (``reload.py``) does: ``compile_runtime(..., providers=server.providers)`` →
``providers.start()`` → optionally ``await providers.warm(new caches, timeout)`` → swap the
runtime → ``await providers.retain_for([new_runtime.verifier])``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

import aiohttp

from ..metrics import GatewayMetrics
from .fetch import create_idp_session
from .introspect import IntrospectionSettings, Introspector
from .jwks import Clock, JwksCache, JwksDocumentSource, JwksSettings, Sleep
from .verify import TokenVerifier

log = logging.getLogger("gateway.jwks")


class IdentityProviders:
    def __init__(
        self,
        metrics: GatewayMetrics | None = None,
        *,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.metrics = metrics if metrics is not None else GatewayMetrics()
        self._clock = clock
        self._sleep = sleep
        self._session = session
        self._own_session = session is None
        self._caches: dict[JwksSettings, JwksCache] = {}
        self._introspectors: dict[IntrospectionSettings, Introspector] = {}

    def session(self) -> aiohttp.ClientSession:
        """The identity-provider session, created on first use (inside the running loop)."""
        if self._session is None or self._session.closed:
            self._session = create_idp_session()
        return self._session

    # -- factories for config.compile (no I/O) -------------------------------------------

    def jwks_cache(self, settings: JwksSettings) -> JwksCache:
        cache = self._caches.get(settings)
        if cache is None:
            cache = JwksCache(
                settings, JwksDocumentSource(settings, self.session), self.metrics,
                clock=self._clock, sleep=self._sleep,
            )
            self._caches[settings] = cache
        return cache

    def introspector(self, settings: IntrospectionSettings) -> Introspector:
        found = self._introspectors.get(settings)
        if found is None:
            found = Introspector(settings, self.session, self.metrics, clock=self._clock)
            self._introspectors[settings] = found
        return found

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the background fetch of every cache not running yet (never waits for it)."""
        for cache in self._caches.values():
            if not cache.started:
                cache.start()

    async def warm(self, caches: Iterable[JwksCache], timeout: float) -> None:
        """Wait up to ``timeout`` for the first keys of ``caches`` (a reload may want this)."""
        pending = [c.wait_ready(timeout) for c in caches]
        if pending:
            await asyncio.gather(*pending)

    async def retain(
        self, caches: Iterable[JwksCache], introspectors: Iterable[Introspector] = ()
    ) -> None:
        """Close every cache and introspector not in the given (active) ones."""
        keep = {id(c) for c in caches} | {id(i) for i in introspectors}
        for settings, cache in list(self._caches.items()):
            if id(cache) not in keep:
                del self._caches[settings]
                await cache.close()
        for isettings, found in list(self._introspectors.items()):
            if id(found) not in keep:
                del self._introspectors[isettings]
        live = {s.issuer for s in self._caches} | {s.issuer for s in self._introspectors}
        self.metrics.forget_issuers(self.metrics.known_issuers() - live)

    async def retain_for(self, verifiers: Iterable[TokenVerifier]) -> None:
        """``retain`` what the given verifiers (of the active runtime) use: after a reload."""
        issuers = [i for v in verifiers for i in v.issuers.values()]
        await self.retain([i.remote for i in issuers if i.remote is not None],
                          [i.introspector for i in issuers if i.introspector is not None])

    def caches(self) -> list[JwksCache]:
        return list(self._caches.values())

    async def close(self) -> None:
        for cache in self._caches.values():
            await cache.close()
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None
