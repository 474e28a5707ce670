"""TokenVerifier with an injected clock: claims, times, algorithms, keys, cache, error mapping."""

from __future__ import annotations

import base64
import hashlib
import hmac
import inspect
import json
from collections.abc import Callable
from typing import Any

import jwt
import jwt.exceptions
import pytest

from gateway.auth.issuer import Issuer
from gateway.auth.jws import translate_jwt_error
from gateway.auth.keys import HMAC_ALGORITHMS_SET, KeyEntry, jwk_entry, parse_key_file
from gateway.auth.keyset import KeySet
from gateway.auth.verify import TokenVerifier
from gateway.errors import (
    AlgorithmNotAllowed,
    AudienceMismatch,
    ClaimInvalid,
    ClaimMissing,
    InvalidToken,
    IssuerUnknown,
    KeyNotFound,
    SignatureInvalid,
    TokenExpired,
    TokenMalformed,
    TokenNotYetValid,
    TokenTooLarge,
)
from tests.fixtures.keys import KeyPair

ISS = "https://idp.unit/"
AUD = "https://api.unit"
NOW = 1_700_000_000
LEEWAY = 30.0
HS_SECRET = b"unit-test-hmac-secret-long-enough-for-hs384-and-hs512-too!!"


class Clock:
    """A settable clock for the verifier; never sleeps."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISS, "aud": AUD, "sub": "alice", "client_id": "web-app",
        "scope": "orders:read orders:write", "iat": NOW, "nbf": NOW, "exp": NOW + 300,
        "jti": "jti-1",
    }
    for key, value in overrides.items():
        if value is None:
            base.pop(key, None)
        else:
            base[key] = value
    return base


def sign(key: KeyPair, payload: dict[str, Any], *, alg: str | None = None,
         headers: dict[str, Any] | None = None) -> str:
    return jwt.encode(payload, key.private, algorithm=alg or key.alg,
                      headers={"kid": key.kid, **(headers or {})})


def sign_raw(key: KeyPair, payload_json: str, *, headers: dict[str, Any] | None = None) -> str:
    """Sign a payload given as JSON text (for values json.dumps would not write)."""
    return jwt.api_jws.encode(payload_json.encode(), key.private, algorithm=key.alg,
                              headers={"kid": key.kid, **(headers or {})})


def unsigned(header: dict[str, Any], payload: dict[str, Any], signature: str = "") -> str:
    return ".".join([b64(json.dumps(header).encode()), b64(json.dumps(payload).encode()),
                     signature])


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def issuer(rsa_key: KeyPair, ec_key: KeyPair) -> Issuer:
    entries = [jwk_entry(rsa_key.jwk(), "idp.jwks.json"), jwk_entry(ec_key.jwk(), "idp.jwks.json")]
    return Issuer.build(ISS, (AUD, "https://api2.unit"), frozenset({"RS256", "ES256"}), LEEWAY,
                        tuple(e for e in entries if e is not None))


@pytest.fixture
def make_verifier(issuer: Issuer, clock: Clock) -> Callable[..., TokenVerifier]:
    def factory(*issuers: Issuer, **kwargs: Any) -> TokenVerifier:
        chosen = issuers or (issuer,)
        return TokenVerifier({i.issuer: i for i in chosen}, clock=clock, **kwargs)

    return factory


@pytest.fixture
def verifier(make_verifier: Callable[..., TokenVerifier]) -> TokenVerifier:
    return make_verifier()


def refused(verifier: TokenVerifier, token: str) -> InvalidToken:
    with pytest.raises(InvalidToken) as exc_info:
        verifier.verify(token)
    return exc_info.value


# -- the principal -------------------------------------------------------------------------


def test_good_token_gives_the_principal(verifier: TokenVerifier, rsa_key: KeyPair) -> None:
    payload = claims(custom={"tenant": "t1"})
    principal = verifier.verify(sign(rsa_key, payload))
    assert principal.issuer == ISS
    assert principal.subject == "alice"
    assert principal.client_id == "web-app"
    assert principal.scopes == frozenset({"orders:read", "orders:write"})
    assert principal.token_id == "jti-1"
    assert principal.issued_at == NOW
    assert principal.not_before == NOW
    assert principal.expires_at == NOW + 300
    assert dict(principal.claims) == payload
    with pytest.raises(TypeError):
        principal.claims["sub"] = "mallory"  # type: ignore[index]


def test_es256_token_with_ec_kid_is_accepted(verifier: TokenVerifier, ec_key: KeyPair) -> None:
    assert verifier.verify(sign(ec_key, claims())).subject == "alice"


@pytest.mark.parametrize(
    ("overrides", "client_id"),
    [
        pytest.param({"client_id": "cid", "azp": "party"}, "cid", id="client_id wins over azp"),
        pytest.param({"client_id": None, "azp": "party"}, "party", id="azp when no client_id"),
        pytest.param({"client_id": None}, None, id="neither client_id nor azp"),
    ],
)
def test_client_id_comes_from_client_id_else_azp(
    verifier: TokenVerifier, rsa_key: KeyPair, overrides: dict[str, Any], client_id: str | None
) -> None:
    assert verifier.verify(sign(rsa_key, claims(**overrides))).client_id == client_id


@pytest.mark.parametrize(
    ("overrides", "scopes"),
    [
        pytest.param({"scope": "a  b c"}, {"a", "b", "c"}, id="scope string split on spaces"),
        pytest.param({"scope": None, "scp": ["x", "y"]}, {"x", "y"}, id="scp list without scope"),
        pytest.param({"scope": "a", "scp": ["x"]}, {"a"}, id="scope string wins over scp"),
        pytest.param({"scope": None, "scp": "p q"}, {"p", "q"}, id="scp given as a string"),
        pytest.param({"scope": ""}, set(), id="empty scope string"),
        pytest.param({"scope": None}, set(), id="no scope claim at all"),
        pytest.param({"scope": None, "scp": ["x", 1]}, set(), id="scp list with a non-string"),
    ],
)
def test_scopes_come_from_scope_else_scp(
    verifier: TokenVerifier, rsa_key: KeyPair, overrides: dict[str, Any], scopes: set[str]
) -> None:
    assert verifier.verify(sign(rsa_key, claims(**overrides))).scopes == frozenset(scopes)


@pytest.mark.parametrize(
    "aud",
    [
        pytest.param(AUD, id="aud string equal to a configured audience"),
        pytest.param("https://api2.unit", id="aud equal to the second configured audience"),
        pytest.param(["https://other", AUD], id="aud list containing a configured audience"),
    ],
)
def test_audience_accepted(verifier: TokenVerifier, rsa_key: KeyPair, aud: Any) -> None:
    assert verifier.verify(sign(rsa_key, claims(aud=aud))).subject == "alice"


@pytest.mark.parametrize(
    ("aud", "reason"),
    [
        pytest.param("https://other", "audience", id="aud string of another API"),
        pytest.param(["https://other", "https://x"], "audience",
                     id="aud list without a configured audience"),
        pytest.param(AUD + "/", "audience", id="aud differing by a trailing slash"),
        pytest.param(AUD.upper(), "audience", id="aud differing in case"),
        pytest.param(42, "audience", id="aud that is a number"),
        pytest.param([], "missing_claim", id="empty aud list counts as no aud"),
    ],
)
def test_audience_refused(verifier: TokenVerifier, rsa_key: KeyPair, aud: Any, reason: str) -> None:
    err = refused(verifier, sign(rsa_key, claims(aud=aud)))
    assert isinstance(err, AudienceMismatch if reason == "audience" else ClaimMissing)
    assert err.reason == reason


# -- time claims ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "ok"),
    [
        pytest.param(NOW + 300 - 1, True, id="one second before exp"),
        pytest.param(NOW + 300, True, id="at exp, inside the leeway"),
        pytest.param(NOW + 300 + LEEWAY - 0.001, True, id="just inside exp plus leeway"),
        pytest.param(NOW + 300 + LEEWAY, False, id="at exp plus leeway it is expired"),
        pytest.param(NOW + 3600, False, id="an hour after exp"),
    ],
)
def test_exp_with_leeway(
    verifier: TokenVerifier, rsa_key: KeyPair, clock: Clock, now: float, ok: bool
) -> None:
    clock.now = now
    token = sign(rsa_key, claims())
    if ok:
        assert verifier.verify(token).expires_at == NOW + 300
    else:
        err = refused(verifier, token)
        assert isinstance(err, TokenExpired)
        assert err.reason == "expired"


def test_exp_without_leeway_is_expired_at_exp(
    make_verifier: Callable[..., TokenVerifier], issuer: Issuer, rsa_key: KeyPair, clock: Clock
) -> None:
    strict = Issuer.build(ISS, issuer.audiences, issuer.algorithms, 0.0, issuer.keys)
    verifier = make_verifier(strict)
    clock.now = NOW + 299.999
    assert verifier.verify(sign(rsa_key, claims(jti="a"))).subject == "alice"
    clock.now = NOW + 300
    assert isinstance(refused(verifier, sign(rsa_key, claims(jti="b"))), TokenExpired)


@pytest.mark.parametrize(
    ("claim", "now", "ok"),
    [
        pytest.param("nbf", NOW - LEEWAY, True, id="nbf exactly leeway ahead is accepted"),
        pytest.param("nbf", NOW - LEEWAY - 0.001, False, id="nbf beyond the leeway is refused"),
        pytest.param("iat", NOW - LEEWAY, True, id="iat exactly leeway ahead is accepted"),
        pytest.param("iat", NOW - LEEWAY - 0.001, False, id="iat beyond the leeway is refused"),
    ],
)
def test_nbf_and_iat_with_leeway(
    verifier: TokenVerifier, rsa_key: KeyPair, clock: Clock, claim: str, now: float, ok: bool
) -> None:
    clock.now = now
    other = "iat" if claim == "nbf" else "nbf"
    token = sign(rsa_key, claims(**{other: None}))  # only the claim under test is in the future
    if ok:
        assert verifier.verify(token).subject == "alice"
    else:
        err = refused(verifier, token)
        assert isinstance(err, TokenNotYetValid)
        assert err.reason == "not_yet_valid"


def test_nbf_and_iat_are_optional(verifier: TokenVerifier, rsa_key: KeyPair) -> None:
    principal = verifier.verify(sign(rsa_key, claims(nbf=None, iat=None)))
    assert principal.not_before is None
    assert principal.issued_at is None


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
@pytest.mark.parametrize(
    "value_json",
    [
        pytest.param('"1700000100"', id="numeric string"),
        pytest.param("true", id="boolean true"),
        pytest.param("false", id="boolean false"),
        pytest.param("[1700000100]", id="list"),
        pytest.param('{"t": 1}', id="object"),
        pytest.param("NaN", id="NaN which JSON does not allow"),
        pytest.param("Infinity", id="Infinity which JSON does not allow"),
        pytest.param("-Infinity", id="minus Infinity"),
        pytest.param("1e400", id="float literal overflowing to infinity"),
        pytest.param("1" + "0" * 400, id="integer of 401 digits"),
    ],
)
def test_time_claims_must_be_finite_json_numbers(
    verifier: TokenVerifier, rsa_key: KeyPair, claim: str, value_json: str
) -> None:
    payload = claims(**{claim: None})
    text = json.dumps(payload)[:-1] + f', "{claim}": {value_json}}}'
    err = refused(verifier, sign_raw(rsa_key, text))
    assert isinstance(err, ClaimInvalid)
    assert err.reason == "invalid_claim"


def test_float_time_claims_are_accepted(verifier: TokenVerifier, rsa_key: KeyPair) -> None:
    principal = verifier.verify(sign(rsa_key, claims(exp=NOW + 10.5, iat=NOW - 0.25)))
    assert principal.expires_at == NOW + 10.5
    assert principal.issued_at == NOW - 0.25


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        pytest.param("sub", 42, id="sub that is a number"),
        pytest.param("jti", ["a"], id="jti that is a list"),
        pytest.param("client_id", 7, id="client_id that is a number"),
        pytest.param("azp", {"x": 1}, id="azp that is an object"),
    ],
)
def test_string_claims_of_another_type_are_invalid(
    verifier: TokenVerifier, rsa_key: KeyPair, claim: str, value: Any
) -> None:
    overrides: dict[str, Any] = {claim: value}
    if claim == "azp":
        overrides["client_id"] = None
    err = refused(verifier, sign(rsa_key, claims(**overrides)))
    assert isinstance(err, ClaimInvalid)
    assert err.reason == "invalid_claim"


@pytest.mark.parametrize(
    "claim",
    [pytest.param("exp", id="missing exp"), pytest.param("aud", id="missing aud"),
     pytest.param("iss", id="missing iss")],
)
def test_required_claims(verifier: TokenVerifier, rsa_key: KeyPair, claim: str) -> None:
    err = refused(verifier, sign(rsa_key, claims(**{claim: None})))
    assert isinstance(err, ClaimMissing)
    assert err.reason == "missing_claim"


def test_iss_that_is_not_a_string_is_malformed(verifier: TokenVerifier, rsa_key: KeyPair) -> None:
    text = json.dumps(claims(iss=None))[:-1] + f', "iss": ["{ISS}"]}}'
    err = refused(verifier, sign_raw(rsa_key, text))
    assert isinstance(err, TokenMalformed)


# -- issuer, algorithm, key ----------------------------------------------------------------


def test_unknown_issuer_costs_no_key_lookup_or_signature_check(
    verifier: TokenVerifier, rsa_key: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def spy_select(self: KeySet, kid: object, alg: str, issuer: str) -> KeyEntry:
        calls.append("select")
        raise AssertionError("no key lookup for an unknown issuer")

    def spy_decode(*args: Any, **kwargs: Any) -> Any:
        calls.append("decode")
        raise AssertionError("no signature check for an unknown issuer")

    monkeypatch.setattr(KeySet, "select", spy_select)
    monkeypatch.setattr(jwt, "decode", spy_decode)
    token = sign(rsa_key, claims(iss="https://evil.test/"), headers={"kid": "unknown"})
    err = refused(verifier, token)
    assert isinstance(err, IssuerUnknown)
    assert err.reason == "issuer"
    assert calls == []


def test_issuer_match_is_exact(verifier: TokenVerifier, rsa_key: KeyPair) -> None:
    for iss in (ISS.rstrip("/"), ISS.upper(), ISS + " "):
        assert isinstance(refused(verifier, sign(rsa_key, claims(iss=iss))), IssuerUnknown)


@pytest.mark.parametrize(
    "alg",
    [
        pytest.param("RS384", id="RS384 not in the allowlist"),
        pytest.param("PS256", id="PS256 not in the allowlist"),
        pytest.param("RS512", id="RS512 not in the allowlist"),
    ],
)
def test_algorithm_outside_the_allowlist(
    make_verifier: Callable[..., TokenVerifier], rsa_key: KeyPair, alg: str
) -> None:
    entry = parse_key_file(rsa_key.public_pem(), "idp.pem")[0]  # the key itself fits every RS/PS
    only_rs256 = Issuer.build(ISS, (AUD,), frozenset({"RS256"}), LEEWAY, (entry,))
    verifier = make_verifier(only_rs256)
    err = refused(verifier, sign(rsa_key, claims(), alg=alg))
    assert isinstance(err, AlgorithmNotAllowed)
    assert err.reason == "algorithm"
    assert verifier.verify(sign(rsa_key, claims())).subject == "alice"


@pytest.mark.parametrize(
    "alg",
    [pytest.param("none", id="alg none"), pytest.param("None", id="alg None"),
     pytest.param("NONE", id="alg NONE"), pytest.param(None, id="no alg header")],
)
def test_unsecured_tokens_are_refused(verifier: TokenVerifier, rsa_key: KeyPair, alg: Any) -> None:
    header = {"kid": rsa_key.kid, "typ": "JWT"} if alg is None else {"alg": alg, "kid": rsa_key.kid}
    err = refused(verifier, unsigned(header, claims()))
    assert isinstance(err, AlgorithmNotAllowed)


def test_hs256_signed_with_the_rsa_public_key_is_refused(
    make_verifier: Callable[..., TokenVerifier], rsa_key: KeyPair, issuer: Issuer
) -> None:
    # Even when HS256 sneaks into the allowlist, an RSA key never verifies HMAC.
    loose = Issuer.build(ISS, (AUD,), frozenset({"RS256", "HS256"}), LEEWAY, issuer.keys)
    header = {"alg": "HS256", "kid": rsa_key.kid, "typ": "JWT"}
    signing_input = ".".join([b64(json.dumps(header).encode()), b64(json.dumps(claims()).encode())])
    mac = hmac.new(rsa_key.public_pem(), signing_input.encode(), hashlib.sha256).digest()
    err = refused(make_verifier(loose), f"{signing_input}.{b64(mac)}")
    assert isinstance(err, AlgorithmNotAllowed)


def test_es256_header_with_an_rsa_kid_is_refused(
    verifier: TokenVerifier, ec_key: KeyPair, rsa_key: KeyPair
) -> None:
    token = sign(ec_key, claims(), headers={"kid": rsa_key.kid})
    err = refused(verifier, token)
    assert isinstance(err, AlgorithmNotAllowed)
    assert err.reason == "algorithm"


def test_rs256_header_with_an_ec_kid_is_refused(
    verifier: TokenVerifier, ec_key: KeyPair, rsa_key: KeyPair
) -> None:
    assert isinstance(refused(verifier, sign(rsa_key, claims(), headers={"kid": ec_key.kid})),
                      AlgorithmNotAllowed)


def test_no_kid_uses_the_only_key(
    make_verifier: Callable[..., TokenVerifier], rsa_key: KeyPair
) -> None:
    entry = jwk_entry(rsa_key.jwk(), "one.json")
    assert entry is not None
    verifier = make_verifier(Issuer.build(ISS, (AUD,), frozenset({"RS256"}), LEEWAY, (entry,)))
    token = jwt.encode(claims(), rsa_key.private, algorithm="RS256")  # no kid header
    assert "kid" not in jwt.get_unverified_header(token)
    assert verifier.verify(token).subject == "alice"


def test_no_kid_with_several_keys_is_unknown_key(verifier: TokenVerifier, rsa_key: KeyPair) -> None:
    token = jwt.encode(claims(), rsa_key.private, algorithm="RS256")
    err = refused(verifier, token)
    assert isinstance(err, KeyNotFound)
    assert err.reason == "unknown_key"


@pytest.mark.parametrize(
    "kid",
    [
        pytest.param("nope", id="unknown kid"),
        pytest.param("RSA-1", id="kid differing in case"),
        pytest.param("../../../../etc/passwd", id="kid with a path"),
        pytest.param("", id="empty kid"),
    ],
)
def test_unknown_kid(verifier: TokenVerifier, rsa_key: KeyPair, kid: str) -> None:
    err = refused(verifier, sign(rsa_key, claims(), headers={"kid": kid}))
    assert isinstance(err, KeyNotFound)


def test_kid_that_is_not_a_string_is_malformed(verifier: TokenVerifier, rsa_key: KeyPair) -> None:
    header = {"alg": "RS256", "kid": 1, "typ": "JWT"}
    signing_input = ".".join([b64(json.dumps(header).encode()), b64(json.dumps(claims()).encode())])
    err = refused(verifier, signing_input + "." + b64(b"x" * 256))
    assert isinstance(err, TokenMalformed)


def test_single_pem_key_without_kid_serves_any_kid(
    make_verifier: Callable[..., TokenVerifier], rsa_key: KeyPair
) -> None:
    (entry,) = parse_key_file(rsa_key.public_pem(), "idp.pem")
    verifier = make_verifier(Issuer.build(ISS, (AUD,), frozenset({"RS256"}), LEEWAY, (entry,)))
    assert verifier.verify(sign(rsa_key, claims(), headers={"kid": "whatever"})).subject == "alice"


def test_hmac_issuer(make_verifier: Callable[..., TokenVerifier]) -> None:
    secret_entry = KeyEntry(None, HS_SECRET, HMAC_ALGORITHMS_SET, "secret")
    hs = Issuer.build(ISS, (AUD,), frozenset({"HS256"}), LEEWAY, (secret_entry,))
    verifier = make_verifier(hs)
    assert verifier.verify(jwt.encode(claims(), HS_SECRET, algorithm="HS256")).subject == "alice"
    wrong = jwt.encode(claims(jti="2"), HS_SECRET + b"!", algorithm="HS256")
    assert isinstance(refused(verifier, wrong), SignatureInvalid)
    hs384 = jwt.encode(claims(jti="3"), HS_SECRET, algorithm="HS384")
    assert isinstance(refused(verifier, hs384), AlgorithmNotAllowed)


def test_two_issuers_each_with_their_keys(
    make_verifier: Callable[..., TokenVerifier], issuer: Issuer, rsa_key: KeyPair,
    second_issuer_key: KeyPair,
) -> None:
    entry = jwk_entry(second_issuer_key.jwk(), "idp2.json")
    assert entry is not None
    other = Issuer.build("https://idp2.unit/", (AUD,), frozenset({"RS256"}), LEEWAY, (entry,))
    verifier = make_verifier(issuer, other)
    good2 = sign(second_issuer_key, claims(iss="https://idp2.unit/"))
    assert verifier.verify(good2).issuer == "https://idp2.unit/"
    # idp2's key signing a token that claims to come from the first issuer
    forged = sign(second_issuer_key, claims(), headers={"kid": rsa_key.kid})
    assert isinstance(refused(verifier, forged), SignatureInvalid)
    # the first issuer's key does not verify idp2's tokens (no kid match there)
    cross = sign(rsa_key, claims(iss="https://idp2.unit/"))
    assert isinstance(refused(verifier, cross), KeyNotFound)


# -- signature and shape ------------------------------------------------------------------


def test_signature_of_another_key_with_the_same_kid(
    verifier: TokenVerifier, other_rsa_key: KeyPair
) -> None:
    err = refused(verifier, sign(other_rsa_key, claims()))
    assert isinstance(err, SignatureInvalid)
    assert err.reason == "bad_signature"


def test_tampered_payload(verifier: TokenVerifier, rsa_key: KeyPair) -> None:
    head, _, sig = sign(rsa_key, claims()).split(".")
    body = b64(json.dumps(claims(scope="admin")).encode())
    assert isinstance(refused(verifier, f"{head}.{body}.{sig}"), SignatureInvalid)


def test_stripped_signature(verifier: TokenVerifier, rsa_key: KeyPair) -> None:
    head, body, _ = sign(rsa_key, claims()).split(".")
    assert isinstance(refused(verifier, f"{head}.{body}."), SignatureInvalid)


def test_unknown_critical_header_is_malformed(verifier: TokenVerifier, rsa_key: KeyPair) -> None:
    token = sign(rsa_key, claims(), headers={"crit": ["exp-policy"], "exp-policy": 1})
    assert isinstance(refused(verifier, token), TokenMalformed)


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda h, p, s: f"{h}.{p}", id="two segments"),
        pytest.param(lambda h, p, s: f"{h}.{p}.{s}.{s}", id="four segments"),
        pytest.param(lambda h, p, s: "", id="empty token"),
        pytest.param(lambda h, p, s: f".{p}.{s}", id="empty header segment"),
        pytest.param(lambda h, p, s: f"{h}..{s}", id="empty payload segment"),
        pytest.param(lambda h, p, s: f"{h}=.{p}.{s}", id="padding on the header"),
        pytest.param(lambda h, p, s: f"{h}.{p}=.{s}", id="padding on the payload"),
        pytest.param(lambda h, p, s: f"{h}.{p}.{s}==", id="padding on the signature"),
        pytest.param(lambda h, p, s: f"{h}.{p}.{s[:-4]}+/{s[-2:]}", id="plus and slash in sig"),
        pytest.param(lambda h, p, s: f"{h}.!{p}.{s}", id="non-base64url character"),
        pytest.param(lambda h, p, s: f"{h}.{b64(b'not json')}.{s}", id="payload not JSON"),
        pytest.param(lambda h, p, s: f"{b64(b'[1,2]')}.{p}.{s}", id="header a JSON array"),
        pytest.param(lambda h, p, s: f"{h}.{b64(b'42')}.{s}", id="payload a JSON number"),
        pytest.param(lambda h, p, s: f"{h}.{b64(bytes([0xff, 0xfe]))}.{s}", id="payload not UTF-8"),
        pytest.param(lambda h, p, s: f"{h}.{p}é.{s}", id="non-ASCII character"),
        pytest.param(lambda h, p, s: f"{h}.{p[:-1]}.{s}", id="payload cut by one character"),
    ],
)
def test_malformed_tokens(
    verifier: TokenVerifier, rsa_key: KeyPair, mangle: Callable[[str, str, str], str]
) -> None:
    h, p, s = sign(rsa_key, claims()).split(".")
    err = refused(verifier, mangle(h, p, s))
    assert isinstance(err, TokenMalformed)
    assert err.reason == "malformed"


def test_size_limit_is_checked_before_any_crypto(
    make_verifier: Callable[..., TokenVerifier], rsa_key: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = sign(rsa_key, claims())
    at_limit = make_verifier(max_token_bytes=len(token))
    assert at_limit.verify(token).subject == "alice"
    below = make_verifier(max_token_bytes=len(token) - 1)
    monkeypatch.setattr(jwt, "decode", lambda *a, **k: pytest.fail("crypto before size check"))
    err = refused(below, token)
    assert isinstance(err, TokenTooLarge)
    assert err.reason == "oversized"
    assert token not in err.detail


# -- the verified-token cache -------------------------------------------------------------


def test_second_verify_returns_the_cached_principal(
    verifier: TokenVerifier, rsa_key: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = sign(rsa_key, claims())
    first = verifier.verify(token)
    monkeypatch.setattr(jwt, "decode", lambda *a, **k: pytest.fail("cache hit re-verified"))
    assert verifier.verify(token) is first


def test_cached_token_is_refused_once_the_clock_passes_exp_plus_leeway(
    verifier: TokenVerifier, rsa_key: KeyPair, clock: Clock
) -> None:
    token = sign(rsa_key, claims())
    first = verifier.verify(token)
    clock.now = NOW + 300 + LEEWAY - 0.001
    assert verifier.verify(token) is first
    clock.now = NOW + 300 + LEEWAY
    assert isinstance(refused(verifier, token), TokenExpired)
    assert isinstance(refused(verifier, token), TokenExpired)  # and stays refused
    clock.now = NOW  # even if the clock steps back, it is verified afresh
    again = verifier.verify(token)
    assert again == first
    assert again is not first


def test_cache_is_bounded_and_least_recently_used_goes_first(
    make_verifier: Callable[..., TokenVerifier], rsa_key: KeyPair
) -> None:
    verifier = make_verifier(cache_size=2)
    t1, t2, t3 = (sign(rsa_key, claims(jti=f"t{i}")) for i in (1, 2, 3))
    p1, p2 = verifier.verify(t1), verifier.verify(t2)
    assert verifier.verify(t1) is p1   # t1 is now the most recently used
    verifier.verify(t3)                # evicts t2
    assert verifier.verify(t1) is p1
    p2_again = verifier.verify(t2)
    assert p2_again == p2
    assert p2_again is not p2


def test_cache_size_zero_disables_the_cache(
    make_verifier: Callable[..., TokenVerifier], rsa_key: KeyPair
) -> None:
    verifier = make_verifier(cache_size=0)
    token = sign(rsa_key, claims())
    assert verifier.verify(token) is not verifier.verify(token)


def test_refused_tokens_are_not_cached(
    verifier: TokenVerifier, rsa_key: KeyPair, clock: Clock
) -> None:
    token = sign(rsa_key, claims(nbf=NOW + 100))
    assert isinstance(refused(verifier, token), TokenNotYetValid)
    clock.now = NOW + 100
    assert verifier.verify(token).not_before == NOW + 100


# -- PyJWT errors → ours ------------------------------------------------------------------

JWT_ERROR_REASONS: dict[str, str] = {
    "PyJWTError": "malformed",
    "InvalidTokenError": "malformed",
    "DecodeError": "malformed",
    "InvalidSignatureError": "bad_signature",
    "ExpiredSignatureError": "expired",
    "InvalidAudienceError": "audience",
    "InvalidIssuerError": "issuer",
    "InvalidIssuedAtError": "invalid_claim",
    "ImmatureSignatureError": "not_yet_valid",
    "InvalidKeyError": "algorithm",
    "InvalidAlgorithmError": "algorithm",
    "MissingRequiredClaimError": "missing_claim",
    "PyJWKError": "malformed",
    "MissingCryptographyError": "malformed",
    "PyJWKSetError": "malformed",
    "PyJWKClientError": "malformed",
    "PyJWKClientConnectionError": "malformed",
    "InvalidSubjectError": "invalid_claim",
    "InvalidJTIError": "invalid_claim",
}


def _jwt_error_classes() -> dict[str, type[Exception]]:
    return {
        name: cls for name, cls in vars(jwt.exceptions).items()
        if inspect.isclass(cls) and issubclass(cls, jwt.exceptions.PyJWTError)
    }


def test_every_pyjwt_error_class_has_an_expected_reason() -> None:
    assert set(_jwt_error_classes()) == set(JWT_ERROR_REASONS)


@pytest.mark.parametrize(
    ("name", "reason"),
    [pytest.param(n, r, id=f"{n} maps to {r}") for n, r in JWT_ERROR_REASONS.items()],
)
def test_pyjwt_error_maps_to_reason(name: str, reason: str) -> None:
    cls = _jwt_error_classes()[name]
    exc = cls("aud") if cls is jwt.exceptions.MissingRequiredClaimError else cls("boom")
    ours = translate_jwt_error(exc)  # type: ignore[arg-type]
    assert isinstance(ours, InvalidToken)
    assert ours.reason == reason
    assert ours.status == 401
    assert name in ours.detail
