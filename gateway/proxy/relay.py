"""Streaming an upstream response back to the client.

Checked before anything is sent (a broken head → a clean 502); then the body is relayed chunk
by chunk as it arrives, with the route's ``idle_timeout`` bounding each wait (upstream silent,
or client not reading) and no total limit, so server-sent events and other long streams live
as long as they keep moving. A failure after the head was sent aborts the client connection.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from ..errors import UpstreamUnavailable
from ..metrics import GatewayMetrics
from ..runtime import Route, Upstream
from .headers import response_headers, valid_field_value

log = logging.getLogger("gateway.proxy")


def unrelayable(upstream: aiohttp.ClientResponse, headers: CIMultiDict[str]) -> str | None:
    """Why the upstream's response head cannot be passed on, or None."""
    if upstream.status == 101:
        return "101 Switching Protocols without an Upgrade request"
    if not valid_field_value(upstream.reason or ""):
        return "control character in the reason phrase"
    if not all(valid_field_value(v) for v in headers.values()):
        return "control character in a response header"
    return None


async def relay_response(
    request: web.Request,
    route: Route,
    target: Upstream,
    upstream: aiohttp.ClientResponse,
    request_id: tuple[str, str],
    metrics: GatewayMetrics,
) -> web.StreamResponse:
    async with upstream:
        headers = response_headers(upstream.headers)
        problem = unrelayable(upstream, headers)
        if problem is not None:
            # Checked before anything is sent: the client gets a clean 502, never a 500
            # from aiohttp's header writer or an unsolicited protocol switch.
            metrics.record_upstream_error(route.name, "upstream_unavailable")
            raise UpstreamUnavailable(f"{target.url}: {problem}")
        route.proxy.response_edits.apply(headers)
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        response.headers.extend(headers)
        response.headers[request_id[0]] = request_id[1]
        await response.prepare(request)
        idle = route.proxy.idle_timeout
        content = upstream.content
        while True:
            try:
                # What has arrived already is taken without a deadline (a small body usually
                # comes with the head); only a read that has to wait gets one.
                chunk = content.read_nowait()
                if not chunk and not content.at_eof():
                    async with asyncio.timeout(idle):
                        chunk = await content.readany()
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                # The client connection dies with the upstream's: never a spliced message.
                reason = "upstream_timeout" if isinstance(exc, TimeoutError) else \
                    "upstream_aborted"
                metrics.record_upstream_error(route.name, reason)
                log.warning("upstream %s failed mid-response (%s): %r", target.url, reason, exc)
                if request.transport is not None:
                    request.transport.abort()
                return response
            if not chunk:
                break
            try:
                async with asyncio.timeout(idle):
                    await response.write(chunk)
            except TimeoutError:
                log.info("client of route %s stopped reading for %ss", route.name, idle)
                if request.transport is not None:
                    request.transport.abort()
                return response
            except (ConnectionError, aiohttp.ClientConnectionResetError):
                log.info("client went away during the response of route %s", route.name)
                return response
        await response.write_eof()
        return response
