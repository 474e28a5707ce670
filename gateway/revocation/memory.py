"""The in-process revocation store: one instance, for development and the quickstart.

Lookups are dictionary reads. Expired entries are dropped lazily on lookup and by ``purge``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..auth.principal import Principal
from .store import Kind, Page, Revocation

Key = tuple[Kind, str, str]


class MemoryRevocationStore:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._entries: dict[Key, Revocation] = {}
        self._clock = clock

    def _live(self, key: Key, now: float) -> Revocation | None:
        entry = self._entries.get(key)
        if entry is not None and entry.expires_at <= now:
            del self._entries[key]
            return None
        return entry

    async def is_revoked(self, principal: Principal) -> bool:
        if not self._entries:
            return False
        now = self._clock()
        iss = principal.issuer
        candidates: list[Key] = [("issuer", iss, iss)]
        if principal.token_id is not None:
            candidates.append(("jti", iss, principal.token_id))
        if principal.subject is not None:
            candidates.append(("sub", iss, principal.subject))
        if principal.client_id is not None:
            candidates.append(("client", iss, principal.client_id))
        for key in candidates:
            entry = self._live(key, now)
            if entry is not None and entry.revokes(principal):
                return True
        return False

    async def revoke(self, entry: Revocation) -> None:
        self._entries[(entry.kind, entry.issuer, entry.value)] = entry

    async def unrevoke(self, kind: Kind, issuer: str, value: str) -> bool:
        return self._entries.pop((kind, issuer, value), None) is not None

    def purge(self) -> int:
        now = self._clock()
        expired = [k for k, e in self._entries.items() if e.expires_at <= now]
        for key in expired:
            del self._entries[key]
        return len(expired)

    async def list(
        self,
        *,
        kind: Kind | None = None,
        issuer: str | None = None,
        value: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page:
        self.purge()
        selected = sorted(
            (k, e)
            for k, e in self._entries.items()
            if (kind is None or k[0] == kind)
            and (issuer is None or k[1] == issuer)
            and (value is None or k[2] == value)
        )
        start = int(cursor) if cursor and cursor.isdigit() else 0
        page = [e for _, e in selected[start : start + limit]]
        more = start + limit < len(selected)
        return Page(page, str(start + limit) if more else None)

    async def close(self) -> None:
        return None
