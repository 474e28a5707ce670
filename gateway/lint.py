"""Warnings about a valid config: what ``oauth2-gateway check`` prints after the summary.

Each lint asks the compiled route table itself (the matcher the gateway serves with), by
building probe requests and seeing which route answers them, so the lints cannot disagree with
the gateway about precedence:

``unreachable``    a route no request can reach (every probe lands on other routes);
``shadowed``       some methods of a route never reach it on some path: a more specific route
                   there does not allow them and answers 405 (no fall back, by design);
``overlap``        two routes take some of the same requests and require different things:
                   the more specific one wins, which matters most when it requires less;
``no_scope``       a protected route without any scope: any valid token is enough;
``shadow_mode``    a route with ``enforce: false``: refusals are only logged and counted;
``insecure_http``  ``allow_insecure_http: true`` on an issuer whose URLs leave the machine.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from yarl import URL

from .config.load import LoadedConfig, Loc
from .errors import ConfigProblem, GatewayError, MethodNotAllowed
from .routing import MatchRule, RouteTable
from .runtime import Route, Runtime

#: Host and path segment that no sane config names, used to build probe requests.
PROBE_HOST = "lint-probe.invalid"
PROBE_SEGMENT = "lint-probe-0"
_ALL_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")


@dataclass(frozen=True, slots=True)
class Lint:
    code: str
    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        # located like an error: ``file:line: field.path: warning[code]: message``
        return str(ConfigProblem(self.file, self.line, self.path,
                                 f"warning[{self.code}]: {self.message}"))


def _under(path: str, prefix: str) -> bool:
    """Whether ``path`` is ``prefix`` or below it on a segment boundary."""
    base = prefix.rstrip("/")
    return path == prefix or path.rstrip("/") == base or path.startswith(base + "/")


def path_matches(rule: MatchRule, host: str | None, path: str) -> bool:
    """Whether ``rule`` on its own matches a request's host and path (any method it allows)."""
    method = sorted(rule.methods)[0] if rule.methods else "GET"
    try:
        RouteTable([(rule, rule)]).match(method, host, path)
    except GatewayError:
        return False
    return True


def _probe_paths(rule: MatchRule) -> list[str]:
    if not rule.prefix:
        return [rule.path]
    return [rule.path, rule.path.rstrip("/") + "/" + PROBE_SEGMENT]


def _first_hit(runtime: Runtime, method: str, host: str, path: str) -> Route | None:
    """The route the gateway would pick, or None for a refusal (404, 405, 400)."""
    try:
        return runtime.routes.match(method, host, path).route
    except GatewayError:
        return None


def requirements(route: Route) -> str:
    """What a route asks of a request, in words."""
    if not route.requires_auth:
        text = "no token"
    else:
        parts = []
        if route.policy.all_of:
            parts.append("scopes " + " ".join(sorted(route.policy.all_of)))
        if route.policy.any_of:
            parts.append("one of " + " ".join(sorted(route.policy.any_of)))
        text = "a token with " + " and ".join(parts) if parts else "any valid token"
    return text if route.enforce else text + ", not enforced"


def _signature(route: Route) -> tuple[Any, ...]:
    return (route.requires_auth, route.policy, route.enforce)


def _requires_less(winner: Route, loser: Route) -> bool:
    if loser.enforce and not winner.enforce:
        return True
    if not loser.requires_auth:
        return False
    if not winner.requires_auth:
        return True
    w, lo = winner.policy, loser.policy
    if not w.all_of <= lo.all_of:
        return False
    # an any_of that is absent, or offers more choices, asks no more
    any_no_more = not w.any_of or (bool(lo.any_of) and w.any_of >= lo.any_of)
    return any_no_more and (w.all_of, w.any_of) != (lo.all_of, lo.any_of)


def _overlap_probe(a: MatchRule, b: MatchRule) -> tuple[str, str, str] | None:
    """(method, host, path) of one request both rules could take, or None."""
    if a.host is not None and b.host is not None and a.host != b.host:
        return None
    if a.methods is not None and b.methods is not None:
        common = sorted(a.methods & b.methods)
        if not common:
            return None
        method = "GET" if "GET" in common else common[0]
    else:
        method = "GET"
        only = a.methods or b.methods
        if only is not None and "GET" not in only:
            method = sorted(only)[0]
    host = a.host or b.host or PROBE_HOST
    for deeper, other in ((a, b), (b, a)):
        if other.prefix and _under(deeper.path, other.path):
            if deeper.prefix:
                return method, host, deeper.path.rstrip("/") + "/" + PROBE_SEGMENT
            return method, host, deeper.path
    if not a.prefix and not b.prefix and a.path == b.path:
        return method, host, a.path
    return None


def _describe_request(method: str, host: str, path: str) -> str:
    where = "any host" if host == PROBE_HOST else f"host {host}"
    shown = path.replace("/" + PROBE_SEGMENT, "/…")
    return f"{method} {shown} on {where}"


class _Linter:
    def __init__(self, loaded: LoadedConfig, runtime: Runtime) -> None:
        self.loaded = loaded
        self.runtime = runtime
        self.index = {r.name: i for i, r in enumerate(loaded.spec.routes)}
        self.found: list[Lint] = []

    def add(self, code: str, loc: Loc, message: str) -> None:
        file, line, path = self.loaded.locate(loc)
        self.found.append(Lint(code, file, line, path, message))

    def route_loc(self, name: str, *rest: str | int) -> Loc:
        return ("routes", self.index[name], *rest)

    def entries(self) -> Iterator[tuple[MatchRule, Route]]:
        return iter(self.runtime.routes.entries())

    def unreachable(self) -> None:
        rules = [rule for rule, _ in self.entries()]
        named_hosts = sorted({r.host for r in rules if r.host is not None})
        for rule, route in self.entries():
            hosts = [rule.host] if rule.host is not None else [PROBE_HOST, *named_hosts]
            methods = sorted(rule.methods) if rule.methods else list(_ALL_METHODS)
            takers: set[str] = set()
            refused: dict[tuple[str, str], list[str]] = {}
            reached = False
            for path in _probe_paths(rule):
                for host in hosts:
                    for method in methods:
                        try:
                            hit = self.runtime.routes.match(method, host, path).route
                        except MethodNotAllowed:
                            refused.setdefault((host, path), []).append(method)
                            continue
                        except GatewayError:
                            continue
                        if hit is route:
                            reached = True
                        else:
                            takers.add(hit.name)
            if not reached:
                by = ", ".join(repr(n) for n in sorted(takers)) or "no route (404/405)"
                self.add("unreachable", self.route_loc(route.name, "match"),
                         f"route {route.name!r} can never match: its requests go to {by}")
                continue
            for (host, path), refused_methods in refused.items():
                owners = [r.name for r in rules if r is not rule and path_matches(r, host, path)]
                where = _describe_request(", ".join(refused_methods), host, path)
                self.add(
                    "shadowed", self.route_loc(route.name, "match"),
                    f"route {route.name!r} never gets {where}: the more specific "
                    f"route {owners[0]!r} answers 405 there (exact paths beat prefixes, and "
                    "the most specific route decides)" if owners else
                    f"route {route.name!r} never gets {where} (405)",
                )

    def overlaps(self) -> None:
        entries = list(self.entries())
        for i, (rule_a, route_a) in enumerate(entries):
            for rule_b, route_b in entries[i + 1:]:
                if _signature(route_a) == _signature(route_b):
                    continue
                probe = _overlap_probe(rule_a, rule_b)
                if probe is None:
                    continue
                winner = _first_hit(self.runtime, *probe)
                if winner is not route_a and winner is not route_b:
                    continue  # a third, more specific route takes these requests
                loser = route_b if winner is route_a else route_a
                less = _requires_less(winner, loser)
                verb = "requires less" if less else "requires something else"
                self.add(
                    "overlap", self.route_loc(winner.name, "match"),
                    f"route {winner.name!r} takes requests that route {loser.name!r} also "
                    f"matches (e.g. {_describe_request(*probe)}) and {verb}: "
                    f"{requirements(winner)} instead of {requirements(loser)}",
                )

    def scopes_and_shadow(self) -> None:
        for _, route in self.entries():
            if route.requires_auth and not route.policy.all_of and not route.policy.any_of:
                self.add(
                    "no_scope", self.route_loc(route.name),
                    f"protected route {route.name!r} requires no scope: any valid token of "
                    "any configured issuer is accepted (add require.scopes or require.any_of)",
                )
            if route.requires_auth and not route.enforce:
                self.add(
                    "shadow_mode", self.route_loc(route.name, "enforce"),
                    f"route {route.name!r} is in shadow mode (enforce: false): refusals are "
                    "logged and counted as shadow_deny, and the requests are forwarded",
                )

    def insecure_http(self) -> None:
        for i, issuer in enumerate(self.loaded.spec.issuers):
            settings = issuer.model_dump()
            if settings.get("allow_insecure_http") is not True:
                continue
            remote = sorted({u for u in _http_urls(settings) if not _loopback(u)})
            if remote:
                self.add(
                    "insecure_http", ("issuers", i, "allow_insecure_http"),
                    f"allow_insecure_http on a non-loopback host ({', '.join(remote)}): keys "
                    "or token answers fetched over plain HTTP can be forged in transit",
                )


def _http_urls(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        if value.lower().startswith("http://"):
            yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _http_urls(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _http_urls(item)


def _loopback(url: str) -> bool:
    try:
        host = (URL(url).host or "").strip("[]").lower()
    except ValueError:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def lint(loaded: LoadedConfig, runtime: Runtime) -> list[Lint]:
    """Every warning about a config that loads and compiles, in file order."""
    linter = _Linter(loaded, runtime)
    linter.unreachable()
    linter.overlaps()
    linter.scopes_and_shadow()
    linter.insecure_http()
    return sorted(linter.found, key=lambda w: (w.file != str(loaded.path), w.file,
                                               w.line or 0, w.code))
