"""Large bodies through the gateway: throughput and the gateway's memory (RSS) while they pass.

    python bench/transfer.py                 # 1 GiB down, then 1 GiB up
    python bench/transfer.py --size 256MiB

The gateway runs as its own process (``python -m gateway run``) in front of the bench upstream
(bench/proxyrig.py), both on 127.0.0.1. The client (this process) downloads ``--size`` bytes
from ``GET /source`` and uploads as many to ``POST /sink``, streaming both ways and keeping
nothing. The gateway's resident set size is sampled every 20 ms from /proc: the table shows it
before, its highest value during, and after each transfer. Flat memory means the peak stays
close to the baseline whatever the size.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.proxyrig import BLOCK, rss_bytes, running_rig
from gateway.config.sizes import parse_size

MiB = 1024 * 1024


class RssSampler:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes(self.pid)[0])
            time.sleep(0.02)

    def __enter__(self) -> RssSampler:
        self.before = rss_bytes(self.pid)[0]
        self.peak = self.before
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.after = rss_bytes(self.pid)[0]


async def download(session: aiohttp.ClientSession, url: str, size: int) -> int:
    received = 0
    async with session.get(f"{url}/source?size={size}") as r:
        r.raise_for_status()
        async for chunk in r.content.iter_chunked(256 * 1024):
            received += len(chunk)
    return received


async def upload(session: aiohttp.ClientSession, url: str, size: int) -> int:
    async def body() -> AsyncIterator[bytes]:
        sent = 0
        while sent < size:
            block = BLOCK[: size - sent]
            sent += len(block)
            yield block

    async with session.post(f"{url}/sink", data=body(),
                            headers={"Content-Length": str(size)}) as r:
        r.raise_for_status()
        return int(await r.text())


async def run(size: int, loop: str) -> list[dict[str, float | str]]:
    rows: list[dict[str, float | str]] = []
    with running_rig(loop=loop) as (gateway, _upstream, pid):
        timeout = aiohttp.ClientTimeout(total=None)
        async with aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session:
            await download(session, gateway, 1 * MiB)  # warm-up: connections, imports
            await upload(session, gateway, 1 * MiB)
            for name, transfer in (("download", download), ("upload", upload)):
                with RssSampler(pid) as rss:
                    started = time.perf_counter()
                    moved = await transfer(session, gateway, size)
                    seconds = time.perf_counter() - started
                assert moved == size, f"{name}: {moved} of {size} bytes"
                rows.append({
                    "direction": name, "bytes": size, "seconds": round(seconds, 2),
                    "MiB/s": round(size / MiB / seconds, 1),
                    "rss_before_MiB": round(rss.before / MiB, 1),
                    "rss_peak_MiB": round(rss.peak / MiB, 1),
                    "rss_after_MiB": round(rss.after / MiB, 1),
                })
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1GiB", help="bytes each way (default 1GiB)")
    parser.add_argument("--loop", default="auto", choices=["auto", "asyncio", "uvloop"])
    args = parser.parse_args()
    rows = asyncio.run(run(parse_size(args.size), args.loop))
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(str(row[k]) for k in keys) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
