"""The shared building blocks of the configuration models: the ``Spec`` base class (frozen,
unknown keys refused) and the validated scalar types every section uses (durations, HTTP
methods, listen addresses, header names, upstream URLs).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from .durations import parse_duration

if TYPE_CHECKING:
    from yarl import URL

Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    Field(description="a duration: 250ms, 30s, 5m, 24h; a bare number means seconds"),
]

HttpMethod = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]

_LISTEN = re.compile(
    r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9.\-]*)):(?P<port>\d{1,5})$"
)
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
#: An upstream URL's host as yarl gives it (lower-cased): a name (``_`` allowed, as in
#: container names), an IPv4 address or an IPv6 literal without its brackets.
_UPSTREAM_HOST = re.compile(r"^(?:[a-z0-9_](?:[a-z0-9_\-.]*[a-z0-9_])?|[0-9a-f:.]*:[0-9a-f:.]*)$")


def _check_listen(value: str) -> str:
    m = _LISTEN.match(value)
    if m is None or not 0 <= int(m["port"]) < 65536:
        raise ValueError(
            "must be HOST:PORT, e.g. 0.0.0.0:8080 or [::1]:8080 (port 0: any free port)"
        )
    return value


def _check_header_name(value: str) -> str:
    if not _HEADER_NAME.match(value):
        raise ValueError("not a valid HTTP header name")
    return value


def parse_url(value: str, schemes: tuple[str, ...], expected: str) -> URL:
    """``value`` as a URL with one of ``schemes`` and a host; else ValueError(``expected``)."""
    from yarl import URL

    try:
        url = URL(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a valid URL ({exc})") from None
    if url.scheme not in schemes or not url.host:
        raise ValueError(expected)
    return url


def _check_http_url(value: str) -> str:
    url = parse_url(value, ("http", "https"), "must be an absolute http:// or https:// URL")
    if not _UPSTREAM_HOST.match(url.raw_host or ""):
        raise ValueError("the host is not a valid host name or IP address")
    if url.query_string or url.fragment:
        raise ValueError("must not have a query or fragment")
    if url.user or url.password:
        raise ValueError("must not carry credentials")
    return value


ListenAddress = Annotated[str, AfterValidator(_check_listen)]
HeaderName = Annotated[str, AfterValidator(_check_header_name)]
HttpUrl = Annotated[str, AfterValidator(_check_http_url)]


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
