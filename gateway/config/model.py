"""The configuration document: pydantic models that mirror the YAML one to one.

Every model is frozen and forbids unknown keys, so a typo is an error at load time and never a
silently ignored setting. Field names are the YAML keys. These ``*Spec`` objects are only the
validated document; ``config.compile`` turns them into the immutable runtime objects.

This module defines ``GatewaySpec``, the whole file, and re-exports the section models, which
live by section: ``spec_types`` (the ``Spec`` base and shared scalar types), ``server_model``
(server, admin, demo_upstream), ``issuer_model``, ``revocation_model``, ``access_log_model``,
``route_model`` (routes, identity_headers), and below them ``proxy_model`` and ``auth_model``.
"""

from __future__ import annotations

from pydantic import Field

from .access_log_model import (
    DEFAULT_ACCESS_LOG_FIELDS,
    AccessLogField,
    AccessLogSpec,
    QueryLogMode,
)
from .issuer_model import ASYMMETRIC_ALGORITHMS, HMAC_ALGORITHMS, Algorithm, IssuerSpec
from .revocation_model import ClusterSpec, RedisNode, RedisUrl, RevocationSpec, SentinelSpec
from .route_model import (
    HostName,
    IdentityHeadersSpec,
    MatchSpec,
    RequireSpec,
    RouteSpec,
    Scope,
    Upstream,
)
from .server_model import AdminSpec, DemoUpstreamSpec, Realm, ServerSpec
from .spec_types import Duration, HeaderName, HttpMethod, HttpUrl, ListenAddress, Spec

__all__ = [
    "ASYMMETRIC_ALGORITHMS", "DEFAULT_ACCESS_LOG_FIELDS", "HMAC_ALGORITHMS", "AccessLogField",
    "AccessLogSpec", "AdminSpec", "Algorithm", "ClusterSpec", "DemoUpstreamSpec", "Duration",
    "GatewaySpec", "HeaderName", "HostName", "HttpMethod", "HttpUrl", "IdentityHeadersSpec",
    "IssuerSpec", "ListenAddress", "MatchSpec", "QueryLogMode", "Realm", "RedisNode",
    "RedisUrl", "RequireSpec", "RevocationSpec", "RouteSpec", "Scope", "SentinelSpec",
    "ServerSpec", "Spec", "Upstream",
]


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
