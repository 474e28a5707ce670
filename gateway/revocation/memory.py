"""The in-process revocation store: one instance, for development and the quickstart.

A ``RevocationIndex`` (the structure the Redis store checks against) with no Redis behind it:
lookups are dictionary reads; expired entries are dropped lazily on lookup and by ``purge``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..auth.principal import Principal
from .index import RevocationIndex
from .store import Kind, Page, Revocation


class MemoryRevocationStore:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._index = RevocationIndex()
        self._clock = clock

    async def is_revoked(self, principal: Principal) -> bool:
        return self._index.is_revoked(principal, self._clock())

    async def revoke(self, entry: Revocation) -> None:
        # writes drop what has expired, so the index (and its expiry buckets) stay bounded
        self._index.prune(self._clock())
        self._index.put(entry)

    async def unrevoke(self, kind: Kind, issuer: str, value: str) -> bool:
        return self._index.remove(kind, issuer, value)

    def purge(self) -> int:
        """Drop every expired entry now; the number dropped."""
        now = self._clock()
        dropped = self._index.prune(now)  # whole expired minutes, with their buckets
        expired = [e for e in self._index.entries() if e.expires_at <= now]
        for entry in expired:
            self._index.remove(entry.kind, entry.issuer, entry.value)
        return dropped + len(expired)

    async def list(
        self,
        *,
        kind: Kind | None = None,
        issuer: str | None = None,
        value: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page:
        return self._index.page(now=self._clock(), kind=kind, issuer=issuer, value=value,
                                limit=limit, cursor=cursor)

    async def close(self) -> None:
        return None
