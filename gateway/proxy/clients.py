"""Upstream HTTP clients: one ``ClientSession`` (and connection pool) per route.

aiohttp's ``TCPConnector`` limit is per connector: with one connector for every route, long
streams on one route could take every connection. Each route therefore gets its own connector
limited to ``max_connections``; requests beyond it wait for a free connection (within the
route's ``timeout``). Sessions are keyed by (route, connection settings), so a reload that
leaves those unchanged keeps the warm connections; ``retain()`` closes the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import aiohttp
from aiohttp import hdrs

#: Headers the client library would otherwise add on its own.
SKIP_AUTO_HEADERS = frozenset(
    {hdrs.USER_AGENT, hdrs.ACCEPT, hdrs.ACCEPT_ENCODING, hdrs.CONTENT_TYPE}
)

SessionKey = tuple[str, tuple[object, ...]]


def create_session(limit: int = 0) -> aiohttp.ClientSession:
    """A pooled keep-alive session that adds and changes nothing on its own."""
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=0, enable_cleanup_closed=True)
    return aiohttp.ClientSession(
        connector=connector,
        auto_decompress=False,
        skip_auto_headers=SKIP_AUTO_HEADERS,
        timeout=aiohttp.ClientTimeout(total=None),
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
    )


class Lease:
    """A route's session, held for one request."""

    __slots__ = ("active", "retired", "session")

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        self.active = 0
        self.retired = False


class UpstreamClients:
    def __init__(self) -> None:
        self._leases: dict[SessionKey, Lease] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def acquire(self, route: str, key: tuple[object, ...], limit: int) -> Lease:
        lease = self._leases.get((route, key))
        if lease is None:
            lease = self._leases[(route, key)] = Lease(create_session(limit))
        lease.active += 1
        return lease

    def release(self, lease: Lease) -> None:
        lease.active -= 1
        if lease.retired and lease.active == 0:
            self._close_later(lease.session)

    def retain(self, keys: Iterable[SessionKey]) -> None:
        """Retire the sessions of routes (or settings) that are gone: each is closed once its
        last in-flight request is done."""
        keep = set(keys)
        for key in [k for k in self._leases if k not in keep]:
            lease = self._leases.pop(key)
            lease.retired = True
            if lease.active == 0:
                self._close_later(lease.session)

    def _close_later(self, session: aiohttp.ClientSession) -> None:
        task = asyncio.get_running_loop().create_task(session.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        leases = list(self._leases.values())
        self._leases.clear()
        for lease in leases:
            await lease.session.close()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
