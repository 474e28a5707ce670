"""The Redis revocation store on a real redis-server: shared by instances, every kind, operated.

Three gateways in one process share one Redis; a revocation on any of them, or written by
another tool in the documented format, is enforced by all.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.revocation.redis import RedisRevocationStore
from tests.fixtures.gateway import GatewayFactory, RunningGateway, base_config
from tests.fixtures.keys import KeyPair
from tests.fixtures.redis import RedisProcess
from tests.fixtures.tokens import ISSUER, TokenFactory
from tests.fixtures.upstream import Upstream
from tests.integration.test_revocation import admin, assert_revoked, get

pytestmark = pytest.mark.integration


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def redis_revocation(url: str | None = None, **extra: Any) -> dict[str, Any]:
    section: dict[str, Any] = {
        "store": "redis", "on_unavailable": "deny", "heartbeat_interval": "100ms",
        "max_staleness": "600ms", "key_prefix": "test",
    }
    if url is not None:
        section["redis_url"] = url
    section.update(extra)
    return section


def redis_config(
    tmp_path: Path, upstream: Upstream, rsa_key: KeyPair, ec_key: KeyPair, **section: Any
) -> dict[str, Any]:
    config = base_config(tmp_path, upstream, rsa_key, ec_key)
    config["revocation"] = redis_revocation(**section)
    return config


def store_of(gw: RunningGateway) -> RedisRevocationStore:
    store = gw.server.store
    assert isinstance(store, RedisRevocationStore)
    return store


async def until_status(
    http: aiohttp.ClientSession, gw: RunningGateway, token: str, status: int,
    timeout: float = 5.0,
) -> float:
    """Poll with requests until the gateway answers ``status``; the seconds it took."""
    started = time.monotonic()
    while True:
        if (await get(http, gw, token))[0] == status:
            return time.monotonic() - started
        assert time.monotonic() - started < timeout, f"never answered {status}"
        await asyncio.sleep(0.002)


@pytest.fixture
async def three(
    start_gateway: GatewayFactory, tmp_path: Path, upstream: Upstream, rsa_key: KeyPair,
    ec_key: KeyPair, redis_server: RedisProcess,
) -> list[RunningGateway]:
    config = redis_config(tmp_path, upstream, rsa_key, ec_key, url=redis_server.url)
    return [await start_gateway(config) for _ in range(3)]


async def test_a_revocation_on_one_instance_is_enforced_by_all_three_within_100ms(
    three: list[RunningGateway], http: aiohttp.ClientSession, make_token: TokenFactory,
) -> None:
    token = make_token(jti="jti-shared", sub="alice")
    for gw in three:
        assert (await get(http, gw, token))[0] == 200
    started = time.monotonic()
    await admin(http, three[0], "POST", json={"jti": "jti-shared", "exp": time.time() + 300,
                                               "reason": "stolen laptop", "actor": "ops"})
    assert_revoked(*await get(http, three[0], token))  # the writer: at once
    for gw in three[1:]:
        await until_status(http, gw, token, 401, timeout=1.0)
    assert time.monotonic() - started < 0.1 + 0.05  # the admin round trip included
    for gw in three:
        assert gw.sample("gateway_revocation_entries", {"kind": "jti"}) == 1
    assert three[1].sample("gateway_revocation_propagation_seconds_count") == 1

    await admin(http, three[2], "DELETE", params={"jti": "jti-shared"})
    for gw in three:
        await until_status(http, gw, token, 200, timeout=1.0)


@pytest.mark.parametrize(
    ("body", "claims", "spared"),
    [
        pytest.param({"sub": "alice"}, {"sub": "alice", "iat": -200},
                     {"sub": "bob", "iat": -200},
                     id="a subject cutoff revokes that subject's older tokens"),
        pytest.param({"client_id": "web"}, {"client_id": "web", "iat": -200},
                     {"client_id": "mobile", "iat": -200},
                     id="a client cutoff revokes that client's older tokens"),
        pytest.param({"kind": "issuer"}, {"iat": -200}, {"iat": 0},
                     id="an issuer cutoff revokes every older token of the issuer"),
    ],
)
async def test_every_cutoff_kind_reaches_the_other_instances(
    three: list[RunningGateway], http: aiohttp.ClientSession, make_token: TokenFactory,
    body: dict[str, Any], claims: dict[str, Any], spared: dict[str, Any],
) -> None:
    now = int(time.time())
    revoked = make_token(**{**claims, "iat": now + claims["iat"]})
    kept = make_token(**{**spared, "iat": now + spared["iat"]})
    await admin(http, three[0], "POST", json={**body, "before": now - 100})
    for gw in three:
        await until_status(http, gw, revoked, 401, timeout=1.0)
        assert (await get(http, gw, kept))[0] == 200
    await admin(http, three[1], "DELETE", params={**body, "iss": ISSUER})
    for gw in three:
        await until_status(http, gw, revoked, 200, timeout=1.0)


async def test_another_tool_writing_the_documented_format_is_obeyed(
    three: list[RunningGateway], redis_server: RedisProcess, http: aiohttp.ClientSession,
    make_token: TokenFactory,
) -> None:
    """The README's MULTI/EXEC + PUBLISH recipe, done with a plain Redis client."""
    token = make_token(jti="from-another-tool")
    entry = {"kind": "jti", "issuer": ISSUER, "value": "from-another-tool",
             "expires_at": time.time() + 300, "reason": "fraud", "actor": "siem"}
    field = f"jti {ISSUER} from-another-tool"
    with redis_server.client() as r:
        pipe = r.pipeline(transaction=True)
        pipe.hset("{test}:entries", field, json.dumps(entry))
        pipe.zadd("{test}:expiry", {field: entry["expires_at"]})
        pipe.incr("{test}:version")
        version = pipe.execute()[-1]
        r.publish("{test}:events", json.dumps({"op": "revoke", "v": version, "entry": entry}))
    for gw in three:
        await until_status(http, gw, token, 401, timeout=1.0)
    listed = await admin(http, three[2], "GET", params={"jti": "from-another-tool"})
    assert listed["entries"] == [{**entry, "created_at": 0.0}]

    with redis_server.client() as r:  # a bulk change without messages, then "resync"
        r.hdel("{test}:entries", field)
        r.zrem("{test}:expiry", field)
        r.publish("{test}:events", json.dumps({"op": "resync"}))
    for gw in three:
        await until_status(http, gw, token, 200, timeout=1.0)


async def test_a_change_without_a_message_is_found_by_the_version_check(
    three: list[RunningGateway], redis_server: RedisProcess, http: aiohttp.ClientSession,
    make_token: TokenFactory,
) -> None:
    token = make_token(jti="silent")
    entry = {"kind": "jti", "issuer": ISSUER, "value": "silent",
             "expires_at": time.time() + 300}
    with redis_server.client() as r:
        r.hset("{test}:entries", f"jti {ISSUER} silent", json.dumps(entry))
        r.incr("{test}:version")
    for gw in three:  # two heartbeats (100 ms) later the missing version forces a reload
        await until_status(http, gw, token, 401, timeout=2.0)
        assert gw.sample("gateway_revocation_gaps_total", {"cause": "version"}) >= 1


async def test_the_list_is_paged_and_filtered_by_issuer_subject_and_client(
    three: list[RunningGateway], http: aiohttp.ClientSession,
) -> None:
    gw = three[0]
    for i in range(5):
        await admin(http, gw, "POST", json={"jti": f"j{i}"})
    await admin(http, gw, "POST", json={"sub": "alice"})
    await admin(http, gw, "POST", json={"client_id": "web"})
    before = int(time.time()) - 100
    await admin(http, gw, "POST", json={"kind": "issuer", "before": before})

    other = three[1]  # listing reads the instance's memory: any instance answers the same
    await until_listed(http, other, 8)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"kind": "jti", "limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await admin(http, other, "GET", params=params)
        seen += [e["value"] for e in page["entries"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"j{i}" for i in range(5)]
    assert [e["value"] for e in (await admin(http, other, "GET", params={"sub": "alice"}))
            ["entries"]] == ["alice"]
    by_client = await admin(http, other, "GET", params={"client_id": "web", "iss": ISSUER})
    assert [(e["kind"], e["value"]) for e in by_client["entries"]] == [("client", "web")]
    issuer_wide = await admin(http, other, "GET", params={"kind": "issuer"})
    assert [(e["kind"], e["value"], e["before"]) for e in issuer_wide["entries"]] == [
        ("issuer", ISSUER, before)]
    none = await admin(http, other, "GET", params={"iss": "https://elsewhere.example/"})
    assert none == {"entries": [], "next_cursor": None}


async def until_listed(http: aiohttp.ClientSession, gw: RunningGateway, n: int) -> None:
    deadline = time.monotonic() + 2
    while len((await admin(http, gw, "GET", params={"limit": "100"}))["entries"]) < n:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)


async def test_status_and_metrics_show_the_redis_state(
    three: list[RunningGateway], http: aiohttp.ClientSession, redis_server: RedisProcess,
) -> None:
    gw = three[0]
    await admin(http, gw, "POST", json={"jti": "x"})
    async with http.get(gw.admin_url + "/status") as resp:
        status = (await resp.json())["revocation"]
    state = status["state"]
    assert status["store"] == "RedisRevocationStore"
    assert state["mode"] == "single" and state["where"] == redis_server.url
    assert state["current"] is True and state["connected"] is True
    assert state["state"] == "current"
    assert state["entries"] == {"jti": 1, "sub": 0, "client": 0, "issuer": 0}
    assert state["breaker"] == "closed" and state["epoch"]
    assert state["version"] >= 1
    assert gw.sample("gateway_revocation_connected") == 1
    assert gw.sample("gateway_revocation_resyncs_total", {"result": "success"}) >= 1
    assert gw.sample("gateway_revocation_gaps_total", {"cause": "startup"}) == 1
    assert 0 <= gw.sample("gateway_revocation_sync_lag_seconds") < 0.6


async def test_credentials_in_the_url_are_not_shown(
    start_gateway: GatewayFactory, tmp_path: Path, upstream: Upstream, rsa_key: KeyPair,
    ec_key: KeyPair, redis_launcher: Any, http: aiohttp.ClientSession,
    make_token: TokenFactory,
) -> None:
    secured = redis_launcher.server("--requirepass", "s3cret-pw")
    url = f"redis://:s3cret-pw@127.0.0.1:{secured.port}/0"
    gw = await start_gateway(redis_config(tmp_path, upstream, rsa_key, ec_key, url=url))
    assert (await get(http, gw, make_token()))[0] == 200
    async with http.get(gw.admin_url + "/status") as resp:
        text = await resp.text()
    assert "s3cret-pw" not in text
    assert f"redis://127.0.0.1:{secured.port}/0" in text


async def test_the_cli_revokes_issuer_wide_and_lists_by_subject(
    three: list[RunningGateway], http: aiohttp.ClientSession, make_token: TokenFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from gateway.cli import main

    gw = three[0]

    async def cli(*args: str) -> tuple[int, Any]:
        argv = [*args, "-c", str(gw.config_path), "--admin-url", gw.admin_url]
        code = await asyncio.to_thread(main, argv)
        out = capsys.readouterr().out
        return code, json.loads(out) if out else None

    now = int(time.time())
    old, new = make_token(iat=now - 200), make_token(iat=now)
    code, entry = await cli("revoke", "--issuer-wide", "--before", str(now - 100),
                            "--reason", "signing key leaked")
    assert code == 0
    assert (entry["kind"], entry["value"], entry["reason"]) == (
        "issuer", ISSUER, "signing key leaked")
    await until_status(http, three[2], old, 401, timeout=1.0)
    assert (await get(http, three[2], new))[0] == 200

    assert (await cli("revoke", "--sub", "carol"))[0] == 0
    code, listed = await cli("revocations", "--sub", "carol")
    assert code == 0 and [e["value"] for e in listed["entries"]] == ["carol"]
    code, listed = await cli("revocations", "--kind", "issuer", "--limit", "5")
    assert [e["kind"] for e in listed["entries"]] == ["issuer"]

    assert (await cli("unrevoke", "--issuer-wide"))[0] == 0
    await until_status(http, three[2], old, 200, timeout=1.0)


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A throw-away certificate for 127.0.0.1, made for this run."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "redis.crt", folder / "redis.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


async def test_rediss_with_an_acl_user_works_and_its_password_is_not_shown(
    start_gateway: GatewayFactory, tmp_path: Path, upstream: Upstream, rsa_key: KeyPair,
    ec_key: KeyPair, redis_launcher: Any, http: aiohttp.ClientSession,
    make_token: TokenFactory,
) -> None:
    from tests.fixtures.redis import free_port

    cert, key = self_signed(tmp_path)
    tls_port = free_port()
    try:
        redis_launcher.server(
            "--tls-port", str(tls_port), "--tls-cert-file", str(cert), "--tls-key-file",
            str(key), "--tls-auth-clients", "no",
            "--user", "gw", "on", ">gw-s3cret", "~*", "&*", "+@all",
            "--user", "default", "off",
        )
    except AssertionError as exc:
        pytest.skip(f"this redis-server cannot do TLS ({str(exc)[-120:]})")
    url = f"rediss://gw:gw-s3cret@127.0.0.1:{tls_port}/0?ssl_ca_certs={cert}"
    gw = await start_gateway(redis_config(tmp_path, upstream, rsa_key, ec_key, url=url))
    token = make_token(jti="over-tls")
    assert (await get(http, gw, token))[0] == 200
    await admin(http, gw, "POST", json={"jti": "over-tls"})
    assert (await get(http, gw, token))[0] == 401
    async with http.get(gw.admin_url + "/status") as resp:
        text = await resp.text()
    assert "gw-s3cret" not in text and "rediss://127.0.0.1" in text
