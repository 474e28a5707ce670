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
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from .auth_model import (
    ClaimConditionSpec,
    ClaimName,
    ClaimPath,
    IdpUrl,
    IntrospectionSpec,
    JwksSpec,
    MethodRequirements,
    TokenType,
    check_scope_token,
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


def _check_realm(value: str) -> str:
    if not 0 < len(value) <= 128 or any(not 0x20 <= ord(c) <= 0x7E for c in value):
        raise ValueError("must be 1 to 128 printable ASCII characters")
    return value


Realm = Annotated[str, AfterValidator(_check_realm)]
ListenAddress = Annotated[str, AfterValidator(_check_listen)]
HeaderName = Annotated[str, AfterValidator(_check_header_name)]
HttpUrl = Annotated[str, AfterValidator(_check_http_url)]
HostName = Annotated[str, AfterValidator(_check_host)]
Scope = Annotated[str, AfterValidator(check_scope_token)]


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# The proxy models build on the types above; imported here to keep this module short.
from .proxy_model import (  # noqa: E402
    ByteSize,
    Cidr,
    CorsSpec,
    HeaderEditsSpec,
    HostPort,
    HstsSpec,
    HttpRedirectSpec,
    ServerTlsSpec,
    UpstreamPoolSpec,
    WebSocketSpec,
)


class ServerSpec(Spec):
    listen: ListenAddress = Field("0.0.0.0:8080", description="public listener HOST:PORT")
    realm: Realm = Field("gateway", description="realm in WWW-Authenticate challenges")
    max_token_bytes: int = Field(
        8192, ge=256, le=1_048_576, description="bearer tokens longer than this are refused"
    )
    request_id_header: HeaderName = Field("X-Request-ID", description="request id header")
    # -- proxy fidelity, HTTPS and limits (README "Proxying", "HTTPS", "Limits") --
    tls: ServerTlsSpec | None = Field(None, description="serve HTTPS on the public listener")
    hsts: HstsSpec | None = Field(None, description="Strict-Transport-Security (needs tls)")
    http_redirect: HttpRedirectSpec | None = Field(
        None, description="plain-HTTP listener redirecting to HTTPS (needs tls)"
    )
    trusted_proxies: list[Cidr] = Field(
        default_factory=list,
        description="peers whose Forwarded / X-Forwarded-* headers are kept and extended",
    )
    max_body_size: ByteSize = Field(
        100 * 1024 * 1024, ge=0, description="default request body limit (0: none) → 413"
    )
    header_timeout: Duration = Field(
        10.0, gt=0, description="a request head must arrive completely within this time"
    )
    keepalive_timeout: Duration = Field(
        75.0, gt=0, description="idle keep-alive client connections are closed after this"
    )
    shutdown_timeout: Duration = Field(
        30.0, ge=0, description="SIGTERM: how long in-flight requests may still run"
    )

    @model_validator(mode="after")
    def _tls_features(self) -> ServerSpec:
        if self.tls is None and self.hsts is not None:
            raise ValueError("hsts needs tls")
        if self.tls is None and self.http_redirect is not None:
            raise ValueError("http_redirect needs tls")
        return self


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
    jwks_uri: IdpUrl | None = Field(None, description="fetch the keys from this JWKS URL")
    discovery: bool = Field(
        False, description="find jwks_uri in the issuer's OpenID Connect / RFC 8414 metadata"
    )
    allow_insecure_http: bool = Field(
        False, description="development only: allow http:// for JWKS, discovery, introspection"
    )
    jwks: JwksSpec = Field(
        default_factory=lambda: JwksSpec.model_validate({}),
        description="refresh, cooldown, staleness and fetch limits of jwks_uri / discovery",
    )
    require_typ: TokenType | None = Field(
        None, description="required JWT typ header, e.g. at+jwt (RFC 9068; application/ "
        "prefix and case ignored)",
    )
    required_claims: list[ClaimPath] = Field(
        default_factory=list, description="claims every token must carry (paths allowed)"
    )
    scope_claim: ClaimName | None = Field(
        None, description="claim holding the scopes (string or list): scope, scp, scopes …; "
        "default: scope, else scp",
    )
    introspection: IntrospectionSpec | None = Field(
        None, description="RFC 7662 introspection for opaque tokens"
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
        remote = self.jwks_uri is not None or self.discovery
        sources = [n for n, v in (("keys", self.keys), ("jwks_uri", self.jwks_uri),
                                  ("discovery", self.discovery)) if v]
        if len(sources) > 1:
            raise ValueError(f"give one key source, not {' and '.join(sources)}")
        if remote and (hmac or self.dev_signing_key):
            raise ValueError("jwks_uri/discovery serve asymmetric public keys only")
        if asym and not sources and not self.dev_signing_key and not self.introspection:
            raise ValueError(
                "at least one key file is required under 'keys' (or jwks_uri, discovery, "
                "introspection)"
            )
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


AccessLogField = Literal[
    "request_id", "route", "method", "path", "status", "duration_ms", "upstream_ms",
    "bytes_in", "bytes_out", "client", "host", "user_agent", "subject", "client_id", "issuer",
    "jti", "scopes", "upstream", "decision", "reason", "detail",
]
#: The fields of an access-log line unless ``access_log.fields`` says otherwise.
DEFAULT_ACCESS_LOG_FIELDS: tuple[AccessLogField, ...] = (
    "request_id", "route", "method", "path", "status", "duration_ms", "upstream_ms",
    "bytes_in", "bytes_out", "client", "subject", "client_id", "issuer", "jti", "decision",
    "reason", "detail",
)
QueryLogMode = Literal["drop", "redact", "keep"]


class AccessLogSpec(Spec):
    enabled: bool = Field(
        True, description="one JSON line per request on the gateway.access logger"
    )
    fields: list[AccessLogField] = Field(
        default_factory=lambda: list(DEFAULT_ACCESS_LOG_FIELDS), min_length=1,
        description="the fields of each line (the query string is governed by `query`)",
    )
    sample: float = Field(
        1.0, ge=0.0, le=1.0,
        description="fraction of successful, allowed requests logged; refusals, shadow "
        "denials and errors (status >= 400) are always logged",
    )
    query: QueryLogMode = Field(
        "drop",
        description="query string in the line: drop (absent), redact (names only) or keep "
        "(values of token-like parameters are always redacted); routes may override it",
    )


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
    include: list[str] = Field(
        default_factory=list,
        description="more files (glob patterns allowed, relative to this file) holding "
        "`routes:` lists, appended to this file's routes",
    )
    access_log: AccessLogSpec = Field(
        default_factory=lambda: AccessLogSpec.model_validate({}),
        description="the JSON access log: fields, sampling, query strings",
    )
    demo_upstream: DemoUpstreamSpec | None = Field(
        None, description="development only: an echo upstream started by `run`"
    )
