"""Process settings that need a restart: listener addresses, the TLS listener, timeouts of
client connections."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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


@dataclass(frozen=True, slots=True)
class Settings:
    public: Address
    admin: Address
    demo_upstream: Address | None
    tls: TlsListener | None = None
    http_redirect: Address | None = None
    https_port: int | None = None       # in redirects; None: the public listener's port
    connections: ConnectionLimits = ConnectionLimits(10.0, 75.0, 30.0)

    @classmethod
    def from_spec(cls, spec: GatewaySpec, base_dir: Path | None = None) -> Settings:
        demo = spec.demo_upstream
        server = spec.server
        tls = None
        if server.tls is not None:
            base = base_dir or Path(".")
            tls = TlsListener(
                _absolute(base, server.tls.cert_file), _absolute(base, server.tls.key_file),
                server.tls.min_version,
            )
        redirect = server.http_redirect
        return cls(
            public=Address.parse(spec.server.listen),
            admin=Address.parse(spec.admin.listen),
            demo_upstream=Address.parse(demo.listen) if demo is not None else None,
            tls=tls,
            http_redirect=Address.parse(redirect.listen) if redirect is not None else None,
            https_port=redirect.https_port if redirect is not None else None,
            connections=ConnectionLimits(
                server.header_timeout, server.keepalive_timeout, server.shutdown_timeout
            ),
        )


def _absolute(base: Path, name: str) -> Path:
    path = Path(name).expanduser()
    return path if path.is_absolute() else base / path
