"""Compiled, immutable proxy settings of a route: its pool, timeouts, limits, rewrites, header
edits, CORS and WebSocket settings (``config.proxy_model`` is the document side).

Pure: the request path only reads these objects. The mutable state that goes with a pool
(health, balancing, connections) lives in ``proxy.pool`` and ``proxy.clients``.
"""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp
from multidict import CIMultiDict

if TYPE_CHECKING:
    from ..runtime import Upstream

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})


@dataclass(frozen=True, slots=True)
class UpstreamTls:
    context: ssl.SSLContext = field(compare=False)
    server_name: str | None
    fingerprint: str        # what the context was built from (files and their sha256)


@dataclass(frozen=True, slots=True)
class PassiveHealth:
    max_failures: int       # consecutive failures that eject a target; 0: never ejected
    ejection_time: float


@dataclass(frozen=True, slots=True)
class HealthCheck:
    path: str
    interval: float
    timeout: float
    healthy_threshold: int
    unhealthy_threshold: int
    query: str = ""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int           # tries per request, the first included
    budget: float           # retries as a share of requests
    min_per_second: float


@dataclass(frozen=True, slots=True)
class Pool:
    targets: tuple[Upstream, ...] = ()   # empty: the route's single upstream
    balance: str = "round_robin"         # or least_conn
    passive: PassiveHealth = PassiveHealth(5, 30.0)
    check: HealthCheck | None = None
    retries: RetryPolicy = RetryPolicy(2, 0.2, 3.0)
    tls: UpstreamTls | None = None
    _key: tuple[object, ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        key = (tuple(t.url for t in self.targets), self.balance, self.passive, self.check)
        object.__setattr__(self, "_key", key)

    def key(self) -> tuple[object, ...]:
        """What identifies the pool's state (health, balancing) across reloads."""
        return self._key


@dataclass(frozen=True, slots=True)
class HeaderEdits:
    remove: frozenset[str] = frozenset()                     # lower case
    set: tuple[tuple[str, str], ...] = ()
    add: tuple[tuple[str, str], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.remove or self.set or self.add)

    def apply(self, headers: CIMultiDict[str]) -> None:
        for name in self.remove:
            headers.popall(name, None)
        for name, value in self.set:
            headers[name] = value
        for name, value in self.add:
            headers.add(name, value)


@dataclass(frozen=True, slots=True)
class PathRewrite:
    """Applied to the canonical path: drop ``strip`` (a segment prefix), then put ``prefix``
    in front. Both empty: the path is forwarded as matched."""

    strip: str = ""
    prefix: str = ""

    def apply(self, path: str) -> str:
        if self.strip and (path == self.strip or path.startswith(self.strip + "/")):
            path = path[len(self.strip):]
        if self.prefix:
            joined = self.prefix.rstrip("/") + path
            return joined or "/"
        return path or "/"


@dataclass(frozen=True, slots=True)
class Cors:
    any_origin: bool
    origins: frozenset[str]             # lower case, when not any_origin
    methods: frozenset[str]
    allow_headers: frozenset[str]       # lower case
    methods_value: str
    headers_value: str
    expose_value: str
    max_age: str
    credentials: bool

    def allowed_origin(self, origin: str) -> bool:
        return self.any_origin or origin.lower() in self.origins


@dataclass(frozen=True, slots=True)
class ProxyOptions:
    pool: Pool = Pool()
    connect_timeout: float = 5.0
    idle_timeout: float = 60.0
    max_connections: int = 100
    max_concurrent: int | None = None
    max_body_size: int = 0              # 0: no limit
    rewrite: PathRewrite = PathRewrite()
    preserve_host: bool = False
    host_header: str | None = None      # a fixed Host for the upstream
    forward_token: bool = True
    request_edits: HeaderEdits = HeaderEdits()
    response_edits: HeaderEdits = HeaderEdits()
    cors: Cors | None = None
    websocket: bool = True
    ws_max_message: int = 4 * 1024 * 1024
    # derived once here rather than per request
    _connection_key: tuple[object, ...] = field(init=False, compare=False, repr=False)
    client_timeout: aiohttp.ClientTimeout = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        tls = self.pool.tls
        key = (self.max_connections, tls.fingerprint if tls is not None else None)
        object.__setattr__(self, "_connection_key", key)
        # the upstream request's own timeout: the connect only (the rest is the gateway's)
        object.__setattr__(self, "client_timeout",
                           aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout))

    def connection_key(self) -> tuple[object, ...]:
        """What a route's connection pool depends on: routes sharing it share connections."""
        return self._connection_key


@dataclass(frozen=True, slots=True)
class ServerProxy:
    """Listener-wide proxy settings that hot-reload with the routes."""

    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    hsts: str | None = None             # the Strict-Transport-Security value, when on

    def is_trusted(self, peer: str | None) -> bool:
        if not self.trusted_proxies or not peer:
            return False
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.trusted_proxies)
