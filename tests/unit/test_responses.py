"""responses.error_response: the single error → HTTP mapping (RFC 6750 §3)."""

from __future__ import annotations

import json

import pytest

from gateway import errors
from gateway.responses import challenge, error_response

RID = ("X-Request-ID", "rid-1")


def body(resp) -> dict[str, str]:
    return json.loads(resp.body)


@pytest.mark.parametrize(
    ("err", "status", "www_authenticate"),
    [
        pytest.param(errors.MissingToken(), 401, 'Bearer realm="gw"',
                     id="missing token: challenge without error code"),
        pytest.param(errors.InvalidRequest(), 400,
                     'Bearer realm="gw", error="invalid_request", '
                     'error_description="malformed authorization header"',
                     id="malformed header: invalid_request"),
        pytest.param(errors.TokenExpired("exp 123 passed"), 401,
                     'Bearer realm="gw", error="invalid_token", error_description="token expired"',
                     id="expired: invalid_token with a generic description"),
        pytest.param(errors.TokenRevoked(), 401,
                     'Bearer realm="gw", error="invalid_token", error_description="token revoked"',
                     id="revoked: 401 invalid_token, never 403"),
        pytest.param(errors.InsufficientScope(("a:read", "b:write")), 403,
                     'Bearer realm="gw", error="insufficient_scope", '
                     'error_description="token lacks the required scope", scope="a:read b:write"',
                     id="insufficient scope: 403 with the scope attribute"),
        pytest.param(errors.RouteNotFound(), 404, None, id="no route: no challenge"),
        pytest.param(errors.UpstreamTimeout(), 504, None, id="upstream timeout: 504"),
        pytest.param(errors.UpstreamUnavailable(), 502, None, id="upstream refused: 502"),
    ],
)
def test_status_and_challenge(err, status, www_authenticate):
    resp = error_response(err, realm="gw", request_id=RID)
    assert resp.status == status
    assert resp.headers.get("WWW-Authenticate") == www_authenticate
    assert resp.headers["X-Request-ID"] == "rid-1"
    assert resp.content_type == "application/json"
    assert set(body(resp)) == {"error", "error_description", "request_id"}
    assert body(resp)["request_id"] == "rid-1"


def test_detail_never_reaches_the_client():
    resp = error_response(errors.SignatureInvalid("key kid=abc secret-detail"), realm="g",
                          request_id=RID)
    assert b"secret-detail" not in resp.body
    assert "secret-detail" not in resp.headers["WWW-Authenticate"]


def test_method_not_allowed_lists_allow():
    resp = error_response(errors.MethodNotAllowed(["POST", "GET"]), realm="g", request_id=RID)
    assert resp.status == 405
    assert resp.headers["Allow"] == "GET, POST"


def test_revocation_unavailable_has_retry_after():
    resp = error_response(errors.RevocationUnavailable(), realm="g", request_id=RID)
    assert resp.status == 503
    assert resp.headers["Retry-After"] == "1"


def test_realm_is_quoted_safely():
    assert challenge(errors.MissingToken(), 'a"b\\c') == 'Bearer realm="a\\"b\\\\c"'


def test_every_reason_is_snake_case_and_unique_per_class():
    for reason in errors.REASONS:
        assert reason == reason.lower() and " " not in reason
