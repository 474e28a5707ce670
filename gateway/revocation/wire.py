"""The documented Redis format of the revocation list: keys, fields, entries and messages.

Any tool can write revocations in this format; every gateway instance enforces them. With
``key_prefix: P`` (default ``gateway:revocation``) and ``{P}`` a Redis Cluster hash tag, so
that every key lives in one slot:

- ``{P}:entries``  HASH   field ``"<kind> <issuer> <value>"`` → the entry as JSON;
- ``{P}:expiry``   ZSET   the same field, scored by the entry's ``expires_at`` (for pruning);
- ``{P}:version``  STRING a counter, INCR'd by every change;
- ``{P}:epoch``    STRING a random id set once (SET NX) when the list is created: when it is
  gone, Redis lost its data and the instances re-seed it from memory;
- ``{P}:events``   pub/sub channel: one message per change, and the instances' heartbeats.

The entry JSON has ``kind`` (``jti``/``sub``/``client``/``issuer``), ``issuer``, ``value`` (the
issuer itself for kind ``issuer``), ``expires_at`` (unix seconds), ``before`` (cutoff kinds:
tokens with ``iat`` ≤ before are revoked) and optional ``reason``, ``actor``, ``created_at``.

Messages are JSON objects with ``op``:

- ``{"op": "revoke", "v": VERSION, "t": UNIX_TIME, "entry": {…}}``
- ``{"op": "unrevoke", "v": VERSION, "t": UNIX_TIME, "kind": K, "issuer": I, "value": V}``
- ``{"op": "resync"}``: every instance reloads the whole list (after a bulk change);
- ``{"op": "ping", "id": …}``: an instance's heartbeat, ignored by the others.

``v`` is the value of ``{P}:version`` after the change's INCR and lets an instance notice a
message it missed; ``t`` gives the propagation-delay metric. Both are optional.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from typing import Any

from .store import KINDS, Key, Revocation


@dataclass(frozen=True, slots=True)
class RedisKeys:
    prefix: str
    entries: str
    expiry: str
    version: str
    epoch: str
    channel: str

    @classmethod
    def for_prefix(cls, prefix: str) -> RedisKeys:
        tag = "{" + prefix + "}"
        return cls(prefix, f"{tag}:entries", f"{tag}:expiry", f"{tag}:version", f"{tag}:epoch",
                   f"{tag}:events")


class WireError(ValueError):
    """Data in Redis or on the channel that does not follow the documented format."""


def field_of(kind: str, issuer: str, value: str) -> str:
    """The hash field (and expiry member) of an entry: ``"<kind> <issuer> <value>"``."""
    return f"{kind} {issuer} {value}"


def encode_entry(entry: Revocation) -> str:
    return json.dumps(entry.as_json(), separators=(",", ":"), sort_keys=True)


def _text(data: dict[str, Any], name: str, *, optional: bool = False) -> str | None:
    value = data.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise WireError(f"{name} must be a non-empty string")
    return value


def _time(data: dict[str, Any], name: str, *, optional: bool = False) -> float | None:
    value = data.get(name)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise WireError(f"{name} must be a unix time (number)")
    return float(value)


def entry_from_json(data: object) -> Revocation:
    """A Revocation from its decoded JSON object; raises WireError."""
    if not isinstance(data, dict):
        raise WireError("an entry must be a JSON object")
    kind = data.get("kind")
    if kind not in KINDS:
        raise WireError(f"kind must be one of {list(KINDS)}")
    issuer = _text(data, "issuer")
    value = _text(data, "value")
    assert issuer is not None and value is not None
    if kind == "issuer" and value != issuer:
        raise WireError("an issuer entry's value must be the issuer")
    expires_at = _time(data, "expires_at")
    assert expires_at is not None
    before = _time(data, "before", optional=True)
    reason = _text(data, "reason", optional=True)
    actor = _text(data, "actor", optional=True)
    created_at = _time(data, "created_at", optional=True) or 0.0
    # interned: a million entries of one issuer share one issuer string
    return Revocation(kind, sys.intern(issuer), value, expires_at, before, reason,
                      sys.intern(actor) if actor is not None else None, created_at)


def decode_entry(raw: bytes | str) -> Revocation:
    try:
        data = json.loads(raw)
    except ValueError:
        raise WireError("an entry must be JSON") from None
    return entry_from_json(data)


@dataclass(frozen=True, slots=True)
class Change:
    """A revoke (``entry`` set) or an unrevoke (``entry`` None) of ``key``."""

    key: Key
    entry: Revocation | None
    version: int | None
    sent_at: float | None


@dataclass(frozen=True, slots=True)
class Ping:
    id: str


@dataclass(frozen=True, slots=True)
class Resync:
    version: int | None


Message = Change | Ping | Resync


def _version(data: dict[str, Any]) -> int | None:
    v = data.get("v")
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise WireError("v must be an integer")
    return v


def decode_message(raw: bytes | str) -> Message:
    try:
        data = json.loads(raw)
    except ValueError:
        raise WireError("a message must be JSON") from None
    if not isinstance(data, dict):
        raise WireError("a message must be a JSON object")
    op = data.get("op")
    if op == "ping":
        return Ping(str(data.get("id")))
    if op == "resync":
        return Resync(_version(data))
    sent_at = _time(data, "t", optional=True)
    if op == "revoke":
        entry = entry_from_json(data.get("entry"))
        return Change((entry.kind, entry.issuer, entry.value), entry, _version(data), sent_at)
    if op == "unrevoke":
        kind = data.get("kind")
        if kind not in KINDS:
            raise WireError(f"kind must be one of {list(KINDS)}")
        issuer, value = _text(data, "issuer"), _text(data, "value")
        assert issuer is not None and value is not None
        return Change((kind, issuer, value), None, _version(data), sent_at)
    raise WireError("op must be revoke, unrevoke, resync or ping")


def ping_message(nonce: str) -> str:
    return json.dumps({"op": "ping", "id": nonce})


def resync_message(version: int) -> str:
    return json.dumps({"op": "resync", "v": version})


def unrevoke_fields(kind: str, issuer: str, value: str) -> str:
    """The JSON members of an unrevoke message after ``op``, ``v`` and ``t``."""
    return json.dumps({"kind": kind, "issuer": issuer, "value": value},
                      separators=(",", ":"))[1:-1]
