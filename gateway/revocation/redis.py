"""The Redis revocation store: shared by every instance, free on the hot path.

Checks read the in-memory index kept current by ``RevocationSync`` (no Redis round trip);
while that index is not known to be current, ``is_revoked`` raises ``StoreError`` and the
checker applies ``on_unavailable``. Writes go to Redis first (one Lua script: entry, expiry,
version, message) and then into this instance's index, so the instance that took a
revocation enforces it at once and the others within one pub/sub delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from ..auth.principal import Principal
from ..metrics import GatewayMetrics
from . import scripts
from .redis_target import RedisLink, RedisSettings
from .store import Kind, Page, Revocation
from .sync import RevocationSync
from .wire import encode_entry, field_of, unrevoke_fields

log = logging.getLogger("gateway.revocation")

#: Longest wait for the feed task and the client to close at shutdown.
CLOSE_TIMEOUT = 2.0


class RedisRevocationStore:
    def __init__(
        self, settings: RedisSettings, metrics: GatewayMetrics, *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self._clock = clock
        self.link = RedisLink(settings, on_error=self._count_error, clock=monotonic)
        self.sync = RevocationSync(self.link, metrics, clock=clock, monotonic=monotonic)
        self._task: asyncio.Task[None] | None = None

    def _count_error(self, exc: BaseException) -> None:
        self.metrics.revocation_store_errors.inc()

    async def start(self, wait: float | None = None) -> None:
        """Start the feed; wait for the first load up to ``wait`` (default max_staleness).

        A gateway whose Redis is down at start-up serves anyway: until the first load,
        ``on_unavailable`` applies to every check.
        """
        wait = self.settings.max_staleness if wait is None else wait
        if self._task is None:
            self._task = asyncio.create_task(self.sync.run(), name="revocation-sync")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await self.sync.first_sync.wait()
        if not self.sync.first_sync.is_set():
            log.error("revocation list not loaded from Redis yet (%s): on_unavailable applies "
                      "until it is", self.sync.last_error or "no answer")

    async def is_revoked(self, principal: Principal) -> bool:
        return self.sync.current_index().is_revoked(principal, self._clock())

    async def revoke(self, entry: Revocation) -> None:
        k = self.settings.keys
        field = field_of(entry.kind, entry.issuer, entry.value)
        payload = encode_entry(entry)
        now = f"{self._clock():.6f}"
        await self.link.call(lambda c: c.eval(
            scripts.REVOKE, 3, k.entries, k.expiry, k.version,
            field, payload, entry.expires_at, k.channel, now,
        ))
        self.sync.index.put(entry)
        self.sync.record_entries()

    async def unrevoke(self, kind: Kind, issuer: str, value: str) -> bool:
        k = self.settings.keys
        now = f"{self._clock():.6f}"
        version = await self.link.call(lambda c: c.eval(
            scripts.UNREVOKE, 3, k.entries, k.expiry, k.version,
            field_of(kind, issuer, value), k.channel, now, unrevoke_fields(kind, issuer, value),
        ))
        removed = self.sync.index.remove(kind, issuer, value)
        self.sync.record_entries()
        return bool(version) or removed

    async def list(
        self,
        *,
        kind: Kind | None = None,
        issuer: str | None = None,
        value: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page:
        return self.sync.current_index().page(
            now=self._clock(), kind=kind, issuer=issuer, value=value, limit=limit, cursor=cursor,
        )

    def describe(self) -> dict[str, Any]:
        """The store's state for /status."""
        sync = self.sync
        lag = sync.lag()
        return {
            **self.settings.describe(),
            "state": sync.phase if sync.is_current() or sync.phase != "current" else "stale",
            "current": sync.is_current(),
            "connected": sync.connected,
            "last_proof_age_seconds": round(lag, 3) if lag != float("inf") else None,
            "entries": sync.index.counts(),
            "epoch": sync.epoch,
            "version": sync.version,
            "last_load": sync.last_load,
            "gaps": sync.gaps,
            "resyncs": sync.resyncs,
            "reseeds": sync.reseeds,
            "breaker": self.link.breaker.state,
            "last_error": sync.last_error,
        }

    async def close(self) -> None:
        """Stop the feed and close the client, bounded: a Redis that accepts but never answers
        (or a feed stuck in clean-up) must not hold the gateway's shutdown."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await self._task
            self._task = None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self.link.close()
