"""The two middlewares of the public listener.

``observe``: request id, the runtime snapshot, timing, in-flight gauge, metrics and one
access-log line per request. ``errors``: GatewayError → ``responses.error_response``; anything
untyped → 500 with the traceback logged.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid

from aiohttp import web
from aiohttp.typedefs import Handler

from .errors import AuthError, BadTarget, DependencyError, GatewayError
from .logs import access_log
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
    return uuid.uuid4().hex


def make_observe(
    holder: RuntimeHolder, forwarder: Forwarder, metrics: GatewayMetrics
) -> web.middleware:  # type: ignore[valid-type]
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
        try:
            response = await handler(request)
            status = response.status
            return response
        except asyncio.CancelledError:
            status = CLIENT_CLOSED
            raise
        finally:
            metrics.in_flight.dec()
            elapsed = time.perf_counter() - started
            metrics.record_request(state.route, request.method, status, elapsed)
            reason = state.auth_reason
            if reason is not None:
                result = "allow" if reason in ("ok", "none") else "deny"
                metrics.record_auth(state.route, result, reason)
            principal = state.principal
            access_log(
                request_id=state.request_id[1],
                route=state.route,
                method=request.method,
                path=request.raw_path.split("?", 1)[0][:512],
                status=status,
                duration_ms=round(elapsed * 1000, 3),
                client=request.remote,
                subject=principal.subject if principal else None,
                client_id=principal.client_id if principal else None,
                jti=principal.token_id if principal else None,
                decision=(
                    None if reason is None else "allow" if reason in ("ok", "none") else "deny"
                ),
                reason=reason,
                detail=state.error_detail,
            )

    return observe


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
