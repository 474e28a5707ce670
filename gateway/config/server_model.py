"""Document models of the listeners: ``server`` (the public listener, its TLS and limits),
``admin`` (the admin listener and its token) and ``demo_upstream`` (development echo upstream).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from .proxy_model import ByteSize, Cidr, HstsSpec, HttpRedirectSpec, ServerTlsSpec
from .spec_types import Duration, HeaderName, ListenAddress, Spec


def _check_realm(value: str) -> str:
    if not 0 < len(value) <= 128 or any(not 0x20 <= ord(c) <= 0x7E for c in value):
        raise ValueError("must be 1 to 128 printable ASCII characters")
    return value


Realm = Annotated[str, AfterValidator(_check_realm)]


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


class DemoUpstreamSpec(Spec):
    listen: ListenAddress = Field(description="where `run` starts the built-in echo upstream")
