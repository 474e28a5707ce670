"""Addressing one target of a pool: its URL, its TLS arguments, and the connect failure."""

from __future__ import annotations

from typing import Any

from yarl import URL

from ..runtime import Upstream
from .options import UpstreamTls


class ConnectFailed(Exception):
    """No connection to the target (refused, unreachable, connect timeout, TLS handshake)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")


def upstream_url(target: Upstream, path: str, query: str) -> URL:
    """The target's URL for an already canonical ``path`` (never re-normalised by yarl)."""
    return URL.build(
        scheme=target.scheme, host=target.host, port=target.port,
        path=target.base_path + path, query_string=query, encoded=True,
    )


def tls_arguments(tls: UpstreamTls | None, target: Upstream) -> dict[str, Any]:
    """``ssl`` / ``server_hostname`` for a request to ``target`` (system defaults without)."""
    if tls is None or target.scheme != "https":
        return {}
    return {"ssl": tls.context, "server_hostname": tls.server_name}
