"""One request: match → decide → forward. The single handler of the public listener.

The decision (``decide``) does not depend on the transport, so a decision endpoint can reuse
it. Authorization order: token valid → not revoked → route requirements; a revoked token gets
401 even when it would also lack scopes.

Shadow mode (a route with ``enforce: false``): every check runs, a refusal is recorded on the
request state (``gateway_auth_decisions_total{result="shadow_deny"}``, the access log) and the
request is forwarded anyway. Identity headers go upstream only for a token that was verified
and not revoked.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from aiohttp import hdrs, web
from multidict import CIMultiDictProxy

from .auth.extract import extract_bearer
from .auth.principal import Principal
from .errors import (
    AuthError,
    DependencyError,
    GatewayError,
    MissingToken,
    RequestRejected,
    RouteOverloaded,
)
from .proxy.cors import preflight_method, preflight_response
from .proxy.headers import check_transfer_coding
from .request_state import REQUEST_STATE, RequestState
from .routing import RouteMatch
from .runtime import Route


@dataclass(frozen=True, slots=True)
class Decision:
    match: RouteMatch[Route]
    principal: Principal | None  # None on auth: none routes (and shadow-denied tokens)
    shadow_reason: str | None = None  # enforce: false and refused: why it would have been


async def authenticate(
    state: RequestState, route: Route, headers: CIMultiDictProxy[str]
) -> Principal:
    """Bearer token → verified principal → not revoked; raises AuthError / DependencyError."""
    runtime = state.runtime
    token = extract_bearer(headers)
    if token is None:
        raise MissingToken("no bearer token")
    principal = await runtime.verifier.authenticate(token, route.issuers)
    state.principal = principal
    if runtime.revocation is not None:
        await runtime.revocation.check(principal)
    return principal


def _shadow(
    state: RequestState, match: RouteMatch[Route], principal: Principal | None,
    err: GatewayError,
) -> Decision:
    state.shadow = True
    state.auth_reason = err.reason
    state.error_detail = f"{err.reason}: {err.detail}"
    return Decision(match, principal, shadow_reason=err.reason)


async def decide(
    state: RequestState, method: str, target: str, headers: CIMultiDictProxy[str]
) -> Decision:
    """Route the request and authorise it; raises a GatewayError on any refusal that counts."""
    runtime = state.runtime
    match = runtime.routes.match(method, headers.get(hdrs.HOST), target)
    route = match.route
    state.route = route.name
    state.matched = route  # refusals from here on carry the route's CORS headers
    if not route.requires_auth:
        state.auth_reason = "none"
        return Decision(match, None)
    try:
        principal = await authenticate(state, route, headers)
    except (AuthError, DependencyError) as err:
        if route.enforce:
            raise
        return _shadow(state, match, None, err)
    try:
        route.policy.check(principal, method)
    except AuthError as err:
        if route.enforce:
            raise
        return _shadow(state, match, principal, err)
    state.auth_reason = "ok"
    return Decision(match, principal)


def answer_preflight(state: RequestState, request: web.Request) -> web.Response | None:
    """A CORS preflight for a route with ``cors`` is answered here, without a token."""
    method = preflight_method(request.method, request.headers)
    if method is None:
        return None
    try:
        match = state.runtime.routes.match(method, request.headers.get(hdrs.HOST),
                                           request.raw_path)
    except GatewayError:
        return None  # no route for the asked method: an ordinary OPTIONS request
    cors = match.route.proxy.cors
    if cors is None:
        return None
    state.route = match.route.name
    return preflight_response(cors, request.headers, method)


async def handle(request: web.Request) -> web.StreamResponse:
    state = request[REQUEST_STATE]
    try:
        check_transfer_coding(request.headers)
        preflight = answer_preflight(state, request)
        if preflight is not None:
            return preflight
        decision = await decide(state, request.method, request.raw_path, request.headers)
        trusted = state.runtime.proxy.is_trusted(request.remote)
        started = time.perf_counter()
        try:
            return await state.forwarder.forward(
                request, decision.match, decision.principal, state.request_id,
                trusted_peer=trusted,
            )
        finally:
            state.upstream_seconds = time.perf_counter() - started
    except (RequestRejected, RouteOverloaded) as err:
        state.forwarder.metrics.record_rejection(state.route, err.reason)
        raise
