"""The only place where a GatewayError becomes an HTTP response (RFC 6750 §3)."""

from __future__ import annotations

import json

from aiohttp import hdrs, web

from .errors import (
    AuthError,
    DependencyError,
    GatewayError,
    InsufficientScope,
    MethodNotAllowed,
    MissingToken,
    RouteOverloaded,
)

JSON_TYPE = "application/json"


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def challenge(err: AuthError, realm: str) -> str:
    """The WWW-Authenticate value for an auth error."""
    parts = [f'Bearer realm="{_quote(realm)}"']
    if isinstance(err, MissingToken):
        return parts[0]  # RFC 6750 §3.1: no error code when the request had no token
    parts.append(f'error="{err.error}"')
    parts.append(f'error_description="{_quote(err.description)}"')
    if isinstance(err, InsufficientScope) and err.required:
        parts.append(f'scope="{_quote(" ".join(err.required))}"')
    return ", ".join(parts)


def error_body(error: str, description: str, request_id: str) -> bytes:
    return json.dumps(
        {"error": error, "error_description": description, "request_id": request_id}
    ).encode()


def error_response(
    err: GatewayError, *, realm: str, request_id: tuple[str, str]
) -> web.Response:
    """JSON body ``{error, error_description, request_id}`` with the right status and headers.

    The description is the class's generic one; ``err.detail`` is for the log only.
    """
    headers = {request_id[0]: request_id[1]}
    if isinstance(err, AuthError):
        headers[hdrs.WWW_AUTHENTICATE] = challenge(err, realm)
    if isinstance(err, MethodNotAllowed):
        headers[hdrs.ALLOW] = ", ".join(err.allowed)
    if isinstance(err, DependencyError | RouteOverloaded):  # unavailable: try again soon
        headers[hdrs.RETRY_AFTER] = "1"
    return web.Response(
        status=err.status,
        body=error_body(err.error, err.description, request_id[1]),
        content_type=JSON_TYPE,
        headers=headers,
    )


def internal_error_response(request_id: tuple[str, str]) -> web.Response:
    return web.Response(
        status=500,
        body=error_body("server_error", "internal error", request_id[1]),
        content_type=JSON_TYPE,
        headers={request_id[0]: request_id[1]},
    )
