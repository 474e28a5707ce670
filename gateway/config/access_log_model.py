"""Document model of the ``access_log`` section: the fields of a line, sampling and how query
strings are logged (``QueryLogMode`` is also a per-route setting).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .spec_types import Spec

AccessLogField = Literal[
    "request_id", "route", "method", "path", "status", "duration_ms", "upstream_ms",
    "bytes_in", "bytes_out", "client", "host", "user_agent", "subject", "client_id", "issuer",
    "jti", "scopes", "upstream", "decision", "reason", "detail",
]
#: The fields of an access-log line unless ``access_log.fields`` says otherwise.
DEFAULT_ACCESS_LOG_FIELDS: tuple[AccessLogField, ...] = (
    "request_id", "route", "method", "path", "status", "duration_ms", "upstream_ms",
    "bytes_in", "bytes_out", "client", "subject", "client_id", "issuer", "jti", "decision",
    "reason", "detail",
)
QueryLogMode = Literal["drop", "redact", "keep"]


class AccessLogSpec(Spec):
    enabled: bool = Field(
        True, description="one JSON line per request on the gateway.access logger"
    )
    fields: list[AccessLogField] = Field(
        default_factory=lambda: list(DEFAULT_ACCESS_LOG_FIELDS), min_length=1,
        description="the fields of each line (the query string is governed by `query`)",
    )
    sample: float = Field(
        1.0, ge=0.0, le=1.0,
        description="fraction of successful, allowed requests logged; refusals, shadow "
        "denials and errors (status >= 400) are always logged",
    )
    query: QueryLogMode = Field(
        "drop",
        description="query string in the line: drop (absent), redact (names only) or keep "
        "(values of token-like parameters are always redacted); routes may override it",
    )
