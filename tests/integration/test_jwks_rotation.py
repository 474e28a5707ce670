"""Remote keys through a real JWKS server: start-up, rotation, unknown kids, outages, reloads."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

import aiohttp
import pytest

from gateway.auth.providers import IdentityProviders
from gateway.config.compile import compile_runtime
from gateway.config.load import load_config
from gateway.metrics import GatewayMetrics
from tests.fixtures.gateway import GatewayFactory, RunningGateway
from tests.fixtures.idp import Idp, cache_of, call, jwks_config, ready
from tests.fixtures.keys import make_rsa
from tests.fixtures.upstream import Upstream

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def reason_count(gw: RunningGateway, reason: str, result: str = "deny") -> float:
    return gw.sample("gateway_auth_decisions_total",
                     {"route": "orders", "result": result, "reason": reason})


# -- start-up ----------------------------------------------------------------------------


async def test_keys_are_fetched_at_start_up_and_tokens_accepted(
    start_gateway: GatewayFactory, upstream: Upstream, idp: Idp
) -> None:
    gw = await ready(await start_gateway(jwks_config(upstream, idp)))
    assert await call(gw, idp.token()) == (200, "ok")
    assert idp.jwks_hits() == 1
    labels = {"issuer": idp.issuer}
    assert gw.sample("gateway_jwks_refreshes_total", {**labels, "result": "success"}) == 1
    assert gw.sample("gateway_jwks_keys", labels) == 1
    assert abs(gw.sample("gateway_jwks_last_success_timestamp_seconds", labels)
               - time.time()) < 60
    assert gw.sample("gateway_jwks_fetch_duration_seconds_count", labels) == 1


async def test_start_up_does_not_wait_for_a_hanging_provider_and_answers_503(
    start_gateway: GatewayFactory, upstream: Upstream, idp: Idp
) -> None:
    idp.mode = "hang"
    t0 = time.perf_counter()
    gw = await start_gateway(jwks_config(upstream, idp, jwks={"timeout": "300ms"}))
    assert time.perf_counter() - t0 < 1.0  # the fetch hangs; start-up did not wait for it
    # The request waits for the fetch in flight (bounded by its timeout), then: 503, not 401.
    async with aiohttp.ClientSession() as s, s.get(
        gw.url + "/api/orders/1", headers={"Authorization": f"Bearer {idp.token()}"}
    ) as r:
        assert r.status == 503
        assert r.headers["Retry-After"] == "1"
        assert (await r.json())["error"] == "temporarily_unavailable"
    assert "WWW-Authenticate" not in r.headers
    assert upstream.hits == []
    assert reason_count(gw, "keys_unavailable") == 1
    assert gw.sample("gateway_jwks_refreshes_total",
                     {"issuer": idp.issuer, "result": "timeout"}) >= 1
    async with aiohttp.ClientSession() as s, s.get(gw.admin_url + "/readyz") as r:
        assert r.status == 200  # an identity provider's outage does not flip readiness


async def test_an_issuer_without_keys_recovers_when_the_provider_comes_back(
    start_gateway: GatewayFactory, upstream: Upstream, idp: Idp,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.events")
    idp.fail("500")
    gw = await start_gateway(jwks_config(upstream, idp, jwks={"cooldown": "0s"}))
    assert await call(gw, idp.token()) == (503, "temporarily_unavailable")
    idp.recover()
    # no keys + cooldown passed: the request itself triggers the fetch and waits for it
    assert await call(gw, idp.token()) == (200, "ok")
    events = [(getattr(r, "event", None), getattr(r, "issuer", None))
              for r in caplog.records if r.name == "gateway.events"]
    assert ("signing_keys_refresh_failed", idp.issuer) in events
    assert ("signing_keys_loaded", idp.issuer) in events


# -- rotation and unknown kids -------------------------------------------------------------


async def test_a_rotated_key_is_picked_up_by_the_first_token_that_uses_it(
    start_gateway: GatewayFactory, upstream: Upstream, idp: Idp,
    caplog: pytest.LogCaptureFixture,
) -> None:
    gw = await ready(await start_gateway(jwks_config(upstream, idp)))
    assert await call(gw, idp.token()) == (200, "ok")
    with caplog.at_level(logging.INFO, logger="gateway.events"):
        new_key = idp.rotate()
        assert await call(gw, idp.token()) == (200, "ok")
    changed = [r for r in caplog.records if getattr(r, "event", None) == "signing_keys_changed"]
    assert [r.added for r in changed] == [[new_key.kid]]  # type: ignore[attr-defined]
    assert idp.jwks_hits() == 2
    assert gw.sample("gateway_jwks_unknown_kid_total",
                     {"issuer": idp.issuer, "action": "refetch"}) == 1
    assert reason_count(gw, "unknown_key") == 0


async def test_concurrent_tokens_with_a_new_kid_share_one_fetch(
    start_gateway: GatewayFactory, upstream: Upstream, idp: Idp
) -> None:
    gw = await ready(await start_gateway(jwks_config(upstream, idp)))
    idp.rotate()
    results = await asyncio.gather(*(call(gw, idp.token()) for _ in range(25)))
    assert results == [(200, "ok")] * 25
    assert idp.jwks_hits() == 2  # start-up + one shared refetch


async def test_forged_kids_cannot_hammer_the_provider(
    start_gateway: GatewayFactory, upstream: Upstream, idp: Idp
) -> None:
    gw = await ready(await start_gateway(jwks_config(upstream, idp, jwks={"cooldown": "1h"})))
    attacker = make_rsa("attacker")
    forged = [idp.token(key=attacker, kid=f"../../forged-{i}' OR 1=1") for i in range(40)]
    first = await asyncio.gather(*(call(gw, t) for t in forged[:20]))
    second = [await call(gw, t) for t in forged[20:]]
    assert set(first + second) == {(401, "invalid_token")}
    assert idp.jwks_hits() == 2  # start-up + one refetch; the rest met the cooldown
    assert upstream.hits == []
    labels = {"issuer": idp.issuer}
    assert gw.sample("gateway_jwks_unknown_kid_total", {**labels, "action": "refetch"}) == 1
    assert gw.sample("gateway_jwks_unknown_kid_total", {**labels, "action": "cooldown"}) >= 20
    assert reason_count(gw, "unknown_key") == 40


async def test_a_key_removed_by_the_provider_stops_cached_tokens_at_the_next_refresh(
    start_gateway: GatewayFactory, upstream: Upstream, idp: Idp
) -> None:
    gw = await ready(await start_gateway(jwks_config(upstream, idp, jwks={"cooldown": "1h"})))
    old = idp.token()
    assert await call(gw, old) == (200, "ok")  # now in the verified-token cache
    assert await call(gw, old) == (200, "ok")
    idp.rotate(keep_old=False)
    new = idp.token()
    assert await call(gw, new) == (200, "ok")  # unknown kid: refetch; the set changed
    assert await call(gw, old) == (401, "invalid_token")  # cache entry flushed, key gone
    assert reason_count(gw, "unknown_key") == 1


async def test_an_unchanged_key_set_keeps_cached_tokens(
    start_gateway: GatewayFactory, upstream: Upstream, idp: Idp
) -> None:
    gw = await ready(await start_gateway(jwks_config(upstream, idp)))
    cache = cache_of(gw)
    token = idp.token()
    assert await call(gw, token) == (200, "ok")
    generation = cache.key_set(time.time()).generation
    await cache.refresh()
    assert idp.jwks_hits() == 2
    assert cache.key_set(time.time()).generation == generation
    assert await call(gw, token) == (200, "ok")


# -- outages: stale keys, then fail closed --------------------------------------------------


async def test_stale_keys_are_kept_up_to_max_stale_then_requests_fail_closed(
    start_gateway: GatewayFactory, upstream: Upstream, idp: Idp
) -> None:
    clock = Clock()
    metrics = GatewayMetrics()
    providers = IdentityProviders(metrics, clock=clock)
    config = jwks_config(upstream, idp, jwks={"refresh_interval": "10m", "max_stale": "1h",
                                              "cooldown": "30s"})
    gw = await ready(await start_gateway(config, metrics=metrics, providers=providers))
    token = idp.token()
    assert await call(gw, token) == (200, "ok")
    idp.fail("500")
    clock.now += 600 + 3600 - 1   # fresh for 10 min, then stale but usable for 1 h
    await cache_of(gw).refresh()
    assert await call(gw, token) == (200, "ok")
    assert await call(gw, idp.token()) == (200, "ok")
    assert gw.sample("gateway_jwks_refreshes_total",
                     {"issuer": idp.issuer, "result": "http_error"}) == 1
    clock.now += 2
    status, error = await call(gw, token)  # even the cached token: the keys are too old
    assert (status, error) == (503, "temporarily_unavailable")
    assert upstream.paths() == ["/api/orders/1"] * 3
    idp.recover()
    clock.now += 31   # past the cooldown: the next request refetches
    assert await call(gw, token) == (200, "ok")


@pytest.mark.parametrize(
    ("mode", "result"),
    [
        pytest.param("500", "http_error", id="an HTTP 500 keeps the old keys"),
        pytest.param("garbage", "invalid", id="a document that is not JSON keeps the old keys"),
        pytest.param("empty", "invalid", id="a set without usable keys keeps the old keys"),
        pytest.param("huge", "too_large", id="an oversized document keeps the old keys"),
    ],
)
async def test_a_bad_refresh_never_replaces_good_keys(
    start_gateway: GatewayFactory, upstream: Upstream, idp: Idp, mode: str, result: str
) -> None:
    gw = await ready(await start_gateway(jwks_config(upstream, idp)))
    cache = cache_of(gw)
    idp.mode = mode
    await cache.refresh()
    assert gw.sample("gateway_jwks_refreshes_total",
                     {"issuer": idp.issuer, "result": result}) == 1
    assert cache.key_set(time.time()).kids() == ["idp-1"]
    assert await call(gw, idp.token()) == (200, "ok")
    assert cache.status(time.time())["consecutive_failures"] == 1


# -- reloads ---------------------------------------------------------------------------------


async def test_keys_survive_a_recompile_when_the_issuer_is_unchanged(
    start_gateway: GatewayFactory, upstream: Upstream, idp: Idp, tmp_path: Path
) -> None:
    config = jwks_config(upstream, idp)
    gw = await ready(await start_gateway(config))
    server = gw.server
    assert server.holder is not None
    old_cache = cache_of(gw)
    # what a reload does: compile with the app's providers, swap, retire the rest
    config["routes"][0]["require"] = {"scopes": ["orders:write"]}
    gw.config_path.write_text(json.dumps(config))
    runtime = compile_runtime(load_config(gw.config_path), metrics=server.metrics,
                              revocation_store=server.store, providers=server.providers)
    [issuer] = runtime.verifier.issuers.values()
    assert issuer.remote is old_cache
    server.providers.start()
    server.holder.current = runtime
    await server.providers.retain([old_cache])
    assert await call(gw, idp.token(scope="orders:write")) == (200, "ok")
    assert idp.jwks_hits() == 1  # no refetch: the warm keys were kept

    config["issuers"][0]["jwks"] = {"cooldown": "5s"}  # a changed issuer: a new cache
    gw.config_path.write_text(json.dumps(config))
    runtime = compile_runtime(load_config(gw.config_path), metrics=server.metrics,
                              revocation_store=server.store, providers=server.providers)
    [issuer] = runtime.verifier.issuers.values()
    assert issuer.remote is not old_cache and issuer.remote is not None
    server.providers.start()
    server.holder.current = runtime
    await server.providers.retain_for([runtime.verifier])
    assert server.providers.caches() == [issuer.remote]
    assert await issuer.remote.wait_ready(5.0)
    assert idp.jwks_hits() == 2
    assert not old_cache.started


async def test_status_shows_the_key_source(
    start_gateway: GatewayFactory, upstream: Upstream, idp: Idp
) -> None:
    gw = await ready(await start_gateway(jwks_config(upstream, idp)))
    async with aiohttp.ClientSession() as s, s.get(gw.admin_url + "/status") as r:
        status = (await r.json())["key_sources"][idp.issuer]
    assert status["source"] == idp.jwks_uri
    assert status["kids"] == ["idp-1"]
    assert status["consecutive_failures"] == 0
    assert 0 <= status["last_success_age_seconds"] < 60


async def test_a_forged_kid_just_before_a_rotation_delays_the_new_key_by_the_cooldown_at_most(
    start_gateway: GatewayFactory, upstream: Upstream, idp: Idp
) -> None:
    """The documented price of the cooldown: the refetch a forged kid spent is not available
    for the real rotation until the cooldown has passed (then the first new token fetches)."""
    clock = Clock()
    metrics = GatewayMetrics()
    gw = await ready(await start_gateway(
        jwks_config(upstream, idp, jwks={"cooldown": "10s"}), metrics=metrics,
        providers=IdentityProviders(metrics, clock=clock)))
    assert await call(gw, idp.token(key=make_rsa("attacker"), kid="forged")) == (
        401, "invalid_token")
    idp.rotate()
    new = idp.token()
    assert await call(gw, new) == (401, "invalid_token")
    clock.now += 9.9
    assert await call(gw, new) == (401, "invalid_token")
    clock.now += 0.1
    assert await call(gw, new) == (200, "ok")
    assert idp.jwks_hits() == 3
