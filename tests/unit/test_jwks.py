"""JwksCache with a fake document source, a settable clock and a sleep that never sleeps."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from gateway.auth.fetch import Fetched, FetchError, FetchLimits
from gateway.auth.jwks import RETRY_MAX, JwksCache, JwksSettings
from gateway.errors import KeysUnavailable
from gateway.metrics import GatewayMetrics
from tests.fixtures.keys import KeyPair

ISS = "https://idp.unit/"
T0 = 1_700_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class Source:
    """Answers like a JWKS endpoint: a document, an error, or waits until released."""

    def __init__(self, *keys: KeyPair) -> None:
        self.keys = list(keys)
        self.calls = 0
        self.error: FetchError | None = None
        self.document: Any = None
        self.max_age: float | None = None
        self.gate: asyncio.Event | None = None

    async def __call__(self) -> Fetched:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        doc = self.document if self.document is not None else {
            "keys": [k.jwk() for k in self.keys]}
        return Fetched(doc, self.max_age, "https://idp.unit/jwks")


def settings(**overrides: Any) -> JwksSettings:
    values: dict[str, Any] = {
        "issuer": ISS, "jwks_uri": "https://idp.unit/jwks",
        "algorithms": frozenset({"RS256", "ES256"}), "limits": FetchLimits(),
        "refresh_interval": 600.0, "min_refresh_interval": 60.0,
        "max_refresh_interval": 86_400.0, "cooldown": 10.0, "max_stale": 3600.0,
    }
    values.update(overrides)
    return JwksSettings(**values)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def metrics() -> GatewayMetrics:
    return GatewayMetrics()


@pytest.fixture
def make_cache(
    clock: Clock, metrics: GatewayMetrics
) -> Callable[..., tuple[JwksCache, Source]]:
    def factory(*keys: KeyPair, sleep: Callable[[float], Awaitable[None]] | None = None,
                **overrides: Any) -> tuple[JwksCache, Source]:
        source = Source(*keys)
        kwargs: dict[str, Any] = {"clock": clock}
        if sleep is not None:
            kwargs["sleep"] = sleep
        return JwksCache(settings(**overrides), source, metrics, **kwargs), source

    return factory


def sample(metrics: GatewayMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, {"issuer": ISS, **labels}) or 0.0


# -- freshness, scheduling, staleness ------------------------------------------------------


async def test_no_keys_before_the_first_fetch(make_cache: Any, rsa_key: KeyPair) -> None:
    cache, _ = make_cache(rsa_key)
    with pytest.raises(KeysUnavailable):
        cache.key_set()
    assert cache.due_in(T0) == 0  # due at once


async def test_a_fetch_loads_the_keys_and_schedules_the_next_at_80_percent(
    make_cache: Any, rsa_key: KeyPair, ec_key: KeyPair, metrics: GatewayMetrics
) -> None:
    cache, _ = make_cache(rsa_key, ec_key)
    await cache.refresh()
    keys = cache.key_set()
    assert keys.kids() == ["ec-1", "rsa-1"]
    assert keys.generation == 1
    assert cache.due_in(T0) == pytest.approx(480.0)
    assert sample(metrics, "gateway_jwks_keys") == 2
    assert sample(metrics, "gateway_jwks_last_success_timestamp_seconds") == T0
    assert sample(metrics, "gateway_jwks_refreshes_total", result="success") == 1


@pytest.mark.parametrize(
    ("max_age", "fresh_for"),
    [
        pytest.param(None, 600.0, id="no Cache-Control: refresh_interval"),
        pytest.param(3600.0, 3600.0, id="max-age within the bounds is honoured"),
        pytest.param(5.0, 60.0, id="max-age below the lower bound is raised to it"),
        pytest.param(0.0, 60.0, id="no-cache counts as the lower bound"),
        pytest.param(10**7, 86_400.0, id="max-age above the upper bound is cut to it"),
    ],
)
async def test_cache_control_max_age_within_bounds(
    make_cache: Any, rsa_key: KeyPair, clock: Clock, max_age: float | None, fresh_for: float
) -> None:
    cache, source = make_cache(rsa_key)
    source.max_age = max_age
    await cache.refresh()
    assert cache.due_in(T0) == pytest.approx(0.8 * fresh_for)
    clock.now = T0 + fresh_for + 3600.0  # fresh period + max_stale: still usable
    assert cache.key_set().kids() == ["rsa-1"]
    clock.now += 0.001
    with pytest.raises(KeysUnavailable):
        cache.key_set()


async def test_failures_keep_the_keys_and_back_off_then_fail_closed(
    make_cache: Any, rsa_key: KeyPair, clock: Clock, metrics: GatewayMetrics
) -> None:
    cache, source = make_cache(rsa_key)
    await cache.refresh()
    source.error = FetchError("timeout", "no answer")
    delays = []
    for _ in range(9):
        clock.now += 1
        await cache.refresh()
        delays.append(cache.due_in(clock.now))
        assert cache.key_set().kids() == ["rsa-1"]
    assert delays == [1, 2, 4, 8, 16, 32, RETRY_MAX, RETRY_MAX, RETRY_MAX]
    assert sample(metrics, "gateway_jwks_refreshes_total", result="timeout") == 9
    assert cache.status(clock.now)["consecutive_failures"] == 9
    clock.now = T0 + 600 + 3600 + 1
    with pytest.raises(KeysUnavailable, match="stale"):
        cache.key_set()
    source.error = None
    await cache.refresh()
    assert cache.key_set().kids() == ["rsa-1"]
    assert cache.status(clock.now)["consecutive_failures"] == 0


@pytest.mark.parametrize(
    "document",
    [
        pytest.param({"keys": []}, id="an empty key list"),
        pytest.param({"keys": "nope"}, id="keys that are not a list"),
        pytest.param([1, 2], id="a JSON list"),
        pytest.param({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}, id="only a symmetric key"),
    ],
)
async def test_a_malformed_document_never_replaces_good_keys(
    make_cache: Any, rsa_key: KeyPair, metrics: GatewayMetrics, document: Any
) -> None:
    cache, source = make_cache(rsa_key)
    await cache.refresh()
    source.document = document
    await cache.refresh()
    assert cache.key_set().kids() == ["rsa-1"]
    assert sample(metrics, "gateway_jwks_refreshes_total", result="invalid") == 1


async def test_the_generation_changes_only_when_the_key_set_does(
    make_cache: Any, rsa_key: KeyPair, ec_key: KeyPair, other_rsa_key: KeyPair
) -> None:
    cache, source = make_cache(rsa_key)
    await cache.refresh()
    await cache.refresh()
    assert cache.key_set().generation == 1
    source.keys = [rsa_key, ec_key]
    await cache.refresh()
    assert cache.key_set().generation == 2
    source.keys = [other_rsa_key]  # same kid, other key material: a change too
    await cache.refresh()
    assert cache.key_set().generation == 3
    assert cache.key_set().kids() == ["rsa-1"]


# -- unknown kids: single flight and cooldown -----------------------------------------------


async def test_refetches_are_single_flight(make_cache: Any, rsa_key: KeyPair) -> None:
    cache, source = make_cache(rsa_key)
    source.gate = asyncio.Event()
    waiting = [asyncio.create_task(cache.refetch("unknown kid")) for _ in range(50)]
    await asyncio.sleep(0)
    source.gate.set()
    assert await asyncio.gather(*waiting) == [True] * 50
    assert source.calls == 1


async def test_refetches_respect_the_cooldown(
    make_cache: Any, rsa_key: KeyPair, clock: Clock, metrics: GatewayMetrics
) -> None:
    cache, source = make_cache(rsa_key)
    await cache.refresh()  # the start-up fetch does not start a cooldown
    assert await cache.refetch("unknown kid") is True
    clock.now += 9.9
    assert await cache.refetch("unknown kid") is False
    assert await cache.refetch("unknown kid") is False
    clock.now += 0.1
    assert await cache.refetch("unknown kid") is True
    assert source.calls == 3
    assert sample(metrics, "gateway_jwks_unknown_kid_total", action="refetch") == 2
    assert sample(metrics, "gateway_jwks_unknown_kid_total", action="cooldown") == 2


async def test_a_refetch_joins_a_background_fetch_in_flight(
    make_cache: Any, rsa_key: KeyPair
) -> None:
    cache, source = make_cache(rsa_key, cooldown=3600.0)
    source.gate = asyncio.Event()
    background = asyncio.create_task(cache.refresh())
    await asyncio.sleep(0)
    joined = asyncio.create_task(cache.refetch("no keys"))
    await asyncio.sleep(0)
    source.gate.set()
    await background
    assert await joined is True
    assert source.calls == 1


async def test_a_waiter_that_goes_away_does_not_cancel_the_shared_fetch(
    make_cache: Any, rsa_key: KeyPair
) -> None:
    cache, source = make_cache(rsa_key)
    source.gate = asyncio.Event()
    impatient = asyncio.create_task(cache.refetch("unknown kid"))
    patient = asyncio.create_task(cache.refresh())
    await asyncio.sleep(0)
    impatient.cancel()
    source.gate.set()
    await patient
    assert cache.key_set().kids() == ["rsa-1"]
    assert source.calls == 1


# -- the background loop -------------------------------------------------------------------


async def test_the_background_loop_follows_the_schedule_without_sleeping(
    make_cache: Any, rsa_key: KeyPair, clock: Clock
) -> None:
    asked: list[float] = []
    done = asyncio.Event()

    async def fake_sleep(seconds: float) -> None:
        asked.append(seconds)
        clock.now += seconds
        if len(asked) == 4:
            done.set()
            await asyncio.Event().wait()  # park the loop until it is closed

    cache, source = make_cache(rsa_key, sleep=fake_sleep)
    source.max_age = 100.0
    cache.start()
    cache.start()  # idempotent
    await asyncio.wait_for(done.wait(), 5)
    assert asked == [pytest.approx(80.0)] * 4
    assert source.calls == 4
    assert cache.started
    await cache.close()
    assert not cache.started


async def test_the_background_loop_survives_an_unexpected_error(
    make_cache: Any, rsa_key: KeyPair, clock: Clock
) -> None:
    asked: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        asked.append(seconds)
        clock.now += seconds
        if len(asked) == 2:
            await asyncio.Event().wait()

    cache, source = make_cache(rsa_key, sleep=fake_sleep)
    source.error = RuntimeError("a bug in a parser")  # type: ignore[assignment]
    cache.start()
    for _ in range(100):
        if len(asked) == 2:
            break
        await asyncio.sleep(0)
    assert asked == [1.0, 2.0]  # retried with back-off, the loop is alive
    await cache.close()


async def test_wait_ready_is_bounded(make_cache: Any, rsa_key: KeyPair) -> None:
    cache, source = make_cache(rsa_key)
    source.gate = asyncio.Event()
    task = asyncio.create_task(cache.refresh())
    assert await cache.wait_ready(0.01) is False
    source.gate.set()
    await task
    assert await cache.wait_ready(0.01) is True
