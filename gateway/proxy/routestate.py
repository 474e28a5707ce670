"""Mutable per-route proxy state, kept across requests (and across reloads that leave a
route's settings unchanged): connection pools, target health and balancing, active health
checks, concurrency limits, retry budgets, and the WebSocket sessions being relayed."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..metrics import GatewayMetrics
from ..runtime import Route, Runtime
from .clients import UpstreamClients
from .health import HealthChecks
from .limits import ConcurrencyLimit, RetryBudget
from .options import Pool
from .pool import PoolRegistry, PoolState

if TYPE_CHECKING:
    from .websocket import WebSocketRelay


def pool_with_targets(route: Route) -> Pool:
    """The route's pool; a route compiled without one is a pool of its single upstream."""
    pool = route.proxy.pool
    return pool if pool.targets else dataclasses.replace(pool, targets=(route.upstream,))


class RouteStates:
    def __init__(self, metrics: GatewayMetrics, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self._clock = clock
        self.clients = UpstreamClients()
        self.pools = PoolRegistry(clock)
        self.health = HealthChecks(metrics)
        self.websockets: set[WebSocketRelay] = set()
        self._limits: dict[tuple[str, int | None], ConcurrencyLimit] = {}
        self._budgets: dict[tuple[str, object], RetryBudget] = {}

    def pool_of(self, route: Route) -> PoolState:
        pool = pool_with_targets(route)
        state = self.pools.get(route.name, pool)
        if pool.check is not None:
            self.health.ensure(route.name, pool, state)
        return state

    def start(self, runtime: Runtime) -> None:
        for _, route in runtime.routes.entries():
            self.pool_of(route)

    def limit(self, route: Route) -> ConcurrencyLimit:
        key = (route.name, route.proxy.max_concurrent)
        limit = self._limits.get(key)
        if limit is None:
            limit = self._limits[key] = ConcurrencyLimit(route.proxy.max_concurrent)
        return limit

    def budget(self, route: Route) -> RetryBudget:
        policy = route.proxy.pool.retries
        key = (route.name, policy)
        budget = self._budgets.get(key)
        if budget is None:
            budget = self._budgets[key] = RetryBudget(
                policy.budget, policy.min_per_second, self._clock
            )
        return budget

    def retain(self, runtime: Runtime) -> None:
        routes = [route for _, route in runtime.routes.entries()]
        self.clients.retain((r.name, r.proxy.connection_key()) for r in routes)
        pool_keys = {(r.name, pool_with_targets(r).key()) for r in routes}
        self.pools.retain(pool_keys)
        self.health.retain(pool_keys)
        limits = {(r.name, r.proxy.max_concurrent) for r in routes}
        self._limits = {k: v for k, v in self._limits.items() if k in limits}
        budgets = {(r.name, r.proxy.pool.retries) for r in routes}
        self._budgets = {k: v for k, v in self._budgets.items() if k in budgets}
        self.start(runtime)

    async def close_websockets(self, timeout: float) -> None:
        if self.websockets:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await asyncio.gather(*(r.shutdown() for r in list(self.websockets)),
                                         return_exceptions=True)

    async def close(self) -> None:
        await self.health.close()
        await self.clients.close()
