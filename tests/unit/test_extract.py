"""extract_bearer: RFC 6750 §2.1 header syntax (b64token), scheme rules, duplicate headers."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.auth.extract import extract_bearer
from gateway.errors import InvalidRequest

TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln-_~+/."


def headers(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("Bearer " + TOKEN, TOKEN, id="canonical Bearer scheme"),
        pytest.param("bearer " + TOKEN, TOKEN, id="lower-case scheme is accepted"),
        pytest.param("BEARER " + TOKEN, TOKEN, id="upper-case scheme is accepted"),
        pytest.param("bEaReR " + TOKEN, TOKEN, id="mixed-case scheme is accepted"),
        pytest.param("Bearer   " + TOKEN, TOKEN, id="several spaces after the scheme"),
        pytest.param("Bearer " + TOKEN + "  ", TOKEN, id="trailing spaces are dropped"),
        pytest.param("Bearer abc==", "abc==", id="trailing padding is part of b64token"),
        pytest.param("Bearer a", "a", id="one-character token"),
    ],
)
def test_bearer_token_is_returned(value: str, expected: str) -> None:
    assert extract_bearer(headers(("Authorization", value))) == expected


def test_header_name_is_case_insensitive() -> None:
    assert extract_bearer(headers(("authorization", "Bearer " + TOKEN))) == TOKEN


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("Basic dXNlcjpwYXNz", id="Basic scheme counts as no token"),
        pytest.param("Digest username=x", id="Digest scheme counts as no token"),
        pytest.param("DPoP " + TOKEN, id="DPoP scheme counts as no token"),
        pytest.param("Bearer-ish " + TOKEN, id="scheme that only starts with Bearer"),
        pytest.param(TOKEN, id="token without any scheme"),
        pytest.param("", id="empty Authorization header"),
    ],
)
def test_other_scheme_counts_as_no_token(value: str) -> None:
    assert extract_bearer(headers(("Authorization", value))) is None


def test_no_authorization_header_is_no_token() -> None:
    assert extract_bearer(headers(("Cookie", "Bearer " + TOKEN))) is None


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("Bearer", id="scheme without credentials"),
        pytest.param("Bearer ", id="scheme and a space only"),
        pytest.param("Bearer      ", id="scheme and whitespace only"),
        pytest.param("bearer", id="lower-case scheme without credentials"),
        pytest.param("Bearer two tokens", id="space inside the credentials"),
        pytest.param("Bearer abc!def", id="character outside b64token"),
        pytest.param("Bearer abc=def", id="padding in the middle"),
        pytest.param("Bearer =abc", id="only padding at the start"),
        pytest.param("Bearer ===", id="padding only"),
        pytest.param('Bearer "quoted"', id="quoted string is not a b64token"),
        pytest.param("Bearer abc,def", id="comma is not a b64token character"),
        pytest.param("Bearer token=\"x\", realm=y", id="auth-param list instead of a token"),
        pytest.param("Bearer abc\tdef", id="tab inside the credentials"),
        pytest.param("Bearer abcé", id="non-ASCII character"),
    ],
)
def test_malformed_bearer_credentials_are_invalid_request(value: str) -> None:
    with pytest.raises(InvalidRequest) as exc_info:
        extract_bearer(headers(("Authorization", value)))
    assert exc_info.value.status == 400
    assert exc_info.value.reason == "invalid_request"
    assert TOKEN not in exc_info.value.detail


@pytest.mark.parametrize(
    "pairs",
    [
        pytest.param(
            (("Authorization", "Bearer " + TOKEN), ("Authorization", "Bearer " + TOKEN)),
            id="the same bearer token twice",
        ),
        pytest.param(
            (("Authorization", "Basic dXNlcjpwYXNz"), ("Authorization", "Bearer " + TOKEN)),
            id="Basic and Bearer headers",
        ),
        pytest.param(
            (("Authorization", "Bearer " + TOKEN), ("authorization", "Bearer other")),
            id="two headers spelled in different case",
        ),
    ],
)
def test_two_authorization_headers_are_invalid_request(pairs: tuple[tuple[str, str], ...]) -> None:
    with pytest.raises(InvalidRequest) as exc_info:
        extract_bearer(headers(*pairs))
    assert exc_info.value.reason == "invalid_request"
