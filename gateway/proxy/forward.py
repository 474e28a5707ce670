"""Forwarding one authorised request upstream and streaming the answer back.

Upstream I/O only: the decision has been made before. Client library errors are translated
here, once: ``TimeoutError`` (which ``ServerTimeoutError`` also is) → 504, any other
``aiohttp.ClientError`` or ``OSError`` → 502. Once the response has started, an upstream failure
aborts the client connection, so the client sees a truncated message, never a spliced one.
"""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp
from aiohttp import hdrs, web
from multidict import CIMultiDict
from yarl import URL

from ..auth.principal import Principal
from ..errors import UpstreamTimeout, UpstreamUnavailable
from ..metrics import GatewayMetrics
from ..routing import RouteMatch
from ..runtime import Route
from .headers import add_identity, request_headers, response_headers, valid_field_value

log = logging.getLogger("gateway.proxy")

#: Headers the client library would otherwise add on its own.
SKIP_AUTO_HEADERS = frozenset(
    {hdrs.USER_AGENT, hdrs.ACCEPT, hdrs.ACCEPT_ENCODING, hdrs.CONTENT_TYPE}
)


def create_session(limit: int = 0) -> aiohttp.ClientSession:
    """The one pooled keep-alive session for all upstream traffic."""
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=0, enable_cleanup_closed=True)
    return aiohttp.ClientSession(
        connector=connector,
        auto_decompress=False,
        skip_auto_headers=SKIP_AUTO_HEADERS,
        timeout=aiohttp.ClientTimeout(total=None),
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
    )


def upstream_url(route: Route, path: str, query: str) -> URL:
    up = route.upstream
    return URL.build(
        scheme=up.scheme, host=up.host, port=up.port,
        path=up.base_path + path, query_string=query, encoded=True,
    )


def _unrelayable(upstream: aiohttp.ClientResponse, headers: CIMultiDict[str]) -> str | None:
    """Why the upstream's response head cannot be passed on, or None."""
    if upstream.status == 101:
        return "101 Switching Protocols without an Upgrade request"
    if not valid_field_value(upstream.reason or ""):
        return "control character in the reason phrase"
    if not all(valid_field_value(v) for v in headers.values()):
        return "control character in a response header"
    return None


class Forwarder:
    def __init__(self, session: aiohttp.ClientSession, metrics: GatewayMetrics) -> None:
        self._session = session
        self._metrics = metrics

    async def forward(
        self,
        request: web.Request,
        match: RouteMatch[Route],
        principal: Principal | None,
        request_id: tuple[str, str],
    ) -> web.StreamResponse:
        route = match.route
        headers = request_headers(
            request.headers,
            stripped=route.stripped_headers,
            upstream_authority=route.upstream.authority,
            client_ip=request.remote,
            proto="https" if request.secure else "http",
        )
        if principal is not None:
            identity = route.identity
            add_identity(
                headers, principal, subject=identity.subject, client_id=identity.client_id,
                scopes=identity.scopes, issuer=identity.issuer,
            )
        headers[request_id[0]] = request_id[1]
        url = upstream_url(route, match.path, match.query)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(route.timeout):
                upstream = await self._session.request(
                    request.method, url, headers=headers,
                    data=request.content if request.body_exists else None,
                    allow_redirects=False, compress=None, chunked=None,
                )
        except TimeoutError:
            self._metrics.record_upstream_error(route.name, "upstream_timeout")
            raise UpstreamTimeout(f"no response headers from {route.upstream.url} within "
                                  f"{route.timeout}s") from None
        except (aiohttp.ClientError, OSError) as exc:
            self._metrics.record_upstream_error(route.name, "upstream_unavailable")
            raise UpstreamUnavailable(f"{route.upstream.url}: {type(exc).__name__}: {exc}") \
                from None
        self._metrics.record_upstream_response(route.name, time.perf_counter() - started)
        async with upstream:
            headers = response_headers(upstream.headers)
            problem = _unrelayable(upstream, headers)
            if problem is not None:
                # Checked before anything is sent: the client gets a clean 502, never a 500
                # from aiohttp's header writer or an unsolicited protocol switch.
                self._metrics.record_upstream_error(route.name, "upstream_unavailable")
                raise UpstreamUnavailable(f"{route.upstream.url}: {problem}")
            return await self._relay(request, route, upstream, headers, request_id)

    async def _relay(
        self,
        request: web.Request,
        route: Route,
        upstream: aiohttp.ClientResponse,
        headers: CIMultiDict[str],
        request_id: tuple[str, str],
    ) -> web.StreamResponse:
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        response.headers.extend(headers)
        response.headers[request_id[0]] = request_id[1]
        await response.prepare(request)
        while True:
            try:
                chunk = await upstream.content.readany()
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                # The client connection dies with the upstream's: never a spliced message.
                self._metrics.record_upstream_error(route.name, "upstream_aborted")
                log.warning("upstream %s failed mid-response: %s", route.upstream.url, exc)
                if request.transport is not None:
                    request.transport.abort()
                return response
            if not chunk:
                break
            try:
                await response.write(chunk)
            except (ConnectionError, aiohttp.ClientConnectionResetError):
                log.info("client went away during the response of route %s", route.name)
                return response
        await response.write_eof()
        return response
