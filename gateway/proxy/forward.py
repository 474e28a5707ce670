"""Forwarding one authorised request upstream and streaming the answer back.

Upstream I/O only: the decision has been made before. Per request:

1. admission: the route's concurrent-request limit (503), the declared body size (413), the
   ``Expect`` header (417);
2. a target from the route's pool (round robin or least connections, ejected targets skipped);
3. the request, over the route's own connection pool: ``connect_timeout`` for the TCP/TLS
   connect, the route ``timeout`` for the response head counted from the end of the request
   body, ``idle_timeout`` while the body streams;
4. a connect failure of an idempotent request whose body has not been touched is retried on
   another target, within the route's retry budget;
5. the response is streamed back; a pause longer than ``idle_timeout`` in either direction
   ends it. Once the response has started, an upstream failure aborts the client connection,
   so the client sees a truncated message, never a spliced one.

Library errors are translated here, once: ``TimeoutError`` → 504, connect errors and other
``aiohttp.ClientError`` / ``OSError`` → 502.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiohttp
from aiohttp import hdrs, web
from multidict import CIMultiDict
from yarl import URL

from ..auth.principal import Principal
from ..errors import UpstreamTimeout, UpstreamUnavailable
from ..metrics import GatewayMetrics
from ..routing import RouteMatch
from ..runtime import Route, Runtime, Upstream
from .body import RequestBody, check_declared
from .headers import add_identity, request_headers
from .options import IDEMPOTENT_METHODS
from .pool import PoolState
from .relay import relay_response
from .routestate import RouteStates
from .targets import ConnectFailed, tls_arguments, upstream_url
from .websocket import is_websocket_upgrade, relay_websocket

__all__ = ["Forwarder", "upstream_url"]

log = logging.getLogger("gateway.proxy")

#: Target answers that count as failures for passive health.
_GATEWAY_FAILURES = frozenset({502, 503, 504})
T = TypeVar("T")


class Forwarder:
    def __init__(
        self,
        metrics: GatewayMetrics,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Every route gets its own client session (connection pool) from ``RouteStates``."""
        self.metrics = metrics
        self.state = RouteStates(metrics, clock)
        self.websockets = self.state.websockets

    def pool_of(self, route: Route) -> PoolState:
        return self.state.pool_of(route)

    def start(self, runtime: Runtime) -> None:
        """Set up every route's pool now (active health checks start at once)."""
        self.state.start(runtime)

    def retain(self, runtime: Runtime) -> None:
        """After a reload, with the new Runtime: drop the state of routes or settings that are
        gone, stop their health checks, close their connections once idle."""
        self.state.retain(runtime)

    async def close_websockets(self, timeout: float = 5.0) -> None:
        """Close every relayed WebSocket session with 1001 (shutdown), waiting ≤ timeout."""
        await self.state.close_websockets(timeout)

    async def close(self) -> None:
        await self.state.close()

    # -- one request ----------------------------------------------------------------------

    async def forward(
        self,
        request: web.Request,
        match: RouteMatch[Route],
        principal: Principal | None,
        request_id: tuple[str, str],
        *,
        trusted_peer: bool = False,
    ) -> web.StreamResponse:
        route = match.route
        opts = route.proxy
        limit = self.state.limit(route)
        limit.acquire(route.name)
        clients = self.state.clients
        lease = clients.acquire(route.name, opts.connection_key(), opts.max_connections)
        try:
            headers = self._headers(request, route, principal, request_id, trusted_peer)
            path = opts.rewrite.apply(match.path)
            pool = self.pool_of(route)
            if opts.websocket and is_websocket_upgrade(request):
                return await relay_websocket(
                    self, lease.session, request, route, pool, headers, path, match.query,
                    request_id,
                )
            continue_owed = check_declared(request, opts.max_body_size)
            body = None
            if request.body_exists:
                body = RequestBody(request, limit=opts.max_body_size,
                                   idle_timeout=opts.idle_timeout, continue_owed=continue_owed)

            async def send(target: Upstream) -> tuple[aiohttp.ClientResponse, int]:
                headers[hdrs.HOST] = self.host_header(request, route, target)
                upstream = await self._send(lease.session, request, route, target, headers,
                                            upstream_url(target, path, match.query), body)
                return upstream, upstream.status

            upstream, target = await self.attempts(request, route, pool, body, send)
            try:
                return await relay_response(
                    request, route, target, upstream, request_id, self.metrics
                )
            finally:
                pool.state(target).active -= 1
        finally:
            clients.release(lease)
            limit.release()

    def _headers(
        self, request: web.Request, route: Route, principal: Principal | None,
        request_id: tuple[str, str], trusted_peer: bool,
    ) -> CIMultiDict[str]:
        headers = request_headers(
            request.headers,
            stripped=route.stripped_headers,
            upstream_authority=route.upstream.authority,
            client_ip=request.remote,
            proto="https" if request.secure else "http",
            trusted_peer=trusted_peer,
        )
        if principal is not None:
            identity = route.identity
            add_identity(
                headers, principal, subject=identity.subject, client_id=identity.client_id,
                scopes=identity.scopes, issuer=identity.issuer,
            )
        if not route.proxy.forward_token:
            headers.popall(hdrs.AUTHORIZATION, None)
        headers.popall(hdrs.EXPECT, None)  # answered here, after the decision
        route.proxy.request_edits.apply(headers)
        headers[request_id[0]] = request_id[1]
        return headers

    def host_header(self, request: web.Request, route: Route, target: Upstream) -> str:
        opts = route.proxy
        if opts.host_header is not None:
            return opts.host_header
        if opts.preserve_host and request.headers.get(hdrs.HOST):
            return request.headers[hdrs.HOST]
        return target.authority

    async def attempts(
        self,
        request: web.Request,
        route: Route,
        pool: PoolState,
        body: RequestBody | None,
        send: Callable[[Upstream], Awaitable[tuple[T, int]]],
    ) -> tuple[T, Upstream]:
        """``send`` to a target of the pool; on a connect failure, to another one if allowed.

        The chosen target's ``active`` count is raised; the caller lowers it when done.
        """
        policy = route.proxy.pool.retries
        budget = self.state.budget(route)
        budget.deposit()
        tried: list[str] = []
        while True:
            target = pool.pick(tried)
            assert target is not None  # a retry is only made when a target is left
            state = pool.state(target)
            state.active += 1
            try:
                try:
                    result, status = await send(target)
                except BaseException:
                    state.active -= 1
                    raise
            except ConnectFailed as exc:
                self._failed(route, pool, target)
                tried.append(target.url)
                retry = (
                    request.method in IDEMPOTENT_METHODS
                    and (body is None or not body.started)
                    and len(tried) < min(policy.attempts, len(pool.targets))
                )
                if retry and budget.withdraw():
                    self.metrics.upstream_retries.labels(route.name, "retried").inc()
                    log.info("retrying %s on another target after: %s", route.name, exc)
                    continue
                if retry:
                    self.metrics.upstream_retries.labels(route.name, "budget_exhausted").inc()
                self.metrics.record_upstream_error(route.name, "upstream_unavailable")
                raise UpstreamUnavailable(f"{target.url}: {exc}") from None
            except TimeoutError:
                self._failed(route, pool, target)
                self.metrics.record_upstream_error(route.name, "upstream_timeout")
                raise UpstreamTimeout(
                    f"no response head from {target.url} within {route.timeout}s"
                ) from None
            except (aiohttp.ClientError, OSError) as exc:
                if body is not None and body.error is not None:
                    raise body.error from None  # the client's fault: 413 / 408
                self._failed(route, pool, target)
                self.metrics.record_upstream_error(route.name, "upstream_unavailable")
                raise UpstreamUnavailable(f"{target.url}: {type(exc).__name__}: {exc}") \
                    from None
            if status in _GATEWAY_FAILURES:
                self._failed(route, pool, target)
            else:
                pool.report_success(target)
            return result, target

    def _failed(self, route: Route, pool: PoolState, target: Upstream) -> None:
        if pool.report_failure(target):
            self.metrics.upstream_ejections.labels(route.name, target.url).inc()
            log.warning("target %s of route %s ejected for %.0fs", target.url, route.name,
                        pool.pool.passive.ejection_time)

    async def _send(
        self,
        session: aiohttp.ClientSession,
        request: web.Request,
        route: Route,
        target: Upstream,
        headers: CIMultiDict[str],
        url: URL,
        body: RequestBody | None,
    ) -> aiohttp.ClientResponse:
        opts = route.proxy
        tls = opts.pool.tls
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        async with asyncio.timeout(route.timeout) as deadline:
            if body is not None:
                def progress(done: bool) -> None:
                    # The head deadline starts when the body is sent; while it streams, a
                    # pause longer than idle_timeout (client or upstream side) ends it.
                    wait = route.timeout if done else opts.idle_timeout + 1.0
                    deadline.reschedule(loop.time() + wait)

                body.on_progress = progress
            try:
                upstream = await session.request(
                    request.method, url, headers=headers,
                    data=body.chunks() if body is not None else None,
                    allow_redirects=False, compress=None, chunked=None,
                    timeout=opts.client_timeout,
                    **tls_arguments(tls, target),
                )
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
                raise ConnectFailed(exc) from None
            finally:
                if body is not None:
                    body.on_progress = _no_progress
        self.metrics.record_upstream_response(route.name, time.perf_counter() - started)
        return upstream


def _no_progress(done: bool) -> None:
    return None
