"""Where the Redis revocation list lives and how to talk to it without ever hanging.

``RedisSettings`` is the compiled ``revocation`` section for ``store: redis``. ``RedisLink``
owns one redis-py client — a plain ``Redis`` for ``redis_url``, a Sentinel-managed master
(``redis.asyncio.sentinel.Sentinel``) or a ``redis.asyncio.cluster.RedisCluster`` — built with
explicit connect and command timeouts and at most one retry. Every command goes through
``call``: a circuit breaker, a hard deadline around redis-py's own timeouts, and translation
of every Redis failure into ``StoreError``.

Pub/sub: one node's subscription is enough in every mode. On a Cluster, plain PUBLISH is
broadcast to every node over the cluster bus, so the gateway SUBSCRIBEs (classic, not sharded
SSUBSCRIBE, which needs Redis 7 and moves with slot migrations) on the node that serves the
channel's hash slot, found by redis-py's ``ClusterPubSub``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry
from yarl import URL

from ..config.model import RevocationSpec
from .breaker import CircuitBreaker, CircuitOpen
from .store import StoreError
from .wire import RedisKeys

T = TypeVar("T")
Mode = Literal["single", "sentinel", "cluster"]
Client = Redis | RedisCluster
#: Every failure a Redis call can raise, translated to StoreError by ``RedisLink.call``.
REDIS_FAILURES = (RedisError, OSError, TimeoutError, CircuitOpen)


def _node(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


@dataclass(frozen=True, slots=True)
class RedisSettings:
    mode: Mode
    url: str | None
    nodes: tuple[tuple[str, int], ...]   # sentinels or cluster seed nodes
    master: str | None                   # sentinel master name
    sentinel_password: str | None
    username: str | None
    password: str | None
    tls: bool
    keys: RedisKeys
    connect_timeout: float
    command_timeout: float
    heartbeat_interval: float
    max_staleness: float

    @classmethod
    def from_spec(cls, spec: RevocationSpec) -> RedisSettings:
        if spec.sentinel is not None:
            mode: Mode = "sentinel"
            nodes = tuple(_node(n) for n in spec.sentinel.nodes)
        elif spec.cluster is not None:
            mode, nodes = "cluster", tuple(_node(n) for n in spec.cluster.nodes)
        else:
            mode, nodes = "single", ()
        return cls(
            mode=mode, url=spec.redis_url, nodes=nodes,
            master=spec.sentinel.master if spec.sentinel else None,
            sentinel_password=spec.sentinel.password if spec.sentinel else None,
            username=spec.username, password=spec.password, tls=spec.tls,
            keys=RedisKeys.for_prefix(spec.key_prefix),
            connect_timeout=spec.connect_timeout, command_timeout=spec.command_timeout,
            heartbeat_interval=spec.heartbeat_interval, max_staleness=spec.max_staleness,
        )

    @property
    def deadline(self) -> float:
        """The hard limit for one command: connect + answer, tried at most twice."""
        return 2 * (self.connect_timeout + self.command_timeout) + 0.05

    def describe(self) -> dict[str, Any]:
        """Where Redis is, without credentials (for /status and logs)."""
        if self.mode == "single":
            assert self.url is not None
            url = URL(self.url)
            where: Any = str(url.with_password(None).with_user(None)) if url.user or \
                url.password else self.url
        else:
            where = [f"{h}:{p}" for h, p in self.nodes]
        return {"mode": self.mode, "where": where, "master": self.master,
                "key_prefix": self.keys.prefix}


class RedisLink:
    """One redis-py client for the store's whole life, every call bounded and guarded."""

    def __init__(
        self, settings: RedisSettings, *, on_error: Callable[[BaseException], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.breaker = CircuitBreaker(threshold=3, reset_after=max(1.0, settings.deadline),
                                      clock=clock)
        self._on_error = on_error
        self.last_failure = "no failure"
        self.client: Client = self._client()

    def _common(self) -> dict[str, Any]:
        s = self.settings
        return {
            "socket_connect_timeout": s.connect_timeout,
            "socket_timeout": s.command_timeout,
            "retry": Retry(NoBackoff(), 1),
            "client_name": "oauth2-gateway",
        }

    def _client(self) -> Client:
        s = self.settings
        if s.mode == "single":
            assert s.url is not None
            return Redis.from_url(s.url, **self._common())
        auth: dict[str, Any] = {"username": s.username, "password": s.password}
        if s.tls:
            auth["ssl"] = True
        if s.mode == "sentinel":
            assert s.master is not None
            sentinel_kwargs = {
                "socket_connect_timeout": s.connect_timeout,
                "socket_timeout": s.command_timeout,
                "password": s.sentinel_password,
            }
            sentinel = Sentinel(  # type: ignore[no-untyped-call]
                list(s.nodes), sentinel_kwargs=sentinel_kwargs, **self._common(), **auth
            )
            client: Redis = sentinel.master_for(s.master, **self._common(), **auth)
            return client
        return RedisCluster(
            startup_nodes=[ClusterNode(h, p) for h, p in s.nodes], **self._common(), **auth
        )

    async def call(self, fn: Callable[[Client], Awaitable[T]], *, slow: bool = False) -> T:
        """``await fn(client)`` behind the breaker and a hard deadline; StoreError on failure.

        ``slow`` doubles the deadline for bulk commands (a page of HSCAN, a re-seed batch).
        """
        try:
            self.breaker.before_call()
            async with asyncio.timeout(self.settings.deadline * (2 if slow else 1)):
                result = await fn(self.client)
        except REDIS_FAILURES as exc:
            self._on_error(exc)
            if isinstance(exc, CircuitOpen):
                raise StoreError(f"circuit breaker open after: {self.last_failure}") from exc
            self.breaker.record_failure()
            self.last_failure = describe_failure(exc)
            raise StoreError(self.last_failure) from exc
        self.breaker.record_success()
        return result

    async def sentinel_master(self) -> tuple[str, int] | None:
        """Sentinel mode: the master's address as the sentinels see it now (None otherwise).

        Asking also makes redis-py drop idle connections to a master that was replaced.
        """
        if self.settings.mode != "sentinel":
            return None
        pool: Any = getattr(self.client, "connection_pool", None)
        host, port = await self.call(lambda _: pool.get_master_address())
        return str(host), int(port)

    async def pubsub(self) -> PubSub:
        client = self.client
        if isinstance(client, RedisCluster):
            # the node of the channel's slot comes from the slot map: load it first
            await self.call(lambda _: client.initialize())
        return client.pubsub(ignore_subscribe_messages=True)

    async def close(self) -> None:
        with contextlib.suppress(*REDIS_FAILURES):
            await self.client.aclose()


def describe_failure(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError) and not str(exc):
        return "Redis did not answer in time"
    return f"{type(exc).__name__}: {exc}"[:300]
