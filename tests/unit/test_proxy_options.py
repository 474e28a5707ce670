"""Compiled proxy options: path rewrites, header edits, trusted proxies, CORS, sizes."""

from __future__ import annotations

import ipaddress

import pytest
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.config.sizes import parse_size
from gateway.errors import CorsRejected
from gateway.proxy.cors import add_cors_headers, preflight_method, preflight_response
from gateway.proxy.options import Cors, HeaderEdits, PathRewrite, ServerProxy


@pytest.mark.parametrize(("rewrite", "path", "expected"), [
    pytest.param(PathRewrite(), "/api/x", "/api/x", id="no rewrite forwards the path as is"),
    pytest.param(PathRewrite(strip="/api"), "/api/orders/7", "/orders/7",
                 id="strip removes the prefix"),
    pytest.param(PathRewrite(strip="/api"), "/api", "/", id="stripping the whole path leaves /"),
    pytest.param(PathRewrite(strip="/api"), "/api/", "/", id="a trailing slash is kept as /"),
    pytest.param(PathRewrite(strip="/api"), "/apix", "/apix",
                 id="strip works on segment boundaries only"),
    pytest.param(PathRewrite(strip="/api/v1", prefix="/v2"), "/api/v1/users", "/v2/users",
                 id="rewrite replaces the prefix"),
    pytest.param(PathRewrite(strip="/api/v1", prefix="/v2"), "/api/v1", "/v2",
                 id="rewrite of the bare prefix"),
    pytest.param(PathRewrite(strip="/api", prefix="/"), "/api/x", "/x",
                 id="rewrite to the root"),
])
def test_path_rewrite(rewrite: PathRewrite, path: str, expected: str) -> None:
    assert rewrite.apply(path) == expected


def test_header_edits_remove_then_set_then_add() -> None:
    headers = CIMultiDict([("X-A", "1"), ("X-B", "2"), ("x-b", "3"), ("X-C", "4")])
    HeaderEdits(remove=frozenset({"x-a"}), set=(("X-B", "set"),), add=(("X-C", "added"),)
                ).apply(headers)
    assert list(headers.items()) == [("X-B", "set"), ("X-C", "4"), ("X-C", "added")]
    assert not HeaderEdits()


@pytest.mark.parametrize(("peer", "trusted"), [
    pytest.param("10.1.2.3", True, id="inside a trusted IPv4 block"),
    pytest.param("192.168.0.1", False, id="outside every block"),
    pytest.param("::ffff:10.0.0.9", True, id="IPv4-mapped IPv6 is matched as IPv4"),
    pytest.param("fd00::1", True, id="inside a trusted IPv6 block"),
    pytest.param("not-an-ip", False, id="garbage is not trusted"),
    pytest.param(None, False, id="no peer address is not trusted"),
])
def test_trusted_proxies(peer: str | None, trusted: bool) -> None:
    proxy = ServerProxy(trusted_proxies=(ipaddress.ip_network("10.0.0.0/8"),
                                         ipaddress.ip_network("fd00::/8")))
    assert proxy.is_trusted(peer) is trusted
    assert ServerProxy().is_trusted("10.1.2.3") is False


def cors(**overrides: object) -> Cors:
    values: dict[str, object] = {
        "any_origin": False, "origins": frozenset({"https://app.test"}),
        "methods": frozenset({"GET", "POST"}), "allow_headers": frozenset({"authorization"}),
        "methods_value": "GET, POST", "headers_value": "Authorization", "expose_value": "X-Total",
        "max_age": "600", "credentials": True,
    }
    values.update(overrides)
    return Cors(**values)  # type: ignore[arg-type]


def headers(**values: str) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict({k.replace("_", "-"): v for k, v in values.items()}))


def test_preflight_method_needs_options_origin_and_a_requested_method() -> None:
    h = headers(Origin="https://app.test", Access_Control_Request_Method="POST")
    assert preflight_method("OPTIONS", h) == "POST"
    assert preflight_method("GET", h) is None
    assert preflight_method("OPTIONS", headers(Origin="https://app.test")) is None


def test_preflight_from_an_allowed_origin() -> None:
    response = preflight_response(cors(), headers(
        Origin="https://app.test", Access_Control_Request_Method="POST",
        Access_Control_Request_Headers="authorization"), "POST")
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.test"
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    assert response.headers["Access-Control-Allow-Methods"] == "GET, POST"
    assert response.headers["Access-Control-Max-Age"] == "600"
    assert "Origin" in response.headers.getall("Vary")


@pytest.mark.parametrize("h", [
    pytest.param(headers(Origin="https://evil.test"), id="origin not allowed"),
    pytest.param(headers(Origin="https://app.test", Access_Control_Request_Headers="x-secret"),
                 id="requested header not allowed"),
])
def test_preflight_refusals(h: CIMultiDictProxy[str]) -> None:
    with pytest.raises(CorsRejected):
        preflight_response(cors(), h, "POST")
    with pytest.raises(CorsRejected):
        preflight_response(cors(), headers(Origin="https://app.test"), "DELETE")


def test_actual_response_gets_cors_headers_and_upstream_ones_are_replaced() -> None:
    response = web.Response(headers={"Access-Control-Allow-Origin": "*"})
    add_cors_headers(cors(), headers(Origin="https://app.test"), response)
    assert response.headers.getall("Access-Control-Allow-Origin") == ["https://app.test"]
    assert response.headers["Access-Control-Expose-Headers"] == "X-Total"
    other = web.Response(headers={"Access-Control-Allow-Origin": "*"})
    add_cors_headers(cors(), headers(Origin="https://evil.test"), other)
    assert "Access-Control-Allow-Origin" not in other.headers


@pytest.mark.parametrize(("text", "size"), [
    pytest.param(512, 512, id="a bare number is bytes"),
    pytest.param("64KiB", 65536, id="KiB is 1024"),
    pytest.param("10MB", 10_000_000, id="MB is decimal"),
    pytest.param("1GiB", 1 << 30, id="GiB"),
    pytest.param("1.5MiB", 1572864, id="fractions"),
])
def test_parse_size(text: object, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "ten", "5 XB", True, "-1"])
def test_parse_size_refuses(text: object) -> None:
    with pytest.raises(ValueError):
        parse_size(text)
