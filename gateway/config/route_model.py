"""Document models of a ``routes`` entry (match, requirements, upstream URL or pool, proxy
settings) and of ``identity_headers``, the principal's headers sent upstream.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Discriminator, Field, Tag, model_validator

from .access_log_model import QueryLogMode
from .auth_model import ClaimConditionSpec, MethodRequirements, ScopeToken
from .proxy_model import (
    ByteSize,
    CorsSpec,
    HeaderEditsSpec,
    HostPort,
    UpstreamPoolSpec,
    WebSocketSpec,
)
from .spec_types import Duration, HeaderName, HttpMethod, HttpUrl, Spec

_LABEL = r"[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?"
_HOST = re.compile(rf"^(?:{_LABEL}\.)*{_LABEL}$")


def _check_host(value: str) -> str:
    lowered = value.lower()
    if not _HOST.match(lowered):
        raise ValueError("must be a host name without port, e.g. api.example.com")
    return lowered


HostName = Annotated[str, AfterValidator(_check_host)]
Scope = ScopeToken  # one scope-token type for route and per-method requirements


class IdentityHeadersSpec(Spec):
    subject: HeaderName | None = Field("X-Auth-Subject", description="header carrying sub")
    client_id: HeaderName | None = Field(
        "X-Auth-Client-Id", description="header carrying client_id"
    )
    scopes: HeaderName | None = Field("X-Auth-Scopes", description="space-separated scopes")
    issuer: HeaderName | None = Field(None, description="header carrying iss (off by default)")


class MatchSpec(Spec):
    path: str | None = Field(None, description="exact path")
    path_prefix: str | None = Field(None, description="path prefix, matched on segment boundaries")
    host: HostName | None = Field(None, description="Host header to match (no port)")
    methods: list[HttpMethod] | None = Field(None, min_length=1, description="allowed methods")

    @model_validator(mode="after")
    def _one_path(self) -> MatchSpec:
        if (self.path is None) == (self.path_prefix is None):
            raise ValueError("give exactly one of path or path_prefix")
        return self


class RequireSpec(Spec):
    scopes: list[Scope] = Field(default_factory=list, description="all of these scopes")
    any_of: list[Scope] = Field(default_factory=list, description="at least one of these scopes")
    claims: list[ClaimConditionSpec] = Field(
        default_factory=list, description="claim conditions; every one must hold"
    )
    methods: MethodRequirements | None = Field(
        None, description="extra requirements per method ('GET' or 'GET, HEAD' as keys); the "
        "route then accepts only methods listed here",
    )

    def is_empty(self) -> bool:
        return not (self.scopes or self.any_of or self.claims or self.methods)


#: One URL, or a pool: a tagged union, so an error names only the branch the value is in.
Upstream = Annotated[
    Annotated[HttpUrl, Tag("<url>")] | Annotated[UpstreamPoolSpec, Tag("<pool>")],
    Discriminator(lambda value: "<pool>" if isinstance(value, dict | Spec) else "<url>"),
]


class RouteSpec(Spec):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$", description="unique name")
    match: MatchSpec
    upstream: Upstream = Field(
        description="upstream base URL (its path is a prefix), or a pool {targets: [...], ...}"
    )
    auth: Literal["required", "none"] = Field(
        "required", description="none: no token, revocation or scope check"
    )
    require: RequireSpec = Field(
        default_factory=lambda: RequireSpec.model_validate({}), description="scope requirements"
    )
    issuers: list[str] | None = Field(
        None, min_length=1, description="accept tokens of these issuers only (default: all)"
    )
    timeout: Duration = Field(30.0, gt=0, description="upstream connect + response headers")
    allow_encoded_slash: bool = Field(False, description="pass %2F in paths through unchanged")
    enforce: bool = Field(
        True,
        description="false: shadow mode, every check runs and is logged and counted "
        "(result shadow_deny) but the request is forwarded anyway",
    )
    log_query: QueryLogMode | None = Field(
        None,
        description="this route's query strings in the access log (default: access_log.query)",
    )
    # -- proxy fidelity, resilience and limits (README "Proxying") --
    connect_timeout: Duration = Field(5.0, gt=0, description="TCP (+TLS) connect to a target")
    idle_timeout: Duration = Field(
        60.0, gt=0, description="a streamed body or WebSocket silent this long is closed"
    )
    max_connections: int = Field(
        100, ge=1, le=100_000, description="upstream connections of this route (own pool)"
    )
    max_concurrent_requests: int | None = Field(
        None, ge=1, description="requests in progress on this route; more → 503"
    )
    max_body_size: ByteSize | None = Field(
        None, ge=0, description="request body limit → 413 (default: server.max_body_size)"
    )
    strip_prefix: bool | str = Field(
        False, description="true: remove the matched path_prefix; or a leading path to remove"
    )
    rewrite_prefix: str | None = Field(
        None, description="replace the matched path_prefix (or path) with this one"
    )
    preserve_host: bool = Field(False, description="send the client's Host upstream")
    host_header: HostPort | None = Field(
        None, description="send this Host upstream (default: the target's host[:port])"
    )
    forward_token: bool = Field(True, description="false: Authorization is not forwarded")
    request_headers: HeaderEditsSpec = Field(
        default_factory=lambda: HeaderEditsSpec.model_validate({}),
        description="remove / set / add headers on the upstream request",
    )
    response_headers: HeaderEditsSpec = Field(
        default_factory=lambda: HeaderEditsSpec.model_validate({}),
        description="remove / set / add headers on the response",
    )
    cors: CorsSpec | None = Field(None, description="answer CORS preflights, add CORS headers")
    websocket: WebSocketSpec = Field(
        default_factory=lambda: WebSocketSpec.model_validate({}), description="WebSocket relay"
    )

    @model_validator(mode="after")
    def _require_needs_auth(self) -> RouteSpec:
        if self.auth == "none" and not self.require.is_empty():
            raise ValueError("a route with auth: none cannot require scopes")
        if self.auth == "none" and self.issuers:
            raise ValueError("a route with auth: none cannot restrict issuers")
        if self.strip_prefix is not False and self.rewrite_prefix is not None:
            raise ValueError("give strip_prefix or rewrite_prefix, not both")
        if self.preserve_host and self.host_header is not None:
            raise ValueError("give preserve_host or host_header, not both")
        return self
