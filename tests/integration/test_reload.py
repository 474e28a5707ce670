"""Hot reload: file changes (in place, atomic rename, ConfigMap symlink swap, routes.d, key
files), SIGHUP-style triggers and the admin API; atomic swaps, in-flight requests, rejected
configs, restart-only settings and the reload metrics."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from gateway.app import GatewayServer
from gateway.config.load import load_config
from tests.fixtures.gateway import ADMIN_TOKEN, GatewayFactory, RunningGateway, base_config
from tests.fixtures.keys import KeyPair
from tests.fixtures.tokens import TokenFactory
from tests.fixtures.upstream import Upstream
from tests.fixtures.waiting import eventually

pytestmark = pytest.mark.integration

POLL = 0.02  # seconds between polls of the config files in these tests


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def status_of(
    http: aiohttp.ClientSession, gw: RunningGateway | str, path: str, token: str | None = None
) -> int:
    base = gw if isinstance(gw, str) else gw.url
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.get(base + path, headers=headers) as resp:
        await resp.read()
        return resp.status


def write(path: Path, config: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def replace(path: Path, config: dict[str, Any]) -> None:
    """Write a new version next to the file and rename it over (what most editors do)."""
    tmp = path.with_name(path.name + ".tmp")
    write(tmp, config)
    os.replace(tmp, path)


def route(config: dict[str, Any], name: str) -> dict[str, Any]:
    return next(r for r in config["routes"] if r["name"] == name)


def reloads(gw: RunningGateway | GatewayServer, result: str) -> float:
    server = gw if isinstance(gw, GatewayServer) else gw.server
    value = server.metrics.registry.get_sample_value(
        "gateway_config_reloads_total", {"result": result}
    )
    return value or 0.0


@pytest.fixture
def config(tmp_path: Path, upstream: Upstream, rsa_key: KeyPair, ec_key: KeyPair
           ) -> dict[str, Any]:
    return base_config(tmp_path, upstream, rsa_key, ec_key)


# -- the reload test of the design guide -----------------------------------------------------


async def test_200_then_403_then_a_broken_config_keeps_403_with_one_failure(
    start_gateway: GatewayFactory, config: dict[str, Any], http: aiohttp.ClientSession,
    make_token: TokenFactory, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.events")
    gw = await start_gateway(config, watch_interval=POLL)
    token = make_token(scope="orders:read")
    assert await status_of(http, gw, "/api/orders/1", token) == 200

    route(config, "orders-read")["require"] = {"scopes": ["orders:admin"]}
    write(gw.config_path, config)  # in place, as `vi` or `sed -i` would
    await eventually(lambda: reloads(gw, "success") == 2, timeout=10)
    assert await status_of(http, gw, "/api/orders/1", token) == 403

    text = gw.config_path.read_text().replace("- orders:admin", "- orders admin")
    gw.config_path.write_text(text)
    await eventually(lambda: reloads(gw, "failure") == 1, timeout=10)
    assert await status_of(http, gw, "/api/orders/1", token) == 403
    assert reloads(gw, "success") == 2

    line = next(i for i, t in enumerate(text.splitlines(), 1) if "orders admin" in t)
    failed = [r for r in caplog.records if getattr(r, "event", None) == "config_reload_failed"]
    assert [r.problems for r in failed] == [  # type: ignore[attr-defined]
        [f"{gw.config_path}:{line}: routes[0].require.scopes[0]: "
         "not a valid scope token (RFC 6749 §3.3)"]
    ]
    assert failed[0].levelname == "ERROR"


async def test_every_trigger_reloads_and_the_metrics_follow(
    start_gateway: GatewayFactory, config: dict[str, Any], http: aiohttp.ClientSession,
    make_token: TokenFactory,
) -> None:
    gw = await start_gateway(config)  # no polling: explicit reloads only
    server = gw.server
    first_hash = server.holder.current.sha256[:16]
    assert gw.sample("gateway_config_info", {"hash": first_hash}) == 1
    assert gw.sample("gateway_config_generation") == 1

    route(config, "status")["auth"] = "required"
    write(gw.config_path, config)
    result = await server.reload("test")
    assert (result.result, result.generation, result.problems) == ("success", 2, ())
    new_hash = server.holder.current.sha256[:16]
    assert gw.sample("gateway_config_info", {"hash": new_hash}) == 1
    assert server.metrics.registry.get_sample_value(
        "gateway_config_info", {"hash": first_hash}) is None
    assert gw.sample("gateway_config_generation") == 2
    assert time.time() - gw.sample("gateway_config_last_reload_success_timestamp_seconds") < 60
    assert await status_of(http, gw, "/status") == 401

    # nothing changed: no reload, no metric
    again = await server.reload("test")
    assert again.result == "unchanged" and reloads(gw, "success") == 2
    os.utime(gw.config_path)  # a touch is no change either
    assert (await server.reload("test")).result == "unchanged"

    # the admin API triggers a reload too, and says what went wrong
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with http.post(gw.admin_url + "/admin/reload") as resp:
        assert resp.status == 401
    gw.config_path.write_text(gw.config_path.read_text() + "\nunknown_section: 1\n")
    async with http.post(gw.admin_url + "/admin/reload", headers=auth) as resp:
        body = await resp.json()
        assert resp.status == 422
    assert body["result"] == "failure" and body["generation"] == 2
    assert len(body["problems"]) == 1
    assert body["problems"][0].startswith(f"{gw.config_path}:")
    assert body["problems"][0].endswith(": unknown_section: unknown key")
    async with http.post(gw.admin_url + "/admin/reload", headers=auth) as resp:
        assert resp.status == 422 and (await resp.json())["problems"] == body["problems"]
    assert reloads(gw, "failure") == 1  # the same rejected file is reported once
    write(gw.config_path, config)
    async with http.post(gw.admin_url + "/admin/reload", headers=auth) as resp:
        body = await resp.json()
        assert resp.status == 200 and body["result"] == "unchanged"
    assert reloads(gw, "failure") == 1


async def test_a_request_in_flight_finishes_on_the_config_it_started_with(
    start_gateway: GatewayFactory, config: dict[str, Any], http: aiohttp.ClientSession,
    upstream: Upstream, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.access")
    config["routes"].append({
        "name": "reports-v1", "match": {"path_prefix": "/v1"}, "upstream": upstream.url,
        "auth": "none", "timeout": "10s",
    })
    gw = await start_gateway(config)
    slow = asyncio.create_task(status_of(http, gw, "/v1/r?_behave=slow&delay=0.5"))
    await eventually(lambda: any(p.startswith("/v1/r") for p in upstream.paths()), timeout=10)

    route(config, "reports-v1")["auth"] = "required"  # the route now needs a token
    route(config, "reports-v1")["name"] = "reports-v2"
    write(gw.config_path, config)
    assert (await gw.server.reload()).result == "success"
    assert await status_of(http, gw, "/v1/r") == 401  # new requests: the new config
    assert await slow == 200                            # the old request: the old one
    await eventually(lambda: gw.sample("gateway_requests_in_flight") == 0, timeout=10)
    routes = [(r.route, r.status) for r in caplog.records  # type: ignore[attr-defined]
              if r.name == "gateway.access"]
    assert routes == [("reports-v2", 401), ("reports-v1", 200)]


async def test_long_lived_resources_survive_a_reload(
    start_gateway: GatewayFactory, config: dict[str, Any], http: aiohttp.ClientSession,
    make_token: TokenFactory,
) -> None:
    gw = await start_gateway(config)
    server = gw.server
    before = server.holder.current
    token = make_token(scope="orders:read", sub="mallory")
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with http.post(gw.admin_url + "/admin/revocations", json={"sub": "mallory"},
                         headers=auth) as resp:
        assert resp.status == 201
    route(config, "orders-read")["timeout"] = "5s"
    write(gw.config_path, config)
    assert (await server.reload()).result == "success"
    after = server.holder.current
    assert after is not before
    assert after.revocation is not None and before.revocation is not None
    assert after.revocation.store is before.revocation.store is server.store
    assert await status_of(http, gw, "/api/orders/1", token) == 401  # still revoked


async def test_a_removed_route_loses_its_metric_label_sets(
    start_gateway: GatewayFactory, config: dict[str, Any], http: aiohttp.ClientSession,
) -> None:
    gw = await start_gateway(config)
    assert await status_of(http, gw, "/public/x") == 200
    labels = {"route": "public", "method": "GET", "code": "200"}
    assert gw.sample("gateway_requests_total", labels) == 1
    config["routes"] = [r for r in config["routes"] if r["name"] != "public"]
    write(gw.config_path, config)
    assert (await gw.server.reload()).result == "success"
    registry = gw.server.metrics.registry
    assert registry.get_sample_value("gateway_requests_total", labels) is None
    assert await status_of(http, gw, "/public/x") == 404


# -- what the watcher notices ------------------------------------------------------------------


async def test_an_editor_replacing_the_file_is_noticed(
    start_gateway: GatewayFactory, config: dict[str, Any], http: aiohttp.ClientSession,
) -> None:
    gw = await start_gateway(config, watch_interval=POLL)
    route(config, "public")["auth"] = "required"
    replace(gw.config_path, config)
    await eventually(lambda: reloads(gw, "success") == 2, timeout=10)
    assert await status_of(http, gw, "/public/x") == 401


async def test_a_half_written_file_is_not_loaded(
    start_gateway: GatewayFactory, config: dict[str, Any],
) -> None:
    gw = await start_gateway(config)  # polls driven by hand: check_files() is one poll
    watcher = gw.server.watcher
    assert watcher is not None
    assert await watcher.check_files() is None  # first sight: remembered
    assert (await watcher.check_files()).result == "unchanged"  # type: ignore[union-attr]
    route(config, "public")["auth"] = "required"
    full = yaml.safe_dump(config, sort_keys=False)
    gw.config_path.write_text(full[: len(full) // 2])  # the editor is still writing …
    assert await watcher.check_files() is None
    gw.config_path.write_text(full)                      # … and done before the next poll
    assert await watcher.check_files() is None           # changed again: wait once more
    result = await watcher.check_files()
    assert result is not None and result.result == "success"
    assert reloads(gw, "failure") == 0
    assert await watcher.check_files() is None


def _configmap_layout(root: Path, version: str, files: dict[str, str]) -> None:
    """What the kubelet writes: ..<version>/files, ..data → ..<version>, name → ..data/name."""
    data_dir = root / f"..{version}"
    for name, text in files.items():
        (data_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (data_dir / name).write_text(text)
    tmp_link = root / "..data_tmp"
    tmp_link.symlink_to(data_dir.name)
    os.replace(tmp_link, root / "..data")  # the atomic swap
    for name in files:
        top = name.split("/")[0]
        if not (root / top).is_symlink():
            (root / top).symlink_to(Path("..data") / top)


async def test_a_kubernetes_configmap_symlink_swap_is_noticed(
    tmp_path: Path, config: dict[str, Any], http: aiohttp.ClientSession, rsa_key: KeyPair,
    ec_key: KeyPair, make_token: TokenFactory,
) -> None:
    root = tmp_path / "configmap"
    root.mkdir()
    config["issuers"][0]["keys"] = ["keys/idp.jwks.json"]
    config["admin"].pop("token_file")
    jwks = json.dumps({"keys": [rsa_key.jwk(), ec_key.jwk()]})
    first = yaml.safe_dump(config, sort_keys=False)
    _configmap_layout(root, "2024_01_01_00_00_00.1", {"gateway.yaml": first,
                                                      "keys/idp.jwks.json": jwks})
    server = GatewayServer(load_config(root / "gateway.yaml"), watch_interval=POLL)
    await server.start()
    try:
        assert server.public_address is not None
        url = f"http://127.0.0.1:{server.public_address.port}"
        assert await status_of(http, url, "/public/x") == 200
        old_mtime = (root / "gateway.yaml").stat().st_mtime_ns

        route(config, "public")["auth"] = "required"
        second = yaml.safe_dump(config, sort_keys=False)
        _configmap_layout(root, "2024_01_01_00_01_00.2", {"gateway.yaml": second,
                                                          "keys/idp.jwks.json": jwks})
        # the kubelet's files may carry any mtime: only the inode behind the path changes
        os.utime(root / "..2024_01_01_00_01_00.2" / "gateway.yaml", ns=(old_mtime, old_mtime))
        for stale in (root / "..2024_01_01_00_00_00.1").rglob("*"):
            if stale.is_file():
                stale.unlink()
        await eventually(lambda: reloads(server, "success") == 2, timeout=10)
        assert await status_of(http, url, "/public/x") == 401
        assert await status_of(http, url, "/public/x", make_token()) == 200
        assert reloads(server, "failure") == 0
    finally:
        await server.stop()


async def test_a_changed_key_file_reloads_without_a_config_change(
    start_gateway: GatewayFactory, config: dict[str, Any], http: aiohttp.ClientSession,
    make_token: TokenFactory, tmp_path: Path, other_rsa_key: KeyPair, rsa_key: KeyPair,
) -> None:
    gw = await start_gateway(config, watch_interval=POLL)
    new_key_token = make_token(key=other_rsa_key)
    assert await status_of(http, gw, "/api/orders/1", new_key_token) == 401
    sha = gw.server.holder.current.sha256
    (tmp_path / "idp.jwks.json").write_text(json.dumps({"keys": [other_rsa_key.jwk()]}))
    await eventually(lambda: reloads(gw, "success") == 2, timeout=10)
    assert gw.server.holder.current.sha256 == sha  # the config file itself did not change
    assert await status_of(http, gw, "/api/orders/1", new_key_token) == 200
    assert await status_of(http, gw, "/api/orders/1", make_token(key=rsa_key)) == 401


async def test_routes_in_a_directory_are_added_changed_and_removed(
    start_gateway: GatewayFactory, config: dict[str, Any], http: aiohttp.ClientSession,
    tmp_path: Path, upstream: Upstream, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.events")
    routes_d = tmp_path / "routes.d"
    routes_d.mkdir()
    config["include"] = ["routes.d/*.yaml"]
    gw = await start_gateway(config, watch_interval=POLL)
    assert await status_of(http, gw, "/billing/1") == 404

    billing = {"routes": [{"name": "billing", "match": {"path_prefix": "/billing"},
                           "upstream": upstream.url, "auth": "none"}]}
    write(routes_d / "billing.yaml", billing)  # a new file in the directory
    await eventually(lambda: reloads(gw, "success") == 2, timeout=10)
    assert await status_of(http, gw, "/billing/1") == 200

    (routes_d / "billing.yaml").write_text(
        "routes:\n  - name: billing\n    match: {path_prefix: /billing}\n"
        f"    upstream: {upstream.url}\n    auth: nobody\n"
    )
    await eventually(lambda: reloads(gw, "failure") == 1, timeout=10)
    problems = next(r for r in caplog.records if getattr(r, "event", None)
                    == "config_reload_failed").problems  # type: ignore[attr-defined]
    assert problems == [f"{routes_d / 'billing.yaml'}:5: routes[0].auth: "
                        "Input should be 'required' or 'none'"]
    assert await status_of(http, gw, "/billing/1") == 200  # the last good config serves

    (routes_d / "billing.yaml").unlink()
    await eventually(lambda: reloads(gw, "success") == 3, timeout=10)
    assert await status_of(http, gw, "/billing/1") == 404


async def test_restart_only_settings_are_reported_and_the_rest_applied(
    start_gateway: GatewayFactory, config: dict[str, Any], http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.events")
    gw = await start_gateway(config)
    listening = str(gw.server.settings.public)
    config["server"]["listen"] = "127.0.0.1:1"
    route(config, "public")["auth"] = "required"
    write(gw.config_path, config)
    result = await gw.server.reload()
    assert result.result == "success"
    assert result.restart_required == (f"server.listen: {listening} → 127.0.0.1:1",)
    assert gw.sample("gateway_config_restart_required") == 1
    assert await status_of(http, gw, "/public/x") == 401  # served where it was, new rules
    warned = [r for r in caplog.records if getattr(r, "event", None) == "restart_required"]
    assert len(warned) == 1 and warned[0].levelname == "WARNING"
    async with http.get(gw.admin_url + "/status") as resp:
        status = await resp.json()
    assert status["config"]["restart_required"] == list(result.restart_required)
    assert status["config"]["settings"]["server.listen"] == listening

    config["server"]["listen"] = "127.0.0.1:0"  # back to what runs: nothing pending
    write(gw.config_path, config)
    assert (await gw.server.reload()).restart_required == ()
    assert gw.sample("gateway_config_restart_required") == 0


async def test_jwks_caches_survive_a_reload_and_unused_ones_are_closed(
    start_gateway: GatewayFactory, upstream: Upstream, http: aiohttp.ClientSession,
) -> None:
    from tests.fixtures.idp import cache_of, jwks_config, ready, start_idp

    idp, runner = await start_idp()
    try:
        config = jwks_config(upstream, idp)
        gw = await ready(await start_gateway(config))
        cache = cache_of(gw)
        fetches = idp.jwks_hits
        token = idp.token(scope="orders:read")
        assert await status_of(http, gw, "/api/orders/1", token) == 200

        # Same issuer settings, another route change: the warm cache is kept, no new fetch.
        config["routes"][0]["timeout"] = "5s"
        write(gw.config_path, config)
        assert (await gw.server.reload()).result == "success"
        assert cache_of(gw) is cache
        assert idp.jwks_hits == fetches
        assert await status_of(http, gw, "/api/orders/1", token) == 200

        # The issuer's key settings change: a fresh cache replaces the old one, which closes.
        config["issuers"][0]["jwks"]["cooldown"] = "20s"
        write(gw.config_path, config)
        assert (await gw.server.reload()).result == "success"
        fresh = cache_of(gw)  # exactly one cache left in the registry
        assert fresh is not cache
        assert await fresh.wait_ready(5.0)
        assert await status_of(http, gw, "/api/orders/1", token) == 200
    finally:
        idp.release.set()
        await runner.cleanup()


async def test_a_reload_keeps_unchanged_upstream_pools_and_drops_removed_ones(
    start_gateway: GatewayFactory, config: dict[str, Any], http: aiohttp.ClientSession,
) -> None:
    gw = await start_gateway(config)
    forwarder = gw.server.forwarder
    assert forwarder is not None
    registry = forwarder.state.pools
    runtime = gw.server.holder.current
    orders = next(r for _, r in runtime.routes.entries() if r.name == "orders-read")
    kept = forwarder.pool_of(orders)
    names_before = {name for name, _ in registry._states}
    assert "status" in names_before

    config["routes"] = [r for r in config["routes"] if r["name"] != "status"]
    write(gw.config_path, config)
    assert (await gw.server.reload()).result == "success"

    names_after = {name for name, _ in registry._states}
    assert names_after == names_before - {"status"}
    new_runtime = gw.server.holder.current
    same_route = next(r for _, r in new_runtime.routes.entries() if r.name == "orders-read")
    assert forwarder.pool_of(same_route) is kept
    assert await status_of(http, gw, "/status") == 404
