"""Helpers the CLI commands share: loading and compiling a config, reporting failures, and
creating the development keys."""

from __future__ import annotations

import sys

from ..auth.devkey import ensure_dev_key, ensure_dev_token
from ..config.compile import compile_runtime, resolve
from ..config.load import LoadedConfig, load_config
from ..errors import ConfigError
from ..metrics import GatewayMetrics
from ..revocation.memory import MemoryRevocationStore
from ..runtime import Runtime


def fail(message: str) -> int:
    print(f"oauth2-gateway: {message}", file=sys.stderr)
    return 1


def load(path: str) -> LoadedConfig:
    return load_config(path)


def compile_for_check(loaded: LoadedConfig) -> Runtime:
    return compile_runtime(
        loaded, metrics=GatewayMetrics(), revocation_store=MemoryRevocationStore(),
        missing_dev_key_ok=True,
    )


def print_problems(err: ConfigError) -> int:
    for problem in err.problems:
        print(problem, file=sys.stderr)
    print(f"{len(err.problems)} error(s): config is invalid", file=sys.stderr)
    return 1


def ensure_dev_keys(loaded: LoadedConfig) -> None:
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
