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
import contextlib
import dataclasses
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
from .clients import UpstreamClients, create_session
from .headers import add_identity, request_headers
from .health import HealthChecks
from .limits import ConcurrencyLimit, RetryBudget
from .options import IDEMPOTENT_METHODS, Pool
from .pool import PoolRegistry, PoolState
from .relay import relay_response
from .targets import ConnectFailed, tls_arguments, upstream_url
from .websocket import WebSocketRelay, is_websocket_upgrade, relay_websocket

__all__ = ["Forwarder", "create_session", "upstream_url"]

log = logging.getLogger("gateway.proxy")

#: Target answers that count as failures for passive health.
_GATEWAY_FAILURES = frozenset({502, 503, 504})
T = TypeVar("T")


class Forwarder:
    def __init__(
        self,
        session: aiohttp.ClientSession | None,
        metrics: GatewayMetrics,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # ``session`` is kept for callers of the single-session era; every route has its own.
        self.metrics = metrics
        self._metrics = metrics
        self._clock = clock
        self.clients = UpstreamClients()
        self.pools = PoolRegistry(clock)
        self._limits: dict[tuple[str, int | None], ConcurrencyLimit] = {}
        self._budgets: dict[tuple[str, object], RetryBudget] = {}
        self.websockets: set[WebSocketRelay] = set()
        self.health = HealthChecks(metrics)

    # -- per-route state ----------------------------------------------------------------

    def pool_of(self, route: Route) -> PoolState:
        pool = _pool_with_targets(route)
        state = self.pools.get(route.name, pool)
        if pool.check is not None:
            self.health.ensure(route.name, pool, state)
        return state

    def start(self, runtime: Runtime) -> None:
        """Set up every route's pool now (active health checks start at once)."""
        for _, route in runtime.routes.entries():
            self.pool_of(route)

    def _limit(self, route: Route) -> ConcurrencyLimit:
        key = (route.name, route.proxy.max_concurrent)
        limit = self._limits.get(key)
        if limit is None:
            limit = self._limits[key] = ConcurrencyLimit(route.proxy.max_concurrent)
        return limit

    def _budget(self, route: Route) -> RetryBudget:
        policy = route.proxy.pool.retries
        key = (route.name, policy)
        budget = self._budgets.get(key)
        if budget is None:
            budget = self._budgets[key] = RetryBudget(
                policy.budget, policy.min_per_second, self._clock
            )
        return budget

    def retain(self, runtime: Runtime) -> None:
        """After a reload (call it with the new Runtime): drop the state of routes or
        settings that are gone, stop their health checks, close their idle connections."""
        routes = [route for _, route in runtime.routes.entries()]
        self.clients.retain((r.name, r.proxy.connection_key()) for r in routes)
        pool_keys = {(r.name, _pool_with_targets(r).key()) for r in routes}
        self.pools.retain(pool_keys)
        self.health.retain(pool_keys)
        limits = {(r.name, r.proxy.max_concurrent) for r in routes}
        self._limits = {k: v for k, v in self._limits.items() if k in limits}
        budgets = {(r.name, r.proxy.pool.retries) for r in routes}
        self._budgets = {k: v for k, v in self._budgets.items() if k in budgets}

    async def close_websockets(self, timeout: float = 5.0) -> None:
        """Close every relayed WebSocket session with 1001 (shutdown), waiting ≤ timeout."""
        if self.websockets:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await asyncio.gather(*(r.shutdown() for r in list(self.websockets)),
                                         return_exceptions=True)

    async def close(self) -> None:
        await self.health.close()
        await self.clients.close()

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
        limit = self._limit(route)
        limit.acquire(route.name)
        lease = self.clients.acquire(route.name, opts.connection_key(), opts.max_connections)
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
                    request, route, target, upstream, request_id, self._metrics
                )
            finally:
                pool.state(target).active -= 1
        finally:
            self.clients.release(lease)
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
        if route.proxy.preserve_host and request.headers.get(hdrs.HOST):
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
        budget = self._budget(route)
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
                    self._metrics.upstream_retries.labels(route.name, "retried").inc()
                    log.info("retrying %s on another target after: %s", route.name, exc)
                    continue
                if retry:
                    self._metrics.upstream_retries.labels(route.name, "budget_exhausted").inc()
                self._metrics.record_upstream_error(route.name, "upstream_unavailable")
                raise UpstreamUnavailable(f"{target.url}: {exc}") from None
            except TimeoutError:
                self._failed(route, pool, target)
                self._metrics.record_upstream_error(route.name, "upstream_timeout")
                raise UpstreamTimeout(
                    f"no response head from {target.url} within {route.timeout}s"
                ) from None
            except (aiohttp.ClientError, OSError) as exc:
                if body is not None and body.error is not None:
                    raise body.error from None  # the client's fault: 413 / 408
                self._failed(route, pool, target)
                self._metrics.record_upstream_error(route.name, "upstream_unavailable")
                raise UpstreamUnavailable(f"{target.url}: {type(exc).__name__}: {exc}") \
                    from None
            if status in _GATEWAY_FAILURES:
                self._failed(route, pool, target)
            else:
                pool.report_success(target)
            return result, target

    def _failed(self, route: Route, pool: PoolState, target: Upstream) -> None:
        if pool.report_failure(target):
            self._metrics.upstream_ejections.labels(route.name, target.url).inc()
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
                    timeout=aiohttp.ClientTimeout(total=None, sock_connect=opts.connect_timeout),
                    **tls_arguments(tls, target),
                )
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
                raise ConnectFailed(exc) from None
            finally:
                if body is not None:
                    body.on_progress = _no_progress
        self._metrics.record_upstream_response(route.name, time.perf_counter() - started)
        return upstream


def _no_progress(done: bool) -> None:
    return None


def _pool_with_targets(route: Route) -> Pool:
    pool = route.proxy.pool
    return pool if pool.targets else dataclasses.replace(pool, targets=(route.upstream,))
