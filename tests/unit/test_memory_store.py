"""The in-process revocation store, with an injected clock (no sleeps)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.auth.principal import Principal
from gateway.revocation.memory import MemoryRevocationStore
from gateway.revocation.store import Revocation

ISS = "https://idp.test/"
OTHER_ISS = "https://idp2.test/"


class Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def principal(**overrides: Any) -> Principal:
    fields: dict[str, Any] = {
        "issuer": ISS, "subject": "alice", "client_id": "web-app", "scopes": frozenset(),
        "token_id": "jti-1", "issued_at": 900.0, "expires_at": 1_300.0,
    }
    fields.update(overrides)
    return Principal(**fields)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> MemoryRevocationStore:
    return MemoryRevocationStore(clock=clock)


async def test_an_empty_store_revokes_nothing(store: MemoryRevocationStore) -> None:
    assert await store.is_revoked(principal()) is False


async def test_a_jti_entry_revokes_until_it_expires_and_is_then_forgotten(
    store: MemoryRevocationStore, clock: Clock
) -> None:
    await store.revoke(Revocation("jti", ISS, "jti-1", expires_at=1_300.0))
    assert await store.is_revoked(principal()) is True
    assert await store.is_revoked(principal(token_id="jti-2")) is False
    clock.now = 1_299.999
    assert await store.is_revoked(principal()) is True
    clock.now = 1_300.0
    assert await store.is_revoked(principal()) is False
    assert (await store.list()).entries == []
    # gone for good: moving the clock back does not bring it back
    clock.now = 1_000.0
    assert await store.is_revoked(principal()) is False


async def test_purge_drops_expired_entries_only(
    store: MemoryRevocationStore, clock: Clock
) -> None:
    await store.revoke(Revocation("jti", ISS, "old", expires_at=1_100.0))
    await store.revoke(Revocation("jti", ISS, "new", expires_at=1_500.0))
    clock.now = 1_200.0
    assert store.purge() == 1
    assert [e.value for e in (await store.list()).entries] == ["new"]


@pytest.mark.parametrize(
    ("issued_at", "revoked"),
    [
        pytest.param(899.0, True, id="issued before the cutoff is revoked"),
        pytest.param(950.0, True, id="issued exactly at the cutoff is revoked"),
        pytest.param(950.5, False, id="issued after the cutoff is accepted"),
        pytest.param(None, True, id="a token without iat is revoked by a cutoff"),
    ],
)
@pytest.mark.parametrize("kind", ["sub", "client"])
async def test_subject_and_client_cutoffs_compare_iat_with_before(
    store: MemoryRevocationStore, kind: str, issued_at: float | None, revoked: bool
) -> None:
    value = "alice" if kind == "sub" else "web-app"
    await store.revoke(Revocation(kind, ISS, value, expires_at=2_000.0, before=950.0))
    assert await store.is_revoked(principal(issued_at=issued_at)) is revoked


async def test_a_subject_cutoff_does_not_touch_other_subjects_or_issuers(
    store: MemoryRevocationStore,
) -> None:
    await store.revoke(Revocation("sub", ISS, "alice", expires_at=2_000.0, before=950.0))
    assert await store.is_revoked(principal()) is True
    assert await store.is_revoked(principal(subject="bob")) is False
    assert await store.is_revoked(principal(issuer=OTHER_ISS)) is False


async def test_a_jti_entry_is_scoped_to_its_issuer(store: MemoryRevocationStore) -> None:
    await store.revoke(Revocation("jti", ISS, "jti-1", expires_at=2_000.0))
    assert await store.is_revoked(principal(issuer=OTHER_ISS)) is False


async def test_an_issuer_cutoff_revokes_every_older_token_of_that_issuer(
    store: MemoryRevocationStore,
) -> None:
    await store.revoke(Revocation("issuer", ISS, ISS, expires_at=2_000.0, before=950.0))
    assert await store.is_revoked(principal(subject="anyone", token_id=None)) is True
    assert await store.is_revoked(principal(issued_at=960.0)) is False
    assert await store.is_revoked(principal(issuer=OTHER_ISS)) is False


async def test_a_subject_cutoff_expires_too(store: MemoryRevocationStore, clock: Clock) -> None:
    await store.revoke(Revocation("sub", ISS, "alice", expires_at=1_100.0, before=950.0))
    clock.now = 1_100.0
    assert await store.is_revoked(principal()) is False


async def test_unrevoke_removes_exactly_one_entry(store: MemoryRevocationStore) -> None:
    await store.revoke(Revocation("jti", ISS, "jti-1", expires_at=2_000.0))
    await store.revoke(Revocation("sub", ISS, "alice", expires_at=2_000.0, before=950.0))
    assert await store.unrevoke("jti", ISS, "jti-1") is True
    assert await store.unrevoke("jti", ISS, "jti-1") is False
    assert await store.unrevoke("sub", OTHER_ISS, "alice") is False
    assert [(e.kind, e.value) for e in (await store.list()).entries] == [("sub", "alice")]


async def test_revoking_again_replaces_the_entry(store: MemoryRevocationStore) -> None:
    await store.revoke(Revocation("sub", ISS, "alice", expires_at=2_000.0, before=950.0))
    await store.revoke(Revocation("sub", ISS, "alice", expires_at=2_000.0, before=850.0))
    assert await store.is_revoked(principal(issued_at=900.0)) is False
    assert len((await store.list()).entries) == 1


async def test_list_filters_and_pages_with_a_cursor(store: MemoryRevocationStore) -> None:
    for i in range(5):
        await store.revoke(Revocation("jti", ISS, f"j{i}", expires_at=2_000.0))
    await store.revoke(Revocation("sub", ISS, "alice", expires_at=2_000.0, before=1.0))
    await store.revoke(Revocation("jti", OTHER_ISS, "j0", expires_at=2_000.0))

    first = await store.list(kind="jti", issuer=ISS, limit=2)
    assert [e.value for e in first.entries] == ["j0", "j1"]
    assert first.next_cursor is not None
    second = await store.list(kind="jti", issuer=ISS, limit=2, cursor=first.next_cursor)
    assert [e.value for e in second.entries] == ["j2", "j3"]
    third = await store.list(kind="jti", issuer=ISS, limit=2, cursor=second.next_cursor)
    assert [e.value for e in third.entries] == ["j4"]
    assert third.next_cursor is None

    assert [e.issuer for e in (await store.list(value="j0")).entries] == [ISS, OTHER_ISS]
    assert [e.kind for e in (await store.list(kind="sub")).entries] == ["sub"]
    assert len((await store.list()).entries) == 7


async def test_writes_drop_entries_expired_in_earlier_minutes(
    store: MemoryRevocationStore, clock: Clock
) -> None:
    """Entries nobody looks up again do not pile up: a later write prunes them."""
    await store.revoke(Revocation("jti", ISS, "old", expires_at=1_100.0))
    clock.now = 1_300.0
    await store.revoke(Revocation("jti", ISS, "new", expires_at=2_000.0))
    assert len(store._index) == 1
    assert [e.value for e in (await store.list()).entries] == ["new"]
