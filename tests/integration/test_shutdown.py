"""Graceful shutdown on SIGTERM, with the gateway as a real process.

Stop accepting at once, ``/readyz`` not ready at once, in-flight requests and WebSocket
sessions finish (up to ``server.shutdown_timeout``), exit code 0.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from tests.fixtures.gateway import base_config
from tests.fixtures.raw import port_of, read_response, request_bytes
from tests.fixtures.waiting import eventually

pytestmark = pytest.mark.integration


async def readyz(admin_url: str) -> int:
    async with aiohttp.ClientSession() as s, s.get(admin_url + "/readyz") as r:
        return r.status


async def test_sigterm_lets_the_in_flight_request_finish_and_exits_0(
    gateway_process, tmp_path, upstream, rsa_key, ec_key
):
    gw = await gateway_process(base_config(tmp_path, upstream, rsa_key, ec_key))
    assert await readyz(gw.admin_url) == 200
    async with aiohttp.ClientSession() as client:
        in_flight = asyncio.create_task(
            client.get(gw.url + "/public/slow?_behave=slow&delay=1.5")
        )
        await eventually(lambda: len(upstream.hits) == 1)
        gw.terminate()
        signalled = time.monotonic()
        # Not ready at once, while the admin listener still answers during the drain.
        async with asyncio.timeout(1.0):
            while await readyz(gw.admin_url) != 503:
                await asyncio.sleep(0.02)
        # No longer accepting on the public listener.
        with pytest.raises(aiohttp.ClientConnectionError):
            async with aiohttp.ClientSession() as other:
                await other.get(gw.url + "/public/new")
        response = await in_flight
        assert response.status == 200
        assert response.headers["Connection"] == "close"  # its connection closes after it
        assert (await response.json())["raw_path"] == "/public/slow?_behave=slow&delay=1.5"
        response.release()
    assert await gw.wait() == 0
    assert time.monotonic() - signalled < 10, "the drain waited for nothing but the request"
    assert [h.raw_path for h in upstream.hits] == ["/public/slow?_behave=slow&delay=1.5"]


async def test_idle_keep_alive_connections_do_not_delay_the_exit(
    gateway_process, tmp_path, upstream, rsa_key, ec_key
):
    config = base_config(tmp_path, upstream, rsa_key, ec_key)
    config["server"]["shutdown_timeout"] = "30s"
    gw = await gateway_process(config)
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(gw.url))
    writer.write(request_bytes("GET /public/one HTTP/1.1", "Host: localhost"))
    first = await read_response(reader)
    assert first.status == 200 and not first.closed  # kept alive, now idle
    started = time.monotonic()
    gw.terminate()
    assert await gw.wait() == 0
    assert time.monotonic() - started < 5
    assert await reader.read() == b""  # closed by the gateway
    writer.close()


async def test_a_request_outliving_the_shutdown_timeout_is_cut(
    gateway_process, tmp_path, upstream, rsa_key, ec_key
):
    config = base_config(tmp_path, upstream, rsa_key, ec_key)
    config["server"]["shutdown_timeout"] = "500ms"
    gw = await gateway_process(config)
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(gw.url))
    writer.write(request_bytes("GET /public/stuck?_behave=slow&delay=4 HTTP/1.1",
                               "Host: localhost"))
    await eventually(lambda: len(upstream.hits) == 1)
    started = time.monotonic()
    gw.terminate()
    assert await gw.wait() == 0
    assert time.monotonic() - started < 3
    assert await reader.read() == b""  # no answer: the connection was closed
    writer.close()


async def test_websocket_session_keeps_relaying_during_the_drain_then_gets_1001(
    gateway_process, tmp_path, upstream, rsa_key, ec_key
):
    config = base_config(tmp_path, upstream, rsa_key, ec_key)
    config["server"]["shutdown_timeout"] = "1s"
    gw = await gateway_process(config)
    async with aiohttp.ClientSession() as client, client.ws_connect(
        gw.url + "/public/ws"
    ) as ws:
        await ws.send_str("before")
        assert await ws.receive_str(timeout=5) == "before"
        gw.terminate()
        async with asyncio.timeout(1.0):
            while await readyz(gw.admin_url) != 503:
                await asyncio.sleep(0.02)
        await ws.send_str("during the drain")
        assert await ws.receive_str(timeout=5) == "during the drain"
        closing = await ws.receive(timeout=10)
        assert closing.type == aiohttp.WSMsgType.CLOSE
        assert closing.data == 1001  # going away
    assert await gw.wait() == 0
    await eventually(lambda: upstream.ws_closes == [1001])
