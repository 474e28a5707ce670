"""The argument parser (every command and option), ``main`` (parse, pick the config file,
dispatch, exit code) and the ``version`` command."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from .. import __version__
from .admin_commands import cmd_revocations, cmd_revoke, cmd_unrevoke
from .common import fail
from .config_commands import cmd_check, cmd_explain, cmd_routes
from .run_command import cmd_run
from .token_command import cmd_token

DEFAULT_CONFIG = "gateway.yaml"
DESCRIPTION = "``oauth2-gateway <command>``: argument parsing and exit codes only."


def cmd_version(args: argparse.Namespace) -> int:
    print(f"oauth2-gateway {__version__}")
    return 0


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
    parser = argparse.ArgumentParser(prog="oauth2-gateway", description=DESCRIPTION)
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
        return fail(f"config file {args.config} not found")
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 1

