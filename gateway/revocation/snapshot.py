"""Bulk Redis operations of the revocation feed: load the whole list, re-seed it, prune it.

Each is a sequence of bounded calls through ``RedisLink`` (a page of HSCAN, a batch of the
re-seed script), so a large list never needs one long command and the event loop keeps
serving requests between pages.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from . import scripts
from .index import RevocationIndex
from .redis_target import Client, RedisLink
from .store import Revocation
from .wire import RedisKeys, WireError, decode_entry, encode_entry, field_of, resync_message

log = logging.getLogger("gateway.revocation")


async def load_index(
    link: RedisLink, keys: RedisKeys, now: float, progress: Callable[[int], None],
) -> tuple[RevocationIndex, int]:
    """Every live entry of ``{P}:entries`` in a new index; (index, malformed entries skipped)."""
    index = RevocationIndex()
    skipped = 0
    cursor = 0
    while True:

        async def page(c: Client, at: int = cursor) -> tuple[int, Any]:
            return await c.hscan(keys.entries, at, count=scripts.SCAN_BATCH)

        cursor, items = await link.call(page, slow=True)
        progress(len(items))
        for raw in items.values():
            try:
                entry = decode_entry(raw)
            except WireError as exc:
                skipped += 1
                log.warning("skipped a malformed revocation entry in Redis: %s", exc)
                continue
            if entry.expires_at > now:
                index.put(entry)
        if cursor == 0:
            return index, skipped


async def reseed(link: RedisLink, keys: RedisKeys, entries: Iterable[Revocation]) -> int:
    """Write back the entries Redis lacks, bump the version, ask everyone to reload.

    Returns how many entries were added (HSETNX: an entry Redis already has is kept as is).
    """
    live = list(entries)
    added = 0
    for i in range(0, len(live), scripts.RESEED_BATCH):
        args: list[str | float] = []
        for entry in live[i:i + scripts.RESEED_BATCH]:
            args += [field_of(entry.kind, entry.issuer, entry.value), encode_entry(entry),
                     entry.expires_at]

        async def seed(c: Client, a: list[str | float] = args) -> Any:
            return await c.eval(scripts.RESEED, 2, keys.entries, keys.expiry, *a)

        added += int(await link.call(seed, slow=True))
    version = int(await link.call(lambda c: c.incr(keys.version)))
    await link.call(lambda c: c.publish(keys.channel, resync_message(version)))
    return added


async def prune_redis(link: RedisLink, keys: RedisKeys, now: float) -> int:
    """Drop up to one batch of expired entries from Redis; how many were dropped."""
    return int(await link.call(lambda c: c.eval(
        scripts.PRUNE, 2, keys.entries, keys.expiry, f"{now:.3f}", scripts.PRUNE_BATCH
    )))
