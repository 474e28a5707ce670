"""Mutable state of upstream pools: target health and balancing.

Passive health: a target failing ``max_failures`` times in a row (connect errors, response-head
timeouts, 502/503/504 answers) is ejected for ``ejection_time``; afterwards it is on probation:
one more failure ejects it again, one success clears it. Active checks (``proxy.health``)
mark targets down and up. When every target is out, all of them are used anyway (a guess
beats a certain 502): the target whose ejection ends first is tried first.

State is keyed by the pool's settings (``Pool.key()``), so it survives a reload that leaves the
pool unchanged. The clock is injectable for tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass

from ..runtime import Upstream
from .options import Pool

Clock = Callable[[], float]


@dataclass(slots=True)
class TargetState:
    target: Upstream
    failures: int = 0            # consecutive
    ejected_until: float = 0.0
    probation: bool = False      # back from an ejection: the next failure ejects again
    checked_up: bool = True      # the last active-check verdict
    active: int = 0              # requests in progress (least_conn)

    def available(self, now: float) -> bool:
        return self.checked_up and self.ejected_until <= now


class PoolState:
    def __init__(self, pool: Pool, clock: Clock = time.monotonic) -> None:
        self.pool = pool
        self.targets = tuple(TargetState(t) for t in pool.targets)
        self._by_url = {s.target.url: s for s in self.targets}
        self._clock = clock
        self._next = 0

    def state(self, target: Upstream) -> TargetState:
        return self._by_url[target.url]

    def pick(self, exclude: Collection[str] = ()) -> Upstream | None:
        """The next target not in ``exclude`` (URLs), or None when none is left."""
        now = self._clock()
        targets = self.targets
        if not exclude and len(targets) == 1:   # the common case, without allocations
            only = targets[0]
            if only.available(now):
                self._next += 1
            return only.target
        candidates = [s for s in targets if s.target.url not in exclude] if exclude \
            else targets
        if not candidates:
            return None
        available = [s for s in candidates if s.available(now)]
        if not available:   # everything is out: try anyway, soonest back first
            return min(candidates, key=lambda s: (not s.checked_up, s.ejected_until)).target
        if self.pool.balance == "least_conn":
            low = min(s.active for s in available)
            available = [s for s in available if s.active == low]
        chosen = available[self._next % len(available)]
        self._next += 1
        return chosen.target

    def report_success(self, target: Upstream) -> None:
        state = self._by_url[target.url]
        state.failures = 0
        state.probation = False

    def report_failure(self, target: Upstream) -> bool:
        """Count a failure; True when it ejects the target now."""
        passive = self.pool.passive
        state = self._by_url[target.url]
        now = self._clock()
        if passive.max_failures == 0 or state.ejected_until > now:
            return False
        state.failures += 1
        if state.probation or state.failures >= passive.max_failures:
            state.ejected_until = now + passive.ejection_time
            state.failures = 0
            state.probation = True
            return True
        return False


class PoolRegistry:
    """PoolState per (route, pool settings); survives reloads that keep a pool unchanged."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._states: dict[tuple[str, tuple[object, ...]], PoolState] = {}

    def get(self, route: str, pool: Pool) -> PoolState:
        key = (route, pool.key())
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = PoolState(pool, self._clock)
        return state

    def retain(self, keys: Iterable[tuple[str, tuple[object, ...]]]) -> None:
        """Forget the state of pools that are no longer configured."""
        keep = set(keys)
        for key in [k for k in self._states if k not in keep]:
            del self._states[key]
