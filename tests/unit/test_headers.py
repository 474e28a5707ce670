"""Unit tests for gateway.proxy.headers: pure functions over multidicts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.auth.principal import Principal
from gateway.errors import ClaimInvalid
from gateway.proxy.headers import (
    FORWARDING,
    HOP_BY_HOP,
    VIA_TOKEN,
    add_identity,
    check_header_value,
    connection_nominated,
    normalized_name,
    request_headers,
    response_headers,
    stripped_names,
    valid_field_value,
)

IDENTITY = ("X-Auth-Subject", "X-Auth-Client-Id", "X-Auth-Scopes")
STRIPPED = stripped_names(IDENTITY)
UPSTREAM = "backend.internal:8080"


def incoming(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


def forward(*pairs: tuple[str, str], client_ip: str | None = "192.0.2.7",
            proto: str = "http") -> CIMultiDict[str]:
    return request_headers(incoming(*pairs), stripped=STRIPPED, upstream_authority=UPSTREAM,
                           client_ip=client_ip, proto=proto)


def principal(**overrides) -> Principal:
    values = {
        "issuer": "https://idp.test/", "subject": "alice", "client_id": "web-app",
        "scopes": frozenset({"orders:write", "orders:read"}), "token_id": "j1",
        "issued_at": 1.0, "expires_at": 2.0,
    }
    values.update(overrides)
    return Principal(**values)


# -- names -------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "expected"), [
    pytest.param("X-Auth-Subject", "x-auth-subject", id="mixed case is lowered"),
    pytest.param("x_auth_subject", "x-auth-subject", id="underscores read as dashes"),
    pytest.param("X_AUTH-Scopes", "x-auth-scopes", id="mixed underscores and dashes"),
    pytest.param("Via", "via", id="plain name"),
])
def test_normalized_name(name, expected):
    assert normalized_name(name) == expected


def test_stripped_names_hold_forwarding_and_normalised_identity_names():
    assert stripped_names(["X_Auth_Subject", "X-Tenant"]) == FORWARDING | {
        "x-auth-subject", "x-tenant"}


@pytest.mark.parametrize(("values", "expected"), [
    pytest.param(["close"], {"close"}, id="one token"),
    pytest.param(["X-Drop-Me, Keep-Alive"], {"x-drop-me", "keep-alive"},
                 id="list is split and lowered"),
    pytest.param(["a", "B ,, c "], {"a", "b", "c"}, id="several headers and empty members"),
    pytest.param([], set(), id="no Connection header"),
])
def test_connection_nominated(values, expected):
    assert connection_nominated(incoming(*[("Connection", v) for v in values])) == expected


# -- request headers ---------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(HOP_BY_HOP), ids=lambda n: f"{n} is removed")
def test_every_hop_by_hop_request_header_is_removed(name):
    out = forward((name.upper(), "x"), ("X-Kept", "1"))
    assert name not in out
    assert out["X-Kept"] == "1"


def test_hop_by_hop_set_is_the_rfc_one_plus_proxy_extras():
    assert {
        "connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade",
        "proxy-authorization", "proxy-authenticate", "proxy", "proxy-connection",
    } == HOP_BY_HOP


def test_headers_named_in_connection_are_removed():
    out = forward(("Connection", "X-Drop-Me, x-also"), ("X-Drop-Me", "1"), ("X-ALSO", "2"),
                  ("X-Kept", "3"))
    assert "X-Drop-Me" not in out and "X-Also" not in out
    assert out["X-Kept"] == "3"


def test_connection_can_not_nominate_the_headers_the_gateway_adds():
    """Naming Host or X-Forwarded-For in Connection must not remove what the gateway sets."""
    out = forward(("Connection", "Host, X-Forwarded-For, Via, Forwarded"), ("Host", "gw.test"))
    assert out["Host"] == UPSTREAM
    assert out["X-Forwarded-For"] == "192.0.2.7"
    assert out["Via"] == VIA_TOKEN
    assert out["Forwarded"] == 'for=192.0.2.7;proto=http;host="gw.test"'


@pytest.mark.parametrize("name", [
    "X-Auth-Subject", "x-auth-subject", "X_AUTH_SUBJECT", "x_auth-subject",
    "X-Auth-Client-Id", "x_auth_client_id", "X-AUTH-SCOPES", "x_auth_scopes",
    "X-Forwarded-For", "x_forwarded_for", "X-Forwarded-Proto", "X-FORWARDED-HOST",
    "Forwarded", "X-Real-IP", "x_real_ip", "X-Forwarded-Port", "X-Forwarded-Prefix",
], ids=lambda n: f"client {n} is stripped")
def test_client_sent_identity_and_forwarding_headers_are_stripped(name):
    out = forward((name, "spoofed"), ("Host", "gw.test"))
    assert "spoofed" not in out.values()


@given(st.sampled_from(IDENTITY), st.data())
def test_any_spelling_of_an_identity_header_is_stripped(name, data):
    spelled = "".join(
        data.draw(st.sampled_from("-_")) if c == "-"
        else c.upper() if data.draw(st.booleans()) else c.lower()
        for c in name
    )
    out = forward((spelled, "mallory"))
    assert "mallory" not in out.values()


def test_host_is_the_upstream_authority_and_forwarding_headers_are_ours():
    out = forward(("Host", "gw.test:8443"), ("X-Forwarded-For", "6.6.6.6"),
                  ("Forwarded", "for=6.6.6.6"), proto="https")
    assert out.getall("Host") == [UPSTREAM]
    assert out.getall("X-Forwarded-For") == ["192.0.2.7"]
    assert out.getall("X-Forwarded-Proto") == ["https"]
    assert out.getall("X-Forwarded-Host") == ["gw.test:8443"]
    assert out.getall("Forwarded") == ['for=192.0.2.7;proto=https;host="gw.test:8443"']


def test_ipv6_client_is_quoted_in_forwarded():
    out = forward(("Host", "gw.test"), client_ip="2001:db8::1")
    assert out["Forwarded"] == 'for="[2001:db8::1]";proto=http;host="gw.test"'
    assert out["X-Forwarded-For"] == "2001:db8::1"


def test_unknown_client_address_gives_no_for():
    out = forward(("Host", "gw.test"), client_ip=None)
    assert "X-Forwarded-For" not in out
    assert out["Forwarded"] == 'proto=http;host="gw.test"'


def test_host_that_cannot_be_quoted_safely_is_left_out_of_forwarded():
    out = forward(("Host", 'evil"; for=1.2.3.4'))
    assert out["Forwarded"] == "for=192.0.2.7;proto=http"
    assert out["X-Forwarded-Host"] == 'evil"; for=1.2.3.4'


def test_no_host_gives_no_forwarded_host():
    out = forward()
    assert "X-Forwarded-Host" not in out
    assert out["Forwarded"] == "for=192.0.2.7;proto=http"


def test_via_is_appended_to_the_client_chain():
    out = forward(("Via", "1.0 fred"), ("via", "1.1 p.example (x)"))
    assert out.getall("Via") == [f"1.0 fred, 1.1 p.example (x), {VIA_TOKEN}"]


def test_via_is_added_when_absent():
    assert forward().getall("Via") == [VIA_TOKEN]


def test_end_to_end_headers_keep_order_case_and_duplicates():
    out = forward(("Accept", "a/b"), ("X-Custom", "1"), ("accept", "c/d"),
                  ("Content-Length", "5"), ("Authorization", "Bearer t"),
                  ("Content-Encoding", "gzip"))
    kept = [(k, v) for k, v in out.items() if k.lower() not in {
        "host", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded", "via"}]
    assert kept == [("Accept", "a/b"), ("X-Custom", "1"), ("accept", "c/d"),
                    ("Content-Length", "5"), ("Authorization", "Bearer t"),
                    ("Content-Encoding", "gzip")]


# -- identity ----------------------------------------------------------------------------


def test_identity_headers_are_set_from_the_principal():
    headers: CIMultiDict[str] = CIMultiDict()
    add_identity(headers, principal(), subject="X-Auth-Subject", client_id="X-Auth-Client-Id",
                 scopes="X-Auth-Scopes", issuer=None)
    assert list(headers.items()) == [
        ("X-Auth-Subject", "alice"), ("X-Auth-Client-Id", "web-app"),
        ("X-Auth-Scopes", "orders:read orders:write"),
    ]


def test_identity_headers_replace_any_existing_value():
    headers = CIMultiDict([("x-auth-subject", "mallory"), ("X-AUTH-SUBJECT", "eve")])
    add_identity(headers, principal(), subject="X-Auth-Subject", client_id=None, scopes=None,
                 issuer=None)
    assert headers.getall("X-Auth-Subject") == ["alice"]


def test_issuer_header_when_configured():
    headers: CIMultiDict[str] = CIMultiDict()
    add_identity(headers, principal(), subject=None, client_id=None, scopes=None,
                 issuer="X-Auth-Issuer")
    assert list(headers.items()) == [("X-Auth-Issuer", "https://idp.test/")]


def test_missing_claims_send_no_header_and_empty_scopes_an_empty_one():
    headers: CIMultiDict[str] = CIMultiDict()
    add_identity(headers, principal(subject=None, client_id=None, scopes=frozenset()),
                 subject="X-Auth-Subject", client_id="X-Auth-Client-Id",
                 scopes="X-Auth-Scopes", issuer=None)
    assert list(headers.items()) == [("X-Auth-Scopes", "")]


@pytest.mark.parametrize("field", ["subject", "client_id", "issuer"], ids=lambda f: f"in {f}")
@pytest.mark.parametrize("bad", [
    pytest.param("alice\r\nX-Admin: 1", id="CRLF"),
    pytest.param("alice\nX-Admin: 1", id="LF"),
    pytest.param("alice\rX", id="CR"),
    pytest.param("alice\x00", id="NUL"),
    pytest.param("al\x01ice", id="SOH"),
    pytest.param("al\x1bice", id="ESC"),
    pytest.param("al\x7fice", id="DEL"),
    pytest.param("al\x0bice", id="vertical tab"),
])
def test_claim_with_header_breaking_characters_is_refused(field, bad):
    headers: CIMultiDict[str] = CIMultiDict()
    with pytest.raises(ClaimInvalid):
        add_identity(headers, principal(**{field: bad}), subject="X-Auth-Subject",
                     client_id="X-Auth-Client-Id", scopes="X-Auth-Scopes",
                     issuer="X-Auth-Issuer")
    assert all(bad not in v for v in headers.values())


def test_claim_is_not_checked_when_its_header_is_off():
    headers: CIMultiDict[str] = CIMultiDict()
    add_identity(headers, principal(subject="a\r\nb"), subject=None, client_id=None,
                 scopes=None, issuer=None)
    assert list(headers.items()) == []


@pytest.mark.parametrize("value", [
    "plain", "with space", "tab\tinside", "ünïcode", "日本", "a\x80b\u2028c", "",
], ids=lambda v: f"{v!r} is accepted")
def test_check_header_value_accepts_ordinary_values(value):
    assert check_header_value(value) == value


@pytest.mark.parametrize("code", [*range(0x00, 0x09), *range(0x0A, 0x20), 0x7F],
                         ids=lambda c: f"control character {c:#04x} is refused")
def test_check_header_value_refuses_every_control_character_but_tab(code):
    with pytest.raises(ClaimInvalid):
        check_header_value(f"a{chr(code)}b")


@pytest.mark.parametrize(("value", "valid"), [
    pytest.param("ok value\twith tab", True, id="tab and space are valid"),
    pytest.param("é 日本 \x80", True, id="non-ASCII is valid"),
    pytest.param("a\rb", False, id="CR is invalid"),
    pytest.param("a\x01b", False, id="SOH is invalid"),
    pytest.param("a\x7fb", False, id="DEL is invalid"),
])
def test_valid_field_value(value, valid):
    assert valid_field_value(value) is valid


def test_scopes_with_a_control_character_are_refused():
    headers: CIMultiDict[str] = CIMultiDict()
    with pytest.raises(ClaimInvalid):
        add_identity(headers, principal(scopes=frozenset({"a\x01b"})), subject=None,
                     client_id=None, scopes="X-Auth-Scopes", issuer=None)


# -- response headers --------------------------------------------------------------------


def test_response_hop_by_hop_and_nominated_headers_are_removed():
    out = response_headers(incoming(
        ("Connection", "X-Secret-Hop, keep-alive"), ("X-Secret-Hop", "1"),
        ("Keep-Alive", "timeout=5"), ("Transfer-Encoding", "chunked"),
        ("Proxy-Authenticate", "Basic"), ("Upgrade", "h2c"), ("Trailer", "X-T"),
        ("X-Kept", "yes"),
    ))
    assert list(out.items()) == [("X-Kept", "yes")]


def test_response_end_to_end_headers_keep_order_and_duplicates():
    pairs = [("Set-Cookie", "a=1"), ("Content-Length", "10"), ("set-cookie", "b=2"),
             ("Content-Encoding", "gzip"), ("WWW-Authenticate", "Basic")]
    assert list(response_headers(incoming(*pairs)).items()) == pairs
