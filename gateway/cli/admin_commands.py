"""Admin API clients: ``revoke``, ``unrevoke`` and ``revocations`` call a running gateway's
``/admin/revocations`` with the admin token from the config; ``admin_call`` is the HTTP call."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

import aiohttp

from ..errors import ConfigError
from ..settings import Address
from .common import compile_for_check, fail, load, print_problems


def _admin_target(args: argparse.Namespace) -> tuple[str, str | None]:
    loaded = load(args.config)
    runtime = compile_for_check(loaded)
    if args.admin_url:
        base = args.admin_url.rstrip("/")
    else:
        address = Address.parse(loaded.spec.admin.listen)
        base = f"http://{address.connectable()}:{address.port}"
    return base, runtime.admin_token


async def admin_call(
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
        return print_problems(err)
    try:
        status, payload = asyncio.run(
            admin_call(method, base + "/admin/revocations", token, body=body, params=params)
        )
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        return fail(f"cannot reach the admin API at {base} (is the gateway running?): "
                    f"{type(exc).__name__}: {exc}")
    if status >= 400:
        description = payload.get("error_description", "") if isinstance(payload, dict) else ""
        return fail(f"admin API answered {status}: {description}")
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
