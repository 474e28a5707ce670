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
from .errors import MissingToken
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
    if not route.requires_auth:
        state.auth_reason = "none"
        return Decision(match, None)
    token = extract_bearer(headers)
    if token is None:
        raise MissingToken("no bearer token")
    principal = await runtime.verifier.authenticate(token, route.issuers)
    state.principal = principal
    if runtime.revocation is not None:
        await runtime.revocation.check(principal)
    route.policy.check(principal, method)
    state.auth_reason = "ok"
    return Decision(match, principal)


async def handle(request: web.Request) -> web.StreamResponse:
    state = request[REQUEST_STATE]
    check_transfer_coding(request.headers)
    decision = await decide(state, request.method, request.raw_path, request.headers)
    return await state.forwarder.forward(
        request, decision.match, decision.principal, state.request_id
    )
