"""Pure parts of identity-provider fetching: Cache-Control, URL rules, redirects, discovery."""

from __future__ import annotations

import pytest
from yarl import URL

from gateway.auth.discovery import metadata_urls
from gateway.auth.fetch import FetchError, FetchLimits, _redirect_target, cache_max_age, check_url

SECURE = FetchLimits()
INSECURE = FetchLimits(allow_insecure_http=True)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        pytest.param(None, None, id="no header"),
        pytest.param("public, max-age=3600", 3600.0, id="max-age after another directive"),
        pytest.param("max-age=60, must-revalidate", 60.0, id="max-age first"),
        pytest.param('max-age="120"', 120.0, id="quoted max-age"),
        pytest.param("MAX-AGE=5", 5.0, id="upper case"),
        pytest.param("no-cache", 0.0, id="no-cache"),
        pytest.param("max-age=600, no-store", 0.0, id="no-store wins"),
        pytest.param("s-maxage=600", None, id="s-maxage is for shared caches"),
        pytest.param("max-age=abc", None, id="not a number"),
        pytest.param("max-age=-1", None, id="negative"),
    ],
)
def test_cache_control_max_age(header: str | None, seconds: float | None) -> None:
    assert cache_max_age(header) == seconds


@pytest.mark.parametrize(
    ("url", "limits", "ok"),
    [
        pytest.param("https://idp.example/jwks", SECURE, True, id="https"),
        pytest.param("http://idp.example/jwks", SECURE, False, id="http without the opt-in"),
        pytest.param("http://127.0.0.1:8080/jwks", INSECURE, True, id="http with the opt-in"),
        pytest.param("ftp://idp.example/jwks", INSECURE, False, id="ftp"),
        pytest.param("file:///etc/passwd", INSECURE, False, id="file"),
        pytest.param("https://user:pw@idp.example/jwks", SECURE, False, id="credentials"),
        pytest.param("https://idp.example/jwks?tenant=a", SECURE, True, id="a query is fine"),
    ],
)
def test_urls_that_may_be_fetched(url: str, limits: FetchLimits, ok: bool) -> None:
    if ok:
        assert str(check_url(url, limits)) == url
    else:
        with pytest.raises(FetchError) as info:
            check_url(url, limits)
        assert info.value.result == "invalid"


@pytest.mark.parametrize(
    ("current", "location", "limits", "expected"),
    [
        pytest.param("https://idp.example/a", "/b", SECURE, "https://idp.example/b",
                     id="relative on the same host"),
        pytest.param("https://idp.example/a", "https://idp.example/c", SECURE,
                     "https://idp.example/c", id="absolute on the same host"),
        pytest.param("http://idp.example/a", "https://idp.example/c", INSECURE,
                     "https://idp.example/c", id="upgrade to https on the same host"),
        pytest.param("https://idp.example/a", "https://evil.example/jwks", SECURE, None,
                     id="another host"),
        pytest.param("https://idp.example/a", "https://idp.example.evil.example/", SECURE, None,
                     id="a host with the same prefix"),
        pytest.param("https://idp.example/a", "https://idp.example:8443/a", SECURE, None,
                     id="another port"),
        pytest.param("https://idp.example/a", "http://idp.example/a", INSECURE, None,
                     id="downgrade to http"),
        pytest.param("https://idp.example/a", "", SECURE, None, id="no Location"),
        pytest.param("https://idp.example/a", "//evil.example/x", SECURE, None,
                     id="scheme-relative to another host"),
    ],
)
def test_redirects_stay_on_the_host(
    current: str, location: str, limits: FetchLimits, expected: str | None
) -> None:
    if expected is not None:
        assert str(_redirect_target(URL(current), location, limits)) == expected
    else:
        with pytest.raises(FetchError) as info:
            _redirect_target(URL(current), location or None, limits)
        assert info.value.result == "redirect"


@pytest.mark.parametrize(
    ("issuer", "oidc", "rfc8414"),
    [
        pytest.param("https://idp.example", "https://idp.example/.well-known/openid-configuration",
                     "https://idp.example/.well-known/oauth-authorization-server",
                     id="issuer without a path"),
        pytest.param("https://idp.example/", "https://idp.example/.well-known/openid-configuration",
                     "https://idp.example/.well-known/oauth-authorization-server",
                     id="issuer with a trailing slash"),
        pytest.param("https://idp.example/realms/main",
                     "https://idp.example/realms/main/.well-known/openid-configuration",
                     "https://idp.example/.well-known/oauth-authorization-server/realms/main",
                     id="issuer with a path: appended for OIDC, inserted for RFC 8414"),
        pytest.param("https://idp.example:8443/t/1/",
                     "https://idp.example:8443/t/1/.well-known/openid-configuration",
                     "https://idp.example:8443/.well-known/oauth-authorization-server/t/1",
                     id="issuer with a port and a trailing slash"),
    ],
)
def test_metadata_urls(issuer: str, oidc: str, rfc8414: str) -> None:
    assert metadata_urls(issuer) == (oidc, rfc8414)


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        pytest.param({"issuer": "https://idp.example", "jwks_uri": "http://idp.example/jwks"},
                     "https URL required", id="a plain-http jwks_uri"),
        pytest.param({"issuer": "https://idp.example/", "jwks_uri": "https://idp.example/j"},
                     "is not the configured", id="an issuer with another trailing slash"),
        pytest.param({"issuer": "https://idp.example"}, "no jwks_uri", id="no jwks_uri"),
        pytest.param({"issuer": "https://idp.example", "jwks_uri": 5}, "no jwks_uri",
                     id="a jwks_uri that is not a string"),
        pytest.param(["issuer"], "not a JSON object", id="a list"),
    ],
)
def test_metadata_documents_that_are_refused(document: object, fragment: str) -> None:
    from gateway.auth.discovery import _metadata

    with pytest.raises(FetchError) as info:
        _metadata(document, "https://idp.example", "https://idp.example/.well-known/x", SECURE)
    assert info.value.result == "invalid"
    assert fragment in info.value.detail
