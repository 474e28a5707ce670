"""Key files: PEM public keys and certificates, JWK and JWKS → typed KeyEntry values."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID

from gateway.auth.keys import (
    RSA_ALGORITHMS,
    KeyFileError,
    algorithms_for,
    jwk_entry,
    parse_key_file,
    public_jwk,
    thumbprint,
)

# RFC 7638 §3.1: the example RSA key and its SHA-256 JWK thumbprint.
RFC7638_N = (
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECP"
    "ebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY"
    "368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0f"
    "M4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
)
RFC7638_E = "AQAB"
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def _b64int(text: str) -> int:
    import base64

    return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")


@pytest.fixture(scope="module")
def rsa_private() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_private() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_pem(key: Any) -> bytes:
    pem: bytes = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem


def self_signed_cert(private: Any) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "idp.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(private, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


# -- thumbprints ---------------------------------------------------------------------------


def test_thumbprint_matches_the_rfc7638_example() -> None:
    key = rsa.RSAPublicNumbers(_b64int(RFC7638_E), _b64int(RFC7638_N)).public_key()
    assert public_jwk(key) == {"e": RFC7638_E, "kty": "RSA", "n": RFC7638_N}
    assert thumbprint(key) == RFC7638_THUMBPRINT


def test_rfc7638_example_jwk_is_read_with_its_kid_and_alg() -> None:
    jwk = {"kty": "RSA", "n": RFC7638_N, "e": RFC7638_E, "alg": "RS256", "kid": "2011-04-29"}
    entry = jwk_entry(jwk, "rfc.json")
    assert entry is not None
    assert entry.kid == "2011-04-29"
    assert entry.algorithms == frozenset({"RS256"})
    assert thumbprint(entry.key) == RFC7638_THUMBPRINT  # type: ignore[arg-type]


def test_thumbprint_is_the_same_for_a_key_read_from_pem_and_from_jwk(
    ec_private: ec.EllipticCurvePrivateKey,
) -> None:
    (from_pem,) = parse_key_file(public_pem(ec_private.public_key()), "k.pem")
    (from_jwk,) = parse_key_file(json.dumps(public_jwk(ec_private.public_key())).encode(), "k.json")
    assert thumbprint(from_pem.key) == thumbprint(from_jwk.key)  # type: ignore[arg-type]
    assert thumbprint(from_pem.key) == thumbprint(ec_private.public_key())  # type: ignore[arg-type]


# -- algorithms by key type ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("curve", "alg"),
    [
        pytest.param(ec.SECP256R1(), "ES256", id="P-256 verifies ES256 only"),
        pytest.param(ec.SECP384R1(), "ES384", id="P-384 verifies ES384 only"),
        pytest.param(ec.SECP521R1(), "ES512", id="P-521 verifies ES512 only"),
    ],
)
def test_ec_curve_decides_the_algorithm(curve: ec.EllipticCurve, alg: str) -> None:
    public = ec.generate_private_key(curve).public_key()
    (entry,) = parse_key_file(public_pem(public), "ec.pem")
    assert entry.algorithms == frozenset({alg})
    (jwk,) = parse_key_file(json.dumps(public_jwk(public)).encode(), "ec.json")
    assert jwk.algorithms == frozenset({alg})


def test_unsupported_ec_curve_is_refused() -> None:
    public = ec.generate_private_key(ec.SECP256K1()).public_key()
    with pytest.raises(KeyFileError, match="unsupported EC curve secp256k1"):
        parse_key_file(public_pem(public), "k1.pem")


@pytest.mark.parametrize(
    "private",
    [
        pytest.param(ed25519.Ed25519PrivateKey.generate(), id="Ed25519 verifies EdDSA"),
        pytest.param(ed448.Ed448PrivateKey.generate(), id="Ed448 verifies EdDSA"),
    ],
)
def test_edwards_keys_verify_eddsa(private: Any) -> None:
    (entry,) = parse_key_file(public_pem(private.public_key()), "ed.pem")
    assert entry.algorithms == frozenset({"EdDSA"})


def test_ed25519_jwk_verifies_eddsa() -> None:
    public = ed25519.Ed25519PrivateKey.generate().public_key()
    (entry,) = parse_key_file(json.dumps({**public_jwk(public), "kid": "ed"}).encode(), "ed.json")
    assert entry.kid == "ed"
    assert entry.algorithms == frozenset({"EdDSA"})


def test_rsa_key_verifies_every_rsa_algorithm(rsa_private: rsa.RSAPrivateKey) -> None:
    expected = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
    assert algorithms_for(rsa_private.public_key()) == expected


def test_rsa_key_below_2048_bits_is_refused_from_pem_and_jwk() -> None:
    public = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    with pytest.raises(KeyFileError, match="RSA key of 1024 bits; at least 2048 needed"):
        parse_key_file(public_pem(public), "small.pem")
    with pytest.raises(KeyFileError, match="RSA key of 1024 bits"):
        parse_key_file(json.dumps(public_jwk(public)).encode(), "small.json")


def test_symmetric_key_type_is_not_a_verification_key() -> None:
    with pytest.raises(KeyFileError, match="unsupported key type"):
        algorithms_for(b"secret")


# -- PEM files -----------------------------------------------------------------------------


def test_pem_public_key_has_no_kid_and_names_its_source(rsa_private: rsa.RSAPrivateKey) -> None:
    (entry,) = parse_key_file(public_pem(rsa_private.public_key()), "idp.pem")
    assert entry.kid is None
    assert entry.source == "idp.pem"
    assert entry.algorithms == RSA_ALGORITHMS
    assert isinstance(entry.key, rsa.RSAPublicKey)
    assert entry.key.public_numbers() == rsa_private.public_key().public_numbers()


def test_pkcs1_rsa_public_key_pem_is_read(rsa_private: rsa.RSAPrivateKey) -> None:
    pem = rsa_private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
    )
    assert pem.startswith(b"-----BEGIN RSA PUBLIC KEY-----")
    (entry,) = parse_key_file(pem, "pkcs1.pem")
    assert entry.algorithms == RSA_ALGORITHMS


@pytest.mark.parametrize(
    "which",
    [pytest.param("rsa", id="self-signed RSA certificate"),
     pytest.param("ec", id="self-signed EC certificate")],
)
def test_certificate_pem_gives_its_public_key(
    which: str, rsa_private: rsa.RSAPrivateKey, ec_private: ec.EllipticCurvePrivateKey
) -> None:
    private: Any = rsa_private if which == "rsa" else ec_private
    (entry,) = parse_key_file(self_signed_cert(private), "idp.crt")
    assert entry.kid is None
    assert thumbprint(entry.key) == thumbprint(private.public_key())  # type: ignore[arg-type]
    assert entry.algorithms == (RSA_ALGORITHMS if which == "rsa" else frozenset({"ES256"}))


def test_pem_file_with_several_blocks_gives_every_key(
    rsa_private: rsa.RSAPrivateKey, ec_private: ec.EllipticCurvePrivateKey
) -> None:
    data = public_pem(rsa_private.public_key()) + b"\n" + self_signed_cert(ec_private)
    entries = parse_key_file(data, "bundle.pem")
    assert [e.algorithms for e in entries] == [RSA_ALGORITHMS, frozenset({"ES256"})]


@pytest.mark.parametrize(
    "fmt",
    [
        pytest.param(serialization.PrivateFormat.PKCS8, id="PKCS8 private key"),
        pytest.param(serialization.PrivateFormat.TraditionalOpenSSL, id="traditional private key"),
    ],
)
def test_private_key_pem_is_refused_without_echoing_it(
    fmt: serialization.PrivateFormat, rsa_private: rsa.RSAPrivateKey
) -> None:
    pem = rsa_private.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())
    with pytest.raises(KeyFileError, match="holds a private key") as exc_info:
        parse_key_file(pem, "oops.pem")
    body_line = pem.splitlines()[1].decode()
    assert body_line not in str(exc_info.value)


def test_public_key_followed_by_private_key_is_refused(
    rsa_private: rsa.RSAPrivateKey, ec_private: ec.EllipticCurvePrivateKey
) -> None:
    private = ec_private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(KeyFileError, match="holds a private key"):
        parse_key_file(public_pem(rsa_private.public_key()) + private, "mixed.pem")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b"", "no PEM block found", id="empty file"),
        pytest.param(b"just some text\n", "no PEM block found", id="text without PEM block"),
        pytest.param(
            b"-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n",
            "unreadable PEM block PUBLIC KEY", id="PEM block that is not a key",
        ),
        pytest.param(
            b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
            "unreadable PEM block CERTIFICATE", id="PEM certificate that is garbage",
        ),
    ],
)
def test_unreadable_pem_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(KeyFileError, match=message):
        parse_key_file(data, "bad.pem")


# -- JWK and JWKS --------------------------------------------------------------------------


def test_single_jwk_file(rsa_private: rsa.RSAPrivateKey) -> None:
    jwk = {**public_jwk(rsa_private.public_key()), "kid": "rsa-1", "alg": "RS256", "use": "sig"}
    (entry,) = parse_key_file(json.dumps(jwk).encode(), "one.jwk")
    assert entry.kid == "rsa-1"
    assert entry.algorithms == frozenset({"RS256"})
    assert entry.source == "one.jwk"


def test_jwks_file_gives_every_key_with_its_kid(
    rsa_private: rsa.RSAPrivateKey, ec_private: ec.EllipticCurvePrivateKey
) -> None:
    jwks = {"keys": [
        {**public_jwk(rsa_private.public_key()), "kid": "rsa-1"},
        {**public_jwk(ec_private.public_key()), "kid": "ec-1", "alg": "ES256"},
    ]}
    entries = parse_key_file(b"  \n" + json.dumps(jwks).encode(), "idp.jwks.json")
    assert [(e.kid, e.algorithms) for e in entries] == [
        ("rsa-1", RSA_ALGORITHMS),  # no alg: every RSA algorithm (not PyJWK's RS256 default)
        ("ec-1", frozenset({"ES256"})),
    ]


def test_jwk_alg_narrows_the_algorithms(rsa_private: rsa.RSAPrivateKey) -> None:
    jwk = {**public_jwk(rsa_private.public_key()), "alg": "PS384"}
    entry = jwk_entry(jwk, "k.json")
    assert entry is not None
    assert entry.algorithms == frozenset({"PS384"})


def test_jwk_without_kid_or_with_non_string_kid_has_none(rsa_private: rsa.RSAPrivateKey) -> None:
    base = public_jwk(rsa_private.public_key())
    for jwk in (base, {**base, "kid": 7}):
        entry = jwk_entry(jwk, "k.json")
        assert entry is not None
        assert entry.kid is None


def test_encryption_keys_are_skipped(
    rsa_private: rsa.RSAPrivateKey, ec_private: ec.EllipticCurvePrivateKey
) -> None:
    jwks = {"keys": [
        {**public_jwk(rsa_private.public_key()), "kid": "enc-1", "use": "enc"},
        {**public_jwk(ec_private.public_key()), "kid": "sig-1", "use": "sig"},
    ]}
    entries = parse_key_file(json.dumps(jwks).encode(), "idp.jwks.json")
    assert [e.kid for e in entries] == ["sig-1"]
    assert jwk_entry(jwks["keys"][0], "x") is None


def test_jwks_with_only_encryption_keys_is_refused(rsa_private: rsa.RSAPrivateKey) -> None:
    jwks = {"keys": [{**public_jwk(rsa_private.public_key()), "use": "enc"}]}
    with pytest.raises(KeyFileError, match="contains no signature verification key"):
        parse_key_file(json.dumps(jwks).encode(), "enc.json")


def test_empty_jwks_is_refused() -> None:
    with pytest.raises(KeyFileError, match="contains no signature verification key"):
        parse_key_file(b'{"keys": []}', "empty.json")


def _private_rsa_jwk(private: rsa.RSAPrivateKey) -> dict[str, Any]:
    import jwt

    return json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private))  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("rsa-private", id="RSA private JWK"),
        pytest.param("ec-private", id="EC private JWK with d"),
        pytest.param("oct", id="symmetric oct JWK"),
    ],
)
def test_private_or_symmetric_jwk_is_refused(
    kind: str, rsa_private: rsa.RSAPrivateKey, ec_private: ec.EllipticCurvePrivateKey
) -> None:
    import jwt

    if kind == "rsa-private":
        jwk = _private_rsa_jwk(rsa_private)
        secret = jwk["d"]
    elif kind == "ec-private":
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_private))
        secret = jwk["d"]
    else:
        jwk = {"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}
        secret = jwk["k"]
    for document in (jwk, {"keys": [jwk]}):
        with pytest.raises(KeyFileError, match="private or symmetric") as exc_info:
            parse_key_file(json.dumps(document).encode(), "leak.json")
        assert secret not in str(exc_info.value)


@pytest.mark.parametrize(
    ("which", "alg"),
    [
        pytest.param("ec", "ES384", id="P-256 key claiming ES384"),
        pytest.param("ec", "RS256", id="EC key claiming RS256"),
        pytest.param("rsa", "ES256", id="RSA key claiming ES256"),
        pytest.param("rsa", "HS256", id="RSA key claiming HS256"),
        pytest.param("rsa", "EdDSA", id="RSA key claiming EdDSA"),
        pytest.param("rsa", "none", id="RSA key claiming alg none"),
        pytest.param("rsa", "XX999", id="RSA key claiming an unknown alg"),
    ],
)
def test_jwk_alg_unfit_for_its_key_type_is_refused(
    which: str, alg: str, rsa_private: rsa.RSAPrivateKey, ec_private: ec.EllipticCurvePrivateKey
) -> None:
    public = rsa_private.public_key() if which == "rsa" else ec_private.public_key()
    jwk = {**public_jwk(public), "kid": "k", "alg": alg}
    with pytest.raises(KeyFileError):
        jwk_entry(jwk, "k.json")
    with pytest.raises(KeyFileError):
        parse_key_file(json.dumps({"keys": [jwk]}).encode(), "k.json")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b"{not json", "invalid JSON", id="invalid JSON"),
        pytest.param(b'{"hello": "world"}', "neither a JWK nor a JWKS", id="object that is no JWK"),
        pytest.param(b'{"keys": "nope"}', "neither a JWK nor a JWKS", id="keys that is no list"),
        pytest.param(b'{"keys": [1]}', "a JWKS entry is not an object", id="JWKS entry no object"),
        pytest.param(b'{"kty": "RSA", "n": "AQAB"}', "unusable JWK", id="RSA JWK without e"),
        pytest.param(b'{"kty": "XYZ"}', "unusable JWK", id="unknown key type"),
        pytest.param(b'{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}', "unusable JWK",
                     id="EC point not on the curve"),
    ],
)
def test_unusable_json_key_files_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(KeyFileError, match=message):
        parse_key_file(data, "bad.json")
