"""Keeps an in-memory ``RevocationIndex`` equal to the Redis list, and knows when it is not.

One background task runs sessions: subscribe to ``{P}:events`` → full load (messages that
arrive meanwhile are buffered and replayed on top) → every ``heartbeat_interval``: read
``{P}:epoch`` and ``{P}:version``, publish a ping on the channel and expect it back. Any
failure ends the session; the next one starts after a backoff (0.1 s doubling to 5 s).

Every (re)subscription is a gap: redis-py re-subscribes silently after a reconnect and loses
what was published meanwhile, so the gateway notices a re-subscription (a connect callback on
the subscription's connection) and starts over with a full load. Other gaps: a heartbeat that
does not come back (subscription silently dead), a version published before the last check
that never arrived, an explicit ``{"op": "resync"}``.

Data loss in Redis (restarted without persistence, failover to an empty replica): the epoch
key is gone or changed, or the version went back. It is logged as an error and this
instance writes every live entry it holds back (HSETNX: what Redis has wins), bumps the
version and publishes a resync, so the instances re-seed Redis with the union of their
memory and then all load the result.

The list counts as current while the last proof — a completed load or a heartbeat echo with
no version missing — is younger than ``max_staleness``; before the first load and after
that, ``is_current`` is false and the checker applies ``on_unavailable``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import math
import os
import random
import time
from collections.abc import Callable
from typing import Any

from redis.asyncio.client import PubSub

from ..logs import event
from ..metrics import GatewayMetrics
from .index import RevocationIndex
from .redis_target import REDIS_FAILURES, RedisLink, describe_failure
from .snapshot import load_index, prune_redis, reseed
from .store import StoreError
from .wire import (
    Change,
    Message,
    Ping,
    Resync,
    WireError,
    decode_message,
    ping_message,
)

log = logging.getLogger("gateway.revocation")

PRUNE_INTERVAL = 60.0
BACKOFF_FIRST, BACKOFF_MAX = 0.1, 5.0
_MAX_AHEAD = 10_000  # out-of-order versions remembered before declaring a gap


class SyncLost(Exception):
    """The feed can no longer be trusted; ``cause`` is a gap metric label."""

    def __init__(self, cause: str, detail: str) -> None:
        super().__init__(detail)
        self.cause = cause


class RevocationSync:
    def __init__(
        self, link: RedisLink, metrics: GatewayMetrics, *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.link = link
        self.settings = link.settings
        self.keys = link.settings.keys
        self.metrics = metrics
        self.index = RevocationIndex()
        self.first_sync = asyncio.Event()
        self._clock = clock
        self._mono = monotonic
        self._instance = f"{os.getpid()}-{random.getrandbits(48):012x}"
        self._pings = 0
        self._pending_ping: tuple[str, asyncio.Event] | None = None
        self._buffer: list[Message] | None = None   # not None while a full load runs
        self._resync_requested = asyncio.Event()
        self._resubscribed = False
        self._subscribed_to: tuple[str, int] | None = None  # the subscription's server
        self._epoch: str | None = None
        self._applied = 0                  # every version up to this one has been applied
        self._ahead: set[int] = set()      # versions seen beyond _applied
        self._expected: int | None = None  # the version Redis had at the previous heartbeat
        self._proof = -math.inf            # monotonic time of the last proof of being current
        # for /status
        self.phase = "starting"
        self.connected = False
        self.last_error: str | None = None
        self.last_load: dict[str, Any] | None = None
        self.loading_progress = 0  # entries read by the load in progress
        self.gaps = 0
        self.resyncs = 0
        self.reseeds = 0
        metrics.watch_revocation_sync_lag(self.lag)

    @property
    def epoch(self) -> str | None:
        return self._epoch

    @property
    def version(self) -> int:
        """Every change up to this version has been applied."""
        return self._applied

    # -- what the request path asks -------------------------------------------------------

    def is_current(self) -> bool:
        return self._mono() - self._proof <= self.settings.max_staleness

    def current_index(self) -> RevocationIndex:
        """The index, when it is known to be current; else StoreError (on_unavailable)."""
        if not self.is_current():
            raise StoreError(self.unavailable_reason())
        return self.index

    def record_entries(self) -> None:
        self.metrics.record_revocation_entries(self.index.counts())

    def lag(self) -> float:
        """Seconds since the last proof of being current (inf before the first load)."""
        return self._mono() - self._proof

    def unavailable_reason(self) -> str:
        if self._proof == -math.inf:
            return f"revocation list not loaded yet ({self.last_error or self.phase})"
        return (f"revocation list not confirmed for {self.lag():.1f}s "
                f"({self.last_error or self.phase})")

    # -- the session loop -----------------------------------------------------------------

    async def run(self) -> None:
        delay = BACKOFF_FIRST
        cause = "startup"
        while True:
            started = self._mono()
            try:
                await self._session(cause)
            except (SyncLost, StoreError, *REDIS_FAILURES) as exc:
                cause = exc.cause if isinstance(exc, SyncLost) else "reconnect"
                self.last_error = (str(exc) if isinstance(exc, SyncLost | StoreError)
                                   else describe_failure(exc))
                event("revocation_feed_lost", f"revocation feed lost ({cause}): "
                      f"{self.last_error}", level=logging.WARNING, cause=cause,
                      error=self.last_error)
            except Exception as exc:  # a bug must not end the feed for good
                cause = "reconnect"
                self.last_error = describe_failure(exc)
                log.exception("revocation feed failed unexpectedly")
            finally:
                self.connected = False
                self.metrics.revocation_connected.set(0)
            self.phase = "reconnecting"
            if self._mono() - started > 10 * BACKOFF_MAX:
                delay = BACKOFF_FIRST  # the session lived long: start the backoff over
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, BACKOFF_MAX)

    async def _session(self, cause: str) -> None:
        self.phase = "connecting"
        pubsub = await self.link.pubsub()
        self._resubscribed = False
        connection: Any = None
        try:
            await self.link.call(lambda _: pubsub.subscribe(self.keys.channel))
            connection = pubsub.connection
            if connection is not None:
                connection.register_connect_callback(self._on_connect)
                self._subscribed_to = (str(getattr(connection, "host", "")),
                                       int(getattr(connection, "port", 0) or 0))
            self.connected = True
            self._gap(cause)
            reader = asyncio.create_task(self._read(pubsub))
            watcher = asyncio.create_task(self._watch())
            try:
                done, _ = await asyncio.wait({reader, watcher},
                                             return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()  # raises what ended the session
                raise SyncLost("reconnect", "session ended")
            finally:
                for task in (reader, watcher):
                    task.cancel()
                await asyncio.gather(reader, watcher, return_exceptions=True)
        finally:
            if connection is not None:
                connection.deregister_connect_callback(self._on_connect)
            with contextlib.suppress(*REDIS_FAILURES):
                async with asyncio.timeout(self.settings.deadline):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _on_connect(self, connection: Any) -> None:
        # redis-py reconnected the subscription and re-subscribed: messages were lost
        self._resubscribed = True

    def _gap(self, cause: str) -> None:
        self.gaps += 1
        self.metrics.record_revocation_gap(cause)

    async def _read(self, pubsub: PubSub) -> None:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
            if self._resubscribed:
                raise SyncLost("resubscribed", "the subscription was silently re-established")
            if message is not None and message.get("type") == "message":
                self._receive(message["data"])

    def _receive(self, raw: bytes) -> None:
        try:
            message = decode_message(raw)
        except WireError as exc:
            log.warning("ignored a malformed revocation message: %s", exc)
            self.metrics.revocation_store_errors.inc()
            return
        if isinstance(message, Ping):
            if self._pending_ping is not None and message.id == self._pending_ping[0]:
                self._pending_ping[1].set()
            return
        if self._buffer is not None:
            self._buffer.append(message)
            return
        self._apply(message)

    def _apply(self, message: Message) -> None:
        if isinstance(message, Resync):
            if message.version is None or message.version > self._applied:
                self._resync_requested.set()
            return
        assert isinstance(message, Change)
        if message.entry is not None:
            self.index.put(message.entry)
        else:
            self.index.remove(*message.key)
        if message.version is not None:
            self._see(message.version)
        if message.sent_at is not None:
            self.metrics.revocation_propagation.observe(max(0.0, self._clock() - message.sent_at))
        self.record_entries()

    def _see(self, version: int) -> None:
        if version <= self._applied:
            return
        self._ahead.add(version)
        while self._applied + 1 in self._ahead:
            self._applied += 1
            self._ahead.discard(self._applied)
        if len(self._ahead) > _MAX_AHEAD:
            self._resync_requested.set()

    # -- load, heartbeat, prune -----------------------------------------------------------

    async def _watch(self) -> None:
        await self._load()
        last_prune = self._mono()
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.heartbeat_interval):
                    await self._resync_requested.wait()
            if self._resync_requested.is_set():
                self._gap("requested")
                await self._load()
                continue
            await self._heartbeat()
            if self._mono() - last_prune >= PRUNE_INTERVAL:
                last_prune = self._mono()
                await self._prune()

    async def _heartbeat(self) -> None:
        self._pings += 1
        nonce = f"{self._instance}-{self._pings}"
        echoed = asyncio.Event()
        self._pending_ping = (nonce, echoed)
        master = await self.link.sentinel_master()
        if master is not None and self._subscribed_to is not None and \
                master != self._subscribed_to:
            raise SyncLost("failover", f"the sentinels moved the master to {master[0]}:"
                                       f"{master[1]}")
        epoch, version = await self._read_state()
        if epoch != self._epoch or version < self._applied:
            self._gap("epoch" if epoch != self._epoch else "version")
            await self._load()
            return
        await self.link.call(lambda c: c.publish(self.keys.channel, ping_message(nonce)))
        try:
            async with asyncio.timeout(self.settings.deadline):
                await echoed.wait()
        except TimeoutError:
            raise SyncLost("heartbeat", "the heartbeat did not come back: subscription dead") \
                from None
        finally:
            self._pending_ping = None
        if self._expected is not None and self._applied < self._expected:
            self._gap("version")
            await self._load()
            return
        self._expected = version
        self._confirm()

    def _confirm(self) -> None:
        self._proof = self._mono()
        self.phase = "current"
        self.last_error = None
        self.metrics.revocation_connected.set(1)

    async def _read_state(self) -> tuple[str | None, int]:
        raw_epoch, raw_version = await self.link.call(
            lambda c: c.mget([self.keys.epoch, self.keys.version])
        )
        epoch = raw_epoch.decode() if isinstance(raw_epoch, bytes) else raw_epoch
        return epoch, int(raw_version or 0)

    async def _load(self) -> None:
        """Full load: the index becomes Redis' list plus whatever arrived meanwhile."""
        self._resync_requested.clear()
        self.phase = "loading"
        self._buffer = []
        started = self._mono()
        try:
            epoch, version = await self._read_state()
            if await self._recover_loss(epoch, version):
                epoch, version = await self._read_state()
            if epoch is None:
                await self.link.call(lambda c: c.set(self.keys.epoch, os.urandom(12).hex(),
                                                     nx=True))
                epoch, version = await self._read_state()
            self.loading_progress = 0
            index, skipped = await load_index(self.link, self.keys, self._clock(),
                                              self._progress)
        except BaseException:
            self.metrics.record_revocation_resync("failure")
            buffered, self._buffer = self._buffer, None
            for message in buffered:
                self._apply(message)
            raise
        buffered, self._buffer = self._buffer, None
        self.index = index
        # The index is a large, long-lived, acyclic structure: move it (and everything else
        # alive now) out of the cyclic collector's sight. Without this, every full collection
        # walks every entry, which costs a few % of throughput at 100k entries. Entries are
        # still freed by reference counting when a later load replaces them.
        gc.freeze()
        self._epoch = epoch
        self._applied, self._ahead, self._expected = version, set(), version
        for message in buffered:
            self._apply(message)
        self.resyncs += 1
        self.metrics.record_revocation_resync("success")
        self.record_entries()
        self.last_load = {"entries": len(index), "skipped": skipped,
                          "seconds": round(self._mono() - started, 3), "at": self._clock()}
        self._confirm()
        self.first_sync.set()
        event("revocation_list_loaded", "revocation list loaded from Redis", **self.last_load)

    async def _recover_loss(self, epoch: str | None, version: int) -> bool:
        """Re-seed Redis from memory if it lost the list; True when something was written."""
        if self._epoch is None:
            return False  # never loaded: nothing to compare with, nothing to give back
        if epoch is None:
            why = "the epoch key is gone"
        elif epoch != self._epoch:
            why = f"the epoch changed ({self._epoch} → {epoch})"
        elif version < self._applied:
            why = f"the version went back ({self._applied} → {version})"
        else:
            return False
        live = [e for e in self.index.entries() if e.expires_at > self._clock()]
        self.reseeds += 1
        self.metrics.revocation_reseeds.inc()
        added = await reseed(self.link, self.keys, live)
        event(
            "revocation_store_reseeded",
            f"Redis lost revocations ({why}): it restarted without persistence or failed over "
            f"to an empty replica. Re-seeded it with {added} of this instance's {len(live)} "
            "entries; enable AOF.",
            level=logging.ERROR, why=why, entries=len(live), added=added,
        )
        return True

    async def _prune(self) -> None:
        dropped = self.index.prune(self._clock())
        await prune_redis(self.link, self.keys, self._clock())
        if dropped:
            self.record_entries()

    def _progress(self, n: int) -> None:
        self.loading_progress += n
