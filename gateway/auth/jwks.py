"""JwksCache: the keys of one issuer fetched from its JWKS URI (or found through discovery).

Life of a cache::

    start()          background task: first fetch at once (start-up is not blocked)
    no keys yet      key_set() raises KeysUnavailable → 503 for that issuer's requests
    fetch ok at t    keys fresh for T = Cache-Control max-age clamped to [min, max] bounds,
                     else refresh_interval; the next fetch is due at t + 0.8·T
    fetch fails      the last good keys stay; retries back off 1 s → 60 s; after T + max_stale
                     without success key_set() raises KeysUnavailable (fail closed)
    unknown kid      refetch(): one fetch shared by every waiting request (single flight),
                     at most once per cooldown; forged kids cannot hammer the provider

Every fetch runs as a task of its own and is awaited through ``asyncio.shield``: a request that
goes away does not cancel the fetch others wait for. The clock and the sleep are injected, so
tests drive time without sleeping. ``generation`` changes only when the set of keys changes,
which is what invalidates the verifier's cached tokens of this issuer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from ..errors import KeysUnavailable
from ..logs import event
from ..metrics import GatewayMetrics
from .discovery import Metadata, discover
from .fetch import Fetched, FetchError, FetchLimits, fetch_json
from .keys import KeyEntry
from .keyset import JwksInvalid, KeySet, parse_jwks

log = logging.getLogger("gateway.jwks")

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
RETRY_MIN = 1.0
RETRY_MAX = 60.0
REFRESH_AT = 0.8   # fraction of the freshness period after which the background refetch runs


@dataclass(frozen=True, slots=True)
class JwksSettings:
    """Everything that defines one issuer's remote key source (hashable: a registry key)."""

    issuer: str
    jwks_uri: str | None            # None: found through discovery
    algorithms: frozenset[str]
    limits: FetchLimits
    refresh_interval: float = 600.0
    min_refresh_interval: float = 60.0
    max_refresh_interval: float = 86_400.0
    cooldown: float = 10.0
    max_stale: float = 43_200.0

    @property
    def discovery(self) -> bool:
        return self.jwks_uri is None


class JwksDocumentSource:
    """Fetches the JWKS document: directly, or through the discovered ``jwks_uri``."""

    def __init__(self, settings: JwksSettings, session: Callable[[], Any]) -> None:
        self._settings = settings
        self._session = session
        self._metadata: Metadata | None = None

    async def __call__(self) -> Fetched:
        s = self._settings
        session = self._session()
        if s.jwks_uri is not None:
            return await fetch_json(session, s.jwks_uri, s.limits)
        if self._metadata is None:
            self._metadata = await discover(session, s.issuer, s.limits)
        try:
            return await fetch_json(session, self._metadata.jwks_uri, s.limits)
        except FetchError:
            self._metadata = None  # the jwks_uri may have moved: discover again next time
            raise


class JwksCache:
    def __init__(
        self,
        settings: JwksSettings,
        fetch: Callable[[], Awaitable[Fetched]],
        metrics: GatewayMetrics,
        *,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self._fetch = fetch
        self._metrics = metrics
        self._clock = clock
        self._sleep = sleep
        self._keys: KeySet | None = None
        self._fetched_at: float | None = None     # last success
        self._fresh_for = settings.refresh_interval
        self._due_at = 0.0                         # next background fetch
        self._failures = 0
        self._last_error: str | None = None
        self._last_refetch: float | None = None   # last request-triggered fetch (cooldown)
        self._inflight: asyncio.Task[None] | None = None
        self._runner: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    # -- the request path (no I/O) -------------------------------------------------------

    def key_set(self, now: float | None = None) -> KeySet:
        """The usable keys; KeysUnavailable when there are none yet or they are too stale.

        Staleness is judged on the cache's own clock (the one its fetch times come from).
        """
        if now is None:
            now = self._clock()
        keys = self._keys
        if keys is None:
            raise KeysUnavailable(f"no keys fetched yet for {self.settings.issuer}"
                                  + (f" ({self._last_error})" if self._last_error else ""))
        assert self._fetched_at is not None
        if now > self._fetched_at + self._fresh_for + self.settings.max_stale:
            raise KeysUnavailable(
                f"keys of {self.settings.issuer} are stale: last fetched "
                f"{now - self._fetched_at:.0f}s ago ({self._last_error})"
            )
        return keys

    # -- fetching ------------------------------------------------------------------------

    async def refetch(self, reason: str) -> bool:
        """A request-triggered fetch (unknown kid, no keys): shared, at most once per cooldown.

        Returns True when a fetch finished meanwhile (so the caller should look again).
        """
        if self._inflight is not None and not self._inflight.done():
            await asyncio.shield(self._inflight)
            return True
        now = self._clock()
        if self._last_refetch is not None and now - self._last_refetch < self.settings.cooldown:
            self._metrics.record_jwks_refetch(self.settings.issuer, "cooldown")
            return False
        self._last_refetch = now
        self._metrics.record_jwks_refetch(self.settings.issuer, "refetch")
        log.info("refetching keys of %s: %s", self.settings.issuer, reason)
        await asyncio.shield(self._start())
        return True

    async def refresh(self) -> None:
        """Fetch now, or join the fetch in flight."""
        await asyncio.shield(self._start())

    def _start(self) -> asyncio.Task[None]:
        if self._inflight is None or self._inflight.done():
            task = asyncio.get_running_loop().create_task(self._fetch_once())
            self._inflight = task
            task.add_done_callback(self._done)
        return self._inflight

    def _done(self, task: asyncio.Task[None]) -> None:
        if self._inflight is task:
            self._inflight = None

    async def _fetch_once(self) -> None:
        issuer = self.settings.issuer
        started = self._clock()
        t0 = time.perf_counter()
        try:
            fetched = await self._fetch()
            entries = parse_jwks(fetched.document, self.settings.algorithms, fetched.url)
        except (FetchError, JwksInvalid) as exc:
            result = exc.result if isinstance(exc, FetchError) else "invalid"
            self._failed(result, str(exc))
        except Exception as exc:  # a bug must not end the refresh loop or keep stale keys
            log.exception("unexpected error fetching keys of %s", issuer)
            result = "invalid"
            self._failed(result, f"{type(exc).__name__}: {exc}")
        else:
            self._succeeded(started, entries, fetched.max_age)
            result = "success"
        finally:
            self._metrics.record_jwks_fetch(issuer, time.perf_counter() - t0)
        self._metrics.record_jwks_result(issuer, result)
        if result == "success":
            self._ready.set()

    def _succeeded(self, now: float, entries: list[KeyEntry], max_age: float | None) -> None:
        s = self.settings
        fresh = s.refresh_interval if max_age is None else max_age
        self._fresh_for = min(max(fresh, s.min_refresh_interval), s.max_refresh_interval)
        previous = self._keys
        candidate = KeySet.build(entries)
        if previous is None or candidate.fingerprint != previous.fingerprint:
            before = set(previous.kids()) if previous is not None else set()
            self._keys = replace(
                candidate, generation=1 if previous is None else previous.generation + 1
            )
            event(
                "signing_keys_loaded" if previous is None else "signing_keys_changed",
                f"keys of {s.issuer} {'loaded' if previous is None else 'changed'}",
                issuer=s.issuer, keys=len(candidate.keys),
                added=sorted(set(candidate.kids()) - before),
                removed=sorted(before - set(candidate.kids())),
            )
        self._fetched_at = now
        self._due_at = now + REFRESH_AT * self._fresh_for
        self._failures = 0
        self._last_error = None
        self._metrics.record_jwks_success(s.issuer, len(candidate.keys), now)

    def _failed(self, result: str, detail: str) -> None:
        self._failures += 1
        self._last_error = f"{result}: {detail}"[:500]
        # back-off counted from the end of the failed attempt (a timeout may have taken long)
        self._due_at = self._clock() + min(RETRY_MIN * 2 ** (self._failures - 1), RETRY_MAX)
        event(
            "signing_keys_refresh_failed",
            f"fetching keys of {self.settings.issuer} failed ({result}): {detail}",
            level=logging.WARNING, issuer=self.settings.issuer, result=result,
            failures=self._failures, have_keys=self._keys is not None,
        )

    # -- background refresh --------------------------------------------------------------

    def due_in(self, now: float) -> float:
        """Seconds until the next background fetch (0: now)."""
        return max(0.0, self._due_at - now)

    def start(self) -> None:
        """Start the background refresh (needs a running loop); idempotent."""
        if self._runner is None or self._runner.done():
            self._runner = asyncio.get_running_loop().create_task(self._run())

    @property
    def started(self) -> bool:
        return self._runner is not None and not self._runner.done()

    async def _run(self) -> None:
        while True:
            delay = self.due_in(self._clock())
            if delay > 0:
                await self._sleep(delay)
            await self.refresh()

    async def wait_ready(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for the first successful fetch (for warming; never at start)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._ready.wait()
        return self._ready.is_set()

    async def close(self) -> None:
        for task in (self._runner, self._inflight):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._runner = None

    def status(self, now: float | None = None) -> dict[str, Any]:
        """For /status: what the cache holds, never key material (times on its own clock)."""
        if now is None:
            now = self._clock()
        keys = self._keys
        return {
            "source": self.settings.jwks_uri or "discovery",
            "kids": keys.kids() if keys else [],
            "generation": keys.generation if keys else 0,
            "last_success_age_seconds": (
                None if self._fetched_at is None else round(now - self._fetched_at, 3)
            ),
            "fresh_for_seconds": self._fresh_for,
            "next_fetch_in_seconds": round(self.due_in(now), 3),
            "consecutive_failures": self._failures,
            "last_error": self._last_error,
        }
