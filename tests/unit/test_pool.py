"""Pool state (balancing, passive health) and the retry budget, with an injected clock."""

from __future__ import annotations

import pytest

from gateway.errors import RouteOverloaded
from gateway.proxy.limits import ConcurrencyLimit, RetryBudget
from gateway.proxy.options import PassiveHealth, Pool
from gateway.proxy.pool import PoolRegistry, PoolState
from gateway.runtime import Upstream


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def target(n: int) -> Upstream:
    return Upstream("http", "127.0.0.1", 8000 + n, "", f"127.0.0.1:{8000 + n}",
                    f"http://127.0.0.1:{8000 + n}")


A, B, C = target(1), target(2), target(3)


def pool(*targets: Upstream, balance: str = "round_robin", max_failures: int = 2,
         ejection: float = 10.0) -> Pool:
    return Pool(targets, balance, PassiveHealth(max_failures, ejection))


def test_round_robin_cycles_through_the_targets() -> None:
    state = PoolState(pool(A, B, C), Clock())
    assert [state.pick() for _ in range(6)] == [A, B, C, A, B, C]


def test_pick_skips_excluded_targets_and_ends_with_none() -> None:
    state = PoolState(pool(A, B), Clock())
    assert state.pick([A.url]) == B
    assert state.pick([A.url, B.url]) is None


def test_least_conn_prefers_the_target_with_fewest_active_requests() -> None:
    state = PoolState(pool(A, B, C, balance="least_conn"), Clock())
    state.state(A).active = 2
    state.state(B).active = 1
    state.state(C).active = 1
    assert {state.pick() for _ in range(4)} == {B, C}


def test_consecutive_failures_eject_for_the_ejection_time_then_probation() -> None:
    clock = Clock()
    state = PoolState(pool(A, B, max_failures=2, ejection=10), clock)
    assert state.report_failure(A) is False
    assert state.report_failure(A) is True  # the second in a row ejects
    assert [state.pick() for _ in range(3)] == [B, B, B]
    clock.now += 10.0
    assert A in {state.pick() for _ in range(2)}  # back after the ejection time
    assert state.report_failure(A) is True  # on probation: one failure ejects again
    clock.now += 10.0
    state.report_success(A)  # a success clears the probation
    assert state.report_failure(A) is False


def test_a_success_resets_the_failure_count() -> None:
    state = PoolState(pool(A, B, max_failures=2), Clock())
    state.report_failure(A)
    state.report_success(A)
    assert state.report_failure(A) is False


def test_zero_max_failures_never_ejects() -> None:
    state = PoolState(pool(A, B, max_failures=0), Clock())
    assert not any(state.report_failure(A) for _ in range(10))


def test_when_every_target_is_out_the_soonest_back_is_used() -> None:
    clock = Clock()
    state = PoolState(pool(A, B, max_failures=1, ejection=10), clock)
    state.report_failure(A)
    clock.now += 5
    state.report_failure(B)
    assert state.pick() == A  # A's ejection ends first


def test_targets_marked_down_by_health_checks_are_skipped() -> None:
    state = PoolState(pool(A, B), Clock())
    state.state(A).checked_up = False
    assert [state.pick() for _ in range(3)] == [B, B, B]


def test_registry_keeps_state_for_an_unchanged_pool_only() -> None:
    registry = PoolRegistry(Clock())
    first = registry.get("r", pool(A, B))
    assert registry.get("r", pool(A, B)) is first
    assert registry.get("r", pool(A, C)) is not first
    registry.retain([("r", pool(A, C).key())])
    assert registry.get("r", pool(A, B)) is not first


def test_retry_budget_allows_its_share_of_requests() -> None:
    clock = Clock()
    budget = RetryBudget(0.2, 0.0, clock)
    allowed = 0
    for _ in range(100):
        budget.deposit()
        allowed += budget.withdraw()
    assert allowed == 20


def test_retry_budget_refills_at_the_minimum_rate() -> None:
    clock = Clock()
    budget = RetryBudget(0.0, 2.0, clock)
    while budget.withdraw():
        pass
    assert not budget.withdraw()
    clock.now += 1.0
    assert [budget.withdraw() for _ in range(3)] == [True, True, False]


def test_concurrency_limit_refuses_beyond_its_limit() -> None:
    limit = ConcurrencyLimit(2)
    limit.acquire("r")
    limit.acquire("r")
    with pytest.raises(RouteOverloaded):
        limit.acquire("r")
    limit.release()
    limit.acquire("r")
    assert ConcurrencyLimit(None).limit is None


def test_a_single_target_is_picked_even_when_ejected_unless_excluded() -> None:
    clock = Clock()
    state = PoolState(pool(A, max_failures=1, ejection=10), clock)
    assert state.pick() == A
    assert state.report_failure(A) is True
    assert state.pick() == A  # everything is out: tried anyway
    assert state.pick([A.url]) is None
    state.state(A).checked_up = False
    clock.now += 10.0
    assert state.pick() == A
