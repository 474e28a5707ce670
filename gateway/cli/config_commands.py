"""The commands that read a config file without running it: ``check`` (validate, lint,
``--against``), ``routes`` (the compiled route table) and ``explain`` (one request's decision)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

import aiohttp

from ..config.load import LoadedConfig, redact
from ..errors import ConfigError
from ..explain import explain
from ..lint import lint
from ..settings import Settings, describe_changes
from .admin_commands import admin_call
from .common import compile_for_check, fail, load, print_problems


def cmd_check(args: argparse.Namespace) -> int:
    try:
        loaded = load(args.config)
        runtime = compile_for_check(loaded)
    except ConfigError as err:
        return print_problems(err)
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
    new = Settings.from_spec(loaded.spec, loaded.base_dir).describe()
    if against.startswith(("http://", "https://")):
        try:
            _, status = asyncio.run(admin_call("GET", against.rstrip("/") + "/status", None))
            running = status["config"]["settings"]
        except (aiohttp.ClientError, OSError, TimeoutError, KeyError, TypeError) as exc:
            return fail(f"--against {against}: cannot read the running settings from "
                        f"/status: {type(exc).__name__}: {exc}")
    else:
        try:
            other = load(against)
            running = Settings.from_spec(other.spec, other.base_dir).describe()
        except ConfigError as err:
            return print_problems(err)
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
        loaded = load(args.config)
        runtime = compile_for_check(loaded)
    except ConfigError as err:
        return print_problems(err)
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


def cmd_explain(args: argparse.Namespace) -> int:
    try:
        loaded = load(args.config)
        runtime = compile_for_check(loaded)
    except ConfigError as err:
        return print_problems(err)
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
