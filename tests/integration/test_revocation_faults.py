"""Redis faults with real processes: down at start-up, killed mid-load, restarted, paused
(accepts, never answers), one instance cut off, restarted empty. The request path never
waits on Redis; the outage policy applies once the list cannot be shown to be current."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from gateway.config.model import RevocationSpec
from gateway.metrics import GatewayMetrics
from gateway.revocation.redis import RedisRevocationStore
from gateway.revocation.redis_target import RedisSettings
from gateway.revocation.store import StoreError
from tests.fixtures.gateway import ADMIN_TOKEN, GatewayFactory, RunningGateway
from tests.fixtures.keys import KeyPair
from tests.fixtures.redis import (
    ProxyFactory,
    RedisLauncher,
    RedisProcess,
    eventually,
    free_port,
)
from tests.fixtures.tokens import ISSUER, TokenFactory
from tests.fixtures.upstream import Upstream
from tests.integration.test_revocation import admin, get
from tests.integration.test_revocation_redis import (
    redis_config,
    redis_revocation,
    store_of,
    until_status,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def timed_get(
    http: aiohttp.ClientSession, gw: RunningGateway, token: str
) -> tuple[int, float, dict[str, str]]:
    started = time.monotonic()
    status, headers, _ = await get(http, gw, token)
    return status, time.monotonic() - started, headers


async def timed_revoke(
    http: aiohttp.ClientSession, gw: RunningGateway, jti: str
) -> tuple[int, float]:
    started = time.monotonic()
    async with http.post(gw.admin_url + "/admin/revocations", json={"jti": jti},
                         headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as resp:
        return resp.status, time.monotonic() - started


@pytest.mark.parametrize(
    ("policy", "while_down"),
    [
        pytest.param("deny", 503, id="deny: 503 with Retry-After until the first load"),
        pytest.param("allow", 200, id="allow: requests pass until the first load"),
    ],
)
async def test_redis_down_at_start_up_applies_the_policy_until_the_first_load(
    start_gateway: GatewayFactory, tmp_path: Path, upstream: Upstream, rsa_key: KeyPair,
    ec_key: KeyPair, redis_launcher: RedisLauncher, http: aiohttp.ClientSession,
    make_token: TokenFactory, policy: str, while_down: int, caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    config = redis_config(tmp_path, upstream, rsa_key, ec_key,
                          url=f"redis://127.0.0.1:{port}/0", on_unavailable=policy)
    started = time.monotonic()
    gw = await start_gateway(config)
    assert time.monotonic() - started < 1.5  # waited max_staleness (0.6 s) at most
    token = make_token()
    status, _, headers = await timed_get(http, gw, token)
    assert status == while_down
    if while_down == 503:
        assert headers["Retry-After"] == "1"
    async with http.get(gw.admin_url + "/status") as resp:
        state = (await resp.json())["revocation"]["state"]
    assert state["current"] is False and state["connected"] is False
    assert "Connection" in state["last_error"] or "connect" in state["last_error"].lower()
    assert gw.sample("gateway_revocation_connected") == 0
    assert gw.sample("gateway_revocation_store_errors_total") >= 1
    # Readiness is about this process, not a shared dependency: Redis being down must not
    # take every replica out of the load balancer.
    async with http.get(gw.admin_url + "/readyz") as resp:
        assert resp.status == 200

    with caplog.at_level(logging.INFO, logger="gateway.events"):
        redis_launcher.server(port=port)
        await eventually(lambda: store_of(gw).describe()["current"], timeout=8,  # backoff ≤ 5 s
                         what="the first load")
    events = [getattr(r, "event", None) for r in caplog.records if r.name == "gateway.events"]
    assert "revocation_feed_lost" in events and "revocation_list_loaded" in events
    assert (await get(http, gw, token))[0] == 200


async def test_a_paused_redis_never_stalls_a_request_and_then_the_policy_applies(
    start_gateway: GatewayFactory, tmp_path: Path, upstream: Upstream, rsa_key: KeyPair,
    ec_key: KeyPair, redis_server: RedisProcess, http: aiohttp.ClientSession,
    make_token: TokenFactory,
) -> None:
    gw = await start_gateway(redis_config(tmp_path, upstream, rsa_key, ec_key,
                                          url=redis_server.url))
    token = make_token()
    assert (await get(http, gw, token))[0] == 200
    redis_server.pause()  # SIGSTOP: connections accepted, nothing answered
    try:
        statuses = []
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            status, took, headers = await timed_get(http, gw, token)
            # a request that waited on Redis would take the command timeout (250 ms) or more
            assert took < 0.25, f"a request waited {took:.3f}s on a paused Redis"
            statuses.append(status)
        assert statuses[0] == 200 and statuses[-1] == 503  # served from memory, then stale
        assert headers["Retry-After"] == "1"
        status, took = await timed_revoke(http, gw, "while-paused")
        assert status == 503
        assert took < 1.2  # connect + command timeouts, one retry, or the open breaker
        status, took = await timed_revoke(http, gw, "while-paused")
        assert status == 503 and took < 1.2
        assert store_of(gw).describe()["breaker"] in ("open", "half_open")
    finally:
        redis_server.resume()
    await until_status(http, gw, token, 200, timeout=8)
    assert gw.sample("gateway_revocation_gaps_total", {"cause": "heartbeat"}) + \
        gw.sample("gateway_revocation_gaps_total", {"cause": "reconnect"}) >= 1


async def test_a_token_revoked_while_an_instance_was_cut_off_is_refused_once_it_is_back(
    start_gateway: GatewayFactory, tmp_path: Path, upstream: Upstream, rsa_key: KeyPair,
    ec_key: KeyPair, redis_server: RedisProcess, tcp_proxy: ProxyFactory,
    http: aiohttp.ClientSession, make_token: TokenFactory,
) -> None:
    proxy = await tcp_proxy(redis_server.port)
    cut_off = await start_gateway(redis_config(tmp_path, upstream, rsa_key, ec_key,
                                               url=proxy.url))
    healthy = await start_gateway(redis_config(tmp_path, upstream, rsa_key, ec_key,
                                               url=redis_server.url))
    token = make_token(jti="revoked-during-partition")
    assert (await get(http, cut_off, token))[0] == 200

    proxy.pause()  # the subscription goes silently dead: no error, no message, no echo
    await admin(http, healthy, "POST", json={"jti": "revoked-during-partition"})
    assert (await get(http, healthy, token))[0] == 401
    await until_status(http, cut_off, token, 503, timeout=3)  # deny: stale list

    proxy.resume()
    await until_status(http, cut_off, token, 401, timeout=8)
    # the heartbeat (its echo, or its own commands timing out) found the dead feed
    assert cut_off.sample("gateway_revocation_gaps_total", {"cause": "heartbeat"}) + \
        cut_off.sample("gateway_revocation_gaps_total", {"cause": "reconnect"}) >= 1


async def test_redis_killed_mid_load_is_never_half_believed_and_the_load_is_redone(
    redis_launcher: RedisLauncher,
) -> None:
    server = redis_launcher.server("--appendonly", "yes", "--appendfsync", "always")
    entries = 60_000
    with server.client() as r:
        pipe = r.pipeline(transaction=False)
        for i in range(entries):
            entry = {"kind": "jti", "issuer": ISSUER, "value": f"j{i}",
                     "expires_at": time.time() + 3600}
            pipe.hset("{kill}:entries", f"jti {ISSUER} j{i}", json.dumps(entry))
        pipe.execute()
    spec = RevocationSpec.model_validate(
        redis_revocation(server.url, key_prefix="kill", heartbeat_interval="100ms")
    )
    store = RedisRevocationStore(RedisSettings.from_spec(spec), GatewayMetrics())
    try:
        await store.start(wait=0)
        await eventually(lambda: store.sync.loading_progress > 0, timeout=5,
                         what="the load to begin")
        server.kill()
        assert not store.sync.first_sync.is_set()
        with pytest.raises(StoreError, match="not loaded yet"):
            await store.is_revoked(principal("j1"))
        assert len(store.sync.index) == 0  # the partial load was thrown away

        server.start()  # AOF: the data comes back
        await eventually(store.sync.first_sync.is_set, timeout=10, what="a complete load")
        assert len(store.sync.index) == entries
        assert await store.is_revoked(principal("j1")) is True
        assert store.sync.reseeds == 0
        assert store.metrics.registry.get_sample_value(
            "gateway_revocation_resyncs_total", {"result": "failure"}) >= 1
    finally:
        await store.close()


def principal(jti: str):  # type: ignore[no-untyped-def]
    from gateway.auth.principal import Principal

    return Principal(issuer=ISSUER, subject="alice", client_id=None, scopes=frozenset(),
                     token_id=jti, issued_at=time.time(), expires_at=time.time() + 60)


async def test_redis_restarted_empty_is_reseeded_with_the_union_of_the_instances_memory(
    start_gateway: GatewayFactory, tmp_path: Path, upstream: Upstream, rsa_key: KeyPair,
    ec_key: KeyPair, redis_server: RedisProcess, tcp_proxy: ProxyFactory,
    http: aiohttp.ClientSession, make_token: TokenFactory, caplog: pytest.LogCaptureFixture,
) -> None:
    proxy_a, proxy_b = await tcp_proxy(redis_server.port), await tcp_proxy(redis_server.port)
    a = await start_gateway(redis_config(tmp_path, upstream, rsa_key, ec_key, url=proxy_a.url))
    b = await start_gateway(redis_config(tmp_path, upstream, rsa_key, ec_key, url=proxy_b.url))
    only_a, only_b = make_token(jti="known-to-a"), make_token(jti="known-to-b")

    first_epoch = store_of(a).sync.epoch
    proxy_b.pause()  # until b has given up on its subscription: it never hears of known-to-a
    await eventually(lambda: not store_of(b).sync.is_current(), timeout=3, what="b cut off")
    await admin(http, a, "POST", json={"jti": "known-to-a", "reason": "phished"})
    proxy_a.pause()
    redis_server.restart()  # no persistence: Redis comes back empty, the epoch key is gone
    proxy_b.resume()        # b sees the loss first: it has nothing of its own to give back
    await eventually(lambda: store_of(b).sync.epoch not in (None, first_epoch)
                     and store_of(b).sync.is_current(), timeout=8, what="b on the new epoch")
    await admin(http, b, "POST", json={"jti": "known-to-b"})
    assert (await get(http, b, only_a))[0] == 200  # a's revocation exists only in a's memory

    with caplog.at_level(logging.ERROR, logger="gateway.revocation"):
        proxy_a.resume()    # a finds a new epoch: it writes its entries back
        for gw in (a, b):
            await until_status(http, gw, only_a, 401, timeout=8)
            await until_status(http, gw, only_b, 401, timeout=8)
    assert any("Redis lost revocations" in r.getMessage() for r in caplog.records)
    reseeds = [(r.name, getattr(r, "added", None)) for r in caplog.records
               if getattr(r, "event", None) == "revocation_store_reseeded"]
    assert ("gateway.events", 1) in reseeds  # a gave back known-to-a (b had nothing to give)
    assert a.sample("gateway_revocation_reseeds_total") == 1
    with redis_server.client() as r:
        stored = {k.decode(): json.loads(v) for k, v in r.hgetall("{test}:entries").items()}
    assert set(stored) == {f"jti {ISSUER} known-to-a", f"jti {ISSUER} known-to-b"}
    assert stored[f"jti {ISSUER} known-to-a"]["reason"] == "phished"  # nothing lost

    late = await start_gateway(redis_config(tmp_path, upstream, rsa_key, ec_key,
                                            url=redis_server.url))
    assert (await get(http, late, only_a))[0] == 401
    assert (await get(http, late, only_b))[0] == 401


async def test_redis_restarted_with_its_data_means_a_reload_and_no_reseed(
    start_gateway: GatewayFactory, tmp_path: Path, upstream: Upstream, rsa_key: KeyPair,
    ec_key: KeyPair, redis_launcher: RedisLauncher, http: aiohttp.ClientSession,
    make_token: TokenFactory,
) -> None:
    server = redis_launcher.server("--appendonly", "yes", "--appendfsync", "always")
    gw = await start_gateway(redis_config(tmp_path, upstream, rsa_key, ec_key, url=server.url))
    token = make_token(jti="persisted")
    await admin(http, gw, "POST", json={"jti": "persisted"})
    loads = gw.sample("gateway_revocation_resyncs_total", {"result": "success"})
    server.restart()
    await eventually(lambda: gw.sample("gateway_revocation_resyncs_total",
                                       {"result": "success"}) > loads, timeout=8,
                     what="a reload after the restart")
    assert (await get(http, gw, token))[0] == 401
    assert gw.sample("gateway_revocation_reseeds_total") == 0
    await asyncio.sleep(0)


async def test_shutdown_is_not_held_by_a_redis_that_never_answers(
    start_gateway: GatewayFactory, tmp_path: Path, upstream: Upstream, rsa_key: KeyPair,
    ec_key: KeyPair, redis_server: RedisProcess,
) -> None:
    gw = await start_gateway(redis_config(tmp_path, upstream, rsa_key, ec_key,
                                          url=redis_server.url))
    redis_server.pause()  # SIGSTOP: connections accepted, nothing answered
    try:
        started = time.monotonic()
        await store_of(gw).close()
        assert time.monotonic() - started < 2 * 2.0 + 0.5  # CLOSE_TIMEOUT twice at most
    finally:
        redis_server.resume()
