"""Prometheus metrics (exact values, bounded labels) and the JSON access log."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway import __version__
from gateway.errors import REASONS
from gateway.logs import JsonFormatter
from tests.fixtures.gateway import RunningGateway
from tests.fixtures.tokens import TokenFactory
from tests.fixtures.upstream import Upstream

pytestmark = pytest.mark.integration

SEGMENT = "sekrit-segment-42"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def request(
    http: aiohttp.ClientSession, gw: RunningGateway, method: str, path: str,
    token: str | None = None,
) -> tuple[int, str | None]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.request(method, gw.url + path, headers=headers) as resp:
        await resp.read()
        return resp.status, resp.headers.get("X-Request-ID")


async def settled(gw: RunningGateway) -> None:
    """Wait until every request has left the gateway's middleware.

    A proxied response reaches the client before the handler returns, so its metrics and log
    line are written a moment after the client has read it.
    """
    deadline = time.monotonic() + 5
    while gw.sample("gateway_requests_in_flight") != 0:
        assert time.monotonic() < deadline, "requests still in flight"
        await asyncio.sleep(0.001)


@pytest.fixture
async def traffic(
    gateway: RunningGateway, upstream: Upstream, http: aiohttp.ClientSession,
    make_token: TokenFactory, token_catalogue: dict[str, str],
) -> dict[str, str]:
    """A mix of answered, refused, unmatched and odd-method requests; returns the tokens."""
    good = make_token(sub="alice")
    expected = [
        ("GET", f"/api/orders/{SEGMENT}", good, 200),
        ("GET", "/api/orders/2", good, 200),
        ("HEAD", "/api/orders/3", good, 200),
        ("GET", "/api/orders/4", None, 401),
        ("GET", "/api/orders/5", token_catalogue["expired"], 401),
        ("GET", "/api/orders/6", token_catalogue["wrong_aud"], 401),
        ("POST", "/api/orders", good, 403),
        ("GET", f"/nothing/{SEGMENT}", good, 404),
        ("PROPFIND", "/api/orders/7", good, 405),
        ("PROPFIND", f"/public/{SEGMENT}", None, 200),
        ("GET", "/status", None, 200),
    ]
    for method, path, token, status in expected:
        assert (await request(http, gateway, method, path, token))[0] == status, (method, path)
    await settled(gateway)
    return {"good": good, "expired": token_catalogue["expired"],
            "wrong_aud": token_catalogue["wrong_aud"]}


async def test_request_counts_by_route_method_and_code(
    gateway: RunningGateway, traffic: dict[str, str]
) -> None:
    counts = {
        ("orders-read", "GET", "200"): 2,
        ("orders-read", "HEAD", "200"): 1,
        ("orders-read", "GET", "401"): 3,
        ("orders-write", "POST", "403"): 1,
        ("unmatched", "GET", "404"): 1,
        ("unmatched", "OTHER", "405"): 1,
        ("public", "OTHER", "200"): 1,
        ("status", "GET", "200"): 1,
    }
    family = next(f for f in gateway.metrics.registry.collect()
                  if f.name == "gateway_requests")
    samples = {
        (s.labels["route"], s.labels["method"], s.labels["code"]): s.value
        for s in family.samples if s.name == "gateway_requests_total"
    }
    assert samples == counts


async def test_durations_and_upstream_timings_are_counted_per_route(
    gateway: RunningGateway, traffic: dict[str, str]
) -> None:
    durations = {"orders-read": 6, "orders-write": 1, "unmatched": 2, "public": 1, "status": 1,
                 "reports": 0}
    for route, count in durations.items():
        assert gateway.sample("gateway_request_duration_seconds_count", {"route": route}) == count
    upstream = {"orders-read": 3, "public": 1, "status": 1, "orders-write": 0, "unmatched": 0}
    for route, count in upstream.items():
        assert gateway.sample("gateway_upstream_response_seconds_count", {"route": route}) == count
    assert gateway.sample("gateway_requests_in_flight") == 0
    assert gateway.sample("gateway_request_duration_seconds_sum", {"route": "status"}) > 0


async def test_auth_decisions_by_route_result_and_reason(
    gateway: RunningGateway, traffic: dict[str, str]
) -> None:
    decisions = {
        ("orders-read", "allow", "ok"): 3,
        ("orders-read", "deny", "missing_token"): 1,
        ("orders-read", "deny", "expired"): 1,
        ("orders-read", "deny", "audience"): 1,
        ("orders-write", "deny", "insufficient_scope"): 1,
        ("public", "allow", "none"): 1,
        ("status", "allow", "none"): 1,
    }
    family = next(f for f in gateway.metrics.registry.collect()
                  if f.name == "gateway_auth_decisions")
    samples = {
        (s.labels["route"], s.labels["result"], s.labels["reason"]): s.value
        for s in family.samples if s.name == "gateway_auth_decisions_total"
    }
    assert samples == decisions


async def test_build_and_config_info(gateway: RunningGateway) -> None:
    sha256 = gateway.server.holder.current.sha256  # type: ignore[union-attr]
    assert gateway.sample("gateway_build_info", {"version": __version__}) == 1
    assert gateway.sample("gateway_config_info", {"hash": sha256[:16]}) == 1
    assert gateway.sample("gateway_config_reloads_total", {"result": "success"}) == 1
    assert gateway.sample("gateway_config_last_reload_success_timestamp_seconds") > 0


async def test_the_exposition_has_every_metric_and_only_bounded_labels(
    gateway: RunningGateway, http: aiohttp.ClientSession, traffic: dict[str, str]
) -> None:
    async with http.get(gateway.admin_url + "/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    for name in (
        "gateway_requests_total", "gateway_request_duration_seconds_bucket",
        "gateway_request_duration_seconds_count", "gateway_upstream_response_seconds_count",
        "gateway_requests_in_flight", "gateway_auth_decisions_total",
        "gateway_upstream_errors_total", "gateway_revocation_lookups_total",
        "gateway_revocation_store_errors_total", "gateway_config_reloads_total",
        "gateway_config_info", "gateway_build_info",
    ):
        assert f"\n{name}" in text or f"# TYPE {name}" in text, name

    # nothing request-specific anywhere: no path, subject, client, token or jti
    for secret in (SEGMENT, "alice", "web-app", *traffic.values(),
                   *(t.split(".")[2][:16] for t in traffic.values())):
        assert secret not in text
    # and every label value comes from a closed set
    allowed = {
        "route": {r.name for r in gateway.server.loaded.spec.routes} | {"unmatched"},
        "method": {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "OTHER"},
        "result": {"allow", "deny", "revoked", "not_revoked", "error", "success", "failure"},
        "reason": REASONS | {"ok", "none", "upstream_aborted"},
        "version": {__version__},
    }
    seen: set[str] = set()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            for label, value in sample.labels.items():
                seen.add(label)
                if label == "code":
                    assert value.isdigit() and len(value) == 3
                elif label == "le":
                    float(value)
                elif label == "hash":
                    assert len(value) == 16 and int(value, 16) >= 0
                else:
                    assert value in allowed[label], (family.name, label, value)
    assert {"route", "method", "code", "result", "reason", "le", "hash", "version"} <= seen


# -- the access log ----------------------------------------------------------------------


def access_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "gateway.access"]


async def test_one_json_access_line_per_request(
    gateway: RunningGateway, http: aiohttp.ClientSession, make_token: TokenFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.access")
    good = make_token(sub="alice", client_id="web-app", scope="orders:read")
    answered = [
        await request(http, gateway, "GET", "/api/orders/1", good),
        await request(http, gateway, "POST", "/api/orders/1", good),
        await request(http, gateway, "GET", "/api/orders/1"),
        await request(http, gateway, "GET", "/nothing"),
        await request(http, gateway, "GET", "/status"),
    ]
    await settled(gateway)
    records = access_records(caplog)
    assert len(records) == len(answered)
    fields = ("request_id", "route", "method", "status", "subject", "decision", "reason")
    got = [tuple(getattr(r, f) for f in fields) for r in records]
    ids = [request_id for _, request_id in answered]
    assert got == [
        (ids[0], "orders-read", "GET", 200, "alice", "allow", "ok"),
        (ids[1], "orders-write", "POST", 403, "alice", "deny", "insufficient_scope"),
        (ids[2], "orders-read", "GET", 401, None, "deny", "missing_token"),
        (ids[3], "unmatched", "GET", 404, None, None, None),
        (ids[4], "status", "GET", 200, None, "allow", "none"),
    ]
    formatter = JsonFormatter()
    for record in records:
        assert isinstance(record.duration_ms, float) and record.duration_ms >= 0  # type: ignore[attr-defined]
        line = formatter.format(record)
        assert "\n" not in line
        entry = json.loads(line)
        assert entry["logger"] == "gateway.access"
        assert {"time", "request_id", "route", "method", "status", "duration_ms", "subject",
                "decision", "reason"} <= set(entry)


async def test_the_access_log_never_holds_a_token(
    gateway: RunningGateway, http: aiohttp.ClientSession, make_token: TokenFactory,
    token_catalogue: dict[str, str], caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    tokens = {"fresh": make_token(), **token_catalogue}
    answered = [await request(http, gateway, "GET", "/api/orders/1", t) for t in tokens.values()]
    await settled(gateway)
    # (a token over aiohttp's 8190-byte header limit is refused by aiohttp itself, unlogged)
    assert [r.request_id for r in access_records(caplog)] == [  # type: ignore[attr-defined]
        request_id for _, request_id in answered if request_id is not None
    ]
    formatter = JsonFormatter()
    text = "\n".join(formatter.format(r) for r in caplog.records)
    for name, token in tokens.items():
        assert token not in text, name
        signature = token.split(".")[2] if token.count(".") >= 2 else ""
        if len(signature) >= 16:
            assert signature not in text, name


async def test_forgetting_routes_drops_every_label_set_of_those_routes(
    gateway: RunningGateway, traffic: dict[str, str]
) -> None:
    # (a reload calls this for the routes it removed; a generator must work as well as a list)
    gateway.metrics.forget_routes(name for name in ("orders-read", "status"))
    for family in gateway.metrics.registry.collect():
        for sample in family.samples:
            assert sample.labels.get("route") not in ("orders-read", "status"), sample
    assert gateway.sample("gateway_requests_total",
                          {"route": "orders-write", "method": "POST", "code": "403"}) == 1
    assert gateway.sample("gateway_request_duration_seconds_count", {"route": "public"}) == 1
    assert gateway.sample("gateway_auth_decisions_total",
                          {"route": "public", "result": "allow", "reason": "none"}) == 1
