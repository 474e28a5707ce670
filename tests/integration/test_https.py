"""HTTPS: TLS termination (1.2+), certificate reload without dropping connections, HSTS, the
redirect listener; upstreams over https verified against a CA bundle, with SNI / name
override and a client certificate. Certificates are made at test time (trustme)."""

from __future__ import annotations

import asyncio
import ssl
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
from aiohttp import web

from tests.fixtures.gateway import base_config
from tests.fixtures.raw import read_response, request_bytes

pytestmark = pytest.mark.integration


def write_cert(cert: trustme.LeafCert, directory: Path, name: str) -> tuple[str, str]:
    cert_file, key_file = directory / f"{name}.pem", directory / f"{name}.key"
    cert_file.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    key_file.write_bytes(cert.private_key_pem.bytes())
    return str(cert_file), str(key_file)


def client_context(ca: trustme.CA, **kw: Any) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    for name, value in kw.items():
        setattr(context, name, value)
    return context


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def https_gateway(start_gateway, tmp_path, upstream, rsa_key, ec_key, ca):
    cert, key = write_cert(ca.issue_cert("127.0.0.1", "localhost"), tmp_path, "server")
    config = base_config(tmp_path, upstream, rsa_key, ec_key)
    config["server"].update(
        tls={"cert_file": cert, "key_file": key},
        hsts={"max_age": "1d", "include_subdomains": True},
        http_redirect={"listen": "127.0.0.1:0"},
    )
    gw = await start_gateway(config)
    gw.url = f"https://127.0.0.1:{gw.server.public_address.port}"
    return gw


async def test_https_is_served_with_hsts_and_forwarded_proto(https_gateway, upstream, ca):
    connector = aiohttp.TCPConnector(ssl=client_context(ca))
    async with aiohttp.ClientSession(connector=connector) as s, s.get(
        https_gateway.url + "/public/x"
    ) as r:
        assert r.status == 200
        assert r.headers["Strict-Transport-Security"] == "max-age=86400; includeSubDomains"
        seen = {k.lower(): v for k, v in (await r.json())["headers"]}
    assert seen["x-forwarded-proto"] == "https"
    assert "proto=https" in seen["forwarded"]


async def test_tls_below_1_2_is_refused(https_gateway, ca):
    assert https_gateway.server.tls_context.minimum_version == ssl.TLSVersion.TLSv1_2
    context = client_context(ca)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    port = https_gateway.server.public_address.port
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await asyncio.open_connection("127.0.0.1", port, ssl=context)


async def test_tls_1_3_only(start_gateway, tmp_path, upstream, rsa_key, ec_key, ca):
    cert, key = write_cert(ca.issue_cert("127.0.0.1"), tmp_path, "server")
    config = base_config(tmp_path, upstream, rsa_key, ec_key)
    config["server"]["tls"] = {"cert_file": cert, "key_file": key, "min_version": "1.3"}
    gw = await start_gateway(config)
    port = gw.server.public_address.port
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await asyncio.open_connection("127.0.0.1", port, ssl=client_context(
            ca, maximum_version=ssl.TLSVersion.TLSv1_2))
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_context(ca))
    assert writer.get_extra_info("ssl_object").version() == "TLSv1.3"
    writer.close()


async def test_plain_http_listener_only_redirects(https_gateway, upstream):
    port = https_gateway.server.redirect_address.port
    https_port = https_gateway.server.public_address.port
    async with aiohttp.ClientSession() as s, s.get(
        f"http://127.0.0.1:{port}/api/orders/1?x=1", allow_redirects=False,
        headers={"Host": "api.example.com:8080"},
    ) as r:
        assert r.status == 308
        assert r.headers["Location"] == f"https://api.example.com:{https_port}/api/orders/1?x=1"
    assert upstream.hits == []


async def test_certificate_reload_keeps_open_connections(https_gateway, tmp_path, ca):
    port = https_gateway.server.public_address.port
    reader, writer = await asyncio.open_connection("127.0.0.1", port,
                                                   ssl=client_context(ca))
    writer.write(request_bytes("GET /public/before HTTP/1.1", "Host: localhost"))
    assert (await read_response(reader)).status == 200

    new_ca = trustme.CA()
    cert, key = https_gateway.server.settings.tls.cert_file, \
        https_gateway.server.settings.tls.key_file
    write_cert(new_ca.issue_cert("127.0.0.1"), tmp_path, "server")
    assert (Path(cert), Path(key)) == (tmp_path / "server.pem", tmp_path / "server.key")
    assert https_gateway.server.reload_tls() is True

    # The established connection keeps working on its old session …
    writer.write(request_bytes("GET /public/after HTTP/1.1", "Host: localhost"))
    assert (await read_response(reader)).status == 200
    writer.close()
    # … while new handshakes present the new certificate.
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncio.open_connection("127.0.0.1", port, ssl=client_context(ca))
    _, fresh = await asyncio.open_connection("127.0.0.1", port, ssl=client_context(new_ca))
    fresh.close()


async def test_a_broken_certificate_reload_keeps_the_old_one(https_gateway, tmp_path, ca):
    (tmp_path / "server.key").write_bytes(trustme.CA().issue_cert("x").private_key_pem.bytes())
    assert https_gateway.server.reload_tls() is False  # key does not match the chain
    port = https_gateway.server.public_address.port
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_context(ca))
    writer.close()


# -- upstreams over https ------------------------------------------------------------------


@pytest.fixture
async def tls_upstream(ca, tmp_path) -> AsyncIterator[dict[str, Any]]:
    """An https echo upstream whose certificate names internal.test only; it asks for a
    client certificate from the client CA and reports the subject it got."""
    client_ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("internal.test").configure_cert(context)
    client_ca.configure_trust(context)
    context.verify_mode = ssl.CERT_OPTIONAL

    async def handler(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        subject = dict(x[0] for x in peer["subject"]) if peer else None
        return web.json_response({"client_cert": subject, "host": request.host})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    ca_file = tmp_path / "upstream-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    client_cert, client_key = write_cert(
        client_ca.issue_cert("gateway.client.test", common_name="gateway.client.test"),
        tmp_path, "client")
    try:
        yield {"url": f"https://127.0.0.1:{runner.addresses[0][1]}", "ca_file": str(ca_file),
               "cert_file": client_cert, "key_file": client_key}
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(("tls", "status", "client_cert"), [
    pytest.param({"ca_file": True, "server_name": "internal.test"}, 200, None,
                 id="verified against the configured CA with the name override"),
    pytest.param({"ca_file": True, "server_name": "internal.test", "cert_file": True,
                  "key_file": True}, 200, "gateway.client.test",
                 id="with a client certificate (mTLS)"),
    pytest.param({"ca_file": True}, 502, None,
                 id="without the name override the certificate does not match 127.0.0.1"),
    pytest.param({"server_name": "internal.test"}, 502, None,
                 id="the system store does not know the private CA"),
])
async def test_upstream_https(start_gateway, tmp_path, upstream, rsa_key, ec_key,
                              tls_upstream, tls, status, client_cert):
    tls = {k: tls_upstream[k] if v is True else v for k, v in tls.items()}
    config = base_config(tmp_path, upstream, rsa_key, ec_key)
    config["routes"].append({"name": "secure", "match": {"path_prefix": "/secure"},
                             "upstream": {"targets": [tls_upstream["url"]], "tls": tls},
                             "auth": "none"})
    gw = await start_gateway(config)
    async with aiohttp.ClientSession() as s, s.get(gw.url + "/secure/x") as r:
        assert r.status == status
        if status == 200:
            body = await r.json()
            assert (body["client_cert"] or {}).get("commonName") == client_cert


async def test_a_bad_server_certificate_file_is_a_config_error(start_gateway, tmp_path,
                                                               upstream, rsa_key, ec_key):
    from gateway.errors import ConfigError

    config = base_config(tmp_path, upstream, rsa_key, ec_key)
    (tmp_path / "bad.pem").write_text("not a certificate\n")
    config["server"]["tls"] = {"cert_file": "bad.pem", "key_file": "bad.pem"}
    with pytest.raises(ConfigError) as info:
        await start_gateway(config)
    assert info.value.problems[0].path == "server.tls"


async def test_a_renewed_certificate_is_picked_up_by_the_config_reload(
    https_gateway, tmp_path, ca
):
    """The certificate files are watched like the config: renewing them is a reload."""
    port = https_gateway.server.public_address.port
    new_ca = trustme.CA()
    write_cert(new_ca.issue_cert("127.0.0.1"), tmp_path, "server")
    result = await https_gateway.server.reload("test")
    assert result.result == "success"
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncio.open_connection("127.0.0.1", port, ssl=client_context(ca))
    _, fresh = await asyncio.open_connection("127.0.0.1", port, ssl=client_context(new_ca))
    fresh.close()


async def test_relative_certificate_paths_do_not_ask_for_a_restart_on_reload(
    start_gateway, tmp_path, upstream, rsa_key, ec_key, ca
):
    """Relative cert paths resolve against the config's directory on reload too (not the
    working directory), so an unchanged ``server.tls`` is not reported as a restart change."""
    write_cert(ca.issue_cert("127.0.0.1"), tmp_path, "server")
    config = base_config(tmp_path, upstream, rsa_key, ec_key)
    config["server"]["tls"] = {"cert_file": "server.pem", "key_file": "server.key"}
    gw = await start_gateway(config)
    write_cert(trustme.CA().issue_cert("127.0.0.1"), tmp_path, "server")
    result = await gw.server.reload("test")
    assert result.result == "success"
    assert result.restart_required == ()
