"""Per-route admission: a concurrent-request limit and a retry budget.

``RetryBudget`` keeps retries a bounded share of a route's traffic, so a failing pool is not
hit with a multiple of its normal load (Finagle's retry budget): every request deposits
``budget`` tokens, every retry withdraws one, and ``min_per_second`` tokens trickle in so a
quiet route can still retry. The balance is capped at ten seconds' worth.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..errors import RouteOverloaded


class ConcurrencyLimit:
    """At most ``limit`` requests of a route in progress; ``None``: no limit."""

    __slots__ = ("active", "limit")

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.active = 0

    def acquire(self, route: str) -> None:
        if self.limit is not None and self.active >= self.limit:
            raise RouteOverloaded(f"route {route!r} has {self.active} requests in progress "
                                  f"(max_concurrent_requests: {self.limit})")
        self.active += 1

    def release(self) -> None:
        self.active -= 1


class RetryBudget:
    __slots__ = ("_balance", "_cap", "_clock", "_min_per_second", "_ratio", "_updated")

    def __init__(
        self, ratio: float, min_per_second: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ratio = ratio
        self._min_per_second = min_per_second
        self._clock = clock
        self._cap = max(10.0 * min_per_second, 10.0 * ratio, 1.0)
        self._balance = 10.0 * min_per_second if min_per_second else 0.0
        self._updated = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._balance = min(
            self._cap, self._balance + (now - self._updated) * self._min_per_second
        )
        self._updated = now

    def deposit(self) -> None:
        """One request was made."""
        self._refill()
        self._balance = min(self._cap, self._balance + self._ratio)

    def withdraw(self) -> bool:
        """May one retry be made now?"""
        self._refill()
        if self._balance >= 1.0:
            self._balance -= 1.0
            return True
        return False
