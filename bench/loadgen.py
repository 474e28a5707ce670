"""The fallback load generator when ``wrk`` is not on PATH: asyncio + aiohttp, one process.

Run by ``bench/run.py`` as its own process (never in the process being measured)::

    python bench/loadgen.py URL --connections 32 --duration 10 [-H "Name: value"]...

Keeps ``--connections`` keep-alive connections busy for ``--duration`` seconds, each with one
request in flight, and prints one JSON object: requests, status counts, socket errors, requests
per second and latency percentiles. A Python load generator saturates long before wrk does, so
with it the numbers are lower bounds and the gateway/baseline ratio is compressed towards 1.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import sys
import time
from collections import Counter
from typing import Any

import aiohttp


def percentile(sorted_values: list[float], fraction: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


async def worker(session: aiohttp.ClientSession, url: str, headers: dict[str, str],
                 deadline: float, latencies: list[float], statuses: Counter[int],
                 errors: Counter[str]) -> None:
    clock = time.perf_counter
    while True:
        started = clock()
        if started >= deadline:
            return
        try:
            async with session.get(url, headers=headers, allow_redirects=False) as resp:
                await resp.read()
                statuses[resp.status] += 1
        except (aiohttp.ClientError, OSError) as exc:
            errors[type(exc).__name__] += 1
            continue
        except TimeoutError:
            errors["timeout"] += 1
            continue
        latencies.append(clock() - started)


async def run(url: str, connections: int, duration: float, headers: dict[str, str],
              timeout: float) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    connector = aiohttp.TCPConnector(limit=connections, limit_per_host=connections)
    async with aiohttp.ClientSession(
        connector=connector, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=timeout),
    ) as session:
        started = time.perf_counter()
        deadline = started + duration
        await asyncio.gather(*(
            worker(session, url, headers, deadline, latencies, statuses, errors)
            for _ in range(connections)
        ))
        elapsed = time.perf_counter() - started
    latencies.sort()
    requests = sum(statuses.values())
    p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
    return {
        "requests": requests,
        "duration_s": round(elapsed, 3),
        "requests_per_s": round(requests / elapsed, 1) if elapsed > 0 else 0.0,
        "p50_ms": None if p50 is None else round(p50 * 1000, 3),
        "p99_ms": None if p99 is None else round(p99 * 1000, 3),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "non_2xx_3xx": sum(v for k, v in statuses.items() if not 200 <= k < 400),
        "socket_errors": sum(errors.values()),
        "socket_error_kinds": dict(errors),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=5.0, help="per request, seconds")
    parser.add_argument("-H", "--header", action="append", default=[], metavar="'Name: value'")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop's event loop")
    args = parser.parse_args()
    headers: dict[str, str] = {}
    for line in args.header:
        name, sep, value = line.partition(":")
        if not sep:
            parser.error(f"header {line!r} is not 'Name: value'")
        headers[name.strip()] = value.strip()
    if args.uvloop:
        uvloop = importlib.import_module("uvloop")
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    result = asyncio.run(run(args.url, args.connections, args.duration, headers, args.timeout))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
