"""The ``token`` command (development only): sign a token with an issuer's dev_signing_key."""

from __future__ import annotations

import argparse

from ..auth.devkey import sign_dev_token
from ..config.compile import resolve
from ..config.durations import parse_duration
from ..errors import ConfigError
from .common import ensure_dev_keys, fail, load, print_problems


def cmd_token(args: argparse.Namespace) -> int:
    try:
        loaded = load(args.config)
    except ConfigError as err:
        return print_problems(err)
    issuers = [i for i in loaded.spec.issuers if i.dev_signing_key is not None]
    if args.issuer:
        issuers = [i for i in issuers if i.issuer == args.issuer]
    if not issuers:
        return fail("no issuer with dev_signing_key in the config: `token` is for development")
    issuer = issuers[0]
    assert issuer.dev_signing_key is not None
    path = resolve(loaded.base_dir, issuer.dev_signing_key)
    try:
        ttl = parse_duration(args.ttl)
        ensure_dev_keys(loaded)
        pem = path.read_bytes()
    except ValueError as exc:
        return fail(f"--ttl: {exc}")
    except OSError as exc:
        return fail(f"development key {path}: {exc.strerror or exc}")
    token = sign_dev_token(
        pem, issuer=issuer.issuer, audience=args.audience or issuer.audiences[0],
        subject=args.sub, scopes=args.scope, ttl=ttl, client_id=args.client_id,
    )
    print(token)
    return 0
