"""Unit tests for gateway.routing: target parsing, path canonicalization, precedence."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import BadPath, BadTarget, MethodNotAllowed, RouteNotFound, RoutingError
from gateway.routing import (
    MatchRule,
    RouteConflict,
    RouteMatch,
    RouteTable,
    canonical_host,
    normalize_path,
)

GET = frozenset({"GET"})
POST = frozenset({"POST"})


def _rule(
    name: str,
    path: str,
    is_prefix: bool,
    host: str | None,
    methods: frozenset[str] | None,
    allow_encoded_slash: bool,
) -> tuple[MatchRule, str]:
    rule = MatchRule(name, path, is_prefix, host, methods, allow_encoded_slash)
    return rule, name


def exact(
    name: str,
    path: str,
    *,
    host: str | None = None,
    methods: frozenset[str] | None = None,
    allow_encoded_slash: bool = False,
) -> tuple[MatchRule, str]:
    return _rule(name, path, False, host, methods, allow_encoded_slash)


def prefix(
    name: str,
    path: str,
    *,
    host: str | None = None,
    methods: frozenset[str] | None = None,
    allow_encoded_slash: bool = False,
) -> tuple[MatchRule, str]:
    return _rule(name, path, True, host, methods, allow_encoded_slash)


def match(
    table: RouteTable[str], target: str, method: str = "GET", host: str | None = "gw.example"
) -> RouteMatch[str]:
    return table.match(method, host, target)


# -- normalize_path: accepted --------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("/", "/", id="root stays root"),
        pytest.param("/a/b", "/a/b", id="plain path is unchanged"),
        pytest.param("/a/b/", "/a/b/", id="trailing slash is kept"),
        pytest.param("//a///b", "/a/b", id="repeated slashes collapse"),
        pytest.param("//", "/", id="only slashes collapse to root"),
        pytest.param("/a//", "/a/", id="repeated trailing slashes collapse to one"),
        pytest.param("/a/./b", "/a/b", id="single dot segment is removed"),
        pytest.param("/a/b/.", "/a/b/", id="trailing single dot leaves a trailing slash"),
        pytest.param("/a/b/..", "/a/", id="trailing double dot leaves a trailing slash"),
        pytest.param("/a/..", "/", id="double dot back to root gives root"),
        pytest.param("/a/b/../c", "/a/c", id="double dot removes the previous segment"),
        pytest.param("/a/./../b/./c/", "/b/c/", id="mixed dot segments resolve"),
        pytest.param("/.", "/", id="dot at root gives root"),
        pytest.param("/a/.../b", "/a/.../b", id="three dots are an ordinary segment"),
        pytest.param("/a/..b/.c", "/a/..b/.c", id="dots inside a segment are literal"),
        pytest.param("/%7E", "/~", id="escaped tilde is decoded"),
        pytest.param("/%7e", "/~", id="escaped tilde in lower case is decoded"),
        pytest.param("/%41%7a%30", "/Az0", id="escaped letters and digits are decoded"),
        pytest.param("/%2D%5F", "/-_", id="escaped hyphen and underscore are decoded"),
        pytest.param("/%25", "/%25", id="escaped percent stays escaped"),
        pytest.param("/%252e", "/%252e", id="double-encoded dot stays a literal segment"),
        pytest.param("/%c3%a9", "/%C3%A9", id="escaped utf-8 gets upper-case hex"),
        pytest.param("/%3f%23%20", "/%3F%23%20", id="reserved escapes are kept in upper case"),
        pytest.param("/%01", "/%01", id="an escaped control character stays escaped"),
        pytest.param("/a b", "/a%20b", id="raw space is percent-encoded"),
        pytest.param('/"<>|^`{}', "/%22%3C%3E%7C%5E%60%7B%7D", id="non-pchar ascii is encoded"),
        pytest.param("/[x]", "/%5Bx%5D", id="square brackets are encoded"),
        pytest.param("/é", "/%C3%A9", id="non-ascii is encoded as utf-8"),
        pytest.param("/€", "/%E2%82%AC", id="multi-byte utf-8 is encoded"),
        pytest.param("/a?b", "/a%3Fb", id="question mark inside a bare path is encoded"),
        pytest.param(
            "/!$&'()*+,=:@-._~", "/!$&'()*+,=:@-._~", id="sub-delims colon and at stay raw"
        ),
        pytest.param("/A/B", "/A/B", id="case is preserved"),
    ],
)
def test_normalize_accepts(raw: str, expected: str) -> None:
    assert normalize_path(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("/a%2fb", "/a%2Fb", id="allowed encoded slash is kept with upper hex"),
        pytest.param("/a%2F..%2Fb", "/a%2F..%2Fb", id="dots between encoded slashes are literal"),
        pytest.param("//a%2F/./b/", "/a%2F/b/", id="allowed encoded slash still normalizes"),
    ],
)
def test_normalize_keeps_encoded_slash_when_allowed(raw: str, expected: str) -> None:
    assert normalize_path(raw, allow_encoded_slash=True) == expected


# -- normalize_path: refused -----------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("", id="empty path is refused"),
        pytest.param("a/b", id="path without a leading slash is refused"),
        pytest.param("/..", id="double dot at root is refused"),
        pytest.param("/a/../..", id="double dot above root is refused"),
        pytest.param("/../a", id="leading double dot is refused"),
        pytest.param("/a\\b", id="raw backslash is refused"),
        pytest.param("/a;b", id="raw semicolon is refused"),
        pytest.param("/a;", id="trailing semicolon is refused"),
        pytest.param("/a%3Bb", id="escaped semicolon is refused"),
        pytest.param("/a%3bb", id="escaped semicolon in lower case is refused"),
        pytest.param("/a%5Cb", id="escaped backslash is refused"),
        pytest.param("/a%5cb", id="escaped backslash in lower case is refused"),
        pytest.param("/a%00", id="escaped nul is refused"),
        pytest.param("/%2E", id="escaped dot is refused"),
        pytest.param("/%2e%2e", id="escaped double dot is refused"),
        pytest.param("/a%2Eb", id="escaped dot inside a segment is refused"),
        pytest.param("/a%2Fb", id="escaped slash is refused by default"),
        pytest.param("/a%2fb", id="escaped slash in lower case is refused by default"),
        pytest.param("/a%", id="lone percent is refused"),
        pytest.param("/a%4", id="truncated escape is refused"),
        pytest.param("/a%zz", id="non-hex escape is refused"),
        pytest.param("/a%4g", id="half-hex escape is refused"),
        pytest.param("/%u002e", id="iis unicode escape is refused"),
        pytest.param("/a\x00b", id="raw nul is refused"),
        pytest.param("/a\tb", id="raw tab is refused"),
        pytest.param("/a\nb", id="raw newline is refused"),
        pytest.param("/a\rb", id="raw carriage return is refused"),
        pytest.param("/a\x7fb", id="raw delete is refused"),
        pytest.param("/a#b", id="raw fragment mark is refused"),
        pytest.param("/\ud800", id="lone surrogate is refused"),
    ],
)
def test_normalize_refuses(raw: str) -> None:
    with pytest.raises(BadPath):
        normalize_path(raw)


def test_normalize_refuses_dot_escapes_even_with_encoded_slash_allowed() -> None:
    with pytest.raises(BadPath):
        normalize_path("/a%2F%2e%2e%2Fb", allow_encoded_slash=True)


def test_bad_path_carries_a_detail() -> None:
    with pytest.raises(BadPath) as info:
        normalize_path("/a/../..")
    assert "root" in info.value.detail


# -- normalize_path: properties ----------------------------------------------------------

PATH_ALPHABET = "/.%aA0fF2eE5cCbB3~-_ ;\\é\t?#:@+"
SEGMENTS = st.sampled_from(
    ["a", "B", ".", "..", "", "...", "%2e", "%2E", "%2f", "%2F", "%25", "%252e", "%41",
     "%7e", "%zz", "%", "é", " ", ";", "\\", "%3B", "%c3%a9", "x y", "%00"]
)
CANONICAL = re.compile(r"/|(/(?:[A-Za-z0-9\-._~!$&'()*+,=:@]|%[0-9A-F]{2})+)+/?")


def _check_canonical(out: str, allow_encoded_slash: bool) -> None:
    assert normalize_path(out, allow_encoded_slash=allow_encoded_slash) == out
    assert CANONICAL.fullmatch(out), out
    assert "//" not in out
    assert not set(out.split("/")) & {".", ".."}
    if not allow_encoded_slash:
        assert "%2F" not in out


@given(st.text(alphabet=PATH_ALPHABET, max_size=40), st.booleans())
def test_normalize_is_idempotent_on_random_characters(tail: str, allow: bool) -> None:
    try:
        out = normalize_path("/" + tail, allow_encoded_slash=allow)
    except BadPath:
        return
    _check_canonical(out, allow)


@given(st.lists(SEGMENTS, max_size=12), st.booleans())
def test_normalize_is_idempotent_on_random_segments(segments: list[str], allow: bool) -> None:
    try:
        out = normalize_path("/" + "/".join(segments), allow_encoded_slash=allow)
    except BadPath:
        return
    _check_canonical(out, allow)


@given(st.text(max_size=30))
def test_normalize_only_ever_raises_bad_path(tail: str) -> None:
    try:
        out = normalize_path("/" + tail)
    except BadPath:
        return
    _check_canonical(out, False)


# -- canonical_host --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param(None, None, id="missing host is none"),
        pytest.param("", None, id="empty host is none"),
        pytest.param("a.com", "a.com", id="plain host is unchanged"),
        pytest.param("A.Com", "a.com", id="host is lower-cased"),
        pytest.param("A.com:80", "a.com", id="port is dropped"),
        pytest.param("a.com.", "a.com", id="trailing dot of a fully qualified name is dropped"),
        pytest.param("[::1]:8080", "[::1]", id="ipv6 literal keeps brackets and drops port"),
        pytest.param("[::1]", "[::1]", id="ipv6 literal without port is unchanged"),
        pytest.param("[FE80::1]:443", "[fe80::1]", id="ipv6 literal is lower-cased"),
        pytest.param("10.0.0.1:8443", "10.0.0.1", id="ipv4 address drops its port"),
        pytest.param(":80", None, id="port only is none"),
    ],
)
def test_canonical_host(header: str | None, expected: str | None) -> None:
    assert canonical_host(header) == expected


# -- request target --------------------------------------------------------------------


@pytest.fixture
def catch_all() -> RouteTable[str]:
    return RouteTable([prefix("all", "/")])


@pytest.mark.parametrize(
    ("method", "target", "host"),
    [
        pytest.param("CONNECT", "gw.example:443", "gw.example", id="connect is refused"),
        pytest.param("CONNECT", "/", "gw.example", id="connect with origin-form is refused"),
        pytest.param("OPTIONS", "*", "gw.example", id="asterisk-form is refused"),
        pytest.param("GET", "*", "gw.example", id="asterisk with get is refused"),
        pytest.param("GET", "a/b", "gw.example", id="relative target is refused"),
        pytest.param("GET", "", "gw.example", id="empty target is refused"),
        pytest.param("GET", "gw.example:80/a", "gw.example:80", id="authority-form is refused"),
        pytest.param("GET", "ftp://gw.example/a", "gw.example", id="ftp absolute-form is refused"),
        pytest.param(
            "GET", "http://evil.example/a", "gw.example", id="foreign absolute-form is refused"
        ),
        pytest.param(
            "GET", "http://gw.example:8080/a", "gw.example", id="absolute-form port must match"
        ),
        pytest.param("GET", "http://gw.example/a", None, id="absolute-form without host header"),
        pytest.param("GET", "http:///a", "", id="absolute-form with empty authority is refused"),
        pytest.param(
            "GET", "http://u@gw.example/a", "gw.example", id="absolute-form userinfo is refused"
        ),
    ],
)
def test_bad_targets(
    catch_all: RouteTable[str], method: str, target: str, host: str | None
) -> None:
    with pytest.raises(BadTarget):
        catch_all.match(method, host, target)


@pytest.mark.parametrize(
    ("target", "host", "path", "query"),
    [
        pytest.param("http://gw.example/a?x=1", "gw.example", "/a", "x=1",
                     id="absolute-form with matching host is accepted"),
        pytest.param("HTTPS://GW.example:8443/a/../b", "gw.EXAMPLE:8443", "/b", "",
                     id="absolute-form compares scheme and host case-insensitively"),
        pytest.param("http://gw.example", "gw.example", "/", "",
                     id="absolute-form empty path becomes root"),
        pytest.param("http://gw.example?q", "gw.example", "/", "q",
                     id="absolute-form empty path with query becomes root"),
        pytest.param("http://[::1]:8080/x", "[::1]:8080", "/x", "",
                     id="absolute-form ipv6 authority is accepted"),
    ],
)
def test_absolute_form_accepted(
    catch_all: RouteTable[str], target: str, host: str, path: str, query: str
) -> None:
    m = catch_all.match("GET", host, target)
    assert (m.route, m.path, m.query) == ("all", path, query)


@pytest.mark.parametrize(
    "target",
    [
        pytest.param("/a#frag", id="fragment in origin-form is refused"),
        pytest.param("/a?x=1#frag", id="fragment after the query is refused"),
        pytest.param("http://gw.example/a#f", id="fragment in absolute-form is refused"),
    ],
)
def test_fragment_is_bad_path(catch_all: RouteTable[str], target: str) -> None:
    with pytest.raises(BadPath):
        match(catch_all, target)


@pytest.mark.parametrize(
    ("target", "query"),
    [
        pytest.param("/a?x=1&y=%zz", "x=1&y=%zz", id="query is returned raw and never checked"),
        pytest.param("/a?", "", id="empty query is empty"),
        pytest.param("/a", "", id="no query is empty"),
        pytest.param("/a?b?c", "b?c", id="query splits at the first question mark"),
        pytest.param("/a?/../admin", "/../admin", id="query dot segments are not resolved"),
        pytest.param("/a?%2F;\\", "%2F;\\", id="query may hold characters refused in paths"),
    ],
)
def test_query_is_returned_raw(target: str, query: str) -> None:
    table = RouteTable([exact("a", "/a"), prefix("admin", "/admin")])
    m = match(table, target)
    assert (m.route, m.path, m.query) == ("a", "/a", query)


def test_query_never_matches_a_route() -> None:
    table = RouteTable([exact("a", "/a")])
    with pytest.raises(RouteNotFound):
        match(table, "/b?/a")


# -- precedence ------------------------------------------------------------------------


@pytest.fixture
def table() -> RouteTable[str]:
    return RouteTable(
        [
            prefix("root", "/"),
            prefix("api", "/api"),
            prefix("orders", "/api/orders"),
            exact("orders-exact", "/api/orders"),
            prefix("orders-host", "/api/orders", host="shop.example"),
            prefix("api-other-host", "/api/v2", host="other.example"),
            exact("health-host", "/health", host="shop.example"),
            prefix("health-prefix-host", "/health", host="shop.example"),
        ]
    )


@pytest.mark.parametrize(
    ("target", "host", "route"),
    [
        pytest.param("/api/orders", "gw.example", "orders-exact", id="exact beats prefix"),
        pytest.param("/api/orders", "shop.example", "orders-exact",
                     id="exact without host beats a host prefix of the same path"),
        pytest.param("/api/orders/7", "gw.example", "orders", id="longer prefix beats shorter"),
        pytest.param("/api/orders/", "gw.example", "orders",
                     id="prefix matches its own path with a trailing slash"),
        pytest.param("/api/orders/7", "shop.example", "orders-host",
                     id="host prefix beats a prefix without host"),
        pytest.param("/api/orders/7", "SHOP.example:443", "orders-host",
                     id="host is lower-cased and its port dropped for matching"),
        pytest.param("/api/ordersX", "gw.example", "api", id="prefix respects segment boundary"),
        pytest.param("/api/v2/x", "gw.example", "api",
                     id="rule for a different host never matches"),
        pytest.param("/api/v2/x", "other.example", "api-other-host",
                     id="rule for its host matches"),
        pytest.param("/apix", "gw.example", "root", id="root prefix matches everything else"),
        pytest.param("/", "gw.example", "root", id="root prefix matches root"),
        pytest.param("/health", "shop.example", "health-host", id="host exact beats host prefix"),
        pytest.param("/health/x", "shop.example", "health-prefix-host", id="host prefix matches"),
        pytest.param("/health", "gw.example", "root", id="host-only exact skipped on other host"),
        pytest.param("/api/orders/7", None, "orders", id="missing host matches hostless rules"),
        pytest.param("/api//orders/./7", "gw.example", "orders",
                     id="matching sees the canonical path"),
    ],
)
def test_precedence(table: RouteTable[str], target: str, host: str, route: str) -> None:
    assert match(table, target, host=host).route == route


def test_trailing_slash_prefix_is_the_same_as_without() -> None:
    t = RouteTable([prefix("api", "/api/"), prefix("root", "/")])
    assert match(t, "/api").route == "api"
    assert match(t, "/api/x").route == "api"
    assert match(t, "/apix").route == "root"


def test_exact_path_does_not_match_other_trailing_slash() -> None:
    t = RouteTable([exact("a", "/a")])
    assert match(t, "/a").path == "/a"
    with pytest.raises(RouteNotFound):
        match(t, "/a/")


def test_match_returns_rule_and_canonical_path(table: RouteTable[str]) -> None:
    m = match(table, "/api/./orders//9?x", host="gw.example")
    assert m.rule.name == "orders"
    assert m.rule.prefix
    assert (m.path, m.query) == ("/api/orders/9", "x")


def test_rules_are_listed_in_precedence_order(table: RouteTable[str]) -> None:
    assert [r.name for r in table.rules()] == [
        "orders-exact", "health-host",
        "orders-host", "orders", "api-other-host", "api", "health-prefix-host", "root",
    ]


def test_not_found() -> None:
    t = RouteTable([prefix("api", "/api")])
    with pytest.raises(RouteNotFound):
        match(t, "/other")


# -- methods ---------------------------------------------------------------------------


@pytest.fixture
def methods_table() -> RouteTable[str]:
    return RouteTable(
        [
            prefix("read", "/items", methods=GET),
            prefix("write", "/items", methods=frozenset({"POST", "PUT"})),
            prefix("open", "/"),
            exact("host-get", "/h", host="gw.example", methods=GET),
            exact("any-host", "/h"),
        ]
    )


@pytest.mark.parametrize(
    ("method", "route"),
    [
        pytest.param("GET", "read", id="disjoint methods select the get route"),
        pytest.param("POST", "write", id="disjoint methods select the post route"),
        pytest.param("PUT", "write", id="disjoint methods select by any listed method"),
    ],
)
def test_disjoint_methods_select(methods_table: RouteTable[str], method: str, route: str) -> None:
    assert match(methods_table, "/items/1", method=method).route == route


def test_method_not_allowed_lists_union_and_does_not_fall_back(
    methods_table: RouteTable[str],
) -> None:
    with pytest.raises(MethodNotAllowed) as info:
        match(methods_table, "/items/1", method="DELETE")
    assert info.value.allowed == ("GET", "POST", "PUT")
    assert info.value.status == 405


def test_method_not_allowed_on_host_rule_does_not_fall_back_to_hostless(
    methods_table: RouteTable[str],
) -> None:
    with pytest.raises(MethodNotAllowed) as info:
        match(methods_table, "/h", method="POST", host="gw.example")
    assert info.value.allowed == ("GET",)
    assert match(methods_table, "/h", method="POST", host="x.example").route == "any-host"


def test_methods_are_case_sensitive(methods_table: RouteTable[str]) -> None:
    with pytest.raises(MethodNotAllowed):
        match(methods_table, "/items", method="get")


# -- build-time conflicts --------------------------------------------------------------


@pytest.mark.parametrize(
    "entries",
    [
        pytest.param([exact("a", "/x"), exact("b", "/x")], id="same exact path ties"),
        pytest.param([prefix("a", "/x"), prefix("b", "/x")], id="same prefix ties"),
        pytest.param([prefix("a", "/api"), prefix("b", "/api/")],
                     id="prefix with and without trailing slash tie"),
        pytest.param([prefix("a", "/x", methods=GET), prefix("b", "/x")],
                     id="any method overlaps a method set"),
        pytest.param([prefix("a", "/x", methods=frozenset({"GET", "POST"})),
                      prefix("b", "/x", methods=POST)], id="overlapping method sets tie"),
        pytest.param([prefix("a", "/x", host="h.example"), prefix("b", "/x", host="h.example")],
                     id="same host and prefix tie"),
    ],
)
def test_ties_are_refused(entries: list[tuple[MatchRule, str]]) -> None:
    with pytest.raises(RouteConflict, match="routes 'a' and 'b' tie on precedence"):
        RouteTable(entries)


@pytest.mark.parametrize(
    "entries",
    [
        pytest.param([exact("a", "/x"), prefix("b", "/x")], id="exact and prefix do not tie"),
        pytest.param([prefix("a", "/x", host="h.example"), prefix("b", "/x")],
                     id="host and no host do not tie"),
        pytest.param([prefix("a", "/x", host="h.example"), prefix("b", "/x", host="i.example")],
                     id="different hosts do not tie"),
        pytest.param([exact("a", "/x"), exact("b", "/x/")],
                     id="exact paths differing by trailing slash do not tie"),
        pytest.param([prefix("a", "/x", methods=GET), prefix("b", "/x", methods=POST)],
                     id="disjoint methods do not tie"),
    ],
)
def test_non_ties_are_accepted(entries: list[tuple[MatchRule, str]]) -> None:
    assert len(RouteTable(entries).rules()) == 2


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        pytest.param(exact("a", "/x/../y")[0], "not canonical", id="dot segments in rule path"),
        pytest.param(exact("a", "/x//y")[0], "not canonical", id="double slash in rule path"),
        pytest.param(exact("a", "/%7e")[0], "not canonical", id="decodable escape in rule path"),
        pytest.param(exact("a", "/%c3%a9")[0], "not canonical", id="lower-case hex in rule path"),
        pytest.param(exact("a", "/a b")[0], "not canonical", id="raw space in rule path"),
        pytest.param(prefix("a", "/x%2Fy")[0], "%2F", id="encoded slash in rule path"),
        pytest.param(prefix("a", "x")[0], "invalid", id="rule path without leading slash"),
        pytest.param(prefix("a", "/..")[0], "invalid", id="rule path above root"),
        pytest.param(prefix("a", "/x;y")[0], "invalid", id="semicolon in rule path"),
        pytest.param(prefix("a", "/x", host="A.example")[0], "host", id="upper-case rule host"),
        pytest.param(prefix("a", "/x", host="a.example:80")[0], "host", id="rule host with port"),
        pytest.param(prefix("a", "/x", host="")[0], "host", id="empty rule host"),
        pytest.param(prefix("a", "/x", methods=frozenset({"get"}))[0], "upper-case",
                     id="lower-case rule method"),
        pytest.param(prefix("a", "/x", methods=frozenset())[0], "empty method set",
                     id="empty rule method set"),
    ],
)
def test_invalid_rules_are_refused(rule: MatchRule, message: str) -> None:
    with pytest.raises(RouteConflict, match=re.escape(message)) as info:
        RouteTable([(rule, "x")])
    assert "'a'" in str(info.value)
    assert isinstance(info.value, ValueError)


# -- encoded slash ---------------------------------------------------------------------


def test_encoded_slash_passes_on_opted_in_route() -> None:
    t = RouteTable([prefix("files", "/files", allow_encoded_slash=True), prefix("api", "/api")])
    m = match(t, "/files/a%2fb/../c")
    assert (m.route, m.path) == ("files", "/files/c")
    m = match(t, "/files/a%2fb")
    assert (m.route, m.path) == ("files", "/files/a%2Fb")


def test_encoded_slash_refused_on_other_route_of_an_allowing_table() -> None:
    t = RouteTable([prefix("files", "/files", allow_encoded_slash=True), prefix("api", "/api")])
    with pytest.raises(BadPath):
        match(t, "/api/a%2Fb")


def test_encoded_slash_refused_early_when_no_route_allows_it() -> None:
    t = RouteTable([prefix("api", "/api")])
    with pytest.raises(BadPath):
        match(t, "/nowhere/a%2Fb")


# -- path-trick corpus -----------------------------------------------------------------


@pytest.fixture
def guarded() -> RouteTable[str]:
    return RouteTable([prefix("public", "/public"), prefix("admin", "/admin")])


NO = None  # the request must be refused (BadPath) or not routed (RouteNotFound)


@pytest.mark.parametrize(
    ("target", "route", "path"),
    [
        pytest.param("/public/..%2fadmin", NO, "", id="encoded slash after dots is refused"),
        pytest.param("/public/%2e%2e/admin", NO, "", id="encoded dots are refused"),
        pytest.param("/public/%2E%2E/admin", NO, "", id="upper-case encoded dots are refused"),
        pytest.param("/public/.%2e/admin", NO, "", id="half-encoded dots are refused"),
        pytest.param("/public/%2e./admin", NO, "", id="other half-encoded dots are refused"),
        pytest.param("/public/%252e%252e/admin", "public", "/public/%252e%252e/admin",
                     id="double-encoded dots stay a literal public segment"),
        pytest.param("//admin", "admin", "/admin", id="leading double slash reaches admin"),
        pytest.param("/public/..\\admin", NO, "", id="backslash after dots is refused"),
        pytest.param("/public/..%5cadmin", NO, "", id="encoded backslash is refused"),
        pytest.param("/public;/admin", NO, "", id="path parameter on public is refused"),
        pytest.param("/public/..;/admin", NO, "", id="tomcat dot-dot-semicolon is refused"),
        pytest.param("/public%2f..%2fadmin", NO, "", id="encoded slash traversal is refused"),
        pytest.param("/public/..%00/admin", NO, "", id="encoded nul is refused"),
        pytest.param("/public/%u002e%u002e/admin", NO, "", id="iis unicode dots are refused"),
        pytest.param("/public/%c0%ae%c0%ae/admin", "public", "/public/%C0%AE%C0%AE/admin",
                     id="overlong utf-8 dots stay a literal public segment"),
        pytest.param("/PUBLIC/../admin", "admin", "/admin",
                     id="upper-case segment removed by dots reaches admin"),
        pytest.param("/public/../admin", "admin", "/admin",
                     id="plain dots canonicalize to admin and match admin"),
        pytest.param("/public/./../admin/", "admin", "/admin/", id="mixed dots reach admin"),
        pytest.param("/public/../../admin", NO, "", id="dots above root are refused"),
        pytest.param("/%61dmin", "admin", "/admin", id="encoded letter decodes to admin"),
        pytest.param("/ADMIN", NO, "", id="paths are case-sensitive"),
        pytest.param("/adminx", NO, "", id="admin prefix respects segment boundary"),
        pytest.param("/admin/../public/x", "public", "/public/x", id="dots leave admin"),
        pytest.param("/public?/../admin", "public", "/public",
                     id="dots in the query do not traverse"),
        pytest.param("/public/\t../admin", NO, "", id="control character is refused"),
        pytest.param("/public/%2e%2e%2fadmin", NO, "", id="fully encoded traversal is refused"),
    ],
)
def test_path_tricks(guarded: RouteTable[str], target: str, route: str | None, path: str) -> None:
    if route is None:
        with pytest.raises((BadPath, RouteNotFound)):
            match(guarded, target)
    else:
        m = match(guarded, target)
        assert (m.route, m.path) == (route, path)


@given(st.text(max_size=40))
def test_match_only_raises_routing_errors(target: str) -> None:
    t = RouteTable([prefix("public", "/public"), prefix("admin", "/admin"), exact("x", "/x")])
    try:
        m = t.match("GET", "gw.example", target)
    except RoutingError:
        return
    assert m.path == normalize_path(m.path)
    key = m.rule.path.rstrip("/")
    assert m.path == key or m.path.startswith(key + "/")
