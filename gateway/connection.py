"""Client connections of the public listener: a header-read deadline and graceful draining.

aiohttp has no timeout on reading a request head: a client that dribbles its header bytes
holds a connection (and a file descriptor) forever. ``GatewayProtocol`` extends aiohttp's
``RequestHandler`` with one timer per connection:

- a new connection must deliver a complete request head within ``head_timeout`` of being
  accepted (or it is closed silently, as nginx's ``client_header_timeout`` does);
- on a kept-alive connection the clock starts with the first byte of the next head; an idle
  connection without any byte is left to the keep-alive timeout (so is the rest of a head
  that arrived in the same read as the previous request, until its next byte);
- when the deadline passes with part of a head received, the client gets ``408`` and the
  connection is closed. Other connections are not affected: each has its own timer.

``GatewayRunner`` builds the server with that protocol and adds ``drain()``: stop accepting,
close idle connections, let busy ones finish (their responses carry ``Connection: close``),
up to a timeout. WebSocket sessions count as busy until they end.

This relies on aiohttp internals (``RequestHandler._request_count``, ``_messages``,
``_upgraded``, ``_current_request``, ``_task_handler``, ``Server._kwargs``), pinned by
aiohttp < 4 in pyproject.toml and covered by tests/integration/test_hostile_clients.py,
test_shutdown.py and test_websocket.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger("gateway.connection")

_REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 34\r\n\r\nrequest head not received in time\n"
)


class GatewayProtocol(RequestHandler):
    __slots__ = ("_awaiting_head", "_head_bytes", "_head_handle", "_head_started",
                 "_head_timeout", "_keep_handler", "_on_head_timeout")

    def __init__(
        self,
        manager: web.Server,
        *,
        head_timeout: float,
        on_head_timeout: Callable[[bool], None],
        **kwargs: Any,
    ) -> None:
        super().__init__(manager, **kwargs)
        self._head_timeout = head_timeout
        self._on_head_timeout = on_head_timeout
        self._awaiting_head = True           # no request in progress, none queued
        self._head_started: float | None = None  # first byte of the awaited head
        self._head_bytes = 0
        self._head_handle: asyncio.TimerHandle | None = None
        self._keep_handler = False

    # -- state for draining -----------------------------------------------------------------

    @property
    def idle(self) -> bool:
        """No request in progress, none queued, no part of a head received."""
        return (self._awaiting_head and self._head_started is None
                and self._current_request is None and not self._messages)

    # -- the head deadline ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._head_started = self._loop.time()  # the first head: counted from the accept
        self._schedule()

    def keep_handler_on_disconnect(self) -> None:
        """The handler ends by itself when the client goes (a WebSocket relay notices and
        closes the upstream side): do not cancel it mid-way."""
        self._keep_handler = True

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel()
        if self._keep_handler:
            self._task_handler = None  # aiohttp cancels the handler task through this
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._upgraded or not data:
            super().data_received(data)
            return
        if self._head_started is None and self._expecting_head():
            self._head_started = self._loop.time()
            self._head_bytes = 0
        count = self._request_count
        super().data_received(data)
        if self._request_count != count:     # one or more heads are complete
            self._cancel()
            self._head_started = None
            self._head_bytes = 0
            self._awaiting_head = False
        elif self._head_started is not None:
            self._head_bytes += len(data)
            if self._awaiting_head and self._head_handle is None:
                self._schedule()

    def _expecting_head(self) -> bool:
        """Bytes arriving now start a new head (not the body of the current request)."""
        if self._awaiting_head:
            return True
        request = self._current_request
        return request is not None and request.content.is_eof() and not self._messages

    async def _handle_request(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super()._handle_request(*args, **kwargs)
        finally:
            self._awaiting_head = not self._messages
            if self._awaiting_head and self._head_started is not None:
                self._schedule()

    def _schedule(self) -> None:
        if self._head_handle is None and self._head_started is not None:
            self._head_handle = self._loop.call_at(
                self._head_started + self._head_timeout, self._head_deadline
            )

    def _cancel(self) -> None:
        if self._head_handle is not None:
            self._head_handle.cancel()
            self._head_handle = None

    def _head_deadline(self) -> None:
        self._head_handle = None
        if not self._awaiting_head or self._upgraded or self._head_started is None:
            return
        partial = self._head_bytes > 0
        self._on_head_timeout(partial)
        transport = self.transport
        if partial and transport is not None and not transport.is_closing():
            transport.write(_REQUEST_TIMEOUT)
        log.info("closing a connection: no complete request head within %.1fs "
                 "(%d bytes received)", self._head_timeout, self._head_bytes)
        self.force_close()


class GatewayHttpServer(web.Server):
    """aiohttp's low-level server, making ``GatewayProtocol`` connections."""

    head_timeout: float = 10.0
    on_head_timeout: Callable[[bool], None] = staticmethod(lambda partial: None)

    @classmethod
    def adopt(
        cls, server: web.Server, head_timeout: float, on_head_timeout: Callable[[bool], None]
    ) -> GatewayHttpServer:
        """The same server (handler, factory, settings) with our protocol."""
        adopted = cls.__new__(cls)
        adopted.__dict__.update(vars(server))
        adopted.head_timeout = head_timeout
        adopted.on_head_timeout = on_head_timeout
        return adopted

    def __call__(self) -> RequestHandler:
        return GatewayProtocol(
            self, loop=self._loop, head_timeout=self.head_timeout,
            on_head_timeout=self.on_head_timeout, **self._kwargs,
        )


class GatewayRunner(web.AppRunner):
    """An AppRunner whose connections have a head deadline, and that can drain."""

    def __init__(
        self,
        app: web.Application,
        *,
        head_timeout: float,
        on_head_timeout: Callable[[bool], None] = lambda partial: None,
        **kwargs: Any,
    ) -> None:
        super().__init__(app, **kwargs)
        self._head_settings = (head_timeout, on_head_timeout)

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        return GatewayHttpServer.adopt(server, *self._head_settings)

    async def drain(self, timeout: float) -> int:
        """Stop accepting, close idle connections, wait up to ``timeout`` for busy ones.

        Returns how many connections were still busy at the deadline (``cleanup()`` then
        cancels their handlers).
        """
        for site in list(self.sites):
            await site.stop()
        server = self.server
        if server is None:
            return 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            connections = server.connections
            for connection in connections:
                if isinstance(connection, GatewayProtocol) and connection.idle:
                    connection.force_close()
            busy = [c for c in server.connections if c.transport is not None]
            remaining = deadline - loop.time()
            if not busy or remaining <= 0:
                return len(busy)
            await asyncio.sleep(min(0.05, remaining))
