"""WebSocket upgrades: authorised like any request, then relayed both ways with close codes."""

from __future__ import annotations

import asyncio
import base64
import os

import aiohttp
import pytest

from tests.fixtures.gateway import base_config
from tests.fixtures.raw import port_of, read_response, request_bytes
from tests.fixtures.waiting import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
async def ws_gateway(start_gateway, tmp_path, upstream, rsa_key, ec_key):
    config = base_config(tmp_path, upstream, rsa_key, ec_key)
    config["routes"] += [
        {"name": "chat", "match": {"path_prefix": "/chat"}, "upstream": upstream.url,
         "require": {"scopes": ["chat"]}},
        {"name": "quiet", "match": {"path_prefix": "/quiet"}, "upstream": upstream.url,
         "auth": "none", "idle_timeout": "300ms"},
        {"name": "small", "match": {"path_prefix": "/small"}, "upstream": upstream.url,
         "auth": "none", "websocket": {"max_message_size": "1KiB"}},
        {"name": "nows", "match": {"path_prefix": "/nows"}, "upstream": upstream.url,
         "auth": "none", "websocket": {"enabled": False}},
    ]
    return await start_gateway(config)


@pytest.mark.parametrize(("scope", "headers", "status"), [
    pytest.param(None, {}, 401, id="upgrade without a token is refused with 401"),
    pytest.param("orders:read", {}, 403, id="upgrade with a token lacking the scope gets 403"),
    pytest.param(None, {"Authorization": "Bearer x.y.z"}, 401,
                 id="upgrade with a bad token is refused with 401"),
])
async def test_upgrade_is_authorised_like_any_request(ws_gateway, upstream, make_token,
                                                      scope, headers, status):
    if scope is not None:
        headers = {"Authorization": "Bearer " + make_token(scope=scope)}
    async with aiohttp.ClientSession() as s:
        with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
            await s.ws_connect(ws_gateway.url + "/chat/room", headers=headers)
    assert exc.value.status == status
    assert upstream.hits == []


async def test_frames_are_relayed_both_ways(ws_gateway, upstream, make_token):
    token = make_token(scope="chat", sub="carol")
    blob = os.urandom(200_000)
    async with aiohttp.ClientSession() as s, s.ws_connect(
        ws_gateway.url + "/chat/room?x=1", headers={"Authorization": f"Bearer {token}"},
        protocols=("chat.v1",), autoping=False,
    ) as ws:
        assert ws.protocol == "chat.v1"  # the upstream's choice, passed through
        await ws.send_str("héllo")
        assert await ws.receive_str(timeout=5) == "héllo"
        await ws.send_bytes(blob)
        assert await ws.receive_bytes(timeout=5) == blob
        await ws.ping(b"are you there")
        pong = await ws.receive(timeout=5)
        assert (pong.type, pong.data) == (aiohttp.WSMsgType.PONG, b"are you there")
        await ws.send_str("headers")
        seen = {k.lower(): v for k, v in await ws.receive_json(timeout=5)}
    assert seen["x-auth-subject"] == "carol"
    assert seen["x-auth-scopes"] == "chat"
    assert seen["authorization"] == f"Bearer {token}"
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert upstream.hits[0].raw_path == "/chat/room?x=1"
    await eventually(lambda: ws_gateway.sample("gateway_requests_total", {
        "route": "chat", "method": "GET", "code": "101"}) == 1)
    assert ws_gateway.sample("gateway_websocket_sessions") == 0
    assert ws_gateway.sample("gateway_websocket_messages_total",
                             {"route": "chat", "direction": "to_upstream"}) == 4


async def test_client_close_code_reaches_the_upstream(ws_gateway, upstream):
    async with aiohttp.ClientSession() as s:
        ws = await s.ws_connect(ws_gateway.url + "/public/ws")
        await ws.send_str("one")
        assert await ws.receive_str(timeout=5) == "one"
        await ws.close(code=4001, message=b"bye")
        assert ws.close_code == 1000  # the upstream's answer (aiohttp answers 1000), passed back
    await eventually(lambda: upstream.ws_closes == [4001])


async def test_upstream_close_code_and_reason_reach_the_client(ws_gateway, upstream):
    async with aiohttp.ClientSession() as s, s.ws_connect(ws_gateway.url + "/public/ws") as ws:
        await ws.send_str("close 4002 done for today")
        msg = await ws.receive(timeout=5)
    assert (msg.type, msg.data, msg.extra) == (aiohttp.WSMsgType.CLOSE, 4002, "done for today")


async def test_upstream_vanishing_closes_the_client_with_1014(ws_gateway, upstream):
    async with aiohttp.ClientSession() as s, s.ws_connect(ws_gateway.url + "/public/ws") as ws:
        await ws.send_str("abort")
        msg = await ws.receive(timeout=5)
    assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, 1014)


async def test_client_vanishing_closes_the_upstream_with_1001(ws_gateway, upstream):
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(ws_gateway.url))
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(request_bytes("GET /public/ws HTTP/1.1", "Host: localhost",
                               "Upgrade: websocket", "Connection: Upgrade",
                               f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"))
    response = await read_response(reader, head=True)
    assert response.status == 101
    assert writer.transport is not None
    writer.transport.abort()
    await eventually(lambda: upstream.ws_closes == [1001])
    await eventually(lambda: ws_gateway.sample("gateway_websocket_sessions") == 0)


async def test_silent_session_is_closed_after_the_idle_timeout(ws_gateway, upstream):
    async with aiohttp.ClientSession() as s, s.ws_connect(ws_gateway.url + "/quiet/ws") as ws:
        await ws.send_str("hello")
        assert await ws.receive_str(timeout=5) == "hello"
        loop = asyncio.get_running_loop()
        started = loop.time()
        msg = await ws.receive(timeout=5)
        waited = loop.time() - started
    assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, 1001)
    assert 0.25 <= waited < 2
    await eventually(lambda: upstream.ws_closes == [1001])


async def test_message_over_the_size_limit_closes_with_1009(ws_gateway, upstream):
    async with aiohttp.ClientSession() as s, s.ws_connect(ws_gateway.url + "/small/ws") as ws:
        await ws.send_bytes(b"x" * 2048)
        msg = await ws.receive(timeout=5)
    assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, 1009)
    await eventually(lambda: upstream.ws_closes == [1009])


async def test_upgrade_refused_by_the_upstream_passes_its_status(ws_gateway, upstream):
    async with aiohttp.ClientSession() as s:
        with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
            await s.ws_connect(ws_gateway.url + "/public/ws?_behave=status&code=403")
    assert exc.value.status == 403


async def test_route_without_websocket_forwards_a_plain_get(ws_gateway, upstream):
    async with aiohttp.ClientSession() as s:
        with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
            await s.ws_connect(ws_gateway.url + "/nows/ws")
    assert exc.value.status == 200  # the upstream answered a GET, not an upgrade
    names = {n.lower() for n, _ in upstream.hits[0].headers}
    assert "upgrade" not in names and "sec-websocket-key" in names
