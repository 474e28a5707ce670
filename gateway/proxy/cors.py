"""CORS per route (Fetch standard, "CORS protocol").

A preflight (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``) is matched
with the method it asks about; when that route has ``cors``, the gateway answers it without a
token: 204 with the allowed methods and headers, or 403 ``cors_rejected`` when the origin,
method or a requested header is not allowed. Other requests from an allowed origin get
``Access-Control-Allow-Origin`` (and credentials / exposed headers) on every answer of the
route, errors included, so a script can read a 401. Pure functions.
"""

from __future__ import annotations

from aiohttp import hdrs, web
from multidict import CIMultiDict, CIMultiDictProxy

from ..errors import CorsRejected
from .options import Cors

_RESPONSE_CORS = (
    hdrs.ACCESS_CONTROL_ALLOW_ORIGIN, hdrs.ACCESS_CONTROL_ALLOW_CREDENTIALS,
    hdrs.ACCESS_CONTROL_EXPOSE_HEADERS,
)


def preflight_method(method: str, headers: CIMultiDictProxy[str]) -> str | None:
    """The method a CORS preflight asks about, or None when this is not a preflight."""
    if method != "OPTIONS" or hdrs.ORIGIN not in headers:
        return None
    asked = headers.get(hdrs.ACCESS_CONTROL_REQUEST_METHOD)
    return asked.strip() if asked and asked.strip() else None


def preflight_response(cors: Cors, headers: CIMultiDictProxy[str], method: str) -> web.Response:
    origin = headers[hdrs.ORIGIN]
    if not cors.allowed_origin(origin):
        raise CorsRejected(f"origin {origin[:100]!r} not allowed")
    if method not in cors.methods:
        raise CorsRejected(f"method {method[:32]!r} not allowed for CORS")
    asked = [
        h.strip().lower()
        for v in headers.getall(hdrs.ACCESS_CONTROL_REQUEST_HEADERS, ())
        for h in v.split(",") if h.strip()
    ]
    refused = [h for h in asked if h not in cors.allow_headers]
    if refused:
        raise CorsRejected(f"headers {refused[:8]} not allowed for CORS")
    out: CIMultiDict[str] = CIMultiDict()
    _origin_headers(cors, origin, out)
    out[hdrs.ACCESS_CONTROL_ALLOW_METHODS] = cors.methods_value
    if cors.headers_value:
        out[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = cors.headers_value
    out[hdrs.ACCESS_CONTROL_MAX_AGE] = cors.max_age
    out.add(hdrs.VARY, "Access-Control-Request-Method, Access-Control-Request-Headers")
    return web.Response(status=204, headers=out)


def _origin_headers(cors: Cors, origin: str, out: CIMultiDict[str]) -> None:
    if cors.any_origin:
        out[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = "*"
    else:
        out[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
        out.add(hdrs.VARY, "Origin")
    if cors.credentials:
        out[hdrs.ACCESS_CONTROL_ALLOW_CREDENTIALS] = "true"


def add_cors_headers(
    cors: Cors, request_headers: CIMultiDictProxy[str], response: web.StreamResponse
) -> None:
    """Decorate an actual (non-preflight) response for an allowed origin."""
    origin = request_headers.get(hdrs.ORIGIN)
    if origin is None:
        return
    for name in _RESPONSE_CORS:  # the route's settings win over the upstream's own
        response.headers.popall(name, None)
    if not cors.allowed_origin(origin):
        return
    out: CIMultiDict[str] = CIMultiDict()
    _origin_headers(cors, origin, out)
    if cors.expose_value:
        out[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = cors.expose_value
    response.headers.extend(out)
