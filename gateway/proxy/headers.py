"""Header rules for proxying: hop-by-hop removal, forwarding headers, identity headers.

Pure functions over multidicts. Everything the gateway asserts upstream (identity, forwarding
information) is first stripped from what the client sent, in any case and ``_`` spelling.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from aiohttp import hdrs
from multidict import CIMultiDict, CIMultiDictProxy

from ..auth.principal import Principal
from ..errors import ClaimInvalid, UnsupportedTransferCoding

# RFC 9110 §7.6.1, plus the non-standard ones proxies are known to honour.
HOP_BY_HOP: frozenset[str] = frozenset({
    "connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade",
    "proxy-authorization", "proxy-authenticate", "proxy", "proxy-connection",
})
FORWARDING: frozenset[str] = frozenset({
    "forwarded", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host",
    "x-forwarded-port", "x-forwarded-prefix", "x-real-ip",
})
VIA_TOKEN = "1.1 oauth2-gateway"
#: Control characters other than HTAB are invalid in field values (RFC 9110 §5.5); CR, LF and
#: NUL would split or end a header, and aiohttp's writer refuses all of them (→ 500 otherwise).
_FORBIDDEN_IN_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_TOKEN_SAFE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]*")


def normalized_name(name: str) -> str:
    """Header name as upstream frameworks may read it: lower case, ``_`` as ``-``."""
    return name.lower().replace("_", "-")


def connection_nominated(headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> set[str]:
    """Names listed in Connection headers (RFC 9110 §7.6.1), lower case."""
    nominated: set[str] = set()
    for value in headers.getall(hdrs.CONNECTION, ()):
        nominated.update(t.strip().lower() for t in value.split(",") if t.strip())
    return nominated


def _drop(lower: str, nominated: set[str], stripped: frozenset[str]) -> bool:
    """``lower``: the header name in lower case."""
    return (lower in HOP_BY_HOP or lower in nominated
            or (lower.replace("_", "-") if "_" in lower else lower) in stripped)


def request_headers(
    incoming: CIMultiDictProxy[str],
    *,
    stripped: frozenset[str],
    upstream_authority: str,
    client_ip: str | None,
    proto: str,
    trusted_peer: bool = False,
) -> CIMultiDict[str]:
    """Headers for the upstream request, before identity headers are added.

    ``stripped`` holds normalised names to remove (forwarding and identity headers). When the
    peer is a trusted proxy (``server.trusted_proxies``), its ``Forwarded`` / ``X-Forwarded-*``
    / ``X-Real-IP`` headers are kept and extended with this hop instead of being replaced.
    """
    nominated = connection_nominated(incoming)
    out: CIMultiDict[str] = CIMultiDict()
    via = []
    kept: dict[str, list[str]] = {}
    for name, value in incoming.items():
        lower = name.lower()
        if trusted_peer and lower in FORWARDING and lower not in nominated:
            kept.setdefault(lower, []).append(value)
            continue
        if _drop(lower, nominated, stripped) or lower == "host":
            continue
        if lower == "via":
            via.append(value)
            continue
        out.add(name, value)
    out[hdrs.HOST] = upstream_authority
    original_host = incoming.get(hdrs.HOST)
    chain = [*kept.get("x-forwarded-for", ()), *([client_ip] if client_ip else ())]
    if chain:
        out["X-Forwarded-For"] = ", ".join(chain)
    out["X-Forwarded-Proto"] = kept.get("x-forwarded-proto", [proto])[0]
    forwarded_host = kept.get("x-forwarded-host", [original_host or ""])[0]
    if forwarded_host:
        out["X-Forwarded-Host"] = forwarded_host
    for name in ("X-Forwarded-Port", "X-Forwarded-Prefix", "X-Real-IP"):
        for value in kept.get(name.lower(), ()):
            out.add(name, value)
    element = [f"for={_forwarded_node(client_ip)}" if client_ip else "", f"proto={proto}"]
    if original_host and _is_token_safe(original_host):
        element.append(f'host="{original_host}"')
    out["Forwarded"] = ", ".join([*kept.get("forwarded", ()), ";".join(p for p in element if p)])
    out[hdrs.VIA] = ", ".join([*via, VIA_TOKEN])
    return out


def _forwarded_node(ip: str) -> str:
    return f'"[{ip}]"' if ":" in ip else ip


def _is_token_safe(value: str) -> bool:
    """Visible ASCII without ``"`` and ``\\``: safe inside a quoted Forwarded value."""
    return _TOKEN_SAFE.fullmatch(value) is not None


def valid_field_value(value: str) -> bool:
    """False for values aiohttp's writer would refuse (control characters but HTAB)."""
    return _FORBIDDEN_IN_VALUE.search(value) is None


def check_header_value(value: str) -> str:
    if not valid_field_value(value):
        raise ClaimInvalid("a claim passed as a header contains a control character")
    return value


def add_identity(
    headers: CIMultiDict[str],
    principal: Principal,
    *,
    subject: str | None,
    client_id: str | None,
    scopes: str | None,
    issuer: str | None,
) -> None:
    """Add the verified identity; raises ClaimInvalid for values that could split headers."""
    if subject and principal.subject is not None:
        headers[subject] = check_header_value(principal.subject)
    if client_id and principal.client_id is not None:
        headers[client_id] = check_header_value(principal.client_id)
    if scopes:
        headers[scopes] = check_header_value(" ".join(sorted(principal.scopes)))
    if issuer and principal.issuer:
        headers[issuer] = check_header_value(principal.issuer)


def response_headers(incoming: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    """The upstream response's headers without hop-by-hop ones (and those Connection names)."""
    nominated = connection_nominated(incoming)
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in incoming.items():
        lower = name.lower()
        if lower not in HOP_BY_HOP and lower not in nominated:
            out.add(name, value)
    return out


def stripped_names(identity_names: Iterable[str]) -> frozenset[str]:
    """Normalised names a route removes from client requests."""
    return frozenset(FORWARDING | {normalized_name(n) for n in identity_names})


def check_transfer_coding(headers: CIMultiDictProxy[str]) -> None:
    """Only ``chunked`` can be relayed (aiohttp de-chunks; other codings would be lost)."""
    codings = [
        c.strip().lower()
        for value in headers.getall(hdrs.TRANSFER_ENCODING, ())
        for c in value.split(",") if c.strip()
    ]
    if codings and codings != ["chunked"]:
        raise UnsupportedTransferCoding(f"transfer codings {codings[:8]} not supported")
