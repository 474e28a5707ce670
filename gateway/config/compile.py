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

from ..auth.devkey import dev_public_entry
from ..auth.keys import HMAC_ALGORITHMS_SET, KeyEntry, KeyFileError, parse_key_file
from ..auth.policy import RoutePolicy
from ..auth.verify import Issuer, TokenVerifier
from ..errors import ConfigError, ConfigProblem
from ..metrics import GatewayMetrics
from ..proxy.headers import stripped_names
from ..revocation.check import RevocationChecker
from ..revocation.store import RevocationStore
from ..routing import MatchRule, RouteConflict, RouteTable
from ..runtime import IdentityHeaders, Route, Runtime, Upstream
from .load import LoadedConfig, Loc
from .model import IssuerSpec, RouteSpec

ReadFile = Callable[[Path], bytes]
_DEFAULT_PORTS = {"http": 80, "https": 443}


class _Problems:
    def __init__(self, loaded: LoadedConfig) -> None:
        self.loaded = loaded
        self.items: list[ConfigProblem] = []

    def add(self, loc: Loc, message: str) -> None:
        self.items.append(self.loaded.problem(loc, message))


def resolve(base_dir: Path, name: str) -> Path:
    path = Path(name).expanduser()
    return path if path.is_absolute() else base_dir / path


def read_secret(
    file: str | None, env: str | None, base_dir: Path, read_file: ReadFile,
    environ: Mapping[str, str],
) -> bytes:
    """A secret from a file (trailing newline dropped) or an environment variable."""
    if file is not None:
        try:
            data = read_file(resolve(base_dir, file)).rstrip(b"\r\n")
        except OSError as exc:
            raise ValueError(f"cannot read {file}: {exc.strerror or exc}") from None
        if not data:
            raise ValueError(f"{file} is empty")
        return data
    if env is not None:
        value = environ.get(env)
        if not value:
            raise ValueError(f"environment variable {env} is not set or empty")
        return value.encode()
    raise ValueError("no secret source given")


def _issuer(
    spec: IssuerSpec, loc: Loc, problems: _Problems, read_file: ReadFile,
    environ: Mapping[str, str], missing_dev_key_ok: bool,
) -> Issuer:
    base = problems.loaded.base_dir
    keys: list[KeyEntry] = []
    for j, name in enumerate(spec.keys):
        try:
            keys.extend(parse_key_file(read_file(resolve(base, name)), name))
        except OSError as exc:
            problems.add((*loc, "keys", j), f"cannot read {name}: {exc.strerror or exc}")
        except KeyFileError as exc:
            problems.add((*loc, "keys", j), f"{name}: {exc}")
    if spec.dev_signing_key is not None:
        path = resolve(base, spec.dev_signing_key)
        try:
            keys.append(dev_public_entry(read_file(path), spec.dev_signing_key))
        except FileNotFoundError:
            if not missing_dev_key_ok:
                problems.add((*loc, "dev_signing_key"), f"{spec.dev_signing_key} does not exist")
        except (OSError, ValueError) as exc:
            problems.add((*loc, "dev_signing_key"), f"{spec.dev_signing_key}: {exc}")
    if spec.secret_file is not None or spec.secret_env is not None:
        try:
            secret = read_secret(spec.secret_file, spec.secret_env, base, read_file, environ)
            keys.append(KeyEntry(None, secret, HMAC_ALGORITHMS_SET, "secret"))
        except ValueError as exc:
            field = "secret_file" if spec.secret_file is not None else "secret_env"
            problems.add((*loc, field), str(exc))
    algorithms = frozenset(spec.algorithms)
    for key in keys:
        if key.algorithms.isdisjoint(algorithms):
            problems.add(
                (*loc, "algorithms"),
                f"key {key.kid or key.source} ({', '.join(sorted(key.algorithms))}) "
                "fits none of the allowed algorithms",
            )
    kids = [k.kid for k in keys if k.kid is not None]
    duplicates = sorted({k for k in kids if kids.count(k) > 1})
    if duplicates:
        problems.add((*loc, "keys"), f"duplicate kid {duplicates}")
    return Issuer.build(
        spec.issuer, tuple(spec.audiences), algorithms, spec.leeway, tuple(keys)
    )


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


def _route(spec: RouteSpec, identity: IdentityHeaders) -> Route:
    m = spec.match
    rule = MatchRule(
        name=spec.name,
        path=m.path if m.path is not None else (m.path_prefix or "/"),
        prefix=m.path is None,
        host=m.host,
        methods=frozenset(m.methods) if m.methods else None,
        allow_encoded_slash=spec.allow_encoded_slash,
    )
    return Route(
        name=spec.name,
        rule=rule,
        upstream=_upstream(spec.upstream),
        requires_auth=spec.auth == "required",
        policy=RoutePolicy(frozenset(spec.require.scopes), frozenset(spec.require.any_of)),
        timeout=spec.timeout,
        identity=identity,
        stripped_headers=stripped_names(identity.names()),
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
) -> Runtime:
    """Compile a validated document; raises ConfigError listing every problem."""
    env = os.environ if environ is None else environ
    spec = loaded.spec
    problems = _Problems(loaded)

    issuers: dict[str, Issuer] = {}
    for i, issuer_spec in enumerate(spec.issuers):
        loc: Loc = ("issuers", i)
        if issuer_spec.issuer in issuers:
            problems.add((*loc, "issuer"), f"issuer {issuer_spec.issuer!r} is configured twice")
            continue
        issuers[issuer_spec.issuer] = _issuer(
            issuer_spec, loc, problems, read_file, env, missing_dev_key_ok
        )

    ids = spec.identity_headers
    identity = IdentityHeaders(ids.subject, ids.client_id, ids.scopes, ids.issuer)
    lowered = [n.lower() for n in identity.names()]
    if len(set(lowered)) != len(lowered):
        problems.add(("identity_headers",), "the identity headers must have distinct names")

    seen: dict[str, int] = {}
    entries: list[tuple[MatchRule, Route]] = []
    indexes: list[int] = []  # routes[...] index of each entry
    for i, route_spec in enumerate(spec.routes):
        if route_spec.name in seen:
            problems.add(
                ("routes", i, "name"),
                f"duplicate route name {route_spec.name!r} "
                f"(first at routes[{seen[route_spec.name]}])",
            )
            continue
        seen[route_spec.name] = i
        if route_spec.auth == "required" and not issuers:
            problems.add(("routes", i, "auth"), "route needs a token but no issuers are configured")
        route = _route(route_spec, identity)
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
    )
