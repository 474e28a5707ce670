"""The access log: one JSON line per request, with configured fields, sampling and query redaction.

The compiled ``AccessLog`` lives in the Runtime, so a reload changes it. A line never holds a
token: the Authorization header is not a field, and token-like query parameters (and any value
shaped like a JWT) are redacted even when a route keeps its query strings.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from .config.model import DEFAULT_ACCESS_LOG_FIELDS
from .logs import access_log

REDACTED = "REDACTED"
#: Query parameters whose values are never logged (compared lower-cased, after decoding).
SENSITIVE_PARAMETERS = frozenset({
    "access_token", "id_token", "refresh_token", "token", "code", "client_secret",
    "client_assertion", "assertion", "password", "passwd", "secret", "api_key", "apikey",
    "key", "signature", "sig", "jwt", "session", "state", "nonce", "code_verifier",
})
_JWT_LIKE = re.compile(r"[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*")
_MAX_QUERY = 1024
DENIED = frozenset({"deny", "shadow_deny"})


@dataclass(frozen=True, slots=True)
class AccessLog:
    """What the access log writes; compiled from ``access_log:``."""

    enabled: bool = True
    fields: tuple[str, ...] = DEFAULT_ACCESS_LOG_FIELDS
    sample: float = 1.0
    query: str = "drop"  # the default of routes without log_query: drop | redact | keep

    def wanted(self, status: int, decision: str | None, draw: Callable[[], float]) -> bool:
        """Whether this request gets a line: refusals and errors always, the rest sampled."""
        if not self.enabled:
            return False
        if status >= 400 or decision in DENIED or self.sample >= 1.0:
            return True
        return draw() < self.sample

    def line(self, values: Mapping[str, Any], query: str | None) -> dict[str, Any]:
        """The configured fields of ``values``, plus ``query`` when the route logs it."""
        entry = {name: values.get(name) for name in self.fields}
        if query is not None:
            entry["query"] = query
        return entry

    def write(self, values: Mapping[str, Any], query: str | None) -> None:
        access_log(**self.line(values, query))


def loggable_query(query: str, mode: str) -> str | None:
    """The query string as the access log may show it; None when it is not logged.

    ``redact`` keeps the parameter names only; ``keep`` keeps the values too, except those of
    token-like parameters and values shaped like a JWT.
    """
    if mode == "drop" or not query:
        return None
    parts: list[str] = []
    for part in query.split("&"):
        name, eq, value = part.partition("=")
        if not eq:
            parts.append(REDACTED if _JWT_LIKE.search(unquote_plus(name)) else name)
            continue
        if mode == "redact" or unquote_plus(name).lower() in SENSITIVE_PARAMETERS \
                or _JWT_LIKE.search(unquote_plus(value)):
            parts.append(f"{name}={REDACTED}")
        else:
            parts.append(part)
    text = "&".join(parts)
    return text if len(text) <= _MAX_QUERY else text[:_MAX_QUERY] + "…"
