"""The circuit breaker in front of Redis, on an injected clock."""

from __future__ import annotations

import pytest

from gateway.revocation.breaker import CircuitBreaker, CircuitOpen


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_it_opens_after_the_threshold_and_lets_one_trial_through_later() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=3, reset_after=2.0, clock=clock)
    for _ in range(2):
        breaker.before_call()
        breaker.record_failure()
    assert breaker.state == "closed"
    breaker.before_call()
    breaker.record_failure()
    assert breaker.state == "open"
    with pytest.raises(CircuitOpen):
        breaker.before_call()

    clock.now = 2.0
    assert breaker.state == "half_open"
    breaker.before_call()              # the one trial
    with pytest.raises(CircuitOpen):   # nobody else meanwhile
        breaker.before_call()
    breaker.record_failure()           # the trial failed: open again, for reset_after
    assert breaker.state == "open"
    clock.now = 4.0
    breaker.before_call()
    breaker.record_success()
    assert breaker.state == "closed"
    breaker.before_call()


def test_a_success_resets_the_failure_count() -> None:
    breaker = CircuitBreaker(threshold=2, clock=Clock())
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state == "closed"


def test_a_trial_that_never_reports_back_expires() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, reset_after=1.0, clock=clock)
    breaker.record_failure()
    clock.now = 1.0
    breaker.before_call()  # e.g. cancelled: neither success nor failure is recorded
    with pytest.raises(CircuitOpen):
        breaker.before_call()
    clock.now = 2.0
    breaker.before_call()
