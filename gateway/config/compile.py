"""Validated document → ``Runtime``: the immutable snapshot the request path reads.

Cross-reference checks live here (duplicate names, route ties, routes needing a token with no
issuer configured, unreadable key files). Every problem is reported with its location. The
only I/O is reading the files the config names (keys, secrets), through ``read_file``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from yarl import URL

from ..access import AccessLog
from ..auth.issuer import Issuer
from ..auth.providers import IdentityProviders
from ..auth.verify import TokenVerifier
from ..errors import ConfigError, ConfigProblem
from ..metrics import GatewayMetrics
from ..proxy.headers import stripped_names
from ..proxy.options import ProxyOptions
from ..revocation.check import RevocationChecker
from ..revocation.store import RevocationStore
from ..routing import MatchRule, RouteConflict, RouteTable
from ..runtime import IdentityHeaders, Route, Runtime, Upstream
from .compile_proxy import compile_route_proxy, compile_server_proxy, target_urls
from .issuers import IssuerCompiler, read_secret
from .issuers import resolve as resolve  # re-exported: the CLI uses it
from .load import LoadedConfig, Loc
from .model import RouteSpec
from .requirements import compile_policy, route_methods

ReadFile = Callable[[Path], bytes]
_DEFAULT_PORTS = {"http": 80, "https": 443}


class _Problems:
    def __init__(self, loaded: LoadedConfig) -> None:
        self.loaded = loaded
        self.items: list[ConfigProblem] = []

    def add(self, loc: Loc, message: str) -> None:
        self.items.append(self.loaded.problem(loc, message))


def _upstream(url_text: str) -> Upstream:
    url = URL(url_text)
    scheme = url.scheme
    port = url.port or _DEFAULT_PORTS[scheme]
    host = url.raw_host or ""
    host_for_header = f"[{host}]" if ":" in host else host
    authority = host_for_header if port == _DEFAULT_PORTS[scheme] else f"{host_for_header}:{port}"
    return Upstream(
        scheme=scheme, host=host, port=port, base_path=url.raw_path.rstrip("/"),
        authority=authority, url=url_text,
    )


def _route(
    spec: RouteSpec,
    identity: IdentityHeaders,
    methods: frozenset[str] | None,
    proxy: Callable[[str, tuple[Upstream, ...]], ProxyOptions],
) -> Route:
    m = spec.match
    rule = MatchRule(
        name=spec.name,
        path=m.path if m.path is not None else (m.path_prefix or "/"),
        prefix=m.path is None,
        host=m.host,
        methods=methods,
        allow_encoded_slash=spec.allow_encoded_slash,
    )
    targets = tuple(_upstream(url) for url in target_urls(spec))
    return Route(
        name=spec.name,
        rule=rule,
        upstream=targets[0],
        requires_auth=spec.auth == "required",
        policy=compile_policy(spec.require),
        timeout=spec.timeout,
        identity=identity,
        stripped_headers=stripped_names(identity.names()),
        enforce=spec.enforce,
        log_query=spec.log_query,
        issuers=frozenset(spec.issuers) if spec.issuers else None,
        proxy=proxy(rule.path, targets),
    )


def _first_at(loaded: LoadedConfig, index: int) -> str:
    """``routes[3]``, or ``routes[0] in FILE:LINE`` when the other route is in another file."""
    file, line, path = loaded.locate(("routes", index))
    return path if file == str(loaded.path) and not loaded.includes else f"{path} in {file}:{line}"


def _check_route_issuers(
    spec: RouteSpec, i: int, issuers: Mapping[str, Issuer], problems: _Problems
) -> None:
    for j, name in enumerate(spec.issuers or ()):
        if name not in issuers:
            known = ", ".join(sorted(issuers)) or "none"
            problems.add(("routes", i, "issuers", j),
                         f"unknown issuer {name!r}; should be one of [{known}]")
    if spec.auth != "required":
        return
    accepted = [i for n, i in issuers.items() if spec.issuers is None or n in spec.issuers]
    introspecting = sorted(i.issuer for i in accepted if i.introspector is not None)
    if len(introspecting) > 1:
        problems.add(
            ("routes", i, "issuers") if spec.issuers else ("routes", i),
            f"accepts several issuers with introspection ({', '.join(introspecting)}): an "
            "opaque token would be sent to each; restrict the route with issuers: [...]",
        )


def compile_runtime(
    loaded: LoadedConfig,
    *,
    metrics: GatewayMetrics,
    revocation_store: RevocationStore | None,
    read_file: ReadFile = Path.read_bytes,
    environ: Mapping[str, str] | None = None,
    missing_dev_key_ok: bool = False,
    token_cache_size: int = 10_000,
    providers: IdentityProviders | None = None,
) -> Runtime:
    """Compile a validated document; raises ConfigError listing every problem.

    ``providers`` makes the remote key caches and introspectors (the app passes its own, so
    they survive reloads); without it they are created unstarted, which is what ``check``
    wants.
    """
    env = os.environ if environ is None else environ
    spec = loaded.spec
    problems = _Problems(loaded)
    issuer_compiler = IssuerCompiler(
        problems.add, loaded.base_dir, read_file, env, missing_dev_key_ok,
        providers if providers is not None else IdentityProviders(metrics),
        token_cache_size,
    )

    issuers: dict[str, Issuer] = {}
    for i, issuer_spec in enumerate(spec.issuers):
        loc: Loc = ("issuers", i)
        if issuer_spec.issuer in issuers:
            problems.add((*loc, "issuer"), f"issuer {issuer_spec.issuer!r} is configured twice")
            continue
        issuers[issuer_spec.issuer] = issuer_compiler.compile(issuer_spec, loc)

    ids = spec.identity_headers
    identity = IdentityHeaders(ids.subject, ids.client_id, ids.scopes, ids.issuer)
    lowered = [n.lower() for n in identity.names()]
    identity_names = frozenset(lowered)
    if len(identity_names) != len(lowered):
        problems.add(("identity_headers",), "the identity headers must have distinct names")

    seen: dict[str, int] = {}
    entries: list[tuple[MatchRule, Route]] = []
    indexes: list[int] = []  # routes[...] index of each entry
    for i, route_spec in enumerate(spec.routes):
        if route_spec.name in seen:
            problems.add(
                ("routes", i, "name"),
                f"duplicate route name {route_spec.name!r} "
                f"(first at {_first_at(loaded, seen[route_spec.name])})",
            )
            continue
        seen[route_spec.name] = i
        if route_spec.auth == "required" and not issuers:
            problems.add(("routes", i, "auth"), "route needs a token but no issuers are configured")
        methods, method_problem = route_methods(route_spec)
        if method_problem is not None:
            problems.add(("routes", i, "require", "methods"), method_problem)
        _check_route_issuers(route_spec, i, issuers, problems)

        def proxy(
            rule_path: str, targets: tuple[Upstream, ...], rs: RouteSpec = route_spec,
            loc: Loc = ("routes", i),
        ) -> ProxyOptions:
            return compile_route_proxy(
                rs, rule_path=rule_path, targets=targets, loc=loc, report=problems.add,
                server=spec.server, identity_names=identity_names,
                base_dir=loaded.base_dir, read_file=read_file,
            )

        route = _route(route_spec, identity, methods, proxy)
        try:
            RouteTable([(route.rule, route)])  # the rule on its own: canonical path …
        except RouteConflict as exc:
            field = "path" if route_spec.match.path is not None else "path_prefix"
            problems.add(("routes", i, "match", field), str(exc))
            continue
        entries.append((route.rule, route))
        indexes.append(i)

    table: RouteTable[Route] | None = None
    try:
        table = RouteTable(entries)
    except RouteConflict:
        # Slow path, only for a broken config: add the routes one by one to report every tie
        # at the route that causes it.
        accepted: list[tuple[MatchRule, Route]] = []
        for i, entry in zip(indexes, entries, strict=True):
            try:
                RouteTable([*accepted, entry])
            except RouteConflict as exc:
                problems.add(("routes", i, "match"), str(exc))
                continue
            accepted.append(entry)

    if spec.revocation is not None and spec.revocation.store == "redis":
        for i, issuer_spec in enumerate(spec.issuers):
            if any(c.isspace() for c in issuer_spec.issuer):
                problems.add(("issuers", i, "issuer"), "with revocation store redis, an issuer "
                             "cannot contain white space (Redis fields are 'kind issuer value')")

    checker = None
    if spec.revocation is not None:
        if revocation_store is None:
            problems.add(("revocation", "store"), "no store available for this configuration")
        else:
            checker = RevocationChecker(
                revocation_store, spec.revocation.on_unavailable,
                spec.revocation.max_token_lifetime, metrics,
            )

    admin_token: str | None = None
    admin = spec.admin
    token_pending = (
        missing_dev_key_ok and admin.generate_token and admin.token_file is not None
        and not resolve(loaded.base_dir, admin.token_file).exists()
    )
    if (admin.token_file is not None or admin.token_env is not None) and not token_pending:
        try:
            admin_token = read_secret(
                admin.token_file, admin.token_env, loaded.base_dir, read_file, env
            ).decode()
        except (ValueError, UnicodeDecodeError) as exc:
            field = "token_file" if admin.token_file is not None else "token_env"
            problems.add(("admin", field), str(exc))

    if problems.items or table is None:
        raise ConfigError(problems.items)
    verifier = TokenVerifier(
        issuers, max_token_bytes=spec.server.max_token_bytes, cache_size=token_cache_size
    )
    return Runtime(
        routes=table,
        verifier=verifier,
        realm=spec.server.realm,
        request_id_header=spec.server.request_id_header,
        revocation=checker,
        default_issuer=next(iter(issuers)) if len(issuers) == 1 else None,
        admin_token=admin_token,
        sha256=loaded.sha256,
        source=str(loaded.path),
        access_log=AccessLog(
            enabled=spec.access_log.enabled, fields=tuple(dict.fromkeys(spec.access_log.fields)),
            sample=spec.access_log.sample, query=spec.access_log.query,
        ),
        proxy=compile_server_proxy(spec.server),
    )
