"""The verifier beyond signatures: every algorithm, RFC 9068 typ, required claims, the scope
claim, route issuers, remote keys (refetch, generation) and introspection answers."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from gateway.auth.claims import parse_path
from gateway.auth.fetch import Fetched, FetchLimits
from gateway.auth.issuer import Issuer
from gateway.auth.jwks import JwksCache, JwksSettings
from gateway.auth.keys import HMAC_ALGORITHMS_SET, KeyEntry, jwk_entry
from gateway.auth.verify import TokenVerifier
from gateway.errors import (
    AudienceMismatch,
    ClaimInvalid,
    ClaimMissing,
    IntrospectionUnavailable,
    IssuerUnknown,
    KeyNotFound,
    KeysUnavailable,
    TokenExpired,
    TokenInactive,
    TokenMalformed,
    TokenTypeInvalid,
)
from gateway.metrics import GatewayMetrics
from tests.fixtures.keys import KeyPair, make_rsa

ISS = "https://idp.unit/"
ISS2 = "https://idp2.unit/"
AUD = "https://api.unit"
NOW = time.time()


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())  # at call time: the module may be imported minutes earlier
    base: dict[str, Any] = {"iss": ISS, "aud": AUD, "sub": "alice", "scope": "a b",
                            "iat": now, "exp": now + 300, "jti": "j1"}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def issuer(keys: tuple[KeyEntry, ...], algorithms: set[str], name: str = ISS,
           **options: Any) -> Issuer:
    return Issuer.build(name, (AUD,), frozenset(algorithms), 30.0, keys, **options)


def entry(pair: KeyPair) -> KeyEntry:
    found = jwk_entry(pair.jwk(), "test")
    assert found is not None
    return found


# -- every algorithm -----------------------------------------------------------------------

def _private(alg: str) -> Any:
    if alg.startswith(("RS", "PS")):
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    curve = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1(), "ES512": ec.SECP521R1()}[alg]
    return ec.generate_private_key(curve)


ASYMMETRIC = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
              "EdDSA"]


@pytest.mark.parametrize("alg", [pytest.param(a, id=f"{a} from a JWKS") for a in ASYMMETRIC])
def test_every_asymmetric_algorithm_verifies(alg: str) -> None:
    pair = KeyPair(_private(alg), f"k-{alg}", alg)
    verifier = TokenVerifier({ISS: issuer((entry(pair),), {alg})})
    token = jwt.encode(claims(), pair.private, algorithm=alg, headers={"kid": pair.kid})
    assert verifier.verify(token).subject == "alice"


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_every_hmac_algorithm_verifies(alg: str) -> None:
    secret = b"s" * 64
    verifier = TokenVerifier({ISS: issuer(
        (KeyEntry(None, secret, HMAC_ALGORITHMS_SET, "secret"),), {alg})})
    assert verifier.verify(jwt.encode(claims(), secret, algorithm=alg)).subject == "alice"


def test_an_rsa_key_allowed_for_ps256_refuses_rs256_tokens(rsa_key: KeyPair) -> None:
    jwk = {k: v for k, v in rsa_key.jwk().items() if k != "alg"}
    key = jwk_entry(jwk, "t")
    assert key is not None
    verifier = TokenVerifier({ISS: issuer((key,), {"PS256"})})
    assert verifier.verify(jwt.encode(claims(), rsa_key.private, algorithm="PS256",
                                      headers={"kid": rsa_key.kid})).subject == "alice"
    with pytest.raises(Exception) as info:
        verifier.verify(jwt.encode(claims(), rsa_key.private, algorithm="RS256",
                                   headers={"kid": rsa_key.kid}))
    assert getattr(info.value, "reason", None) == "algorithm"


# -- RFC 9068 typ, required claims, scope claim -------------------------------------------


@pytest.mark.parametrize(
    ("typ", "ok"),
    [
        pytest.param("at+jwt", True, id="at+jwt"),
        pytest.param("AT+JWT", True, id="upper case"),
        pytest.param("application/at+jwt", True, id="with the application/ prefix"),
        pytest.param("Application/At+Jwt", True, id="prefix in mixed case"),
        pytest.param("JWT", False, id="JWT"),
        pytest.param(None, False, id="no typ"),
        pytest.param("at+jwt ", False, id="trailing space"),
        pytest.param("application/jwt", False, id="application/jwt"),
        pytest.param(["at+jwt"], False, id="a list"),
    ],
)
def test_require_typ(rsa_key: KeyPair, typ: Any, ok: bool) -> None:
    verifier = TokenVerifier({ISS: issuer((entry(rsa_key),), {"RS256"},
                                          require_typ="application/AT+JWT")})
    headers: dict[str, Any] = {"kid": rsa_key.kid, "typ": typ}
    token = jwt.encode(claims(), rsa_key.private, algorithm="RS256", headers=headers)
    if typ is None:  # PyJWT writes typ JWT unless told otherwise
        token = jwt.encode(claims(), rsa_key.private, algorithm="RS256",
                           headers={"kid": rsa_key.kid, "typ": None})
    if ok:
        assert verifier.verify(token).subject == "alice"
    else:
        with pytest.raises(TokenTypeInvalid) as info:
            verifier.verify(token)
        assert info.value.reason == "token_type"


def test_required_claims_with_nested_paths(rsa_key: KeyPair) -> None:
    verifier = TokenVerifier({ISS: issuer(
        (entry(rsa_key),), {"RS256"},
        required_claims=(parse_path("client_id"), parse_path("realm_access.roles")))})

    def token(**extra: Any) -> str:
        return jwt.encode(claims(**extra), rsa_key.private, algorithm="RS256",
                          headers={"kid": rsa_key.kid})

    assert verifier.verify(token(client_id="c", realm_access={"roles": []})).client_id == "c"
    for extra in ({"realm_access": {"roles": []}}, {"client_id": "c"},
                  {"client_id": "c", "realm_access": {"roles": None}}):
        with pytest.raises(ClaimMissing):
            verifier.verify(token(**extra))


@pytest.mark.parametrize(
    ("scope_claim", "extra", "scopes"),
    [
        pytest.param("scp", {"scp": ["x", "y"], "scope": "a"}, {"x", "y"}, id="scp list"),
        pytest.param("scp", {"scp": "x y"}, {"x", "y"}, id="scp string"),
        pytest.param("scopes", {"scopes": ["x"]}, {"x"}, id="scopes list"),
        pytest.param("scope", {"scope": ["x", "y"]}, {"x", "y"}, id="scope as a list"),
        pytest.param("scp", {"scope": "a b"}, set(), id="only the configured claim counts"),
        pytest.param(None, {"scope": "a", "scp": ["x"]}, {"a"}, id="default: scope first"),
        pytest.param(None, {"scope": None, "scp": ["x"]}, {"x"}, id="default: else scp"),
    ],
)
def test_the_scope_claim(
    rsa_key: KeyPair, scope_claim: str | None, extra: dict[str, Any], scopes: set[str]
) -> None:
    verifier = TokenVerifier({ISS: issuer((entry(rsa_key),), {"RS256"},
                                          scope_claim=scope_claim)})
    token = jwt.encode(claims(**extra), rsa_key.private, algorithm="RS256",
                       headers={"kid": rsa_key.kid})
    assert set(verifier.verify(token).scopes) == scopes


def test_a_scope_claim_of_the_wrong_type_is_invalid(rsa_key: KeyPair) -> None:
    verifier = TokenVerifier({ISS: issuer((entry(rsa_key),), {"RS256"}, scope_claim="scp")})
    token = jwt.encode(claims(scp={"x": 1}), rsa_key.private, algorithm="RS256",
                       headers={"kid": rsa_key.kid})
    with pytest.raises(ClaimInvalid):
        verifier.verify(token)


# -- route issuers -----------------------------------------------------------------------


def test_a_route_accepting_other_issuers_refuses_before_any_crypto(
    rsa_key: KeyPair, second_issuer_key: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    verifier = TokenVerifier({ISS: issuer((entry(rsa_key),), {"RS256"}),
                              ISS2: issuer((entry(second_issuer_key),), {"RS256"}, name=ISS2)})
    token = jwt.encode(claims(), rsa_key.private, algorithm="RS256",
                       headers={"kid": rsa_key.kid})
    assert verifier.verify(token, frozenset({ISS, ISS2})).issuer == ISS  # now cached
    with pytest.raises(IssuerUnknown) as info:
        verifier.verify(token, frozenset({ISS2}))  # the cached principal is refused too
    assert "not accepted on this route" in info.value.detail
    calls = []
    monkeypatch.setattr(jwt, "decode", lambda *a, **k: calls.append(1))
    fresh = jwt.encode(claims(jti="j2"), rsa_key.private, algorithm="RS256",
                       headers={"kid": rsa_key.kid})
    with pytest.raises(IssuerUnknown):
        verifier.verify(fresh, frozenset({ISS2}))
    assert calls == []


# -- remote keys -------------------------------------------------------------------------


class Source:
    def __init__(self, *pairs: KeyPair) -> None:
        self.pairs = list(pairs)
        self.calls = 0

    async def __call__(self) -> Fetched:
        self.calls += 1
        return Fetched({"keys": [p.jwk() for p in self.pairs]}, None, "https://idp.unit/jwks")


def remote(source: Source, cooldown: float = 10.0) -> JwksCache:
    settings = JwksSettings(ISS, "https://idp.unit/jwks", frozenset({"RS256"}), FetchLimits(),
                            cooldown=cooldown)
    return JwksCache(settings, source, GatewayMetrics())


async def test_remote_keys_unknown_kid_and_generation(rsa_key: KeyPair) -> None:
    source = Source(rsa_key)
    cache = remote(source)
    verifier = TokenVerifier({ISS: issuer((), {"RS256"}, remote=cache)})
    token = jwt.encode(claims(), rsa_key.private, algorithm="RS256",
                       headers={"kid": rsa_key.kid})
    with pytest.raises(KeysUnavailable):
        verifier.verify(token)  # no keys, and verify() never fetches
    await cache.refresh()  # what start-up does in the background
    assert (await verifier.authenticate(token)).subject == "alice"
    assert source.calls == 1
    new = make_rsa("rotated")
    source.pairs = [new]
    new_token = jwt.encode(claims(jti="n"), new.private, algorithm="RS256",
                           headers={"kid": new.kid})
    assert (await verifier.authenticate(new_token)).token_id == "n"
    assert source.calls == 2
    with pytest.raises(KeyNotFound):  # cached, but the key set changed: verified again
        await verifier.authenticate(token)
    forged = jwt.encode(claims(), new.private, algorithm="RS256", headers={"kid": "forged"})
    with pytest.raises(KeyNotFound):
        await verifier.authenticate(forged)
    assert source.calls == 2  # the cooldown held


async def test_without_keys_a_request_fetches_them_once_per_cooldown(rsa_key: KeyPair) -> None:
    source = Source(rsa_key)
    source_down = Source()  # answers a JWKS without usable keys
    cache = remote(source_down)
    verifier = TokenVerifier({ISS: issuer((), {"RS256"}, remote=cache)})
    token = jwt.encode(claims(), rsa_key.private, algorithm="RS256",
                       headers={"kid": rsa_key.kid})
    with pytest.raises(KeysUnavailable):
        await verifier.authenticate(token)
    with pytest.raises(KeysUnavailable):
        await verifier.authenticate(token)
    assert source_down.calls == 1  # the second request met the cooldown
    cache = remote(source)
    verifier = TokenVerifier({ISS: issuer((), {"RS256"}, remote=cache)})
    assert (await verifier.authenticate(token)).subject == "alice"
    assert source.calls == 1


async def test_a_token_without_kid_never_triggers_a_refetch(rsa_key: KeyPair) -> None:
    source = Source(rsa_key, make_rsa("second"))
    cache = remote(source, cooldown=0)
    await cache.refresh()
    verifier = TokenVerifier({ISS: issuer((), {"RS256"}, remote=cache)})
    with pytest.raises(KeyNotFound):
        await verifier.authenticate(jwt.encode(claims(), rsa_key.private, algorithm="RS256"))
    assert source.calls == 1


# -- introspection answers ---------------------------------------------------------------


class FakeIntrospector:
    def __init__(self, answer: Mapping[str, Any] | Exception | None) -> None:
        self.answer = answer

    async def introspect(self, token: str) -> Mapping[str, Any] | None:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def introspecting(answer: Any, **options: Any) -> TokenVerifier:
    found = issuer((), {"RS256"}, introspector=FakeIntrospector(answer), **options)
    return TokenVerifier({ISS: found})


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        pytest.param(None, TokenInactive, id="inactive"),
        pytest.param({"active": True, "iss": ISS2}, IssuerUnknown, id="another issuer"),
        pytest.param({"active": True, "aud": "other"}, AudienceMismatch, id="another audience"),
        pytest.param({"active": True, "exp": NOW - 100}, TokenExpired, id="expired"),
        pytest.param({"active": True, "exp": "soon"}, ClaimInvalid, id="exp a string"),
        pytest.param(IntrospectionUnavailable("down"), IntrospectionUnavailable, id="down"),
    ],
)
async def test_introspection_answers_are_checked(answer: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        await introspecting(answer).authenticate("opaque-token")


async def test_an_active_answer_becomes_a_principal() -> None:
    verifier = introspecting(
        {"active": True, "sub": "svc", "client_id": "c", "scope": "a b", "aud": [AUD, "x"],
         "exp": time.time() + 3600, "tenant": "acme"},
        required_claims=(parse_path("tenant"),))
    principal = await verifier.authenticate("opaque-token")
    assert (principal.issuer, principal.subject, principal.client_id) == (ISS, "svc", "c")
    assert principal.scopes == frozenset({"a", "b"})
    assert principal.claims["tenant"] == "acme"
    with pytest.raises(IntrospectionUnavailable):
        verifier.verify("opaque-token")  # the synchronous path never does I/O


async def test_opaque_tokens_without_introspection_are_malformed(rsa_key: KeyPair) -> None:
    verifier = TokenVerifier({ISS: issuer((entry(rsa_key),), {"RS256"})})
    with pytest.raises(TokenMalformed):
        await verifier.authenticate("opaque-token")


# -- the hot path: no suspension when the key is at hand ----------------------------------


async def test_authenticate_never_suspends_when_the_key_is_at_hand(rsa_key: KeyPair) -> None:
    source = Source(rsa_key)
    cache = remote(source)
    await cache.refresh()
    verifiers = [TokenVerifier({ISS: issuer((entry(rsa_key),), {"RS256"})}),
                 TokenVerifier({ISS: issuer((), {"RS256"}, remote=cache)})]
    token = jwt.encode(claims(), rsa_key.private, algorithm="RS256",
                       headers={"kid": rsa_key.kid})
    for verifier in verifiers:
        for _ in range(2):  # verified, then from the verified-token cache
            coroutine = verifier.authenticate(token)
            with pytest.raises(StopIteration) as done:
                coroutine.send(None)  # runs to the end without awaiting anything
            assert done.value.value.subject == "alice"
    assert source.calls == 1
