"""Process settings that need a restart: listener addresses, the TLS listener and its redirect
listener, client connection timeouts (later: workers).

A reload that changes one of them applies everything else, logs that a restart is needed and
keeps the listeners it has. ``restart_changes`` names the differences, for that log line, for
``/status`` and for ``oauth2-gateway check --against``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from .config.issuers import resolve
from .config.model import GatewaySpec


@dataclass(frozen=True, slots=True)
class TlsListener:
    cert_file: Path   # absolute; re-read by GatewayServer.reload_tls()
    key_file: Path
    min_version: str  # "1.2" or "1.3"


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    header_timeout: float
    keepalive_timeout: float
    shutdown_timeout: float


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Address:
        host, _, port = text.rpartition(":")
        return cls(host.strip("[]") or "0.0.0.0", int(port))

    def connectable(self) -> str:
        """A host to connect to: wildcard addresses become loopback."""
        if self.host in ("0.0.0.0", ""):
            return "127.0.0.1"
        if self.host == "::":
            return "[::1]"
        return f"[{self.host}]" if ":" in self.host else self.host

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


#: aiohttp refuses header lines over 8190 bytes with its own plain 400 before any gateway code
#: runs: the listeners leave room for the largest bearer token the gateway is to judge.
HEADER_FIELD_SIZE = 32768


@dataclass(frozen=True, slots=True)
class Settings:
    public: Address
    admin: Address
    demo_upstream: Address | None
    header_field_size: int = HEADER_FIELD_SIZE
    tls: TlsListener | None = None
    http_redirect: Address | None = None
    https_port: int | None = None       # in redirects; None: the public listener's port
    connections: ConnectionLimits = ConnectionLimits(10.0, 75.0, 30.0)
    # the store is created once per process: its backend and location need a restart (its
    # on_unavailable and max_token_lifetime reload); credentials are never part of this text
    revocation_store: str = "memory"

    @classmethod
    def from_spec(cls, spec: GatewaySpec, base_dir: Path | None = None) -> Settings:
        demo = spec.demo_upstream
        server = spec.server
        tls = None
        if server.tls is not None:
            base = base_dir or Path(".")
            tls = TlsListener(
                resolve(base, server.tls.cert_file), resolve(base, server.tls.key_file),
                server.tls.min_version,
            )
        redirect = server.http_redirect
        return cls(
            public=Address.parse(spec.server.listen),
            admin=Address.parse(spec.admin.listen),
            demo_upstream=Address.parse(demo.listen) if demo is not None else None,
            revocation_store=_revocation_store(spec),
            header_field_size=max(HEADER_FIELD_SIZE, spec.server.max_token_bytes + 64),
            tls=tls,
            http_redirect=Address.parse(redirect.listen) if redirect is not None else None,
            https_port=redirect.https_port if redirect is not None else None,
            connections=ConnectionLimits(
                server.header_timeout, server.keepalive_timeout, server.shutdown_timeout
            ),
        )

    def describe(self) -> dict[str, str]:
        """Every restart-only setting under its config key, as text (for ``/status``)."""
        return {_KEYS.get(f.name, f.name): _text(f.name, getattr(self, f.name))
                for f in fields(self)}


#: Settings field → the config key an operator edits.
_KEYS = {
    "public": "server.listen",
    "admin": "admin.listen",
    "demo_upstream": "demo_upstream.listen",
    "header_field_size": "server.max_token_bytes",
    "tls": "server.tls",
    "http_redirect": "server.http_redirect.listen",
    "https_port": "server.http_redirect.https_port",
    "connections": "server.header_timeout/keepalive_timeout/shutdown_timeout",
    "revocation_store": "revocation.store",
}


def _text(name: str, value: object) -> str:
    if value is None:
        return "none"
    if name == "header_field_size":
        return f"listener header limit {value} bytes"
    return str(value)


def describe_changes(running: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    """``key: old → new`` for every key whose text differs (keys of either side)."""
    return [
        f"{key}: {running.get(key, 'none')} → {new.get(key, 'none')}"
        for key in dict.fromkeys([*running, *new])
        if running.get(key, "none") != new.get(key, "none")
    ]


def restart_changes(running: Settings, new: Settings) -> list[str]:
    """``key: old → new`` for every restart-only setting that differs."""
    return describe_changes(running.describe(), new.describe())


def _revocation_store(spec: GatewaySpec) -> str:
    """The revocation backend and where it is, as comparable text without credentials."""
    revocation = spec.revocation
    if revocation is None or revocation.store == "memory":
        return "memory"
    from .revocation.redis_target import RedisSettings

    redis = RedisSettings.from_spec(revocation)
    where = redis.describe()
    timeouts = (f"connect {redis.connect_timeout}s, command {redis.command_timeout}s, "
                f"heartbeat {redis.heartbeat_interval}s, max_staleness {redis.max_staleness}s")
    return f"redis {json.dumps(where, sort_keys=True)} tls={redis.tls} ({timeouts})"
