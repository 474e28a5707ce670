"""The in-memory revocation index: what a check reads, a few dictionary lookups.

Entries are held per kind, then per issuer, then by value (``jti``, ``sub``, ``client_id`` or
the issuer itself), so a check for one token costs at most four ``dict.get`` pairs and no I/O.
Expired entries are dropped lazily when met and in bulk by ``prune``.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterator

from ..auth.principal import Principal
from .store import KINDS, Key, Kind, Page, Revocation

_BUCKET = 60.0  # seconds of expiry per pruning bucket


class RevocationIndex:
    __slots__ = ("_buckets", "_maps", "_size")

    def __init__(self) -> None:
        self._maps: dict[Kind, dict[str, dict[str, Revocation]]] = {k: {} for k in KINDS}
        self._size = 0
        # entries by the minute they expire in: pruning touches only what has expired, never
        # walks the whole index (which would stall the event loop at a million entries)
        self._buckets: dict[int, list[Revocation]] = {}

    def __len__(self) -> int:
        return self._size

    def is_revoked(self, principal: Principal, now: float) -> bool:
        if not self._size:
            return False
        iss = principal.issuer
        maps = self._maps
        for kind, value in (("jti", principal.token_id), ("sub", principal.subject),
                            ("client", principal.client_id), ("issuer", iss)):
            if value is None:
                continue
            by_value = maps[kind].get(iss)  # type: ignore[index]
            if by_value is None:
                continue
            entry = by_value.get(value)
            if entry is None:
                continue
            if entry.expires_at <= now:
                self.remove(entry.kind, iss, value)
            elif entry.revokes(principal):
                return True
        return False

    def get(self, kind: Kind, issuer: str, value: str) -> Revocation | None:
        return self._maps[kind].get(issuer, {}).get(value)

    def put(self, entry: Revocation) -> None:
        by_value = self._maps[entry.kind].setdefault(entry.issuer, {})
        if entry.value not in by_value:
            self._size += 1
        by_value[entry.value] = entry
        bucket = int(entry.expires_at // _BUCKET)
        entries = self._buckets.get(bucket)
        if entries is None:
            self._buckets[bucket] = [entry]
        else:
            entries.append(entry)

    def remove(self, kind: Kind, issuer: str, value: str) -> bool:
        by_value = self._maps[kind].get(issuer)
        if by_value is None or by_value.pop(value, None) is None:
            return False
        self._size -= 1
        if not by_value:
            del self._maps[kind][issuer]
        return True

    def prune(self, now: float) -> int:
        """Drop the entries of every bucket that has fully expired; the number dropped.

        Costs the number of expired entries (and of replaced or removed ones in those
        buckets). Entries expiring in the current minute go at the next prune; until then a
        lookup that meets one drops it.
        """
        current = int(now // _BUCKET)
        dropped = 0
        for bucket in [b for b in self._buckets if b < current]:
            for entry in self._buckets.pop(bucket):
                if self.get(entry.kind, entry.issuer, entry.value) is entry:
                    self.remove(entry.kind, entry.issuer, entry.value)
                    dropped += 1
        return dropped

    def entries(self) -> Iterator[Revocation]:
        for by_issuer in self._maps.values():
            for by_value in by_issuer.values():
                yield from by_value.values()

    def counts(self) -> dict[str, int]:
        return {k: sum(len(v) for v in self._maps[k].values()) for k in KINDS}

    def page(
        self, *, now: float, kind: Kind | None = None, issuer: str | None = None,
        value: str | None = None, limit: int = 100, cursor: str | None = None,
    ) -> Page:
        """Live entries ordered by (kind, issuer, value), ``limit`` after ``cursor``.

        The cursor is the last key of the previous page, so pages stay stable while entries
        come and go; a page costs one pass over the selected kinds and issuers.
        """
        after = _parse_cursor(cursor)
        kinds = (kind,) if kind is not None else KINDS

        def selected() -> Iterator[tuple[Key, Revocation]]:
            for k in kinds:
                by_issuer = self._maps[k]
                issuers = [issuer] if issuer is not None else list(by_issuer)
                for iss in issuers:
                    by_value = by_issuer.get(iss, {})
                    values = [value] if value is not None else list(by_value)
                    for v in values:
                        entry = by_value.get(v)
                        if entry is None or entry.expires_at <= now:
                            continue
                        key: Key = (k, iss, v)
                        if after is None or key > after:
                            yield key, entry

        chosen = heapq.nsmallest(limit + 1, selected(), key=lambda item: item[0])
        more = len(chosen) > limit
        chosen = chosen[:limit]
        next_cursor = _format_cursor(chosen[-1][0]) if more and chosen else None
        return Page([e for _, e in chosen], next_cursor)


def _format_cursor(key: Key) -> str:
    return json.dumps(list(key), separators=(",", ":"))


def _parse_cursor(cursor: str | None) -> Key | None:
    if not cursor:
        return None
    try:
        data = json.loads(cursor)
    except ValueError:
        return None
    if (isinstance(data, list) and len(data) == 3 and data[0] in KINDS
            and all(isinstance(x, str) for x in data)):
        return (data[0], data[1], data[2])
    return None
