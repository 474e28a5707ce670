"""Relaying an authorised WebSocket session between the client and an upstream.

The upgrade request went through the same decision as any request (route, token, revocation,
scopes). Here the upstream handshake is made first, so a refusal or an unreachable upstream is
answered with a plain HTTP status; then the client's handshake is accepted with the protocol
the upstream chose, and messages are relayed both ways as they come (text, binary, ping, pong).

Closing: whichever side closes first, its close code and reason are passed to the other side,
and that side's answer is passed back. An upstream that vanishes without a close frame closes
the client with 1014 (bad gateway); a client that vanishes closes the upstream with 1001 (going
away). A session with no message in either direction for the route's ``idle_timeout`` is closed
with 1001; so is every session at the end of a graceful shutdown. Headers of the upstream's
``101`` other than the chosen subprotocol are not passed on (aiohttp does not expose them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import WSCloseCode, WSMsgType, hdrs, web
from multidict import CIMultiDict

from ..connection import GatewayProtocol
from ..metrics import GatewayMetrics
from ..runtime import Route, Upstream
from .headers import connection_nominated
from .pool import PoolState
from .targets import ConnectFailed, tls_arguments, upstream_url

if TYPE_CHECKING:
    from .forward import Forwarder

log = logging.getLogger("gateway.websocket")

#: Handshake headers the client library writes itself on the upstream leg.
WS_HANDSHAKE = frozenset({
    "sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions",
    "sec-websocket-protocol", "sec-websocket-accept",
})
#: Close codes that may not be sent in a close frame (RFC 6455 §7.4.1).
_UNSENDABLE = frozenset({1005, 1006, 1015})
_CLOSE_TIMEOUT = 5.0

Socket = web.WebSocketResponse | aiohttp.ClientWebSocketResponse


def is_websocket_upgrade(request: web.Request) -> bool:
    if request.method != "GET":
        return False
    if request.headers.get(hdrs.UPGRADE, "").strip().lower() != "websocket":
        return False
    return "upgrade" in connection_nominated(request.headers)


def client_protocols(request: web.Request) -> tuple[str, ...]:
    return tuple(
        p.strip() for v in request.headers.getall(hdrs.SEC_WEBSOCKET_PROTOCOL, ())
        for p in v.split(",") if p.strip()
    )


def upstream_handshake_headers(headers: CIMultiDict[str]) -> CIMultiDict[str]:
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in WS_HANDSHAKE)


@dataclass(slots=True)
class _End:
    """Why one direction stopped."""

    kind: str            # "close" (a close frame), "gone" (connection lost), "error"
    code: int | None = None
    reason: bytes = b""


def _sendable(code: int | None, fallback: int) -> int:
    if code is None or code in _UNSENDABLE or not (1000 <= code < 5000):
        return fallback
    return code


class WebSocketRelay:
    def __init__(
        self,
        client: web.WebSocketResponse,
        upstream: aiohttp.ClientWebSocketResponse,
        *,
        idle_timeout: float,
        metrics: GatewayMetrics,
        route: str,
    ) -> None:
        self.client = client
        self.upstream = upstream
        self.idle_timeout = idle_timeout
        self._loop = asyncio.get_running_loop()
        self._last_activity = self._loop.time()
        self._to_upstream = metrics.websocket_messages.labels(route, "to_upstream")
        self._to_client = metrics.websocket_messages.labels(route, "to_client")
        self._stopping = False
        self._stopped = asyncio.Event()

    async def shutdown(self) -> None:
        """Close both sides with 1001 (the gateway is going away); ``run()`` then returns."""
        self._stopping = True
        try:
            await self._close_both(WSCloseCode.GOING_AWAY, b"gateway shutting down")
        finally:
            self._stopped.set()

    async def _pump(self, source: Socket, sink: Socket, counter: object) -> _End:
        inc = counter.inc  # type: ignore[attr-defined]
        while True:
            msg = await source.receive()
            self._last_activity = self._loop.time()
            kind = msg.type
            try:
                if kind is WSMsgType.TEXT:
                    await sink.send_str(msg.data)
                elif kind is WSMsgType.BINARY:
                    await sink.send_bytes(msg.data)
                elif kind is WSMsgType.PING:
                    await sink.ping(msg.data)
                elif kind is WSMsgType.PONG:
                    await sink.pong(msg.data)
                elif kind is WSMsgType.CLOSE:
                    reason = (msg.extra or "").encode() if isinstance(msg.extra, str) else b""
                    return _End("close", msg.data, reason)
                elif kind is WSMsgType.ERROR:
                    code = getattr(msg.data, "code", None)
                    return _End("error", code if isinstance(code, int) else None)
                else:  # CLOSING / CLOSED: the connection is gone or being closed
                    return _End("gone")
            except (ConnectionError, aiohttp.ClientError, RuntimeError):
                return _End("sink_gone")
            inc()

    async def _watch_idle(self) -> _End:
        while True:
            due = self._last_activity + self.idle_timeout
            now = self._loop.time()
            if now >= due:
                return _End("idle")
            await asyncio.sleep(due - now)

    async def run(self) -> None:
        from_client = asyncio.ensure_future(
            self._pump(self.client, self.upstream, self._to_upstream))
        from_upstream = asyncio.ensure_future(
            self._pump(self.upstream, self.client, self._to_client))
        idle = asyncio.ensure_future(self._watch_idle())
        tasks = {from_client, from_upstream, idle}
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if self._stopping:
                await self._stopped.wait()  # shutdown() closes both sides
            elif from_client in done:
                await self._client_ended(from_client.result())
            elif from_upstream in done:
                await self._upstream_ended(from_upstream.result())
            else:
                await self._close_both(WSCloseCode.GOING_AWAY, b"idle timeout")
        except asyncio.CancelledError:
            # Shutdown: tell both sides, briefly, then go.
            with contextlib.suppress(Exception, asyncio.CancelledError):
                async with asyncio.timeout(1.0):
                    await self._close_both(WSCloseCode.GOING_AWAY, b"gateway shutting down")
            raise
        finally:
            for task in tasks:
                task.cancel()  # not awaited: the client side may be closed already

    async def _client_ended(self, end: _End) -> None:
        if end.kind == "close":
            # Pass the client's close on; answer the client with the upstream's reply.
            await self.upstream.close(code=_sendable(end.code, 1000), message=end.reason)
            await self.client.close(code=_sendable(self.upstream.close_code, end.code or 1000))
        elif end.kind == "sink_gone":
            await self._close_both(WSCloseCode.BAD_GATEWAY, b"upstream connection lost")
        else:  # an error closed the client (its code, e.g. 1009), or it vanished (1001)
            code = _sendable(end.code or self.client.close_code, WSCloseCode.GOING_AWAY)
            await self.upstream.close(code=code, message=b"client closed")
            await self.client.close(code=code)

    async def _upstream_ended(self, end: _End) -> None:
        # The client side is closed last: its transport closing ends the request.
        if end.kind == "close":
            code = _sendable(end.code, 1000)
            await self.upstream.close(code=code)  # acknowledge the upstream's close
            await self.client.close(code=code, message=end.reason)
        elif end.kind == "sink_gone":
            await self._close_both(WSCloseCode.GOING_AWAY, b"client went away")
        else:  # an error closed the upstream (its code), or it vanished (1014)
            code = _sendable(end.code or self.upstream.close_code, WSCloseCode.BAD_GATEWAY)
            await self.upstream.close(code=WSCloseCode.GOING_AWAY)
            await self.client.close(code=code, message=b"upstream connection lost")

    async def _close_both(self, code: int, reason: bytes) -> None:
        with contextlib.suppress(Exception):
            await self.upstream.close(code=code, message=reason)
        await self.client.close(code=code, message=reason)


def client_socket(
    upstream: aiohttp.ClientWebSocketResponse, max_message: int
) -> web.WebSocketResponse:
    """The client side, accepting the protocol the upstream chose."""
    chosen = upstream.protocol
    return web.WebSocketResponse(
        protocols=(chosen,) if chosen else (),
        autoclose=False,
        autoping=False,
        max_msg_size=max_message,
        timeout=_CLOSE_TIMEOUT,
    )


def upstream_ws_timeout() -> aiohttp.ClientWSTimeout:
    return aiohttp.ClientWSTimeout(ws_receive=None, ws_close=_CLOSE_TIMEOUT)



async def relay_websocket(
    forwarder: Forwarder,
    session: aiohttp.ClientSession,
    request: web.Request,
    route: Route,
    pool: PoolState,
    headers: CIMultiDict[str],
    path: str,
    query: str,
    request_id: tuple[str, str],
) -> web.StreamResponse:
    """Handshake with a target (retried like any GET), then accept the client and relay."""
    opts = route.proxy
    protocols = client_protocols(request)
    ws_headers = upstream_handshake_headers(headers)

    async def send(target: Upstream) -> tuple[aiohttp.ClientWebSocketResponse | int, int]:
        ws_headers[hdrs.HOST] = forwarder.host_header(request, route, target)
        try:
            async with asyncio.timeout(route.timeout):
                upstream = await session.ws_connect(
                    upstream_url(target, path, query), protocols=protocols, headers=ws_headers,
                    timeout=upstream_ws_timeout(), autoclose=False, autoping=False,
                    max_msg_size=opts.ws_max_message,
                    **tls_arguments(opts.pool.tls, target),
                )
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise ConnectFailed(exc) from None
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status, exc.status   # the target refused the upgrade: pass it on
        return upstream, 101

    result, target = await forwarder.attempts(request, route, pool, None, send)
    if isinstance(result, int):
        log.info("target %s refused the WebSocket upgrade with %d", target.url, result)
        status = result if result >= 400 else 502
        return web.Response(status=status, headers={request_id[0]: request_id[1]})
    upstream = result
    metrics = forwarder.metrics
    client = client_socket(upstream, opts.ws_max_message)
    client.headers[request_id[0]] = request_id[1]
    state = pool.state(target)
    state.active += 1
    metrics.websocket_sessions.inc()
    try:
        try:
            await client.prepare(request)
        except Exception:
            await upstream.close(code=WSCloseCode.GOING_AWAY)
            raise
        if isinstance(request.protocol, GatewayProtocol):
            request.protocol.keep_handler_on_disconnect()
        relay = WebSocketRelay(client, upstream, idle_timeout=opts.idle_timeout,
                               metrics=metrics, route=route.name)
        forwarder.websockets.add(relay)
        try:
            await relay.run()
        finally:
            forwarder.websockets.discard(relay)
    finally:
        metrics.websocket_sessions.dec()
        state.active -= 1
    return client
