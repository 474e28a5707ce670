"""WebSocket throughput through the gateway, against the same upstream reached directly.

    python bench/websocket.py                       # 64 B, 4 KiB and 64 KiB messages
    python bench/websocket.py --seconds 5 --window 64

The gateway runs as its own process in front of the bench upstream's echo endpoint
(bench/proxyrig.py). For each message size, one session sends binary messages for
``--seconds`` with up to ``--window`` of them in flight and reads the echoes: messages per
second (each way) and MiB/s (each way) are reported for the direct path and through the gateway;
the ratio is what the relay costs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.proxyrig import running_rig

MiB = 1024 * 1024


async def echo_rate(url: str, size: int, seconds: float, window: int) -> float:
    """Echoed messages per second over one session."""
    payload = os.urandom(size)
    async with aiohttp.ClientSession() as session, session.ws_connect(
        url, max_msg_size=0, compress=0
    ) as ws:
        in_flight = asyncio.Semaphore(window)
        stop = time.perf_counter() + seconds
        sent = 0

        async def sender() -> None:
            nonlocal sent
            while time.perf_counter() < stop:
                await in_flight.acquire()
                await ws.send_bytes(payload)
                sent += 1

        task = asyncio.create_task(sender())
        started = time.perf_counter()
        received = 0
        while not (task.done() and received == sent):
            msg = await ws.receive(timeout=30)
            assert msg.type == aiohttp.WSMsgType.BINARY and len(msg.data) == size
            received += 1
            in_flight.release()
        elapsed = time.perf_counter() - started
        await task
        return received / elapsed


async def run(sizes: list[int], seconds: float, window: int, loop: str) -> None:
    with running_rig(loop=loop) as (gateway, upstream, _pid):
        gw_ws = gateway.replace("http://", "ws://") + "/ws"
        up_ws = upstream.replace("http://", "ws://") + "/ws"
        await echo_rate(gw_ws, 64, 0.5, window)  # warm-up
        print("| message | direct msg/s | gateway msg/s | gateway MiB/s each way | ratio |")
        print("|---|---|---|---|---|")
        for size in sizes:
            direct = await echo_rate(up_ws, size, seconds, window)
            relayed = await echo_rate(gw_ws, size, seconds, window)
            print(f"| {size} B | {direct:,.0f} | {relayed:,.0f} | "
                  f"{relayed * size / MiB:,.1f} | {relayed / direct:.2f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--window", type=int, default=32, help="messages in flight")
    parser.add_argument("--sizes", default="64,4096,65536", help="message sizes in bytes")
    parser.add_argument("--loop", default="auto", choices=["auto", "asyncio", "uvloop"])
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    asyncio.run(run(sizes, args.seconds, args.window, args.loop))
    return 0


if __name__ == "__main__":
    sys.exit(main())
