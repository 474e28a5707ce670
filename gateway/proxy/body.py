"""The client's request body, streamed upstream under the route's limits.

- ``max_body_size``: a declared ``Content-Length`` over the limit is refused before anything is
  read (``check_declared``); a chunked body is counted as it streams and cut at the limit.
- ``idle_timeout``: a client that stops sending for that long is given up (408).
- ``Expect: 100-continue``: the interim ``100 Continue`` is written just before the first read,
  i.e. once the request is authorised and an upstream connection is open, never before.

The upstream deadline follows the body (``on_progress``), so a long upload is bounded by the
idle timeout rather than by the response-head timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from aiohttp import hdrs, web

from ..errors import ClientBodyTimeout, ExpectationFailed, GatewayError, PayloadTooLarge

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def check_declared(request: web.Request, limit: int) -> bool:
    """Refuse what the head alone shows to be unacceptable; True when a 100 is owed."""
    if limit and request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"Content-Length {request.content_length} over {limit} bytes")
    expect = request.headers.get(hdrs.EXPECT)
    if expect is None:
        return False
    if expect.strip().lower() != "100-continue":
        raise ExpectationFailed(f"unsupported Expect: {expect[:64]!r}")
    return request.version >= (1, 1) and request.body_exists


class RequestBody:
    """Iterate once (``chunks()``); ``error`` tells why it stopped early, if it did."""

    __slots__ = ("_content", "_continue_owed", "_idle", "_limit", "_writer", "error",
                 "on_progress", "received", "started")

    def __init__(
        self, request: web.Request, *, limit: int, idle_timeout: float, continue_owed: bool,
        on_progress: Callable[[bool], None] = lambda done: None,
    ) -> None:
        self._content = request.content
        self._writer = request.writer
        self._limit = limit
        self._idle = idle_timeout
        self._continue_owed = continue_owed
        self.on_progress = on_progress   # (done) after every chunk handed on, and at the end
        self.started = False
        self.received = 0
        self.error: GatewayError | None = None

    async def chunks(self) -> AsyncIterator[bytes]:
        assert not self.started, "a request body can be sent once"
        self.started = True
        if self._continue_owed:
            self._continue_owed = False
            await self._writer.write(CONTINUE)
        while True:
            self.on_progress(False)
            try:
                async with asyncio.timeout(self._idle):
                    chunk = await self._content.readany()
            except TimeoutError:
                self.error = ClientBodyTimeout(
                    f"no request body bytes for {self._idle}s ({self.received} received)"
                )
                raise self.error from None
            if not chunk:
                break
            self.received += len(chunk)
            if self._limit and self.received > self._limit:
                self.error = PayloadTooLarge(f"request body over {self._limit} bytes")
                raise self.error
            yield chunk
        self.on_progress(True)
