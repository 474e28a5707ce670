"""Path tricks over real sockets: the admin-only upstream area is reached only with authorization.

Request lines are written byte for byte (the aiohttp client would normalise them). For every
target the expected status is written out, and the upstream hit log must never show an
``/admin`` path unless the request carried an admin token.
"""

from __future__ import annotations

import json

import pytest

from tests.fixtures.raw import port_of, raw_exchange, request_bytes

pytestmark = pytest.mark.integration

BAD_PATH = {"error": "invalid_request", "error_description": "request path not accepted"}
BAD_TARGET = {"error": "invalid_request", "error_description": "request target not accepted"}
NOT_FOUND = {"error": "not_found", "error_description": "no route matches the request"}
NO_TOKEN = {"error": "invalid_token", "error_description": "bearer token required"}
PARSER = "aiohttp's parser"  # answered before the gateway's handler: text body

# (method, target, status, JSON error body or PARSER, upstream path for 200s)
CORPUS = [
    pytest.param("GET", "/public/..%2fadmin", 400, BAD_PATH, None,
                 id="encoded slash after dot-dot is refused"),
    pytest.param("GET", "/public/%2e%2e/admin", 400, BAD_PATH, None,
                 id="lower-case encoded dot-dot is refused"),
    pytest.param("GET", "/public/%2E%2E/admin", 400, BAD_PATH, None,
                 id="upper-case encoded dot-dot is refused"),
    pytest.param("GET", "/public/.%2e/admin", 400, BAD_PATH, None,
                 id="half-encoded dot-dot is refused"),
    pytest.param("GET", "/public/%2e%2e%2fadmin", 400, BAD_PATH, None,
                 id="fully encoded dot-dot-slash is refused"),
    pytest.param("GET", "/public/%252e%252e/admin", 200, None, "/public/%252e%252e/admin",
                 id="double-encoded dot-dot stays a literal public path"),
    pytest.param("GET", "/public/..%252fadmin", 200, None, "/public/..%252fadmin",
                 id="double-encoded slash stays a literal public path"),
    pytest.param("GET", "/public/..\\admin", 400, BAD_PATH, None,
                 id="backslash dot-dot is refused"),
    pytest.param("GET", "/public/%5c../admin", 400, BAD_PATH, None,
                 id="encoded backslash is refused"),
    pytest.param("GET", "/public/..%5cadmin", 400, BAD_PATH, None,
                 id="encoded backslash after dot-dot is refused"),
    pytest.param("GET", "/public;/admin", 400, BAD_PATH, None,
                 id="path parameter on the public segment is refused"),
    pytest.param("GET", "/public/..;/admin", 400, BAD_PATH, None,
                 id="Tomcat-style dot-dot-semicolon is refused"),
    pytest.param("GET", "/public%2f..%2fadmin", 400, BAD_PATH, None,
                 id="encoded slashes around dot-dot are refused"),
    pytest.param("GET", "/public/%00/admin", 400, BAD_PATH, None,
                 id="encoded NUL is refused"),
    pytest.param("GET", "/public/..%00/admin", 400, BAD_PATH, None,
                 id="encoded NUL after dot-dot is refused"),
    pytest.param("GET", "/public/\x00/admin", 400, PARSER, None,
                 id="raw NUL is refused by the parser"),
    pytest.param("GET", "/public/\t/admin", 400, PARSER, None,
                 id="raw tab is refused by the parser"),
    pytest.param("GET", "/public/%c0%ae%c0%ae/admin", 200, None, "/public/%C0%AE%C0%AE/admin",
                 id="overlong UTF-8 dots stay encoded in a public path"),
    pytest.param("GET", "/public/%u002e%u002e/admin", 400, BAD_PATH, None,
                 id="IIS-style %u escape is refused"),
    pytest.param("GET", "/public/x#/../../admin", 400, BAD_PATH, None,
                 id="fragment in the request target is refused"),
    pytest.param("GET", "/PUBLIC/../admin", 401, NO_TOKEN, None,
                 id="upper-case public segment then dot-dot resolves to the admin area"),
    pytest.param("GET", "/public/../admin", 401, NO_TOKEN, None,
                 id="dot-dot out of public resolves to the admin area"),
    pytest.param("GET", "/public/./../admin", 401, NO_TOKEN, None,
                 id="dot then dot-dot resolves to the admin area"),
    pytest.param("GET", "//admin", 401, NO_TOKEN, None,
                 id="double leading slash resolves to the admin area"),
    pytest.param("GET", "/public//..//admin", 401, NO_TOKEN, None,
                 id="repeated slashes around dot-dot resolve to the admin area"),
    pytest.param("GET", "/../admin", 400, BAD_PATH, None,
                 id="dot-dot above the root is refused"),
    pytest.param("GET", "/public/..", 404, NOT_FOUND, None,
                 id="dot-dot back to the root matches no route"),
    pytest.param("GET", "/admin/../public", 200, None, "/public",
                 id="dot-dot out of the admin area resolves to public"),
    pytest.param("GET", "/api/ordersX", 404, NOT_FOUND, None,
                 id="prefix does not match inside a segment"),
    pytest.param("GET", "//evil.example/admin", 404, NOT_FOUND, None,
                 id="scheme-relative target is a path, not an authority"),
    pytest.param("GET", "http://evil.example/admin", 400, BAD_TARGET, None,
                 id="absolute-form target with a foreign authority is refused"),
    pytest.param("GET", "http://localhost/public/../admin", 401, NO_TOKEN, None,
                 id="absolute-form target for our Host is routed on its canonical path"),
    pytest.param("OPTIONS", "*", 400, BAD_TARGET, None,
                 id="asterisk-form OPTIONS is refused"),
    pytest.param("CONNECT", "127.0.0.1:22", 400, BAD_TARGET, None,
                 id="CONNECT tunnel is refused"),
    pytest.param("GET", "public/../admin", 400, PARSER, None,
                 id="target without a leading slash is refused by the parser"),
]


def _get(method: str, target: str, token: str | None = None) -> bytes:
    headers = ["Host: localhost", "Connection: close"]
    if token is not None:
        headers.append(f"Authorization: Bearer {token}")
    return request_bytes(f"{method} {target} HTTP/1.1", *headers)


def _assert_no_admin_hit(upstream) -> None:
    assert [p for p in upstream.paths() if p.lower().startswith("/admin")] == []


def _assert_answer(response, status: int, error, upstream_path: str | None, upstream) -> None:
    assert response.status == status
    if error is PARSER:
        assert not response.headers.get("Content-Type", "").startswith("application/json")
    elif error is not None:
        body = response.json()
        assert body == {**error, "request_id": response.headers["X-Request-ID"]}
    if upstream_path is None:
        assert upstream.hits == []
    else:
        assert upstream.paths() == [upstream_path]


@pytest.mark.parametrize(("method", "target", "status", "error", "upstream_path"), CORPUS)
async def test_path_trick_without_token(gateway, upstream, method, target, status, error,
                                        upstream_path):
    response = await raw_exchange(port_of(gateway.url), _get(method, target))
    _assert_answer(response, status, error, upstream_path, upstream)
    if status == 401:
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="gateway"'
        assert gateway.sample("gateway_auth_decisions_total", {
            "route": "admin-area", "result": "deny", "reason": "missing_token"}) == 1
    _assert_no_admin_hit(upstream)


@pytest.mark.parametrize(("method", "target", "status", "error", "upstream_path"), CORPUS)
async def test_path_trick_with_a_non_admin_token(gateway, upstream, make_token, method, target,
                                                 status, error, upstream_path):
    """A valid token without the admin scope: what resolved to /admin is now 403, never 200."""
    token = make_token(scope="orders:read orders:write reports:read")
    response = await raw_exchange(port_of(gateway.url),
                                  _get(method, target, token))
    if status == 401:
        assert response.status == 403
        assert response.headers["WWW-Authenticate"] == (
            'Bearer realm="gateway", error="insufficient_scope", '
            'error_description="token lacks the required scope", scope="admin"'
        )
        assert upstream.hits == []
    else:
        _assert_answer(response, status, error, upstream_path, upstream)
    _assert_no_admin_hit(upstream)


@pytest.mark.parametrize("target", [
    pytest.param("/public/../admin", id="dot-dot out of public"),
    pytest.param("//admin", id="double leading slash"),
    pytest.param("/PUBLIC/../admin/users", id="upper-case segment then dot-dot"),
])
async def test_admin_token_reaches_the_canonical_admin_path(gateway, upstream, make_token,
                                                            target):
    """The control: with an admin token the same tricks reach exactly the canonical path."""
    token = make_token(scope="admin")
    response = await raw_exchange(port_of(gateway.url),
                                  _get("GET", target, token))
    assert response.status == 200
    expected = "/admin/users" if target.endswith("/users") else "/admin"
    assert response.json()["raw_path"] == expected
    assert upstream.paths() == [expected]
    assert gateway.sample("gateway_auth_decisions_total", {
        "route": "admin-area", "result": "allow", "reason": "ok"}) == 1


@pytest.mark.parametrize(("target", "upstream_path"), [
    pytest.param("/public/a/./b//c/../d", "/public/a/b/d", id="dot segments and slashes resolved"),
    pytest.param("/public/%7euser/%41%2d%5f", "/public/~user/A-_",
                 id="unreserved escapes are decoded"),
    pytest.param("/public/%c3%a9t%c3%a9", "/public/%C3%A9t%C3%A9",
                 id="other escapes are kept with upper-case hex"),
    pytest.param("/public/x/", "/public/x/", id="trailing slash is kept"),
    pytest.param("/public/a:b@c!$&'()*+,=", "/public/a:b@c!$&'()*+,=",
                 id="sub-delims and colon pass unchanged"),
])
async def test_upstream_receives_exactly_the_canonical_path(gateway, upstream, target,
                                                            upstream_path):
    response = await raw_exchange(port_of(gateway.url),
                                  _get("GET", target))
    assert response.status == 200
    assert upstream.paths() == [upstream_path]


async def test_path_trick_on_a_protected_prefix_is_still_protected(gateway, upstream,
                                                                   make_token):
    """/api/reports/../orders/1 is the orders route: its scopes apply, not the reports ones."""
    token = make_token(scope="reports:read")
    response = await raw_exchange(port_of(gateway.url),
                                  _get("GET", "/api/reports/../orders/1", token))
    assert response.status == 403
    assert 'scope="orders:read"' in response.headers["WWW-Authenticate"]
    assert upstream.hits == []


# -- 404 and 405 ---------------------------------------------------------------------------


async def test_no_route_is_404_json(gateway, upstream):
    response = await raw_exchange(port_of(gateway.url),
                                  _get("GET", "/nothing/here"))
    assert response.status == 404
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {**NOT_FOUND, "request_id": response.headers["X-Request-ID"]}
    assert upstream.hits == []
    assert gateway.sample("gateway_requests_total", {
        "route": "unmatched", "method": "GET", "code": "404"}) == 1


async def test_method_not_served_by_any_route_of_the_path_is_405(gateway, upstream):
    response = await raw_exchange(port_of(gateway.url),
                                  _get("OPTIONS", "/api/orders/1"))
    assert response.status == 405
    assert response.headers["Allow"] == "DELETE, GET, HEAD, PATCH, POST, PUT"
    assert response.json() == {
        "error": "method_not_allowed", "error_description": "method not allowed on this route",
        "request_id": response.headers["X-Request-ID"],
    }
    assert upstream.hits == []


@pytest.fixture
def method_config(tmp_path, upstream, rsa_key, ec_key):
    from tests.fixtures.gateway import base_config

    config = base_config(tmp_path, upstream, rsa_key, ec_key)
    config["routes"] += [
        {"name": "read-only", "match": {"path_prefix": "/ro", "methods": ["GET"]},
         "upstream": upstream.url, "auth": "none"},
        {"name": "open-api", "match": {"path_prefix": "/open"}, "upstream": upstream.url,
         "auth": "none"},
        {"name": "open-api-locked", "match": {"path_prefix": "/open/locked",
                                              "methods": ["GET", "HEAD"]},
         "upstream": upstream.url, "auth": "none"},
    ]
    return config


@pytest.mark.parametrize("method", ["POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS"],
                         ids=lambda m: f"{m} on a GET-only route is 405")
async def test_get_only_route_answers_405_with_allow(start_gateway, method_config, upstream,
                                                     method):
    gw = await start_gateway(method_config)
    response = await raw_exchange(port_of(gw.url),
                                  _get(method, "/ro/thing"),
                                  head=method == "HEAD")
    assert response.status == 405
    assert response.headers["Allow"] == "GET"
    if method != "HEAD":
        assert json.loads(response.body)["error"] == "method_not_allowed"
    assert upstream.hits == []
    # No route was selected: the request is counted as unmatched.
    assert gw.sample("gateway_requests_total", {
        "route": "unmatched", "method": method, "code": "405"}) == 1


async def test_get_on_get_only_route_is_served(start_gateway, method_config, upstream):
    gw = await start_gateway(method_config)
    response = await raw_exchange(port_of(gw.url), _get("GET", "/ro/thing"))
    assert response.status == 200
    assert upstream.paths() == ["/ro/thing"]


async def test_405_never_falls_back_to_a_less_specific_route(start_gateway, method_config,
                                                             upstream):
    gw = await start_gateway(method_config)
    response = await raw_exchange(port_of(gw.url),
                                  _get("DELETE", "/open/locked/1"))
    assert response.status == 405
    assert response.headers["Allow"] == "GET, HEAD"
    assert upstream.hits == []
    served = await raw_exchange(port_of(gw.url), _get("DELETE", "/open/other"))
    assert served.status == 200
    assert upstream.paths() == ["/open/other"]
