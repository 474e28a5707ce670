"""Document model of one ``issuers`` entry: audiences, algorithms, key sources (key files,
HMAC secret, JWKS URL, discovery, dev key), token rules and introspection.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from .auth_model import ClaimName, ClaimPath, IdpUrl, IntrospectionSpec, JwksSpec, TokenType
from .spec_types import Duration, Spec

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
