"""Upstream pools: balancing, passive and active health, connect retries with a budget."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.fixtures.gateway import base_config
from tests.fixtures.upstream import Upstream, start_upstream
from tests.fixtures.waiting import eventually

pytestmark = pytest.mark.integration


def refused_url() -> str:
    """A loopback port nobody listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
async def targets() -> AsyncIterator[list[Upstream]]:
    started = [await start_upstream() for _ in range(3)]
    try:
        yield [up for up, _ in started]
    finally:
        for _, runner in started:
            await runner.cleanup()


async def gateway_with_pool(start_gateway, tmp_path, upstream, rsa_key, ec_key, pool,
                            **route):  # type: ignore[no-untyped-def]
    config = base_config(tmp_path, upstream, rsa_key, ec_key)
    config["routes"].append({"name": "pool", "match": {"path_prefix": "/pool"},
                             "upstream": pool, "auth": "none", **route})
    return await start_gateway(config)


async def get(url: str, method: str = "GET") -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.request(method, url) as r:
        return r.status, r.headers.get("X-Upstream", "")


async def test_round_robin_spreads_requests_evenly(start_gateway, tmp_path, upstream,
                                                   rsa_key, ec_key, targets):
    gw = await gateway_with_pool(start_gateway, tmp_path, upstream, rsa_key, ec_key,
                                 {"targets": [t.url for t in targets]})
    for i in range(6):
        assert (await get(f"{gw.url}/pool/{i}"))[0] == 200
    assert [len(t.hits) for t in targets] == [2, 2, 2]


async def test_least_conn_avoids_the_busy_target(start_gateway, tmp_path, upstream,
                                                 rsa_key, ec_key, targets):
    a, b = targets[:2]
    gw = await gateway_with_pool(start_gateway, tmp_path, upstream, rsa_key, ec_key,
                                 {"targets": [a.url, b.url], "balance": "least_conn"})
    slow = asyncio.create_task(get(f"{gw.url}/pool/slow?_behave=slow&delay=1"))
    await eventually(lambda: len(a.hits) + len(b.hits) == 1)
    busy, idle = (a, b) if a.hits else (b, a)
    for i in range(4):
        assert (await get(f"{gw.url}/pool/{i}"))[0] == 200
    assert (len(busy.hits), len(idle.hits)) == (1, 4)
    assert (await slow)[0] == 200


async def test_idempotent_request_is_retried_on_another_target_after_a_refused_connect(
    start_gateway, tmp_path, upstream, rsa_key, ec_key, targets
):
    good = targets[0]
    gw = await gateway_with_pool(
        start_gateway, tmp_path, upstream, rsa_key, ec_key,
        {"targets": [refused_url(), good.url],
         "passive_health": {"max_failures": 2, "ejection_time": "1m"}},
    )
    statuses = [(await get(f"{gw.url}/pool/{i}"))[0] for i in range(8)]
    assert statuses == [200] * 8
    assert len(good.hits) == 8
    # Two refused connects eject the dead target: later requests go straight to the good one.
    assert gw.sample("gateway_upstream_retries_total",
                     {"route": "pool", "result": "retried"}) == 2


async def test_ejection_is_counted_per_target(start_gateway, tmp_path, upstream, rsa_key,
                                              ec_key, targets):
    dead = refused_url()
    gw = await gateway_with_pool(
        start_gateway, tmp_path, upstream, rsa_key, ec_key,
        {"targets": [dead, targets[0].url],
         "passive_health": {"max_failures": 2, "ejection_time": "1m"}},
    )
    for i in range(6):
        await get(f"{gw.url}/pool/{i}")
    assert gw.sample("gateway_upstream_ejections_total",
                     {"route": "pool", "target": dead}) == 1


async def test_non_idempotent_request_is_not_retried(start_gateway, tmp_path, upstream,
                                                     rsa_key, ec_key, targets):
    gw = await gateway_with_pool(start_gateway, tmp_path, upstream, rsa_key, ec_key,
                                 {"targets": [refused_url(), targets[0].url]})
    assert (await get(f"{gw.url}/pool/order", "POST"))[0] == 502
    assert targets[0].hits == []


async def test_a_target_answering_503_is_not_retried(start_gateway, tmp_path, upstream,
                                                     rsa_key, ec_key, targets):
    a, b = targets[:2]
    gw = await gateway_with_pool(start_gateway, tmp_path, upstream, rsa_key, ec_key,
                                 {"targets": [a.url, b.url]})
    assert (await get(f"{gw.url}/pool/x?_behave=status&code=503"))[0] == 503
    assert len(a.hits) + len(b.hits) == 1


async def test_a_slow_target_is_not_retried(start_gateway, tmp_path, upstream, rsa_key,
                                            ec_key, targets):
    a, b = targets[:2]
    gw = await gateway_with_pool(start_gateway, tmp_path, upstream, rsa_key, ec_key,
                                 {"targets": [a.url, b.url]}, timeout="200ms")
    assert (await get(f"{gw.url}/pool/x?_behave=slow&delay=1"))[0] == 504
    assert len(a.hits) + len(b.hits) == 1


async def test_an_empty_retry_budget_allows_no_retry(start_gateway, tmp_path, upstream,
                                                     rsa_key, ec_key, targets):
    gw = await gateway_with_pool(
        start_gateway, tmp_path, upstream, rsa_key, ec_key,
        {"targets": [refused_url(), targets[0].url],
         "retries": {"attempts": 3, "budget": 0, "min_per_second": 0}},
    )
    assert (await get(f"{gw.url}/pool/x"))[0] == 502
    assert gw.sample("gateway_upstream_retries_total",
                     {"route": "pool", "result": "budget_exhausted"}) == 1


async def test_all_targets_down_is_502(start_gateway, tmp_path, upstream, rsa_key, ec_key):
    gw = await gateway_with_pool(start_gateway, tmp_path, upstream, rsa_key, ec_key,
                                 {"targets": [refused_url(), refused_url()]})
    assert (await get(f"{gw.url}/pool/x"))[0] == 502


async def test_ejected_target_is_tried_again_after_the_ejection_time(
    start_gateway, tmp_path, upstream, rsa_key, ec_key, targets
):
    a, b = targets[:2]
    gw = await gateway_with_pool(
        start_gateway, tmp_path, upstream, rsa_key, ec_key,
        {"targets": [a.url, b.url],
         "passive_health": {"max_failures": 1, "ejection_time": "300ms"}},
    )
    # A 502 from the upstream counts as a failure: the target that gave it is ejected.
    assert (await get(f"{gw.url}/pool/x?_behave=status&code=502"))[0] == 502
    ejected = a if a.hits else b
    assert gw.sample("gateway_upstream_ejections_total",
                     {"route": "pool", "target": ejected.url}) == 1
    ejected.hits.clear()
    for i in range(4):
        await get(f"{gw.url}/pool/{i}")
    assert ejected.hits == []  # skipped while ejected

    async def back() -> bool:
        await get(f"{gw.url}/pool/again")
        return bool(ejected.hits)

    async with asyncio.timeout(5):
        while not await back():
            await asyncio.sleep(0.05)


async def test_active_health_check_takes_a_failing_target_out_and_back(
    start_gateway, tmp_path, upstream, rsa_key, ec_key, targets
):
    a, b = targets[:2]
    gw = await gateway_with_pool(
        start_gateway, tmp_path, upstream, rsa_key, ec_key,
        {"targets": [a.url, f"{b.url}/sick"],
         "health_check": {"path": "/health?_behave=status&code=500", "interval": "50ms",
                          "unhealthy_threshold": 2, "healthy_threshold": 1}},
    )
    sick = f"{b.url}/sick"
    await eventually(lambda: gw.sample("gateway_upstream_target_up",
                                       {"route": "pool", "target": sick}) == 0
                     and gw.sample("gateway_upstream_health_checks_total",
                                   {"route": "pool", "target": sick, "result": "fail"}) >= 2)
    hits_before = len(b.hits)
    for i in range(4):
        assert (await get(f"{gw.url}/pool/{i}"))[0] == 200
    assert len(a.hits) >= 4
    assert all("/health" in h.raw_path for h in b.hits[hits_before:])
