"""Last touches on every response of the public listener, just before its head is written.

- A request whose body was not read (refused before forwarding, or the upstream answered
  early) gets ``Connection: close``: the connection is closed, never drained (aiohttp's
  lingering read is off, ``lingering_time=0``), so a refused client cannot push its upload.
- While the gateway drains for shutdown, every response closes its connection.
- HSTS on HTTPS responses, when configured (an upstream's own header is kept).
- CORS headers for allowed origins on routes with ``cors``.
"""

from __future__ import annotations

from aiohttp import hdrs, web

from ..request_state import REQUEST_STATE
from .cors import add_cors_headers

STS = "Strict-Transport-Security"


def finish_response(request: web.BaseRequest, response: web.StreamResponse,
                    *, draining: bool) -> None:
    if isinstance(response, web.WebSocketResponse) or response.status == 101:
        return
    if draining or (request.body_exists and not request.content.is_eof()):
        # aiohttp has written its Connection header into the head already at this point
        response.force_close()
        response.headers[hdrs.CONNECTION] = "close"
    state = request.get(REQUEST_STATE)
    if state is None:
        return
    hsts = state.runtime.proxy.hsts
    if hsts is not None and request.secure:
        response.headers.setdefault(STS, hsts)
    if state.cors is not None:
        add_cors_headers(state.cors, request.headers, response)
