"""Hostile tokens: every catalogue entry refused with the right reason and never forwarded.

The last part is a property test on ``TokenVerifier`` itself: no byte-level mutation of a
valid token validates, except ones that leave the signed bytes and the signature unchanged.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.auth.issuer import Issuer
from gateway.auth.keys import jwk_entry
from gateway.auth.verify import TokenVerifier
from gateway.errors import (
    AlgorithmNotAllowed,
    AudienceMismatch,
    ClaimInvalid,
    ClaimMissing,
    GatewayError,
    InvalidRequest,
    InvalidToken,
    IssuerUnknown,
    KeyNotFound,
    SignatureInvalid,
    TokenExpired,
    TokenMalformed,
    TokenNotYetValid,
    TokenTooLarge,
)
from tests.fixtures.gateway import RunningGateway
from tests.fixtures.keys import KeyPair, make_rsa
from tests.fixtures.tokens import (
    AUDIENCE,
    ISSUER,
    b64,
    claims,
    self_signed_der,
    sign,
    unsigned,
)
from tests.fixtures.upstream import Upstream

pytestmark = pytest.mark.integration

AUTH_METRIC = "gateway_auth_decisions_total"


#: The expected answer for every hostile catalogue entry: (HTTP status, reason, error class).
EXPECTED: dict[str, tuple[int, str, type[GatewayError]]] = {
    "expired": (401, "expired", TokenExpired),
    "not_yet_valid": (401, "not_yet_valid", TokenNotYetValid),
    "future_iat": (401, "not_yet_valid", TokenNotYetValid),
    "wrong_aud": (401, "audience", AudienceMismatch),
    "wrong_iss": (401, "issuer", IssuerUnknown),
    "no_exp": (401, "missing_claim", ClaimMissing),
    "exp_string": (401, "invalid_claim", ClaimInvalid),
    "no_aud": (401, "missing_claim", ClaimMissing),
    "unknown_kid": (401, "unknown_key", KeyNotFound),
    "kid_traversal": (401, "unknown_key", KeyNotFound),
    "kid_sql": (401, "unknown_key", KeyNotFound),
    "alg_none": (401, "algorithm", AlgorithmNotAllowed),
    "alg_None": (401, "algorithm", AlgorithmNotAllowed),
    "alg_NONE": (401, "algorithm", AlgorithmNotAllowed),
    "hs256_with_rsa_pub": (401, "algorithm", AlgorithmNotAllowed),
    # ends with "." — a b64token character, so the header is well-formed: a 401, not a 400
    "signature_stripped": (401, "bad_signature", SignatureInvalid),
    "signature_of_other_key_same_kid": (401, "bad_signature", SignatureInvalid),
    "other_issuer_key": (401, "bad_signature", SignatureInvalid),
    "jku_attacker": (401, "bad_signature", SignatureInvalid),
    "embedded_jwk": (401, "bad_signature", SignatureInvalid),
    "unknown_crit": (401, "malformed", TokenMalformed),
    "two_segments": (401, "malformed", TokenMalformed),
    "four_segments": (401, "malformed", TokenMalformed),
    # "!" is not a b64token character: the Authorization header itself is malformed
    "bad_base64": (400, "invalid_request", InvalidRequest),
    "payload_not_json": (401, "malformed", TokenMalformed),
    "tampered_payload": (401, "bad_signature", SignatureInvalid),
    "oversized": (401, "oversized", TokenTooLarge),
    # additions of the key-management work
    "alg_nOnE": (401, "algorithm", AlgorithmNotAllowed),
    "alg_none_signed_tail": (401, "algorithm", AlgorithmNotAllowed),
    "x5u_attacker": (401, "unknown_key", KeyNotFound),
    "x5c_attacker_same_kid": (401, "bad_signature", SignatureInvalid),
    "x5c_attacker_own_kid": (401, "unknown_key", KeyNotFound),
    "embedded_jwk_attacker_kid": (401, "unknown_key", KeyNotFound),
    "kid_empty": (401, "unknown_key", KeyNotFound),
    "kid_null_byte": (401, "unknown_key", KeyNotFound),
    "kid_url": (401, "unknown_key", KeyNotFound),
    "kid_huge": (401, "unknown_key", KeyNotFound),
    "kid_object": (401, "malformed", TokenMalformed),
    # raw JSON in the payload segment is not a b64token: the header itself is malformed
    "unencoded_payload_b64_false": (400, "invalid_request", InvalidRequest),
    "payload_is_a_jwt": (401, "malformed", TokenMalformed),
    "iat_string": (401, "invalid_claim", ClaimInvalid),
    "nbf_string": (401, "invalid_claim", ClaimInvalid),
    "aud_list_of_others": (401, "audience", AudienceMismatch),
    "iss_list": (401, "malformed", TokenMalformed),
    "expired_beyond_leeway_by_one_second": (401, "expired", TokenExpired),
}



# -- a trap for jku / x5u: any fetch from the gateway is a failure ----------------------


@dataclass
class Trap:
    url: str
    jwks: dict[str, Any]  # served to whoever asks: it would make the attacker's token valid
    hits: list[str] = field(default_factory=list)


TRAP = web.AppKey("trap", Trap)


async def _trap_handler(request: web.Request) -> web.Response:
    trap = request.app[TRAP]
    trap.hits.append(request.raw_path)
    return web.json_response(trap.jwks)


@pytest.fixture(scope="module")
def attacker_key() -> KeyPair:
    return make_rsa("attacker-1")


@pytest.fixture
async def trap(attacker_key: KeyPair) -> AsyncIterator[Trap]:
    app = web.Application()
    state = Trap(url="", jwks={"keys": [attacker_key.jwk()]})
    app[TRAP] = state
    app.router.add_route("*", "/{tail:.*}", _trap_handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield state
    finally:
        await runner.cleanup()


def trap_headers(trap: Trap, key: KeyPair | None = None) -> dict[str, Any]:
    headers: dict[str, Any] = {"jku": trap.url + "/jwks.json", "x5u": trap.url + "/cert.pem"}
    if key is not None:
        headers["jwk"] = key.jwk()
    return headers


async def get(gw: RunningGateway, path: str, token: str) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as s, s.get(
        gw.url + path, headers={"Authorization": "Bearer " + token}
    ) as r:
        return r.status, dict(r.headers), await r.read()


# -- the catalogue through the gateway ---------------------------------------------------


def test_every_hostile_catalogue_entry_has_an_expectation(token_catalogue: dict[str, str]) -> None:
    assert set(token_catalogue) - {"good"} == set(EXPECTED)


async def test_good_catalogue_token_is_forwarded(
    gateway: RunningGateway, upstream: Upstream, token_catalogue: dict[str, str]
) -> None:
    status, _, _ = await get(gateway, "/api/orders/1", token_catalogue["good"])
    assert status == 200
    assert upstream.paths() == ["/api/orders/1"]


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, id=f"{name} is refused with {reason}")
        for name, (_, reason, _) in EXPECTED.items()
    ],
)
async def test_hostile_token_is_refused_and_never_forwarded(
    name: str, gateway: RunningGateway, upstream: Upstream, token_catalogue: dict[str, str],
    trap: Trap, other_rsa_key: KeyPair,
) -> None:
    status, reason, cls = EXPECTED[name]
    token = token_catalogue[name]
    if name in ("jku_attacker", "x5u_attacker"):
        # the catalogue's URLs point at 127.0.0.1:1; point them at a live trap instead
        kid = {"x5u_attacker": "x5u-key"}.get(name, other_rsa_key.kid)
        token = sign(other_rsa_key, claims(), headers={**trap_headers(trap), "kid": kid})
    reply_status, headers, body = await get(gateway, "/api/orders/7", token)
    assert reply_status == status
    assert headers["WWW-Authenticate"] == (
        f'Bearer realm="gateway", error="{cls.error}", error_description="{cls.description}"'
    )
    document = json.loads(body)
    assert document == {"error": cls.error, "error_description": cls.description,
                        "request_id": headers["X-Request-ID"]}
    assert token not in body.decode()
    assert upstream.hits == []
    assert trap.hits == []
    labels = {"route": "orders-read", "result": "deny"}
    assert gateway.sample(AUTH_METRIC, {**labels, "reason": reason}) == 1.0
    assert gateway.sample(AUTH_METRIC, {"route": "orders-read", "result": "allow",
                                        "reason": "ok"}) == 0.0


async def test_jku_x5u_and_embedded_jwk_are_never_followed(
    gateway: RunningGateway, upstream: Upstream, trap: Trap, attacker_key: KeyPair,
) -> None:
    # The attacker's kid exists only in the JWKS the trap serves.
    forged = sign(attacker_key, claims(), headers=trap_headers(trap, attacker_key))
    status, headers, _ = await get(gateway, "/api/orders/1", forged)
    assert status == 401
    assert 'error_description="token signing key is unknown"' in headers["WWW-Authenticate"]
    assert gateway.sample(AUTH_METRIC, {"route": "orders-read", "result": "deny",
                                        "reason": "unknown_key"}) == 1.0
    assert trap.hits == []
    assert upstream.hits == []


async def test_legitimate_token_with_jku_headers_is_verified_with_configured_keys_only(
    gateway: RunningGateway, upstream: Upstream, trap: Trap, rsa_key: KeyPair,
    attacker_key: KeyPair,
) -> None:
    headers = {**trap_headers(trap, attacker_key), "x5c": ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A"]}
    token = sign(rsa_key, claims(), headers=headers)
    status, _, _ = await get(gateway, "/api/orders/1", token)
    assert status == 200
    assert trap.hits == []
    assert upstream.paths() == ["/api/orders/1"]


def _signed_raw(key: KeyPair, payload_json: str) -> str:
    import jwt

    return jwt.api_jws.encode(payload_json.encode(), key.private, algorithm=key.alg,
                              headers={"kid": key.kid})


def _with_raw_claim(name: str, value_json: str) -> str:
    return json.dumps(claims(**{name: None}))[:-1] + f', "{name}": {value_json}}}'


#: Hostile tokens beyond the shared catalogue: name → (token builder, expected reason).
EXTRAS: dict[str, tuple[Any, str]] = {
    # unauthenticated: the time claims are checked before any crypto
    "unsigned exp of 400 digits": (
        lambda k: ".".join([b64(json.dumps({"alg": "RS256", "kid": k.kid}).encode()),
                            b64(_with_raw_claim("exp", "1" + "0" * 400).encode()), "c2ln"]),
        "invalid_claim"),
    "signed exp of 400 digits": (
        lambda k: _signed_raw(k, _with_raw_claim("exp", "1" + "0" * 400)), "invalid_claim"),
    "signed exp NaN": (lambda k: _signed_raw(k, _with_raw_claim("exp", "NaN")), "invalid_claim"),
    "signed exp Infinity": (
        lambda k: _signed_raw(k, _with_raw_claim("exp", "Infinity")), "invalid_claim"),
    "signed nbf -Infinity": (
        lambda k: _signed_raw(k, _with_raw_claim("nbf", "-Infinity")), "invalid_claim"),
    "exp true": (lambda k: sign(k, claims(exp=True)), "invalid_claim"),
    "sub not a string": (lambda k: sign(k, claims(sub=12345)), "invalid_claim"),
    "kid not a string": (
        lambda k: unsigned({"alg": "RS256", "kid": 7}, claims(), "c2ln"), "malformed"),
    "header is a JSON list": (
        lambda k: f"{b64(b'[]')}.{b64(json.dumps(claims()).encode())}.c2ln", "malformed"),
    "padded signature": (lambda k: sign(k, claims()) + "==", "malformed"),
    "alg HS256 with kid of the RSA key": (
        lambda k: unsigned({"alg": "HS256", "kid": k.kid}, claims(), "c2ln"), "algorithm"),
    "alg ES256 with kid of the RSA key": (
        lambda k: unsigned({"alg": "ES256", "kid": k.kid}, claims(), "c2ln"), "algorithm"),
}


@pytest.mark.parametrize(
    "name", [pytest.param(n, id=f"{n} is refused with {r}") for n, (_, r) in EXTRAS.items()]
)
async def test_more_hostile_tokens(
    name: str, gateway: RunningGateway, upstream: Upstream, rsa_key: KeyPair
) -> None:
    build, reason = EXTRAS[name]
    token = build(rsa_key)
    status, headers, body = await get(gateway, "/api/orders/7", token)
    assert status == 401
    assert headers["WWW-Authenticate"].startswith('Bearer realm="gateway", error="invalid_token"')
    assert json.loads(body)["error"] == "invalid_token"
    assert upstream.hits == []
    assert gateway.sample(AUTH_METRIC, {"route": "orders-read", "result": "deny",
                                        "reason": reason}) == 1.0


# -- property: mutations of a valid token never validate ---------------------------------

B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
FIXED_NOW = int(time.time())

char = st.one_of(st.sampled_from(B64URL + ".="), st.integers(0, 255).map(chr),
                 st.sampled_from(["é", "\u2028", "\x00"]))
position = st.integers(min_value=0, max_value=10_000)
mutation = st.one_of(
    st.tuples(st.just("replace"), position, char),
    st.tuples(st.just("insert"), position, char),
    st.tuples(st.just("delete"), position, st.just("")),
    st.tuples(st.just("truncate"), position, st.just("")),
    st.tuples(st.just("swap"), st.permutations([0, 1, 2]), st.just("")),
    st.tuples(st.just("splice"), st.integers(0, 2), st.just("")),
)


def _mutate(token: str, other: str, op: tuple[str, Any, str]) -> str:
    kind, where, ch = op
    if kind == "replace":
        i = where % len(token)
        return token[:i] + ch + token[i + 1:]
    if kind == "insert":
        i = where % (len(token) + 1)
        return token[:i] + ch + token[i:]
    if kind == "delete":
        i = where % len(token)
        return token[:i] + token[i + 1:]
    if kind == "truncate":
        return token[: where % len(token)]
    parts = token.split(".")
    if len(parts) != 3:
        return token  # segment operations need the three segments
    if kind == "swap":
        return ".".join(parts[i] for i in where)
    donor = other.split(".")  # another valid token of the same key, other claims
    parts[where] = donor[where]
    return ".".join(parts)


def _decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _same_signed_content(mutated: str, original: str) -> bool:
    """True when the mutation left the signing input byte-identical and the signature
    decoding to the same bytes (base64 padding bits of its last character)."""
    if mutated == original:
        return True
    m, o = mutated.split("."), original.split(".")
    if len(m) != 3 or m[:2] != o[:2] or not set(m[2]) <= set(B64URL):
        return False
    try:
        return _decode(m[2]) == _decode(o[2])
    except ValueError:
        return False


@pytest.fixture(scope="module")
def property_tokens(
    rsa_key: KeyPair, ec_key: KeyPair
) -> dict[str, tuple[TokenVerifier, str, str]]:
    entries = tuple(e for e in (jwk_entry(rsa_key.jwk(), "p"), jwk_entry(ec_key.jwk(), "p")) if e)
    issuer = Issuer.build(ISSUER, (AUDIENCE,), frozenset({"RS256", "ES256"}), 30.0, entries)
    verifier = TokenVerifier({ISSUER: issuer}, cache_size=0, clock=lambda: FIXED_NOW)
    result = {}
    for key in (rsa_key, ec_key):
        base = {"iat": FIXED_NOW, "nbf": FIXED_NOW, "exp": FIXED_NOW + 300}
        token = sign(key, claims(**base, jti="original", scope="orders:read"))
        other = sign(key, claims(**base, jti="other-token", scope="admin"))
        assert verifier.verify(token).token_id == "original"
        result[key.alg] = (verifier, token, other)
    return result


@pytest.mark.parametrize("alg", [pytest.param("RS256", id="RS256 token"),
                                 pytest.param("ES256", id="ES256 token")])
@settings(max_examples=300, deadline=None)
@given(ops=st.lists(mutation, min_size=1, max_size=3))
def test_mutated_tokens_never_validate(
    alg: str, ops: list[tuple[str, Any, str]],
    property_tokens: dict[str, tuple[TokenVerifier, str, str]],
) -> None:
    verifier, token, other = property_tokens[alg]
    mutated = token
    for op in ops:
        mutated = _mutate(mutated, other, op) if mutated else mutated
    try:
        principal = verifier.verify(mutated)
    except InvalidToken:
        return  # refused: the only acceptable outcome, and with one of our errors
    # Splicing every segment of the donor rebuilds the donor: a valid token of its own.
    if _same_signed_content(mutated, other):
        assert principal.token_id == "other-token"
        return
    assert _same_signed_content(mutated, token), f"mutated token validated: {mutated!r}"
    assert principal.token_id == "original"


def test_non_canonical_signature_spellings_are_refused(
    property_tokens: dict[str, tuple[TokenVerifier, str, str]],
) -> None:
    # The property's escape hatch in practice: flipping the unused low bits of the RS256
    # signature's last character decodes to the same signature bytes, yet it is refused
    # (PyJWT checks the encoding is canonical); so is padding ("sig==").
    verifier, token, _ = property_tokens["RS256"]
    head, body, sig = token.split(".")
    last = B64URL.index(sig[-1])
    variant = f"{head}.{body}.{sig[:-1]}{B64URL[last ^ 0b0001]}"  # 4 unused bits: 2048 = 6*341+2
    assert variant != token
    assert _same_signed_content(variant, token)
    with pytest.raises(TokenMalformed):
        verifier.verify(variant)
    with pytest.raises(TokenMalformed):
        verifier.verify(token + "==")
    changed = f"{head}.{body}.{sig[:-1]}{B64URL[last ^ 0b010000]}"
    assert not _same_signed_content(changed, token)
    with pytest.raises(SignatureInvalid):
        verifier.verify(changed)
    assert verifier.verify(token).token_id == "original"


# -- against remote keys: nothing followed, forged kids cost at most one fetch --------------


async def test_attacker_headers_never_reach_the_network_with_remote_keys(
    start_gateway: Any, upstream: Upstream, idp: Any, trap: Trap, attacker_key: KeyPair,
) -> None:
    from tests.fixtures.idp import call, jwks_config, ready

    gw = await ready(await start_gateway(jwks_config(upstream, idp, jwks={"cooldown": "1h"})))
    headers = {**trap_headers(trap, attacker_key),
               "x5c": [base64.b64encode(self_signed_der(attacker_key)).decode()]}
    forged = [jwt_with_headers(attacker_key, idp.issuer, headers, kid)
               for kid in (attacker_key.kid, "idp-1", "../../etc/passwd", "' OR 1=1 --",
                           trap.url + "/jwks.json", "")]
    for token in forged:
        assert (await call(gw, token))[0] == 401
    assert trap.hits == []
    assert upstream.hits == []
    assert idp.jwks_hits() <= 2  # start-up and at most one refetch in the cooldown
    # the provider's own key is still fine
    assert await call(gw, idp.token()) == (200, "ok")


def jwt_with_headers(key: KeyPair, iss: str, headers: dict[str, Any], kid: str) -> str:
    return sign(key, claims(iss=iss), headers={**headers, "kid": kid})


@pytest.fixture(scope="module")
def remote_property(rsa_key: KeyPair) -> Any:
    """A verifier whose keys come from a counting fake JWKS source (no sockets)."""
    import asyncio

    from gateway.auth.fetch import Fetched, FetchLimits
    from gateway.auth.jwks import JwksCache, JwksSettings
    from gateway.metrics import GatewayMetrics

    calls: list[int] = []

    async def source() -> Fetched:
        calls.append(1)
        return Fetched({"keys": [rsa_key.jwk()]}, None, "https://idp.test/jwks")

    loop = asyncio.new_event_loop()
    settings = JwksSettings(ISSUER, "https://idp.test/jwks", frozenset({"RS256"}),
                            FetchLimits(), cooldown=3600.0)
    cache = JwksCache(settings, source, GatewayMetrics(), clock=lambda: FIXED_NOW)
    loop.run_until_complete(cache.refresh())
    issuer = Issuer.build(ISSUER, (AUDIENCE,), frozenset({"RS256"}), 30.0, (), remote=cache)
    verifier = TokenVerifier({ISSUER: issuer}, cache_size=0, clock=lambda: FIXED_NOW)
    base = {"iat": FIXED_NOW, "nbf": FIXED_NOW, "exp": FIXED_NOW + 300}
    token = sign(rsa_key, claims(**base, jti="original"))
    other = sign(rsa_key, claims(**base, jti="other-token"))
    yield loop, verifier, token, other, calls
    loop.close()


@settings(max_examples=200, deadline=None)
@given(ops=st.lists(mutation, min_size=1, max_size=3))
def test_mutated_tokens_never_validate_against_remote_keys_nor_hammer_the_provider(
    ops: list[tuple[str, Any, str]], remote_property: Any,
) -> None:
    loop, verifier, token, other, calls = remote_property
    mutated = token
    for op in ops:
        mutated = _mutate(mutated, other, op) if mutated else mutated
    try:
        principal = loop.run_until_complete(verifier.authenticate(mutated))
    except GatewayError as exc:
        assert isinstance(exc, InvalidToken | InvalidRequest), exc
    else:
        assert _same_signed_content(mutated, token) or _same_signed_content(mutated, other)
        assert principal.token_id in ("original", "other-token")
    assert len(calls) <= 2  # the first fetch, and at most one kid-miss refetch per cooldown
