"""Document models for key sources, introspection and claim rules (see ``model.py``).

Kept apart from ``model.py`` so the issuer and route models stay readable; the same rules
apply: frozen, unknown keys refused, a description on every field, durations with units.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, get_args

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from ..auth.claims import parse_path
from .spec_types import Duration, HttpMethod, Spec, parse_url

_CLAIM_NAME = re.compile(r"^[A-Za-z0-9_:.\-/]{1,128}$")
_METHODS: tuple[str, ...] = get_args(HttpMethod)


def _check_scalar(value: object) -> object:
    if isinstance(value, str | bool | int | float) and value == value:  # not NaN
        return value
    raise ValueError("must be a string, number or boolean")


ClaimScalar = Annotated[str | bool | int | float, BeforeValidator(_check_scalar)]


def check_scope_token(value: str) -> str:
    # RFC 6749 §3.3 scope-token: %x21 / %x23-5B / %x5D-7E
    if not value or any(c == '"' or c == "\\" or not 0x21 <= ord(c) <= 0x7E for c in value):
        raise ValueError("not a valid scope token (RFC 6749 §3.3)")
    return value


def _check_idp_url(value: str) -> str:
    url = parse_url(value, ("http", "https"), "must be an absolute https:// URL")
    if url.fragment or url.user or url.password:
        raise ValueError("must not have a fragment or credentials")
    return value


def _check_claim_path(value: str | list[str]) -> str | list[str]:
    parse_path(value)
    return value


def _check_claim_name(value: str) -> str:
    if not _CLAIM_NAME.match(value):
        raise ValueError("must be a claim name such as scope, scp or scopes")
    return value


def _check_typ(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9.+\-/]{1,64}", value):
        raise ValueError("must be a media type such as at+jwt")
    return value


TokenType = Annotated[str, AfterValidator(_check_typ)]
IdpUrl = Annotated[str, AfterValidator(_check_idp_url)]
ScopeToken = Annotated[str, AfterValidator(check_scope_token)]
ClaimPath = Annotated[str | list[str], AfterValidator(_check_claim_path)]
ClaimName = Annotated[str, AfterValidator(_check_claim_name)]


class JwksSpec(Spec):
    """How a remote key set is fetched and kept (defaults suit most providers)."""

    refresh_interval: Duration = Field(
        600.0, ge=1, description="keys stay fresh this long when the JWKS response has no "
        "Cache-Control max-age; refetched in the background at 80% of it",
    )
    min_refresh_interval: Duration = Field(
        60.0, ge=1, description="lower bound for a Cache-Control max-age (and for no-cache)"
    )
    max_refresh_interval: Duration = Field(
        86_400.0, ge=1, description="upper bound for a Cache-Control max-age"
    )
    cooldown: Duration = Field(
        10.0, ge=0, description="at most one refetch per cooldown for unknown kids"
    )
    max_stale: Duration = Field(
        43_200.0, ge=0, description="how long past freshness the last good keys are used "
        "while refetches fail; then the issuer's requests get 503",
    )
    timeout: Duration = Field(5.0, gt=0, le=60, description="total time for one fetch")
    connect_timeout: Duration = Field(2.0, gt=0, le=60, description="TCP/TLS connect time")
    max_bytes: int = Field(
        262_144, ge=1024, le=16_777_216, description="largest JWKS or metadata document"
    )

    @model_validator(mode="after")
    def _bounds(self) -> JwksSpec:
        if self.min_refresh_interval > self.max_refresh_interval:
            raise ValueError("min_refresh_interval is larger than max_refresh_interval")
        return self


class IntrospectionSpec(Spec):
    """RFC 7662 token introspection for opaque tokens."""

    endpoint: IdpUrl = Field(description="the introspection endpoint URL (https)")
    client_id: str = Field(min_length=1, description="the gateway's client id at the provider")
    secret_file: str | None = Field(None, description="file holding the client secret")
    secret_env: str | None = Field(None, description="environment variable with the secret")
    auth_method: Literal["client_secret_basic", "client_secret_post"] = Field(
        "client_secret_basic", description="how the client authenticates (RFC 6749 §2.3.1)"
    )
    cache_ttl: Duration = Field(
        300.0, ge=0, le=86_400, description="longest time an active answer is cached "
        "(never past the token's exp)",
    )
    inactive_ttl: Duration = Field(
        10.0, ge=0, le=3600, description="how long an inactive answer is cached"
    )
    timeout: Duration = Field(5.0, gt=0, le=60, description="total time for one call")
    connect_timeout: Duration = Field(2.0, gt=0, le=60, description="TCP/TLS connect time")
    max_bytes: int = Field(65_536, ge=1024, le=1_048_576, description="largest answer")

    @model_validator(mode="after")
    def _one_secret(self) -> IntrospectionSpec:
        if bool(self.secret_file) == bool(self.secret_env):
            raise ValueError("give exactly one of secret_file or secret_env")
        return self


class ClaimConditionSpec(Spec):
    """One condition on a claim: exactly one of equals, one_of, contains, present."""

    claim: ClaimPath = Field(
        description="claim path: dotted (realm_access.roles) or a list of member names"
    )
    equals: ClaimScalar | None = Field(None, description="the claim equals this value")
    one_of: list[ClaimScalar] | None = Field(
        None, min_length=1, description="the claim equals one of these"
    )
    contains: ClaimScalar | list[ClaimScalar] | None = Field(
        None, description="the claim is a list holding this value (or all of these values)"
    )
    present: bool | None = Field(None, description="true: the claim exists; false: it does not")

    @model_validator(mode="after")
    def _one_operator(self) -> ClaimConditionSpec:
        given = [n for n in ("equals", "one_of", "contains", "present")
                 if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of equals, one_of, contains, present")
        if isinstance(self.contains, list) and not self.contains:
            raise ValueError("contains needs at least one value")
        return self


class MethodRequireSpec(Spec):
    """Requirements for one method (or several: "GET, HEAD"), on top of the route's own."""

    scopes: list[ScopeToken] = Field(default_factory=list, description="all of these scopes")
    any_of: list[ScopeToken] = Field(
        default_factory=list, description="at least one of these scopes"
    )
    claims: list[ClaimConditionSpec] = Field(
        default_factory=list, description="every condition must hold"
    )


def split_methods(key: str) -> list[str]:
    """``"GET, HEAD"`` → ``["GET", "HEAD"]``; ValueError for anything but known methods."""
    names = [m for m in re.split(r"[\s,]+", key.strip()) if m]
    bad = [m for m in names if m not in _METHODS]
    if not names or bad:
        raise ValueError(
            f"{key!r}: method keys must be among {', '.join(_METHODS)} (several: 'GET, HEAD')"
        )
    return names


def check_method_keys(value: dict[str, MethodRequireSpec]) -> dict[str, MethodRequireSpec]:
    seen: set[str] = set()
    for key in value:
        for method in split_methods(key):
            if method in seen:
                raise ValueError(f"method {method} is given twice")
            seen.add(method)
    if not value:
        raise ValueError("give at least one method")
    return value


MethodRequirements = Annotated[
    dict[str, MethodRequireSpec], AfterValidator(check_method_keys)
]
