"""``oauth2-gateway <command>``: argument parsing and exit codes only.

Exit codes: 0 success, 1 invalid config or failed operation, 2 usage error (argparse).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from . import __version__
from .auth.devkey import ensure_dev_key, ensure_dev_token, sign_dev_token
from .config.compile import compile_runtime, resolve
from .config.durations import parse_duration
from .config.load import LoadedConfig, load_config, redact
from .errors import ConfigError
from .explain import explain
from .lint import lint
from .logs import setup_logging
from .metrics import GatewayMetrics
from .revocation.memory import MemoryRevocationStore
from .runtime import Runtime
from .settings import Address, Settings, describe_changes

DEFAULT_CONFIG = "gateway.yaml"


def _fail(message: str) -> int:
    print(f"oauth2-gateway: {message}", file=sys.stderr)
    return 1


def _load(path: str) -> LoadedConfig:
    return load_config(path)


def _compile_for_check(loaded: LoadedConfig) -> Runtime:
    return compile_runtime(
        loaded, metrics=GatewayMetrics(), revocation_store=MemoryRevocationStore(),
        missing_dev_key_ok=True,
    )


def _print_problems(err: ConfigError) -> int:
    for problem in err.problems:
        print(problem, file=sys.stderr)
    print(f"{len(err.problems)} error(s): config is invalid", file=sys.stderr)
    return 1


def _ensure_dev_keys(loaded: LoadedConfig) -> None:
    for issuer in loaded.spec.issuers:
        if issuer.dev_signing_key is not None:
            path = resolve(loaded.base_dir, issuer.dev_signing_key)
            if ensure_dev_key(path):
                print(f"created development signing key {path}", file=sys.stderr)
    admin = loaded.spec.admin
    if admin.generate_token and admin.token_file is not None:
        path = resolve(loaded.base_dir, admin.token_file)
        if ensure_dev_token(path):
            print(f"created development admin token {path}", file=sys.stderr)


# -- commands ---------------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    try:
        loaded = _load(args.config)
        runtime = _compile_for_check(loaded)
    except ConfigError as err:
        return _print_problems(err)
    spec = loaded.spec
    protected = sum(1 for r in spec.routes if r.auth == "required")
    if spec.revocation is None:
        revocation = "revocation: not checked (no revocation section)"
    else:
        revocation = (f"revocation: {spec.revocation.store} "
                      f"(on_unavailable={spec.revocation.on_unavailable})")
    included = f" (+{len(loaded.files) - 1} included file(s))" if len(loaded.files) > 1 else ""
    print(
        f"ok: {loaded.path}{included}: {len(spec.routes)} routes ({protected} protected, "
        f"{len(spec.routes) - protected} public), {len(runtime.verifier.issuers)} issuer(s), "
        f"{revocation}, sha256 {loaded.sha256[:12]}"
    )
    warnings = lint(loaded, runtime)
    for warning in warnings:
        print(redact(str(warning), loaded.expanded))
    if warnings:
        print(f"{len(warnings)} warning(s)" + (": failing (--strict)" if args.strict else ""))
    if args.against:
        code = _print_restart_changes(loaded, args.against)
        if code:
            return code
    return 1 if warnings and args.strict else 0


def _print_restart_changes(loaded: LoadedConfig, against: str) -> int:
    """Which restart-only settings differ from a running gateway (URL) or another file."""
    new = Settings.from_spec(loaded.spec).describe()
    if against.startswith(("http://", "https://")):
        try:
            _, status = asyncio.run(_admin_call("GET", against.rstrip("/") + "/status", None))
            running = status["config"]["settings"]
        except (aiohttp.ClientError, OSError, TimeoutError, KeyError, TypeError) as exc:
            return _fail(f"--against {against}: cannot read the running settings from "
                         f"/status: {type(exc).__name__}: {exc}")
    else:
        try:
            running = Settings.from_spec(_load(against).spec).describe()
        except ConfigError as err:
            return _print_problems(err)
    changes = describe_changes(running, new)
    if changes:
        for change in changes:
            print(f"restart needed: {change}")
        print("a reload applies everything else; these take effect after a restart")
    else:
        print(f"no restart needed: a reload applies every change against {against}")
    return 0


def cmd_routes(args: argparse.Namespace) -> int:
    try:
        loaded = _load(args.config)
        runtime = _compile_for_check(loaded)
    except ConfigError as err:
        return _print_problems(err)
    rows = [("#", "NAME", "HOST", "MATCH", "METHODS", "AUTH", "REQUIRES", "UPSTREAM")]
    for i, (rule, route) in enumerate(runtime.routes.entries(), 1):
        kind = "prefix " if rule.prefix else "exact  "
        requires = " ".join(sorted(route.policy.all_of))
        if route.policy.any_of:
            any_of = "any(" + " ".join(sorted(route.policy.any_of)) + ")"
            requires += (" " if requires else "") + any_of
        rows.append((
            str(i), rule.name, rule.host or "*", kind + rule.path,
            ",".join(sorted(rule.methods)) if rule.methods else "*",
            ("token" if route.requires_auth else "none") + ("" if route.enforce else " (shadow)"),
            requires or "-",
            route.upstream.url + (f" (+{len(route.targets) - 1})" if len(route.targets) > 1
                                  else ""),
        ))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    try:
        loaded = _load(args.config)
        _ensure_dev_keys(loaded)
    except ConfigError as err:
        return _print_problems(err)
    except OSError as exc:
        return _fail(f"cannot create the development key: {exc}")
    try:
        interval = parse_duration(args.watch_interval)
    except ValueError as exc:
        return _fail(f"--watch-interval: {exc}")
    try:
        run = event_loop_runner(args.loop)
    except ImportError:
        return _fail("--loop uvloop: uvloop is not installed (pip install 'oauth2-gateway[speed]')")
    return run(_run(loaded, interval or None))


def event_loop_runner(choice: str) -> Callable[[Coroutine[Any, Any, int]], int]:
    """``asyncio.run`` or ``uvloop.run``: ``auto`` takes uvloop when it is installed."""
    if choice == "asyncio":
        return asyncio.run
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise
        return asyncio.run
    return uvloop.run


async def _run(loaded: LoadedConfig, watch_interval: float | None = None) -> int:
    from .app import GatewayServer
    from .demo import start_demo_upstream

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = GatewayServer(loaded, watch_interval=watch_interval)
    loop.add_signal_handler(signal.SIGHUP, server.request_reload)
    demo = None
    try:
        if server.settings.demo_upstream is not None:
            demo = await start_demo_upstream(server.settings.demo_upstream)
        await server.start()
    except ConfigError as err:
        if demo is not None:
            await demo.cleanup()
        return _print_problems(err)
    except OSError as exc:
        if demo is not None:
            await demo.cleanup()
        return _fail(f"cannot listen: {exc}")
    scheme = "https" if server.settings.tls is not None else "http"
    print(
        f"oauth2-gateway {__version__}: public {scheme}://{server.public_address} "
        f"admin http://{server.admin_address} (Ctrl-C stops)",
        file=sys.stderr, flush=True,
    )
    try:
        await stop.wait()
    finally:
        await server.stop()
        if demo is not None:
            await demo.cleanup()
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    try:
        loaded = _load(args.config)
        runtime = _compile_for_check(loaded)
    except ConfigError as err:
        return _print_problems(err)
    token = args.token
    if token == "-":
        token = sys.stdin.readline().strip()
    result = asyncio.run(explain(
        runtime, args.method.upper(), args.url, token=token, scopes=args.scopes, host=args.host,
    ))
    if args.json:
        print(redact(json.dumps(result.as_json(), indent=2), loaded.expanded))
    else:
        for line in result.lines():
            print(redact(line, loaded.expanded))
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    try:
        loaded = _load(args.config)
    except ConfigError as err:
        return _print_problems(err)
    issuers = [i for i in loaded.spec.issuers if i.dev_signing_key is not None]
    if args.issuer:
        issuers = [i for i in issuers if i.issuer == args.issuer]
    if not issuers:
        return _fail("no issuer with dev_signing_key in the config: `token` is for development")
    issuer = issuers[0]
    assert issuer.dev_signing_key is not None
    path = resolve(loaded.base_dir, issuer.dev_signing_key)
    try:
        ttl = parse_duration(args.ttl)
        _ensure_dev_keys(loaded)
        pem = path.read_bytes()
    except ValueError as exc:
        return _fail(f"--ttl: {exc}")
    except OSError as exc:
        return _fail(f"development key {path}: {exc.strerror or exc}")
    token = sign_dev_token(
        pem, issuer=issuer.issuer, audience=args.audience or issuer.audiences[0],
        subject=args.sub, scopes=args.scope, ttl=ttl, client_id=args.client_id,
    )
    print(token)
    return 0


# -- admin API clients --------------------------------------------------------------------


def _admin_target(args: argparse.Namespace) -> tuple[str, str | None]:
    loaded = _load(args.config)
    runtime = _compile_for_check(loaded)
    if args.admin_url:
        base = args.admin_url.rstrip("/")
    else:
        address = Address.parse(loaded.spec.admin.listen)
        base = f"http://{address.connectable()}:{address.port}"
    return base, runtime.admin_token


async def _admin_call(
    method: str, url: str, token: str | None, *, body: dict[str, Any] | None = None,
    params: dict[str, str] | None = None,
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.request(
        method, url, json=body, params=params, headers=headers
    ) as resp:
        text = await resp.text()
        try:
            return resp.status, json.loads(text)
        except ValueError:
            return resp.status, {"error": "unexpected_response", "error_description": text[:200]}


def _admin(args: argparse.Namespace, method: str, *, body: dict[str, Any] | None = None,
           params: dict[str, str] | None = None) -> int:
    try:
        base, token = _admin_target(args)
    except ConfigError as err:
        return _print_problems(err)
    try:
        status, payload = asyncio.run(
            _admin_call(method, base + "/admin/revocations", token, body=body, params=params)
        )
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        return _fail(f"cannot reach the admin API at {base} (is the gateway running?): "
                     f"{type(exc).__name__}: {exc}")
    if status >= 400:
        description = payload.get("error_description", "") if isinstance(payload, dict) else ""
        return _fail(f"admin API answered {status}: {description}")
    print(json.dumps(payload, indent=2, sort_keys=True))
    return 0


def _subject_fields(args: argparse.Namespace) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name in ("jti", "sub", "client_id", "iss"):
        value = getattr(args, name, None)
        if value is not None:
            fields[name] = value
    if getattr(args, "issuer_wide", False):
        fields["kind"] = "issuer"
    return fields


def cmd_revoke(args: argparse.Namespace) -> int:
    body = _subject_fields(args)
    if args.exp is not None:
        body["exp"] = args.exp
    if args.before is not None:
        body["before"] = args.before
    if args.reason:
        body["reason"] = args.reason
    body["actor"] = args.actor
    return _admin(args, "POST", body=body)


def cmd_unrevoke(args: argparse.Namespace) -> int:
    return _admin(args, "DELETE", params=_subject_fields(args))


def cmd_revocations(args: argparse.Namespace) -> int:
    params = {k: v for k, v in (("kind", args.kind), ("iss", args.iss), ("value", args.value),
                                ("sub", args.sub), ("client_id", args.client_id),
                                ("jti", args.jti),
                                ("limit", str(args.limit)), ("cursor", args.cursor)) if v}
    return _admin(args, "GET", params=params)


def cmd_version(args: argparse.Namespace) -> int:
    print(f"oauth2-gateway {__version__}")
    return 0


# -- parser --------------------------------------------------------------------------------


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", default=None, metavar="FILE",
                        help=f"config file (default: {DEFAULT_CONFIG})")


def _subject_options(parser: argparse.ArgumentParser) -> None:
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--jti", help="one token, by its jti")
    who.add_argument("--sub", help="every token of this subject issued before --before")
    who.add_argument("--client-id", dest="client_id", help="every token of this client")
    who.add_argument("--issuer-wide", action="store_true",
                     help="every token of the issuer (--iss) issued before --before: "
                          "its signing key is compromised")
    parser.add_argument("--iss", help="issuer (default: the only configured one)")
    parser.add_argument("--admin-url", help="admin API base URL (default: from the config)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="oauth2-gateway", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run the gateway")
    _config_option(p)
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--loop", default="auto", choices=["auto", "asyncio", "uvloop"],
                   help="event loop (auto: uvloop when installed)")
    p.add_argument("--watch-interval", default="1s", metavar="DURATION",
                   help="how often to look for changed config files (default 1s; 0: never, "
                        "SIGHUP and POST /admin/reload still reload)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("check", help="validate a config file (like nginx -t) and lint it")
    _config_option(p)
    p.add_argument("file", nargs="?", help="config file (same as --config)")
    p.add_argument("--strict", action="store_true", help="exit 1 when there are warnings")
    p.add_argument("--against", metavar="FILE_OR_URL",
                   help="say which changes need a restart, compared with another config file "
                        "or a running gateway's admin URL (e.g. http://127.0.0.1:9090)")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("routes", help="print the compiled route table in precedence order")
    _config_option(p)
    p.add_argument("file", nargs="?", help="config file (same as --config)")
    p.set_defaults(func=cmd_routes)

    p = sub.add_parser("explain", help="which route a request matches, and the decision")
    _config_option(p)
    p.add_argument("file", nargs="?", help="config file (same as --config)")
    p.add_argument("method", help="HTTP method, e.g. GET")
    p.add_argument("url", help="http://host/path?query or /path?query")
    given = p.add_mutually_exclusive_group()
    given.add_argument("--token", help="a bearer token to verify ('-': read it from stdin); "
                                       "never printed")
    given.add_argument("--scopes", help='assume a valid token with these scopes, e.g. "a b"')
    p.add_argument("--host", help="Host header (default: the URL's authority, else none)")
    p.add_argument("--json", action="store_true", help="print the explanation as JSON")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("token", help="development only: sign a token with the dev key")
    _config_option(p)
    p.add_argument("--scope", default="", help='space-separated scopes, e.g. "a b"')
    p.add_argument("--sub", default="dev-user", help="subject (default: dev-user)")
    p.add_argument("--client-id", dest="client_id", default=None, help="client_id claim")
    p.add_argument("--ttl", default="5m", help="lifetime, e.g. 5m (default), 1h")
    p.add_argument("--audience", default=None, help="aud (default: the issuer's first)")
    p.add_argument("--issuer", default=None, help="which dev issuer (default: the first)")
    p.set_defaults(func=cmd_token)

    p = sub.add_parser("revoke", help="revoke through the running gateway's admin API")
    _config_option(p)
    _subject_options(p)
    p.add_argument("--exp", type=float, default=None, help="with --jti: the token's exp")
    p.add_argument("--before", type=float, default=None,
                   help="with --sub/--client-id/--issuer-wide: unix time cutoff (default: now)")
    p.add_argument("--reason", default=None, help="free text kept with the entry")
    p.add_argument("--actor", default="cli", help="who revokes (default: cli)")
    p.set_defaults(func=cmd_revoke)

    p = sub.add_parser("unrevoke", help="remove a revocation through the admin API")
    _config_option(p)
    _subject_options(p)
    p.set_defaults(func=cmd_unrevoke)

    p = sub.add_parser("revocations", help="list revocations through the admin API")
    _config_option(p)
    p.add_argument("--kind", choices=["jti", "sub", "client", "issuer"])
    p.add_argument("--iss", default=None)
    p.add_argument("--value", default=None, help="a jti, subject or client id")
    p.add_argument("--sub", default=None, help="only this subject's cutoff")
    p.add_argument("--client-id", dest="client_id", default=None,
                   help="only this client's cutoff")
    p.add_argument("--jti", default=None, help="only this token")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--cursor", default=None)
    p.add_argument("--admin-url", help="admin API base URL (default: from the config)")
    p.set_defaults(func=cmd_revocations)

    p = sub.add_parser("version", help="print the version")
    _config_option(p)
    p.set_defaults(func=cmd_version)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    positional = getattr(args, "file", None)
    if positional and args.config and positional != args.config:
        parser.error("give the config file once (positionally or with --config)")
    args.config = positional or args.config or DEFAULT_CONFIG
    if args.command != "version" and not Path(args.config).exists():
        return _fail(f"config file {args.config} not found")
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 1


if __name__ == "__main__":
    sys.exit(main())
