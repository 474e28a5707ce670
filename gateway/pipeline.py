"""One request: match → decide → forward. The single handler of the public listener.

The decision (``decide``) does not depend on the transport, so a decision endpoint can reuse
it. Authorization order: token valid → not revoked → route requirements; a revoked token gets
401 even when it would also lack scopes.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import hdrs, web
from multidict import CIMultiDictProxy

from .auth.extract import extract_bearer
from .auth.principal import Principal
from .errors import GatewayError, MissingToken, RequestRejected, RouteOverloaded
from .proxy.cors import preflight_method, preflight_response
from .proxy.headers import check_transfer_coding
from .request_state import REQUEST_STATE, RequestState
from .routing import RouteMatch
from .runtime import Route


@dataclass(frozen=True, slots=True)
class Decision:
    match: RouteMatch[Route]
    principal: Principal | None  # None on auth: none routes


async def decide(
    state: RequestState, method: str, target: str, headers: CIMultiDictProxy[str]
) -> Decision:
    """Route the request and authorise it; raises a GatewayError on any refusal."""
    runtime = state.runtime
    match = runtime.routes.match(method, headers.get(hdrs.HOST), target)
    route = match.route
    state.route = route.name
    state.cors = route.proxy.cors  # refusals from here on carry the route's CORS headers
    if not route.requires_auth:
        state.auth_reason = "none"
        return Decision(match, None)
    token = extract_bearer(headers)
    if token is None:
        raise MissingToken("no bearer token")
    principal = runtime.verifier.verify(token)
    state.principal = principal
    if runtime.revocation is not None:
        await runtime.revocation.check(principal)
    route.policy.check(principal)
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
        return await state.forwarder.forward(
            request, decision.match, decision.principal, state.request_id,
            trusted_peer=trusted,
        )
    except (RequestRejected, RouteOverloaded) as err:
        state.forwarder.metrics.record_rejection(state.route, err.reason)
        raise
