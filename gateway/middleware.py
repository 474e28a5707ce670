"""The two middlewares of the public listener.

``observe``: request id, the runtime snapshot, timing, in-flight gauge, metrics and one
access-log line per request (fields, sampling and query redaction as the snapshot's
``access_log`` says). ``errors``: GatewayError → ``responses.error_response``; anything
untyped → 500 with the traceback logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import re
import time
from collections.abc import Callable

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from .access import loggable_query
from .errors import AuthError, BadTarget, DependencyError, GatewayError
from .metrics import GatewayMetrics
from .proxy.forward import Forwarder
from .request_state import REQUEST_STATE, RequestState
from .responses import error_response, internal_error_response
from .runtime import RuntimeHolder

log = logging.getLogger("gateway.request")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
CLIENT_CLOSED = 499  # the client went away before an answer (nginx's convention)


def request_id_from(value: str | None) -> str:
    """The client's request id when it is sane, else a fresh one."""
    if value is not None and _REQUEST_ID.match(value):
        return value
    return os.urandom(16).hex()  # 128 random bits, as uuid4 (which costs ten times more)


def make_observe(
    holder: RuntimeHolder, forwarder: Forwarder, metrics: GatewayMetrics,
    draw: Callable[[], float] = random.random,
) -> web.middleware:  # type: ignore[valid-type]
    """``draw``: uniform [0, 1) numbers for access-log sampling."""

    @web.middleware
    async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        runtime = holder.current
        header = runtime.request_id_header
        state = RequestState(
            request_id=(header, request_id_from(request.headers.get(header))),
            runtime=runtime,
            forwarder=forwarder,
        )
        request[REQUEST_STATE] = state
        metrics.in_flight.inc()
        status = 500
        response: web.StreamResponse | None = None
        try:
            response = await handler(request)
            status = response.status
            if not response.prepared:
                # Sent here rather than by aiohttp after the middlewares, so that the access
                # line can tell how many bytes went out.
                with contextlib.suppress(ConnectionError):
                    await response.prepare(request)
                    await response.write_eof()
            return response
        except asyncio.CancelledError:
            status = CLIENT_CLOSED
            raise
        finally:
            metrics.in_flight.dec()
            elapsed = time.perf_counter() - started
            metrics.record_request(state.route, request.method, status, elapsed)
            reason = state.auth_reason
            decision = None if reason is None else decision_of(reason, state.shadow)
            if decision is not None and reason is not None:
                metrics.record_auth(state.route, decision, reason)
            policy = runtime.access_log
            if policy.wanted(status, decision, draw):
                _write_access_line(request, response, state, status, elapsed, decision)

    return observe


def decision_of(reason: str, shadow: bool) -> str:
    """The ``result`` label: allow, deny or shadow_deny (refused, forwarded anyway)."""
    if reason in ("ok", "none"):
        return "allow"
    return "shadow_deny" if shadow else "deny"


def _write_access_line(
    request: web.Request, response: web.StreamResponse | None, state: RequestState,
    status: int, elapsed: float, decision: str | None,
) -> None:
    principal = state.principal
    route = state.matched
    upstream = state.upstream_seconds
    user_agent = request.headers.get(hdrs.USER_AGENT)
    path, _, query_string = request.raw_path.partition("?")
    values = {
        "request_id": state.request_id[1],
        "route": state.route,
        "method": request.method,
        "path": path[:512],
        "status": status,
        "duration_ms": round(elapsed * 1000, 3),
        "upstream_ms": None if upstream is None else round(upstream * 1000, 3),
        "bytes_in": request.content.total_bytes,
        "bytes_out": response.body_length if response is not None else None,
        "client": request.remote,
        "host": (request.headers.get(hdrs.HOST) or "")[:256] or None,
        "user_agent": user_agent[:256] if user_agent is not None else None,
        "subject": principal.subject if principal else None,
        "client_id": principal.client_id if principal else None,
        "issuer": principal.issuer if principal else None,
        "jti": principal.token_id if principal else None,
        "scopes": " ".join(sorted(principal.scopes)) if principal else None,
        "upstream": route.upstream.url if route is not None else None,
        "decision": decision,
        "reason": state.auth_reason,
        "detail": state.error_detail,
    }
    policy = state.runtime.access_log
    mode = route.log_query if route is not None and route.log_query else policy.query
    query = loggable_query(query_string, mode)
    policy.write(values, query)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = request[REQUEST_STATE]
    try:
        if request.match_info.http_exception is not None:
            # aiohttp's router saw no origin-form path: "*", an authority (CONNECT) …
            raise BadTarget(f"target {request.raw_path[:200]!r} is not origin-form")
        return await handler(request)
    except GatewayError as err:
        if isinstance(err, AuthError | DependencyError):
            state.auth_reason = err.reason
        state.error_detail = f"{err.reason}: {err.detail}"
        return error_response(err, realm=state.runtime.realm, request_id=state.request_id)
    except web.HTTPException:
        raise
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        log.exception("unhandled error", extra={"request_id": state.request_id[1]})
        state.error_detail = "internal error"
        return internal_error_response(state.request_id)
