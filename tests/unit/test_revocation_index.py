"""The in-memory index behind the Redis store: lookups by kind, expiry, paging."""

from __future__ import annotations

import pytest

from gateway.auth.principal import Principal
from gateway.revocation.index import RevocationIndex
from gateway.revocation.store import Revocation

ISS, OTHER = "https://idp.example/", "https://other.example/"
NOW = 10_000.0


def principal(**kw: object) -> Principal:
    base: dict[str, object] = {"issuer": ISS, "subject": "alice", "client_id": "web",
                               "scopes": frozenset(), "token_id": "j1", "issued_at": NOW - 100,
                               "expires_at": NOW + 100}
    base.update(kw)
    return Principal(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("entry", "revoked", "spared"),
    [
        pytest.param(Revocation("jti", ISS, "j1", NOW + 60), principal(),
                     principal(token_id="j2"), id="a jti entry revokes that token only"),
        pytest.param(Revocation("sub", ISS, "alice", NOW + 60, NOW - 50), principal(),
                     principal(issued_at=NOW - 10), id="a subject cutoff spares newer tokens"),
        pytest.param(Revocation("client", ISS, "web", NOW + 60, NOW - 50), principal(),
                     principal(client_id="mobile"), id="a client cutoff spares other clients"),
        pytest.param(Revocation("issuer", ISS, ISS, NOW + 60, NOW - 50),
                     principal(subject="bob", client_id=None, token_id=None),
                     principal(issued_at=NOW - 10), id="an issuer cutoff spares newer tokens"),
        pytest.param(Revocation("sub", ISS, "alice", NOW + 60, NOW - 50),
                     principal(issued_at=None), principal(issuer=OTHER),
                     id="a cutoff revokes tokens without iat, of its own issuer only"),
    ],
)
def test_each_kind_revokes_what_it_names(
    entry: Revocation, revoked: Principal, spared: Principal
) -> None:
    index = RevocationIndex()
    index.put(entry)
    assert index.is_revoked(revoked, NOW) is True
    assert index.is_revoked(spared, NOW) is False


def test_an_expired_entry_revokes_nothing_and_is_dropped_when_met() -> None:
    index = RevocationIndex()
    index.put(Revocation("jti", ISS, "j1", NOW - 1))
    assert len(index) == 1
    assert index.is_revoked(principal(), NOW) is False
    assert len(index) == 0


def test_put_replaces_remove_counts_and_prune() -> None:
    index = RevocationIndex()
    index.put(Revocation("jti", ISS, "j1", NOW + 1))
    index.put(Revocation("jti", ISS, "j1", NOW + 50, reason="again"))
    index.put(Revocation("sub", OTHER, "bob", NOW - 300, NOW - 400))
    index.put(Revocation("client", ISS, "web", NOW - 300))
    index.remove("client", ISS, "web")  # already gone: not counted by prune
    assert len(index) == 2
    assert index.counts() == {"jti": 1, "sub": 1, "client": 0, "issuer": 0}
    entry = index.get("jti", ISS, "j1")
    assert entry is not None and entry.reason == "again"
    assert index.prune(NOW) == 1  # the replaced j1 (NOW + 1) is not dropped with its old copy
    assert index.prune(NOW + 120) == 1
    assert index.remove("jti", ISS, "j1") is False
    assert len(index) == 0 and list(index.entries()) == []


def test_pages_follow_the_key_order_and_filters() -> None:
    index = RevocationIndex()
    for i in range(7):
        index.put(Revocation("jti", ISS, f"j{i}", NOW + 60))
    index.put(Revocation("jti", OTHER, "j0", NOW + 60))
    index.put(Revocation("sub", ISS, "alice", NOW + 60, NOW))
    index.put(Revocation("jti", ISS, "old", NOW - 1))  # expired: never listed

    values, cursor = [], None
    while True:
        page = index.page(now=NOW, kind="jti", issuer=ISS, limit=3, cursor=cursor)
        values += [e.value for e in page.entries]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert values == [f"j{i}" for i in range(7)]
    everything = index.page(now=NOW, limit=100)
    assert [(e.kind, e.issuer, e.value) for e in everything.entries][-2:] == [
        ("jti", OTHER, "j0"), ("sub", ISS, "alice")]
    assert everything.next_cursor is None
    assert [e.issuer for e in index.page(now=NOW, value="j0").entries] == [ISS, OTHER]
    assert index.page(now=NOW, cursor="garbage", limit=1).entries[0].value == "j0"
