"""The gateway's exception tree.

Every condition the request path can meet is one class here. Each class carries the HTTP
status, a closed ``reason`` string (the same string in logs, the ``reason`` metric label and
tests) and a generic public description. Details for the log travel in ``detail`` and never
reach the client. ``responses.error_response`` is the only place that turns these into HTTP.

::

    GatewayError
    ├── RoutingError
    │   ├── BadTarget            400 bad_target          CONNECT, OPTIONS *, foreign absolute-form
    │   ├── BadPath              400 bad_path            dot segments above root, %2F, %2E, ;, \\ …
    │   ├── RouteNotFound        404 no_route
    │   └── MethodNotAllowed     405 method_not_allowed  (+ Allow)
    ├── AuthError
    │   ├── MissingToken         401 missing_token       challenge without error= (RFC 6750 §3.1)
    │   ├── InvalidRequest       400 invalid_request     duplicate/malformed Authorization
    │   ├── InvalidToken         401 invalid_token
    │   │   ├── TokenMalformed       malformed
    │   │   ├── TokenTooLarge        oversized
    │   │   ├── SignatureInvalid     bad_signature
    │   │   ├── AlgorithmNotAllowed  algorithm
    │   │   ├── KeyNotFound          unknown_key
    │   │   ├── IssuerUnknown        issuer
    │   │   ├── AudienceMismatch     audience
    │   │   ├── TokenExpired         expired
    │   │   ├── TokenNotYetValid     not_yet_valid
    │   │   ├── ClaimMissing         missing_claim
    │   │   ├── ClaimInvalid         invalid_claim
    │   │   ├── TokenTypeInvalid     token_type          typ is not the issuer's require_typ
    │   │   ├── TokenInactive        inactive            introspection: active is false
    │   │   └── TokenRevoked         revoked
    │   └── InsufficientScope    403 insufficient_scope  (+ scope="a b")
    │       └── ClaimConditionFailed 403 claim_mismatch  a route's claim condition fails
    ├── DependencyError
    │   ├── KeysUnavailable      503 keys_unavailable
    │   ├── IntrospectionUnavailable 503 introspection_unavailable
    │   └── RevocationUnavailable 503 revocation_unavailable
    ├── UpstreamError
    │   ├── UpstreamUnavailable  502 upstream_unavailable
    │   └── UpstreamTimeout      504 upstream_timeout
    ├── UnsupportedTransferCoding 501 unsupported_transfer_coding  (RFC 9112 §6.1)
    ├── RequestRejected      (limits and protocol checks on the request itself)
    │   ├── PayloadTooLarge      413 body_too_large      body over the route's max_body_size
    │   ├── ExpectationFailed    417 expectation_failed  Expect other than 100-continue
    │   ├── ClientBodyTimeout    408 client_timeout      request body stalled (idle_timeout)
    │   └── CorsRejected         403 cors_rejected       preflight from a disallowed origin …
    └── RouteOverloaded      503 route_overloaded        max_concurrent_requests reached

    ConfigError   never reaches HTTP: ``check`` exits 1, a rejected reload keeps the old config
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


class GatewayError(Exception):
    """Base of every error that maps to an HTTP answer."""

    status: int = 500
    reason: str = "internal_error"
    error: str = "server_error"
    description: str = "internal error"

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or self.description)
        self.detail = detail or self.description


# -- routing -----------------------------------------------------------------------------


class RoutingError(GatewayError):
    pass


class BadTarget(RoutingError):
    status = 400
    reason = "bad_target"
    error = "invalid_request"
    description = "request target not accepted"


class BadPath(RoutingError):
    status = 400
    reason = "bad_path"
    error = "invalid_request"
    description = "request path not accepted"


class RouteNotFound(RoutingError):
    status = 404
    reason = "no_route"
    error = "not_found"
    description = "no route matches the request"


class MethodNotAllowed(RoutingError):
    status = 405
    reason = "method_not_allowed"
    error = "method_not_allowed"
    description = "method not allowed on this route"

    def __init__(self, allowed: Iterable[str], detail: str = "") -> None:
        super().__init__(detail)
        self.allowed: tuple[str, ...] = tuple(sorted(set(allowed)))


# -- authentication and authorization ---------------------------------------------------


class AuthError(GatewayError):
    pass


class MissingToken(AuthError):
    status = 401
    reason = "missing_token"
    error = "invalid_token"  # body only; the challenge carries no error= (RFC 6750 §3.1)
    description = "bearer token required"


class InvalidRequest(AuthError):
    status = 400
    reason = "invalid_request"
    error = "invalid_request"
    description = "malformed authorization header"


class InvalidToken(AuthError):
    status = 401
    reason = "invalid_token"
    error = "invalid_token"
    description = "invalid token"


class TokenMalformed(InvalidToken):
    reason = "malformed"
    description = "token is malformed"


class TokenTooLarge(InvalidToken):
    reason = "oversized"
    description = "token is too large"


class SignatureInvalid(InvalidToken):
    reason = "bad_signature"
    description = "token signature is invalid"


class AlgorithmNotAllowed(InvalidToken):
    reason = "algorithm"
    description = "token algorithm not allowed"


class KeyNotFound(InvalidToken):
    reason = "unknown_key"
    description = "token signing key is unknown"
    kid: str | None = None  # the token's kid, when a refetch of the issuer's keys might help


class IssuerUnknown(InvalidToken):
    reason = "issuer"
    description = "token issuer not accepted"


class AudienceMismatch(InvalidToken):
    reason = "audience"
    description = "token audience not accepted"


class TokenExpired(InvalidToken):
    reason = "expired"
    description = "token expired"


class TokenNotYetValid(InvalidToken):
    reason = "not_yet_valid"
    description = "token not yet valid"


class ClaimMissing(InvalidToken):
    reason = "missing_claim"
    description = "token lacks a required claim"


class ClaimInvalid(InvalidToken):
    reason = "invalid_claim"
    description = "token has an invalid claim"


class TokenTypeInvalid(InvalidToken):
    reason = "token_type"
    description = "token type not accepted"


class TokenInactive(InvalidToken):
    reason = "inactive"
    description = "token is not active"


class TokenRevoked(InvalidToken):
    reason = "revoked"
    description = "token revoked"


class InsufficientScope(AuthError):
    status = 403
    reason = "insufficient_scope"
    error = "insufficient_scope"
    description = "token lacks the required scope"

    def __init__(self, required: Sequence[str], detail: str = "") -> None:
        super().__init__(detail)
        self.required: tuple[str, ...] = tuple(required)


class ClaimConditionFailed(InsufficientScope):
    """A route's claim condition does not hold: 403 like a missing scope, without scope=."""

    reason = "claim_mismatch"
    description = "token claims do not meet the route's requirements"

    def __init__(self, detail: str = "") -> None:
        super().__init__((), detail)


# -- dependencies and upstreams --------------------------------------------------------


class DependencyError(GatewayError):
    status = 503
    error = "temporarily_unavailable"


class KeysUnavailable(DependencyError):
    reason = "keys_unavailable"
    description = "signing keys are not available"


class IntrospectionUnavailable(DependencyError):
    reason = "introspection_unavailable"
    description = "token introspection is not available"


class RevocationUnavailable(DependencyError):
    reason = "revocation_unavailable"
    description = "revocation status is not available"


class UpstreamError(GatewayError):
    status = 502
    error = "bad_gateway"


class UpstreamUnavailable(UpstreamError):
    reason = "upstream_unavailable"
    description = "upstream is unavailable"


class UpstreamTimeout(UpstreamError):
    status = 504
    reason = "upstream_timeout"
    error = "gateway_timeout"
    description = "upstream timed out"


class UnsupportedTransferCoding(GatewayError):
    """A request transfer coding other than chunked: it cannot be relayed faithfully."""

    status = 501
    reason = "unsupported_transfer_coding"
    error = "not_implemented"
    description = "transfer coding not supported"


class RequestRejected(GatewayError):
    error = "invalid_request"


class PayloadTooLarge(RequestRejected):
    status = 413
    reason = "body_too_large"
    description = "request body too large"


class ExpectationFailed(RequestRejected):
    status = 417
    reason = "expectation_failed"
    error = "expectation_failed"
    description = "only the 100-continue expectation is supported"


class ClientBodyTimeout(RequestRejected):
    status = 408
    reason = "client_timeout"
    error = "request_timeout"
    description = "request body not received in time"


class CorsRejected(RequestRejected):
    status = 403
    reason = "cors_rejected"
    error = "access_denied"
    description = "cross-origin request not allowed"


class RouteOverloaded(GatewayError):
    status = 503
    reason = "route_overloaded"
    error = "temporarily_unavailable"
    description = "too many requests in progress on this route"


# -- configuration ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One located configuration error: ``file:line: field.path: message``."""

    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(Exception):
    """A configuration that cannot be used. Carries every problem found, never a secret."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems: tuple[ConfigProblem, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


#: Every reason string the gateway can report, for docs, tests and metric label checks.
REASONS: frozenset[str] = frozenset(
    cls.reason
    for cls in (
        BadTarget, BadPath, RouteNotFound, MethodNotAllowed, MissingToken, InvalidRequest,
        TokenMalformed, TokenTooLarge, SignatureInvalid, AlgorithmNotAllowed, KeyNotFound,
        IssuerUnknown, AudienceMismatch, TokenExpired, TokenNotYetValid, ClaimMissing,
        ClaimInvalid, TokenRevoked, InsufficientScope, KeysUnavailable, RevocationUnavailable,
        TokenTypeInvalid, TokenInactive, ClaimConditionFailed, IntrospectionUnavailable,
        UpstreamUnavailable, UpstreamTimeout, UnsupportedTransferCoding, GatewayError,
        PayloadTooLarge, ExpectationFailed, ClientBodyTimeout, CorsRejected, RouteOverloaded,
    )
)
