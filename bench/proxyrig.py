"""Shared rig for the proxy benchmarks (transfer.py, websocket.py).

Starts, each in its own process on 127.0.0.1 and free ports: a bench upstream (this file run as
``python bench/proxyrig.py upstream``) and the gateway (``python -m gateway run`` on a config
generated here, routes without authentication). Samples a process's resident set size from
/proc. Everything started is stopped at the end (SIGTERM, then SIGKILL).

The upstream serves:
- ``GET /source?size=N``: N bytes (chunked, 256 KiB blocks of one random buffer);
- ``POST /sink``: reads the body, answers its length;
- ``GET /ws``: a WebSocket echo.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
BLOCK = os.urandom(256 * 1024)


def rss_bytes(pid: int) -> tuple[int, int]:
    """(current RSS, peak RSS) of a process, in bytes."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) * 1024
    return fields["VmRSS"], fields["VmHWM"]


def _wait_for(
    proc: subprocess.Popen[bytes], pattern: bytes, timeout: float = 20.0
) -> re.Match[bytes]:
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    seen = b""
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            raise RuntimeError(f"process exited: {seen.decode(errors='replace')}")
        seen += line
        m = re.search(pattern, line)
        if m:
            return m
    raise RuntimeError(f"no {pattern!r} within {timeout}s: {seen.decode(errors='replace')}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def running_rig(loop: str = "auto", **route: Any) -> Iterator[tuple[str, str, int]]:
    """Yield (gateway URL, upstream URL, gateway pid)."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        upstream = subprocess.Popen(
            [sys.executable, __file__, "upstream"], stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
        )
        procs.append(upstream)
        up_port = int(_wait_for(upstream, rb"port (\d+)").group(1))
        up_url = f"http://127.0.0.1:{up_port}"
        with tempfile.TemporaryDirectory() as tmp:
            config = {
                "server": {"listen": "127.0.0.1:0", "max_body_size": 0},
                "admin": {"listen": "127.0.0.1:0"},
                "routes": [{"name": "bench", "match": {"path_prefix": "/"},
                            "upstream": up_url, "auth": "none", **route}],
            }
            path = Path(tmp) / "gateway.yaml"
            path.write_text(yaml.safe_dump(config))
            gateway = subprocess.Popen(
                [sys.executable, "-m", "gateway", "run", "-c", str(path), "--loop", loop,
                 "--log-level", "warning"],
                cwd=REPO, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
            )
            procs.append(gateway)
            m = _wait_for(gateway, rb"public http://(\S+) ")
            yield f"http://{m.group(1).decode()}", up_url, gateway.pid
    finally:
        for proc in reversed(procs):
            _stop(proc)


def _serve_upstream() -> None:
    import asyncio

    from aiohttp import WSMsgType, web

    async def source(request: web.Request) -> web.StreamResponse:
        size = int(request.query["size"])
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        sent = 0
        while sent < size:
            block = BLOCK[: size - sent]
            await resp.write(block)
            sent += len(block)
        await resp.write_eof()
        return resp

    async def sink(request: web.Request) -> web.Response:
        size = 0
        async for chunk in request.content.iter_any():
            size += len(chunk)
        return web.Response(text=str(size))

    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
            elif msg.type == WSMsgType.TEXT:
                await ws.send_str(msg.data)
        return ws

    async def main() -> None:
        app = web.Application(client_max_size=0)
        app.router.add_get("/source", source)
        app.router.add_post("/sink", sink)
        app.router.add_get("/ws", echo)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        print(f"port {runner.addresses[0][1]}", file=sys.stderr, flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(main())


if __name__ == "__main__":
    if sys.argv[1:] == ["upstream"]:
        _serve_upstream()
    else:
        sys.exit("usage: proxyrig.py upstream")
