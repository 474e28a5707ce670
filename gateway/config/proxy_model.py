"""Document models of the proxy settings: upstream pools, upstream TLS, header edits, CORS,
WebSockets, and the public listener's TLS, redirect and limits.

Imported by ``route_model`` and ``server_model`` (which own ``RouteSpec`` and ``ServerSpec``);
kept apart so the route and server models stay short. Same rules: frozen, unknown keys refused,
snake_case keys.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from .sizes import parse_size
from .spec_types import Duration, HeaderName, HttpMethod, HttpUrl, ListenAddress, Spec

ByteSize = Annotated[
    int,
    BeforeValidator(parse_size),
    Field(description="a size: 512 (bytes), 64KiB, 10MiB, 1GiB"),
]

#: Names a route may not add, set or remove: the gateway owns the message framing and the
#: connection, and ``Host`` has its own settings (``preserve_host``, the upstream URL).
RESERVED_HEADERS = frozenset({
    "host", "content-length", "transfer-encoding", "connection", "keep-alive", "te",
    "trailer", "upgrade", "proxy-authorization", "proxy-authenticate", "proxy-connection",
    "expect",
})
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_ORIGIN = re.compile(r"^https?://[a-z0-9.\-]+(?::\d{1,5})?$|^https?://\[[0-9a-f:.]+\](?::\d{1,5})?$")


def _check_edit_name(value: str) -> str:
    if value.lower() in RESERVED_HEADERS:
        raise ValueError(f"{value} is managed by the gateway and cannot be edited")
    return value


def _check_value(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("header values cannot contain control characters")
    return value


def _check_path_and_query(value: str) -> str:
    path, question, query = value.partition("?")
    if "#" in query or _CONTROL.search(query):
        raise ValueError("the query cannot contain # or control characters")
    return _check_abs_path(path) + question + query


_HOST_PORT = re.compile(
    r"^(?:[a-z0-9_](?:[a-z0-9_.\-]*[a-z0-9_])?|\[[0-9a-f:.]+\])(?::\d{1,5})?$"
)


def _check_host_port(value: str) -> str:
    lowered = value.lower()
    if not _HOST_PORT.match(lowered):
        raise ValueError("must be a host name or [IPv6] with an optional :port")
    return lowered


def _check_cidr(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError("must be an IP address or CIDR block, e.g. 10.0.0.0/8") from None
    return value


def _check_origin(value: str) -> str:
    if value == "*":
        return value
    lowered = value.lower()
    if not _ORIGIN.match(lowered):
        raise ValueError("must be * or an origin like https://app.example.com[:port]")
    return lowered


def _check_abs_path(value: str) -> str:
    if not value.startswith("/") or "?" in value or "#" in value or _CONTROL.search(value):
        raise ValueError("must be an absolute path starting with / (no query)")
    return value


HeaderValue = Annotated[str, AfterValidator(_check_value)]
HostPort = Annotated[str, AfterValidator(_check_host_port)]
Cidr = Annotated[str, AfterValidator(_check_cidr)]
Origin = Annotated[str, AfterValidator(_check_origin)]
CheckPath = Annotated[str, AfterValidator(_check_path_and_query)]


# -- upstreams --------------------------------------------------------------------------


class UpstreamTlsSpec(Spec):
    ca_file: str | None = Field(
        None, description="PEM CA bundle to verify upstream certificates (default: system store)"
    )
    cert_file: str | None = Field(None, description="client certificate (PEM) for mTLS")
    key_file: str | None = Field(None, description="private key (PEM) of cert_file")
    server_name: str | None = Field(
        None, description="SNI and the name the upstream certificate must carry "
        "(default: the target's host)",
    )

    @model_validator(mode="after")
    def _pair(self) -> UpstreamTlsSpec:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self


class PassiveHealthSpec(Spec):
    max_failures: int = Field(
        5, ge=0, le=1000,
        description="consecutive failures (connect errors, 502/503/504 from the target) that "
        "eject a target; 0 disables ejection",
    )
    ejection_time: Duration = Field(30.0, gt=0, description="how long an ejected target rests")


class HealthCheckSpec(Spec):
    path: CheckPath = Field("/", description="GET this path (and query) on every target")
    interval: Duration = Field(10.0, gt=0, description="time between checks")
    timeout: Duration = Field(2.0, gt=0, description="a check slower than this failed")
    healthy_threshold: int = Field(2, ge=1, le=100, description="successes to mark healthy")
    unhealthy_threshold: int = Field(3, ge=1, le=100, description="failures to mark unhealthy")


class RetrySpec(Spec):
    attempts: int = Field(
        2, ge=1, le=10,
        description="tries per request, the first included; a retry goes to a target not yet "
        "tried, only for idempotent methods, only after a connect failure",
    )
    budget: float = Field(
        0.2, ge=0, le=1, description="retries allowed as a share of the route's requests"
    )
    min_per_second: float = Field(
        3.0, ge=0, description="retries always allowed per second, whatever the budget"
    )


class UpstreamPoolSpec(Spec):
    targets: list[HttpUrl] = Field(min_length=1, description="target base URLs")
    balance: Literal["round_robin", "least_conn"] = Field(
        "round_robin", description="how a target is picked"
    )
    passive_health: PassiveHealthSpec = Field(
        default_factory=lambda: PassiveHealthSpec.model_validate({}),
        description="ejection after consecutive failures",
    )
    health_check: HealthCheckSpec | None = Field(None, description="active checks (off)")
    retries: RetrySpec = Field(
        default_factory=lambda: RetrySpec.model_validate({}), description="connect retries"
    )
    tls: UpstreamTlsSpec | None = Field(None, description="TLS settings for https targets")

    @model_validator(mode="after")
    def _consistent(self) -> UpstreamPoolSpec:
        if len(set(self.targets)) != len(self.targets):
            raise ValueError("a target is listed twice")
        if self.tls is not None and not any(t.startswith("https:") for t in self.targets):
            raise ValueError("tls is set but no target uses https")
        return self


# -- headers, CORS, WebSockets ----------------------------------------------------------


EditableName = Annotated[HeaderName, AfterValidator(_check_edit_name)]


class HeaderEditsSpec(Spec):
    remove: list[EditableName] = Field(default_factory=list, description="removed first")
    set: dict[EditableName, HeaderValue] = Field(
        default_factory=dict, description="then set, replacing any value"
    )
    add: dict[EditableName, HeaderValue] = Field(
        default_factory=dict, description="then added, keeping existing values"
    )


def _simple_methods() -> list[HttpMethod]:
    return ["GET", "HEAD", "POST"]


class CorsSpec(Spec):
    allow_origins: list[Origin] = Field(
        min_length=1, description='exact origins, or ["*"] for any origin'
    )
    allow_methods: list[HttpMethod] = Field(
        default_factory=_simple_methods, min_length=1,
        description="methods a preflight may ask for",
    )
    allow_headers: list[HeaderName] = Field(
        default_factory=lambda: ["Authorization", "Content-Type"],
        description="request headers a preflight may ask for",
    )
    expose_headers: list[HeaderName] = Field(
        default_factory=list, description="response headers scripts may read"
    )
    allow_credentials: bool = Field(False, description="Access-Control-Allow-Credentials: true")
    max_age: Duration = Field(600.0, ge=0, le=86400, description="preflight cache lifetime")

    @model_validator(mode="after")
    def _wildcard(self) -> CorsSpec:
        if "*" in self.allow_origins and len(self.allow_origins) > 1:
            raise ValueError('"*" must be the only origin when given')
        if "*" in self.allow_origins and self.allow_credentials:
            raise ValueError('allow_credentials cannot be used with allow_origins ["*"]')
        return self


class WebSocketSpec(Spec):
    enabled: bool = Field(True, description="relay WebSocket upgrades on this route")
    max_message_size: ByteSize = Field(
        4 * 1024 * 1024, ge=1024, description="larger messages close the session with 1009"
    )


# -- the public listener ------------------------------------------------------------------


class ServerTlsSpec(Spec):
    cert_file: str = Field(description="certificate chain (PEM), re-read on reload")
    key_file: str = Field(description="private key (PEM), re-read on reload")
    min_version: Literal["1.2", "1.3"] = Field("1.2", description="lowest TLS version")


class HstsSpec(Spec):
    max_age: Duration = Field(31536000.0, ge=0, description="Strict-Transport-Security max-age")
    include_subdomains: bool = Field(False, description="add includeSubDomains")
    preload: bool = Field(False, description="add preload")


class HttpRedirectSpec(Spec):
    listen: ListenAddress = Field(description="plain-HTTP listener that only redirects")
    https_port: int | None = Field(
        None, ge=1, le=65535,
        description="port in the redirect (default: the public listener's; 443 is omitted)",
    )
