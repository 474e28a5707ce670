"""Access-log policy: which requests get a line, and what their query strings show."""

from __future__ import annotations

import pytest

from gateway.access import REDACTED, AccessLog, loggable_query

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLWJ5dGVz"


@pytest.mark.parametrize(("query", "mode", "logged"), [
    pytest.param("a=1&b=2", "drop", None, id="drop logs nothing"),
    pytest.param("", "keep", None, id="no query, no field"),
    pytest.param("a=1&b=x%20y&flag", "keep", "a=1&b=x%20y&flag", id="keep keeps values"),
    pytest.param("a=1&b=2&flag", "redact", f"a={REDACTED}&b={REDACTED}&flag",
                 id="redact keeps the names only"),
    pytest.param("access_token=abc&Code=xyz&page=2", "keep",
                 f"access_token={REDACTED}&Code={REDACTED}&page=2",
                 id="token-like parameters are redacted whatever the case"),
    pytest.param("client%5Fsecret=s3&x=1", "keep", f"client%5Fsecret={REDACTED}&x=1",
                 id="names are compared decoded"),
    pytest.param(f"q={JWT}&n=1", "keep", f"q={REDACTED}&n=1",
                 id="a value shaped like a JWT is redacted under any name"),
    pytest.param(f"{JWT}", "keep", REDACTED, id="a bare JWT is redacted"),
    pytest.param("x=" + "a" * 2000, "keep", "x=" + "a" * 1022 + "…", id="long queries are cut"),
])
def test_loggable_query(query: str, mode: str, logged: str | None) -> None:
    assert loggable_query(query, mode) == logged


def test_sampling_keeps_refusals_and_errors() -> None:
    draws = iter([0.05, 0.5])
    policy = AccessLog(sample=0.1)
    assert policy.wanted(200, "allow", lambda: next(draws)) is True    # 0.05 < 0.1
    assert policy.wanted(200, "allow", lambda: next(draws)) is False   # 0.5 ≥ 0.1

    def never() -> float:
        raise AssertionError("no draw for requests that are always logged")

    for status, decision in [(404, None), (401, "deny"), (200, "shadow_deny"), (502, "allow"),
                             (499, "allow")]:
        assert policy.wanted(status, decision, never) is True
    assert AccessLog(sample=1.0).wanted(200, "allow", never) is True
    assert AccessLog(enabled=False).wanted(500, "deny", never) is False


def test_a_line_holds_the_configured_fields_in_order() -> None:
    policy = AccessLog(fields=("status", "route"))
    values = {"route": "r", "status": 200, "subject": "alice"}
    assert list(policy.line(values, None).items()) == [("status", 200), ("route", "r")]
    assert policy.line(values, "a=1") == {"status": 200, "route": "r", "query": "a=1"}
