"""Request-target parsing, path canonicalization and route matching.

Pure code: no I/O, no awaits. The canonical path computed here is both what the matcher
sees and what is forwarded upstream, so the two can never disagree about which resource a
request addresses.

Precedence (most specific first): exact path, then prefixes from the longest to the shortest
(counted in segments); at each of these levels a rule for the request's host beats a rule
without a host. The most specific level whose path matches decides: when none of its rules
allows the method the answer is 405, never a fall back to a less specific (and possibly less
protected) route.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from gateway.errors import BadPath, BadTarget, MethodNotAllowed, RouteNotFound

__all__ = [
    "MatchRule",
    "RouteConflict",
    "RouteMatch",
    "RouteTable",
    "canonical_host",
    "normalize_path",
]

R = TypeVar("R")

_HEX = "0123456789ABCDEFabcdef"
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
#: Unreserved characters whose escapes are decoded ('.' is absent: %2E is refused).
_DECODE = frozenset(_ALNUM + "-_~")
#: Characters kept as they are: RFC 3986 pchar minus ';' (refused) and '%' (escapes), plus '/'.
_SAFE = frozenset(_ALNUM + "-._~!$&'()*+,=:@/")
#: Escaped bytes that are refused outright (NUL, '.', ';', '\').
_REFUSED_ESCAPES = {0x00: "%00", 0x2E: "%2E", 0x3B: "%3B", 0x5C: "%5C"}
_ENCODED_SLASH = "%2F"


@dataclass(frozen=True, slots=True)
class MatchRule:
    name: str  # route name (for error messages)
    path: str  # canonical path, exact or prefix
    prefix: bool  # True: path_prefix match on segment boundaries; False: exact path
    host: str | None = None  # lower-case host name without port; None = any host
    methods: frozenset[str] | None = None  # upper-case; None = any method
    allow_encoded_slash: bool = False  # route opts in to pass %2F through unchanged


@dataclass(frozen=True, slots=True)
class RouteMatch(Generic[R]):
    route: R  # the payload given for the rule
    rule: MatchRule
    path: str  # canonical path (what is forwarded upstream)
    query: str  # raw query string without the '?', "" when none (never matched)


class RouteConflict(ValueError):
    """A route table that cannot be built: a precedence tie or an invalid rule."""


def normalize_path(raw_path: str, *, allow_encoded_slash: bool = False) -> str:
    """Return the canonical form of an origin-form path, or raise BadPath."""
    if not raw_path.startswith("/"):
        raise BadPath(f"path does not start with '/': {raw_path[:80]!r}")
    if not _SAFE.issuperset(raw_path):
        raw_path = _canonical_chars(raw_path, allow_encoded_slash)
    return _resolve_segments(raw_path)


def _canonical_chars(raw: str, allow_encoded_slash: bool) -> str:
    """Check escapes and characters; decode unreserved escapes, encode non-pchar chars."""
    out: list[str] = []
    i, n = 0, len(raw)
    while i < n:
        ch = raw[i]
        if ch in _SAFE:
            out.append(ch)
        elif ch == "%":
            hx = raw[i + 1 : i + 3]
            if len(hx) != 2 or hx[0] not in _HEX or hx[1] not in _HEX:
                raise BadPath(f"invalid percent-escape at offset {i}: {raw[i : i + 3]!r}")
            byte = int(hx, 16)
            if byte in _REFUSED_ESCAPES:
                raise BadPath(f"refused escape {_REFUSED_ESCAPES[byte]} in path")
            if byte == 0x2F and not allow_encoded_slash:
                raise BadPath("encoded slash %2F in path")
            decoded = chr(byte)
            out.append(decoded if decoded in _DECODE else "%" + hx.upper())
            i += 3
            continue
        elif ch == "\\":
            raise BadPath("backslash in path")
        elif ch == ";":
            raise BadPath("';' (path parameter) in path")
        elif ch == "#":
            raise BadPath("fragment '#' in path")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            raise BadPath(f"control character {ord(ch):#04x} in path")
        else:
            try:
                data = ch.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError:
                raise BadPath(f"unencodable character {ord(ch):#x} in path") from None
            out.append("".join(f"%{b:02X}" for b in data))
        i += 1
    return "".join(out)


def _resolve_segments(path: str) -> str:
    """Collapse repeated slashes and resolve '.' / '..' (RFC 3986 §5.2.4); keep a trailing '/'."""
    stack: list[str] = []
    trailing = False
    for seg in path[1:].split("/"):
        if seg == "..":
            if not stack:
                raise BadPath("'..' segment above the root")
            stack.pop()
            trailing = True
        elif seg in ("", "."):
            trailing = True
        else:
            stack.append(seg)
            trailing = False
    if not stack:
        return "/"
    return "/" + "/".join(stack) + ("/" if trailing else "")


def canonical_host(host_header: str | None) -> str | None:
    """Lower-case host without port and without a trailing dot; None when absent or empty."""
    if host_header is None:
        return None
    host = host_header.strip(" \t").lower()
    if host.startswith("["):
        end = host.find("]")
        host = host[: end + 1] if end != -1 else host
    else:
        host = host.partition(":")[0].removesuffix(".")
    return host or None


def _split_target(method: str, host_header: str | None, raw_target: str) -> tuple[str, str]:
    """Return (raw path, raw query) from a request target, or raise BadTarget / BadPath."""
    if method.upper() == "CONNECT":
        raise BadTarget("CONNECT is not proxied")
    if "#" in raw_target:
        raise BadPath("fragment '#' in request target")
    if raw_target.startswith("/"):
        rest = raw_target
    else:
        scheme, sep, after = raw_target.partition("://")
        if not sep or scheme.lower() not in ("http", "https"):
            raise BadTarget(f"unsupported request target form: {raw_target[:80]!r}")
        cut = min((p for p in (after.find("/"), after.find("?")) if p != -1), default=len(after))
        authority, rest = after[:cut], after[cut:]
        if not authority or host_header is None or authority.lower() != host_header.lower():
            raise BadTarget(f"absolute-form authority {authority[:80]!r} differs from Host")
        if not rest.startswith("/"):
            rest = "/" + rest
    path, _, query = rest.partition("?")
    return path, query


def _methods_overlap(a: frozenset[str] | None, b: frozenset[str] | None) -> bool:
    return a is None or b is None or not a.isdisjoint(b)


def _overlap_text(a: MatchRule, b: MatchRule) -> str:
    if a.methods is None and b.methods is None:
        return "any method"
    if a.methods is None or b.methods is None:
        return ", ".join(sorted(a.methods or b.methods or ()))
    return ", ".join(sorted(a.methods & b.methods))


def _describe(rule: MatchRule) -> str:
    kind = "prefix" if rule.prefix else "exact path"
    host = f"host {rule.host!r}" if rule.host is not None else "any host"
    return f"{kind} {rule.path!r}, {host}"


def _check_rule(rule: MatchRule) -> None:
    where = f"route {rule.name!r}"
    try:
        canonical = normalize_path(rule.path, allow_encoded_slash=True)
    except BadPath as exc:
        raise RouteConflict(f"{where}: path {rule.path!r} is invalid: {exc.detail}") from None
    if canonical != rule.path:
        raise RouteConflict(
            f"{where}: path {rule.path!r} is not canonical (canonical form: {canonical!r})"
        )
    if _ENCODED_SLASH in rule.path:
        raise RouteConflict(f"{where}: path {rule.path!r} must not contain %2F")
    if rule.host is not None and canonical_host(rule.host) != rule.host:
        raise RouteConflict(
            f"{where}: host {rule.host!r} must be a lower-case host name without port"
        )
    if rule.methods is not None:
        if not rule.methods:
            raise RouteConflict(f"{where}: empty method set (use None for any method)")
        bad = sorted(m for m in rule.methods if not m or m != m.upper())
        if bad:
            raise RouteConflict(f"{where}: methods must be upper-case, got {bad}")


# (host, path key) -> the rules sharing it, method sets pairwise disjoint.
_Bucket = list[tuple[MatchRule, R]]


class RouteTable(Generic[R]):
    """Compiled routes: dict look-ups only, O(path segments) per request."""

    def __init__(self, entries: Sequence[tuple[MatchRule, R]]) -> None:
        self._exact: dict[tuple[str | None, str], _Bucket[R]] = {}
        # Prefix keys drop the trailing slash: '/api/' -> '/api', '/' -> ''.
        self._prefix: dict[tuple[str | None, str], _Bucket[R]] = {}
        self._any_encoded_slash = False
        ordered: list[tuple[tuple[int, int, str, int, str, int], MatchRule, R]] = []
        for index, (rule, payload) in enumerate(entries):
            _check_rule(rule)
            key_path = rule.path.rstrip("/") if rule.prefix else rule.path
            table = self._prefix if rule.prefix else self._exact
            bucket = table.setdefault((rule.host, key_path), [])
            for other, _ in bucket:
                if _methods_overlap(other.methods, rule.methods):
                    raise RouteConflict(
                        f"routes {other.name!r} and {rule.name!r} tie on precedence: "
                        f"{_describe(other)} vs {_describe(rule)}, "
                        f"overlapping methods: {_overlap_text(other, rule)}"
                    )
            bucket.append((rule, payload))
            self._any_encoded_slash |= rule.allow_encoded_slash
            segments = key_path.rstrip("/").count("/")
            sort_key = (
                int(rule.prefix), -segments, key_path, int(rule.host is None), rule.host or "",
                index,
            )
            ordered.append((sort_key, rule, payload))
        ordered.sort(key=lambda item: item[0])
        self._entries = tuple((rule, payload) for _, rule, payload in ordered)
        self._rules = tuple(rule for rule, _ in self._entries)

    def rules(self) -> tuple[MatchRule, ...]:
        """All rules in precedence order (for a `routes` listing)."""
        return self._rules

    def entries(self) -> tuple[tuple[MatchRule, R], ...]:
        """All (rule, payload) pairs in precedence order."""
        return self._entries

    def match(self, method: str, host_header: str | None, raw_target: str) -> RouteMatch[R]:
        raw_path, query = _split_target(method, host_header, raw_target)
        path = normalize_path(raw_path, allow_encoded_slash=self._any_encoded_slash)
        host = canonical_host(host_header)
        hosts: tuple[str | None, ...] = (None,) if host is None else (host, None)
        bucket = self._find(hosts, path)
        if bucket is None:
            raise RouteNotFound(f"no route for host {host!r} path {path[:200]!r}")
        for rule, payload in bucket:
            if rule.methods is None or method in rule.methods:
                if not rule.allow_encoded_slash and _ENCODED_SLASH in path:
                    raise BadPath(f"encoded slash %2F not allowed on route {rule.name!r}")
                return RouteMatch(route=payload, rule=rule, path=path, query=query)
        allowed = {m for rule, _ in bucket for m in rule.methods or ()}
        names = ", ".join(repr(rule.name) for rule, _ in bucket)
        raise MethodNotAllowed(allowed, f"method {method[:32]!r} not allowed on route {names}")

    def _find(self, hosts: tuple[str | None, ...], path: str) -> _Bucket[R] | None:
        """The most specific bucket whose (host, path) matches, or None."""
        for h in hosts:
            bucket = self._exact.get((h, path))
            if bucket is not None:
                return bucket
        candidate = path.rstrip("/")
        while True:
            for h in hosts:
                bucket = self._prefix.get((h, candidate))
                if bucket is not None:
                    return bucket
            if not candidate:
                return None
            candidate = candidate[: candidate.rfind("/")]
