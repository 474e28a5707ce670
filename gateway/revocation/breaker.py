"""A circuit breaker for Redis commands: after repeated failures, fail fast for a while.

closed → (``threshold`` consecutive failures) → open → (``reset_after`` seconds) → half-open:
one trial call is let through; its success closes the breaker, its failure opens it again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

State = Literal["closed", "open", "half_open"]


class CircuitOpen(Exception):
    """Raised instead of calling a backend that is known to be failing."""


class CircuitBreaker:
    def __init__(
        self, threshold: int = 3, reset_after: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.reset_after = reset_after
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_at: float | None = None  # when the outstanding half-open trial began

    @property
    def state(self) -> State:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.reset_after:
            return "half_open"
        return "open"

    def before_call(self) -> None:
        """Raise CircuitOpen unless a call may go ahead now."""
        state = self.state
        if state == "closed":
            return
        if state == "half_open":
            now = self._clock()
            # one trial at a time; a trial that never reported back (cancelled) expires
            if self._trial_at is None or now - self._trial_at >= self.reset_after:
                self._trial_at = now
                return
        raise CircuitOpen("Redis circuit breaker open")

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._trial_at = None

    def record_failure(self) -> None:
        self._failures += 1
        if self._trial_at is not None or self._failures >= self.threshold:
            self._opened_at = self._clock()
        self._trial_at = None
