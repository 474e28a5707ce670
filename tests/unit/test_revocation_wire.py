"""The documented Redis format: keys, fields, entries and channel messages."""

from __future__ import annotations

import json

import pytest

from gateway.revocation.store import Revocation
from gateway.revocation.wire import (
    Change,
    Ping,
    RedisKeys,
    Resync,
    WireError,
    decode_entry,
    decode_message,
    encode_entry,
    field_of,
    ping_message,
    resync_message,
    unrevoke_fields,
)

ISS = "https://idp.example/"


def test_every_key_shares_the_prefix_hash_tag_so_a_cluster_keeps_them_in_one_slot() -> None:
    keys = RedisKeys.for_prefix("gw:rev")
    assert (keys.entries, keys.expiry, keys.version, keys.epoch, keys.channel) == (
        "{gw:rev}:entries", "{gw:rev}:expiry", "{gw:rev}:version", "{gw:rev}:epoch",
        "{gw:rev}:events",
    )


def test_the_field_is_kind_issuer_value_separated_by_spaces() -> None:
    assert field_of("jti", ISS, "a b") == f"jti {ISS} a b"


def test_an_entry_survives_a_round_trip() -> None:
    entry = Revocation("sub", ISS, "alice", 2000.0, 1000.0, "left", "ops", 999.5)
    assert decode_entry(encode_entry(entry)) == entry
    assert json.loads(encode_entry(entry)) == {
        "kind": "sub", "issuer": ISS, "value": "alice", "expires_at": 2000.0, "before": 1000.0,
        "reason": "left", "actor": "ops", "created_at": 999.5,
    }


def test_a_minimal_entry_from_another_tool_is_accepted() -> None:
    entry = decode_entry(b'{"kind":"jti","issuer":"i","value":"v","expires_at":5}')
    assert entry == Revocation("jti", "i", "v", 5.0, None, None, None, 0.0)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        pytest.param(b"not json", "must be JSON", id="not JSON"),
        pytest.param(b"[]", "must be a JSON object", id="a list"),
        pytest.param(b'{"kind":"user","issuer":"i","value":"v","expires_at":1}', "kind",
                     id="an unknown kind"),
        pytest.param(b'{"kind":"jti","issuer":"","value":"v","expires_at":1}', "issuer",
                     id="an empty issuer"),
        pytest.param(b'{"kind":"jti","issuer":"i","value":5,"expires_at":1}', "value",
                     id="a numeric value"),
        pytest.param(b'{"kind":"jti","issuer":"i","value":"v"}', "expires_at",
                     id="no expiry"),
        pytest.param(b'{"kind":"jti","issuer":"i","value":"v","expires_at":"soon"}',
                     "expires_at", id="an expiry as text"),
        pytest.param(b'{"kind":"jti","issuer":"i","value":"v","expires_at":true}',
                     "expires_at", id="an expiry as a boolean"),
        pytest.param(b'{"kind":"sub","issuer":"i","value":"v","expires_at":1,"before":"x"}',
                     "before", id="a cutoff as text"),
        pytest.param(b'{"kind":"issuer","issuer":"i","value":"other","expires_at":1}',
                     "issuer entry", id="an issuer entry naming another issuer"),
    ],
)
def test_malformed_entries_are_refused(raw: bytes, message: str) -> None:
    with pytest.raises(WireError, match=message):
        decode_entry(raw)


def test_revoke_and_unrevoke_messages_decode_to_changes() -> None:
    entry = Revocation("jti", ISS, "j1", 2000.0, created_at=1.0)
    revoke = json.dumps({"op": "revoke", "v": 7, "t": 12.5, "entry": json.loads(
        encode_entry(entry))})
    assert decode_message(revoke) == Change(("jti", ISS, "j1"), entry, 7, 12.5)
    unrevoke = '{"op":"unrevoke","v":8,"t":13,' + unrevoke_fields("jti", ISS, "j1") + "}"
    assert decode_message(unrevoke) == Change(("jti", ISS, "j1"), None, 8, 13.0)
    assert decode_message('{"op":"unrevoke","kind":"sub","issuer":"i","value":"u"}') == \
        Change(("sub", "i", "u"), None, None, None)


def test_pings_and_resync_requests_decode() -> None:
    assert decode_message(ping_message("abc")) == Ping("abc")
    assert decode_message(resync_message(3)) == Resync(3)
    assert decode_message('{"op":"resync"}') == Resync(None)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("{", id="not JSON"),
        pytest.param('"revoke"', id="a string"),
        pytest.param('{"op":"delete"}', id="an unknown op"),
        pytest.param('{"op":"revoke","v":1}', id="a revoke without entry"),
        pytest.param('{"op":"unrevoke","kind":"x","issuer":"i","value":"v"}',
                     id="an unrevoke of an unknown kind"),
        pytest.param('{"op":"resync","v":"7"}', id="a version as text"),
        pytest.param('{"op":"unrevoke","kind":"jti","issuer":"i","value":"v","t":"now"}',
                     id="a timestamp as text"),
    ],
)
def test_malformed_messages_are_refused(raw: str) -> None:
    with pytest.raises(WireError):
        decode_message(raw)
