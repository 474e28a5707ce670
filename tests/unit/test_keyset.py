"""Fetched JWKS documents: usable keys kept, unusable ones skipped with a reason; KeySet."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.auth.keyset import JwksInvalid, KeySet, parse_jwks
from gateway.errors import AlgorithmNotAllowed, KeyNotFound, TokenMalformed
from tests.fixtures.keys import KeyPair, make_ed25519

ALL = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
                 "ES512", "EdDSA"})


def kids(document: dict[str, Any], algorithms: frozenset[str] = ALL) -> list[str | None]:
    return [e.kid for e in parse_jwks(document, algorithms, "https://idp.unit/jwks")]


def test_usable_keys_of_every_type_are_kept(rsa_key: KeyPair, ec_key: KeyPair) -> None:
    ed = make_ed25519("ed-1")
    p384 = KeyPair(ec.generate_private_key(ec.SECP384R1()), "p384", "ES384")
    entries = parse_jwks({"keys": [rsa_key.jwk(), ec_key.jwk(), ed.jwk(), p384.jwk()]}, ALL, "s")
    assert {e.kid: sorted(e.algorithms) for e in entries} == {
        "rsa-1": ["RS256"], "ec-1": ["ES256"], "ed-1": ["EdDSA"], "p384": ["ES384"],
    }


def test_a_key_without_alg_may_verify_what_its_type_allows_within_the_allowlist(
    rsa_key: KeyPair,
) -> None:
    jwk = {k: v for k, v in rsa_key.jwk().items() if k != "alg"}
    [entry] = parse_jwks({"keys": [jwk]}, frozenset({"PS256", "RS512", "ES256"}), "s")
    assert entry.algorithms == frozenset({"PS256", "RS512"})  # never "RS256 by default"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        pytest.param({"use": "enc"}, "use is 'enc'", id="an encryption key"),
        pytest.param({"key_ops": ["encrypt"]}, "key_ops", id="key_ops without verify"),
        pytest.param({"alg": "RS512"}, "not in the issuer's allowlist", id="alg outside allowlist"),
        pytest.param({"alg": "ES256"}, "unusable JWK", id="alg unfit for the key type"),
        pytest.param({"alg": "none"}, "allowlist", id="alg none"),
        pytest.param({"kid": 7}, "kid is not a string", id="a kid that is not a string"),
        pytest.param({"d": "AQAB"}, "private", id="private key material"),
        pytest.param({"n": "!!"}, "unusable JWK", id="a broken modulus"),
        pytest.param({"kty": "XYZ"}, "unusable JWK", id="an unknown key type"),
    ],
)
def test_unusable_keys_are_skipped_with_a_logged_reason(
    rsa_key: KeyPair, ec_key: KeyPair, caplog: pytest.LogCaptureFixture,
    change: dict[str, Any], reason: str,
) -> None:
    bad = {**rsa_key.jwk(), **change}
    caplog.set_level(logging.WARNING, "gateway.jwks")
    assert kids({"keys": [bad, ec_key.jwk()]}, frozenset({"RS256", "ES256"})) == ["ec-1"]
    [record] = caplog.records
    assert reason in record.getMessage()


def test_symmetric_keys_and_non_objects_are_skipped(ec_key: KeyPair) -> None:
    doc = {"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "hs"}, "string", 5, ec_key.jwk()]}
    assert kids(doc) == ["ec-1"]


def test_a_duplicate_kid_keeps_the_first_key(rsa_key: KeyPair, other_rsa_key: KeyPair) -> None:
    [entry] = parse_jwks({"keys": [rsa_key.jwk(), other_rsa_key.jwk()]}, ALL, "s")
    assert entry.key.public_numbers() == rsa_key.public.public_numbers()


@pytest.mark.parametrize(
    "document",
    [
        pytest.param({}, id="no keys member"),
        pytest.param({"keys": {}}, id="keys is an object"),
        pytest.param([], id="a list"),
        pytest.param("keys", id="a string"),
        pytest.param({"keys": []}, id="no key at all"),
        pytest.param({"keys": [{"kty": "RSA", "use": "enc"}]}, id="no usable key"),
    ],
)
def test_documents_without_usable_keys_are_invalid(document: Any) -> None:
    with pytest.raises(JwksInvalid):
        parse_jwks(document, ALL, "s")


json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=20,
)
jwk_like = st.fixed_dictionaries(
    {"kty": st.sampled_from(["RSA", "EC", "OKP", "oct", "x", 1])},
    optional={"n": json_value | st.just("AQAB"), "e": st.sampled_from(["AQAB", "", 3]),
              "crv": st.sampled_from(["P-256", "P-384", "Ed25519", "X25519", "nope"]),
              "x": json_value, "y": json_value, "alg": json_value | st.sampled_from(sorted(ALL)),
              "use": st.sampled_from(["sig", "enc", None, 1]), "kid": json_value,
              "key_ops": json_value, "d": json_value},
)


@settings(max_examples=300, deadline=None)
@given(document=st.one_of(json_value, st.fixed_dictionaries(
    {"keys": st.lists(st.one_of(jwk_like, json_value), max_size=5)})))
def test_any_document_gives_keys_or_jwks_invalid_and_nothing_else(document: Any) -> None:
    json.dumps(document)  # every example is a JSON document
    try:
        entries = parse_jwks(document, ALL, "s")
    except JwksInvalid:
        return
    assert entries and all(e.algorithms <= ALL and e.algorithms for e in entries)


# -- KeySet ----------------------------------------------------------------------------------


def test_key_set_selection(rsa_key: KeyPair, ec_key: KeyPair) -> None:
    keys = KeySet.build(parse_jwks({"keys": [rsa_key.jwk(), ec_key.jwk()]}, ALL, "s"))
    assert keys.select("rsa-1", "RS256", "iss").kid == "rsa-1"
    with pytest.raises(AlgorithmNotAllowed):
        keys.select("rsa-1", "ES256", "iss")
    with pytest.raises(KeyNotFound) as info:
        keys.select("nope", "RS256", "iss")
    assert info.value.kid == "nope"  # a kid a refetch might find
    with pytest.raises(KeyNotFound) as info:
        keys.select(None, "RS256", "iss")
    assert info.value.kid is None    # no kid: nothing to refetch for
    with pytest.raises(TokenMalformed):
        keys.select(["rsa-1"], "RS256", "iss")


def test_fingerprints_tell_key_sets_apart(
    rsa_key: KeyPair, other_rsa_key: KeyPair, ec_key: KeyPair
) -> None:
    def fp(*pairs: KeyPair) -> Any:
        return KeySet.build(parse_jwks({"keys": [p.jwk() for p in pairs]}, ALL, "s")).fingerprint

    assert fp(rsa_key, ec_key) == fp(ec_key, rsa_key)
    assert fp(rsa_key) != fp(other_rsa_key)  # same kid, other key
    assert fp(rsa_key) != fp(rsa_key, ec_key)
