"""Process settings that need a restart: listener addresses."""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True)
class Settings:
    public: Address
    admin: Address
    demo_upstream: Address | None

    @classmethod
    def from_spec(cls, spec: GatewaySpec) -> Settings:
        demo = spec.demo_upstream
        return cls(
            public=Address.parse(spec.server.listen),
            admin=Address.parse(spec.admin.listen),
            demo_upstream=Address.parse(demo.listen) if demo is not None else None,
        )
