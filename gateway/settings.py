"""Process settings that need a restart: listener addresses (later TLS listeners, workers).

A reload that changes one of them applies everything else, logs that a restart is needed and
keeps the listeners it has. ``restart_changes`` names the differences, for that log line, for
``/status`` and for ``oauth2-gateway check --against``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

from .config.model import GatewaySpec


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

    @classmethod
    def from_spec(cls, spec: GatewaySpec) -> Settings:
        demo = spec.demo_upstream
        return cls(
            public=Address.parse(spec.server.listen),
            admin=Address.parse(spec.admin.listen),
            demo_upstream=Address.parse(demo.listen) if demo is not None else None,
            header_field_size=max(HEADER_FIELD_SIZE, spec.server.max_token_bytes + 64),
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
