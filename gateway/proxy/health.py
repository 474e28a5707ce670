"""Active health checks of pool targets (optional, per route: ``upstream.health_check``).

One background task per checked pool: every ``interval`` it sends ``GET <target base
path><check path>`` to each target; a 2xx or 3xx answer within ``timeout`` is a success.
``unhealthy_threshold`` failures in a row mark a target down (the balancer skips it),
``healthy_threshold`` successes in a row mark it up again. Passive ejection works alongside.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiohttp

from ..metrics import GatewayMetrics
from ..runtime import Upstream
from .clients import create_session
from .options import HealthCheck, Pool
from .pool import PoolState, TargetState
from .targets import tls_arguments, upstream_url

log = logging.getLogger("gateway.health")

Key = tuple[str, tuple[object, ...]]


class HealthChecks:
    def __init__(self, metrics: GatewayMetrics) -> None:
        self._metrics = metrics
        self._tasks: dict[Key, asyncio.Task[None]] = {}
        self._session: aiohttp.ClientSession | None = None

    def ensure(self, route: str, pool: Pool, state: PoolState) -> None:
        """Start checking this pool (once per route and pool settings)."""
        if pool.check is None:
            return
        key = (route, pool.key())
        if key not in self._tasks:
            self._tasks[key] = asyncio.get_running_loop().create_task(
                self._run(route, pool, pool.check, state), name=f"health-check {route}"
            )

    def retain(self, keys: set[Key]) -> None:
        for key in [k for k in self._tasks if k not in keys]:
            self._tasks.pop(key).cancel()

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _run(self, route: str, pool: Pool, check: HealthCheck, state: PoolState) -> None:
        if self._session is None:
            self._session = create_session()
        streaks = {t.url: 0 for t in pool.targets}  # >0 successes in a row, <0 failures
        while True:
            results = await asyncio.gather(
                *(self._probe(pool, check, t) for t in pool.targets)
            )
            for target, ok in zip(pool.targets, results, strict=True):
                self._record(route, check, state.state(target), streaks, ok)
            await asyncio.sleep(check.interval)

    async def _probe(self, pool: Pool, check: HealthCheck, target: Upstream) -> bool:
        assert self._session is not None
        url = upstream_url(target, check.path, check.query)
        try:
            async with asyncio.timeout(check.timeout), self._session.get(
                url, headers={"Host": target.authority}, allow_redirects=False,
                **tls_arguments(pool.tls, target),
            ) as response:
                return 200 <= response.status < 400
        except (aiohttp.ClientError, OSError, TimeoutError):
            return False

    def _record(self, route: str, check: HealthCheck, state: TargetState,
                streaks: dict[str, int], ok: bool) -> None:
        url = state.target.url
        self._metrics.upstream_health_checks.labels(route, url, "ok" if ok else "fail").inc()
        streak = streaks[url]
        streak = (max(streak, 0) + 1) if ok else (min(streak, 0) - 1)
        streaks[url] = streak
        if ok and not state.checked_up and streak >= check.healthy_threshold:
            state.checked_up = True
            log.info("target %s of route %s is healthy again", url, route)
        elif not ok and state.checked_up and -streak >= check.unhealthy_threshold:
            state.checked_up = False
            log.warning("target %s of route %s failed %d health checks: marked down",
                        url, route, -streak)
        self._metrics.upstream_target_up.labels(route, url).set(1 if state.checked_up else 0)
