"""The configuration document: pydantic models that mirror the YAML one to one.

Every model is frozen and forbids unknown keys, so a typo is an error at load time and never a
silently ignored setting. Field names are the YAML keys. These ``*Spec`` objects are only the
validated document; ``config.compile`` turns them into the immutable runtime objects.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from .durations import parse_duration

Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    Field(description="a duration: 250ms, 30s, 5m, 24h; a bare number means seconds"),
]

ASYMMETRIC_ALGORITHMS = (
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
)
HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")


def _refuse_none_algorithm(value: object) -> object:
    if isinstance(value, str) and value.lower() == "none":
        raise ValueError("'none' is never allowed: tokens must be signed")
    return value


Algorithm = Annotated[
    Literal[
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
        "EdDSA", "HS256", "HS384", "HS512",
    ],
    BeforeValidator(_refuse_none_algorithm),
]
_DEFAULT_ALGORITHMS: tuple[Algorithm, ...] = ("RS256",)
HttpMethod = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]

_LISTEN = re.compile(
    r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9.\-]*)):(?P<port>\d{1,5})$"
)
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
#: An upstream URL's host as yarl gives it (lower-cased): a name (``_`` allowed, as in
#: container names), an IPv4 address or an IPv6 literal without its brackets.
_UPSTREAM_HOST = re.compile(r"^(?:[a-z0-9_](?:[a-z0-9_\-.]*[a-z0-9_])?|[0-9a-f:.]*:[0-9a-f:.]*)$")
_LABEL = r"[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?"
_HOST = re.compile(rf"^(?:{_LABEL}\.)*{_LABEL}$")


def _check_listen(value: str) -> str:
    m = _LISTEN.match(value)
    if m is None or not 0 <= int(m["port"]) < 65536:
        raise ValueError(
            "must be HOST:PORT, e.g. 0.0.0.0:8080 or [::1]:8080 (port 0: any free port)"
        )
    return value


def _check_header_name(value: str) -> str:
    if not _HEADER_NAME.match(value):
        raise ValueError("not a valid HTTP header name")
    return value


def _check_http_url(value: str) -> str:
    from yarl import URL

    try:
        url = URL(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a valid URL ({exc})") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError("must be an absolute http:// or https:// URL")
    if not _UPSTREAM_HOST.match(url.raw_host or ""):
        raise ValueError("the host is not a valid host name or IP address")
    if url.query_string or url.fragment:
        raise ValueError("must not have a query or fragment")
    if url.user or url.password:
        raise ValueError("must not carry credentials")
    return value


def _check_host(value: str) -> str:
    lowered = value.lower()
    if not _HOST.match(lowered):
        raise ValueError("must be a host name without port, e.g. api.example.com")
    return lowered


def _check_scope_token(value: str) -> str:
    # RFC 6749 §3.3 scope-token: %x21 / %x23-5B / %x5D-7E
    if not value or any(c == '"' or c == "\\" or not 0x21 <= ord(c) <= 0x7E for c in value):
        raise ValueError("not a valid scope token (RFC 6749 §3.3)")
    return value


def _check_realm(value: str) -> str:
    if not 0 < len(value) <= 128 or any(not 0x20 <= ord(c) <= 0x7E for c in value):
        raise ValueError("must be 1 to 128 printable ASCII characters")
    return value


Realm = Annotated[str, AfterValidator(_check_realm)]
ListenAddress = Annotated[str, AfterValidator(_check_listen)]
HeaderName = Annotated[str, AfterValidator(_check_header_name)]
HttpUrl = Annotated[str, AfterValidator(_check_http_url)]
HostName = Annotated[str, AfterValidator(_check_host)]
Scope = Annotated[str, AfterValidator(_check_scope_token)]


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSpec(Spec):
    listen: ListenAddress = Field("0.0.0.0:8080", description="public listener HOST:PORT")
    realm: Realm = Field("gateway", description="realm in WWW-Authenticate challenges")
    max_token_bytes: int = Field(
        8192, ge=256, le=1_048_576, description="bearer tokens longer than this are refused"
    )
    request_id_header: HeaderName = Field("X-Request-ID", description="request id header")


class AdminSpec(Spec):
    listen: ListenAddress = Field("127.0.0.1:9090", description="admin listener HOST:PORT")
    token_file: str | None = Field(None, description="file holding the admin API bearer token")
    token_env: str | None = Field(None, description="environment variable holding the token")
    generate_token: bool = Field(
        False,
        description="development only: `run` writes a random token to token_file if missing",
    )

    @model_validator(mode="after")
    def _one_token_source(self) -> AdminSpec:
        if self.token_file and self.token_env:
            raise ValueError("give token_file or token_env, not both")
        if self.generate_token and not self.token_file:
            raise ValueError("generate_token needs token_file")
        return self


class IssuerSpec(Spec):
    issuer: str = Field(description="exact value of the tokens' iss claim")
    audiences: list[str] = Field(
        min_length=1, description="the token's aud must contain one of these"
    )
    keys: list[str] = Field(
        default_factory=list, description="PEM, JWK or JWKS files with the verification keys"
    )
    secret_file: str | None = Field(None, description="HMAC secret file (HS* algorithms only)")
    secret_env: str | None = Field(None, description="HMAC secret env variable (HS* only)")
    algorithms: list[Algorithm] = Field(
        default_factory=lambda: list(_DEFAULT_ALGORITHMS), min_length=1,
        description="algorithm allowlist",
    )
    leeway: Duration = Field(30.0, ge=0, le=600, description="clock skew allowed on exp/nbf/iat")
    dev_signing_key: str | None = Field(
        None,
        description="development only: private key file created on first run if missing; "
        "its public half verifies tokens and `oauth2-gateway token` signs with it",
    )

    @field_validator("algorithms")
    @classmethod
    def _no_mixed_families(cls, algorithms: list[str]) -> list[str]:
        hmac = [a for a in algorithms if a in HMAC_ALGORITHMS]
        asym = [a for a in algorithms if a not in HMAC_ALGORITHMS]
        if hmac and asym:
            raise ValueError(
                f"HMAC algorithms {hmac} cannot be mixed with asymmetric algorithms {asym} "
                "for one issuer"
            )
        return algorithms

    @model_validator(mode="after")
    def _keys_match_algorithms(self) -> IssuerSpec:
        hmac = [a for a in self.algorithms if a in HMAC_ALGORITHMS]
        asym = [a for a in self.algorithms if a not in HMAC_ALGORITHMS]
        has_secret = bool(self.secret_file or self.secret_env)
        if self.secret_file and self.secret_env:
            raise ValueError("give secret_file or secret_env, not both")
        if hmac and not has_secret:
            raise ValueError("HS* algorithms need secret_file or secret_env")
        if has_secret and not hmac:
            raise ValueError("secret_file/secret_env are only for HS* algorithms")
        if asym and not self.keys and not self.dev_signing_key:
            raise ValueError("at least one key file is required under 'keys'")
        if self.dev_signing_key and "ES256" not in self.algorithms:
            raise ValueError("dev_signing_key signs with ES256: add ES256 to algorithms")
        if hmac and self.keys:
            raise ValueError("'keys' are for asymmetric algorithms; HS* use secret_file/secret_env")
        return self


_REDIS_NODE = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.\-]+):\d{1,5}$")


def _check_redis_node(value: str) -> str:
    if not _REDIS_NODE.match(value) or not 0 < int(value.rpartition(":")[2]) < 65536:
        raise ValueError("must be HOST:PORT, e.g. 10.0.0.5:26379 or [::1]:7000")
    return value


def _check_redis_url(value: str) -> str:
    from yarl import URL

    try:
        url = URL(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a valid URL ({exc})") from None
    if url.scheme not in ("redis", "rediss") or not url.host:
        raise ValueError("must be redis://[user:password@]host[:port][/db] or rediss://… (TLS)")
    db = url.path.strip("/")
    if db and not db.isdigit():
        raise ValueError("the path must be a database number, e.g. /0")
    return value


RedisNode = Annotated[str, AfterValidator(_check_redis_node)]
RedisUrl = Annotated[str, AfterValidator(_check_redis_url)]


class SentinelSpec(Spec):
    master: str = Field(min_length=1, description="the master name the sentinels monitor")
    nodes: list[RedisNode] = Field(min_length=1, description="sentinel HOST:PORT addresses")
    password: str | None = Field(
        None, description="password of the sentinels themselves (use ${ENV})"
    )


class ClusterSpec(Spec):
    nodes: list[RedisNode] = Field(
        min_length=1, description="some cluster nodes HOST:PORT; the rest are discovered"
    )


class RevocationSpec(Spec):
    store: Literal["memory", "redis"] = Field("memory", description="revocation store backend")
    on_unavailable: Literal["deny", "allow"] = Field(
        "deny", description="when the store fails: deny (503) or allow the request"
    )
    max_token_lifetime: Duration = Field(
        86400.0, gt=0, description="how long a jti entry without exp is kept"
    )
    redis_url: RedisUrl | None = Field(
        None, description="store: redis, one node: redis://[user:password@]host:port/db "
        "or rediss:// (TLS)",
    )
    sentinel: SentinelSpec | None = Field(None, description="store: redis through Sentinel")
    cluster: ClusterSpec | None = Field(None, description="store: redis on a Redis Cluster")
    username: str | None = Field(None, description="ACL user for sentinel/cluster data nodes")
    password: str | None = Field(
        None, description="password for sentinel/cluster data nodes (use ${ENV})"
    )
    tls: bool = Field(False, description="TLS to sentinel/cluster data nodes")
    key_prefix: str = Field(
        "gateway:revocation", pattern=r"^[A-Za-z0-9_:.\-]{1,64}$",
        description="Redis keys are {PREFIX}:entries, :expiry, :version, :epoch; "
        "channel {PREFIX}:events",
    )
    connect_timeout: Duration = Field(0.25, gt=0, le=30, description="Redis connect timeout")
    command_timeout: Duration = Field(0.25, gt=0, le=30, description="Redis command timeout")
    heartbeat_interval: Duration = Field(
        1.0, gt=0, le=60, description="subscription heartbeat and version check period"
    )
    max_staleness: Duration = Field(
        3.0, gt=0, le=600,
        description="the in-memory list counts as current this long after the last proof "
        "that the subscription is alive; then on_unavailable applies",
    )

    @model_validator(mode="after")
    def _one_redis_target(self) -> RevocationSpec:
        given = [k for k in ("redis_url", "sentinel", "cluster") if getattr(self, k) is not None]
        if self.store == "memory":
            if given:
                raise ValueError(f"{given[0]} needs store: redis")
            return self
        if len(given) != 1:
            raise ValueError("store: redis needs exactly one of redis_url, sentinel, cluster")
        if given[0] == "redis_url" and (self.username or self.password or self.tls):
            raise ValueError(
                "with redis_url, put the user and password in the URL and use rediss:// for TLS"
            )
        if self.max_staleness < self.heartbeat_interval:
            raise ValueError("max_staleness must be at least heartbeat_interval")
        return self


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


class RouteSpec(Spec):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$", description="unique name")
    match: MatchSpec
    upstream: HttpUrl = Field(description="upstream base URL; its path is a prefix")
    auth: Literal["required", "none"] = Field(
        "required", description="none: no token, revocation or scope check"
    )
    require: RequireSpec = Field(default_factory=RequireSpec, description="scope requirements")
    timeout: Duration = Field(30.0, gt=0, description="upstream connect + response headers")
    allow_encoded_slash: bool = Field(False, description="pass %2F in paths through unchanged")

    @model_validator(mode="after")
    def _require_needs_auth(self) -> RouteSpec:
        if self.auth == "none" and (self.require.scopes or self.require.any_of):
            raise ValueError("a route with auth: none cannot require scopes")
        return self


class DemoUpstreamSpec(Spec):
    listen: ListenAddress = Field(description="where `run` starts the built-in echo upstream")


class GatewaySpec(Spec):
    """The whole configuration file."""

    server: ServerSpec = Field(default_factory=lambda: ServerSpec.model_validate({}))
    admin: AdminSpec = Field(default_factory=lambda: AdminSpec.model_validate({}))
    issuers: list[IssuerSpec] = Field(default_factory=list)
    revocation: RevocationSpec | None = Field(None, description="absent: no revocation check")
    identity_headers: IdentityHeadersSpec = Field(
        default_factory=lambda: IdentityHeadersSpec.model_validate({})
    )
    routes: list[RouteSpec] = Field(min_length=1)
    demo_upstream: DemoUpstreamSpec | None = Field(
        None, description="development only: an echo upstream started by `run`"
    )
