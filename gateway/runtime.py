"""The compiled, immutable snapshot the request path reads: ``Runtime`` and its parts.

``config.compile`` builds a Runtime from a validated document; a reload builds a new one and
swaps it into the ``RuntimeHolder`` with one assignment. In-flight requests keep the snapshot
they read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .access import AccessLog
from .auth.policy import RoutePolicy
from .auth.verify import TokenVerifier
from .proxy.options import ProxyOptions, ServerProxy
from .revocation.check import RevocationChecker
from .routing import MatchRule, RouteTable

_DEFAULT_ACCESS_LOG = AccessLog()


@dataclass(frozen=True, slots=True)
class Upstream:
    """Where a route forwards to; the URL's own path is a prefix of the forwarded path."""

    scheme: str
    host: str
    port: int
    base_path: str      # "" or "/prefix" without a trailing slash, percent-encoded
    authority: str      # the Host header sent upstream (port omitted when default)
    url: str            # as configured, for logs and listings


@dataclass(frozen=True, slots=True)
class IdentityHeaders:
    """Header names carrying the verified identity upstream (None: not sent)."""

    subject: str | None
    client_id: str | None
    scopes: str | None
    issuer: str | None

    def names(self) -> tuple[str, ...]:
        return tuple(n for n in (self.subject, self.client_id, self.scopes, self.issuer) if n)


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    rule: MatchRule
    upstream: Upstream
    requires_auth: bool
    policy: RoutePolicy
    timeout: float
    identity: IdentityHeaders
    stripped_headers: frozenset[str]  # normalised names removed from client requests
    enforce: bool = True             # False: shadow mode (decide, log, count, forward anyway)
    log_query: str | None = None     # drop | redact | keep; None: the access log's default
    issuers: frozenset[str] | None = None  # accepted token issuers; None: every issuer
    # pool, timeouts, limits, rewrites, CORS, WebSocket (proxy/options.py)
    proxy: ProxyOptions = field(default_factory=ProxyOptions)

    @property
    def targets(self) -> tuple[Upstream, ...]:
        return self.proxy.pool.targets or (self.upstream,)


@dataclass(frozen=True, slots=True)
class Runtime:
    routes: RouteTable[Route]
    verifier: TokenVerifier
    realm: str
    request_id_header: str
    revocation: RevocationChecker | None   # None: no revocation section, nothing checked
    default_issuer: str | None   # the only configured issuer, if there is exactly one
    admin_token: str | None      # None: the admin API is disabled
    sha256: str
    source: str
    access_log: AccessLog = _DEFAULT_ACCESS_LOG
    proxy: ServerProxy = field(default_factory=ServerProxy)  # trusted proxies, HSTS


class RuntimeHolder:
    """The one mutable cell: the active Runtime. Replaced whole, never mutated."""

    __slots__ = ("current",)

    def __init__(self, runtime: Runtime) -> None:
        self.current = runtime
