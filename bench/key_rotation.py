"""Key rotation under load: how long after a provider rotates its signing key does the gateway
accept the first token with the new kid, and how many requests fail meanwhile?

Runs on loopback in one process: a real authorization server (Authlib, from the test fixtures),
the gateway with ``discovery: true``, an echo upstream and ``--clients`` client loops that each
get a fresh token from the provider and call the gateway, without pause. The provider rotates
``--rotations`` times, ``--interval`` seconds apart (longer than the gateway's cooldown).

    python bench/key_rotation.py --clients 8 --rotations 10 --interval 1.5

Prints one line per rotation and a summary; exit status 1 if any request was refused.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import jwt
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.app import GatewayServer
from gateway.config.load import load_config
from tests.fixtures.authlib_idp import start_authlib_idp
from tests.fixtures.tokens import AUDIENCE
from tests.fixtures.upstream import start_upstream


async def run(clients: int, rotations: int, interval: float, alg: str) -> int:
    idp, idp_runner = await start_authlib_idp(alg)
    upstream, up_runner = await start_upstream()
    folder = Path(tempfile.mkdtemp(prefix="rotation-bench-"))
    config = {
        "server": {"listen": "127.0.0.1:0"}, "admin": {"listen": "127.0.0.1:0"},
        "issuers": [{"issuer": idp.issuer, "audiences": [AUDIENCE], "discovery": True,
                     "allow_insecure_http": True, "algorithms": [alg],
                     "require_typ": "at+jwt", "jwks": {"cooldown": "1s"}}],
        "routes": [{"name": "orders", "match": {"path_prefix": "/api"},
                    "upstream": upstream.url, "require": {"scopes": ["orders:read"]}}],
    }
    (folder / "gateway.yaml").write_text(yaml.safe_dump(config))
    server = GatewayServer(load_config(folder / "gateway.yaml"))
    await server.start()
    assert server.public_address is not None
    url = f"http://127.0.0.1:{server.public_address.port}/api/orders"
    [cache] = server.providers.caches()
    await cache.wait_ready(5)
    results: list[tuple[str, int, float]] = []   # (kid, status, answered at)
    first_call: dict[str, float] = {}            # kid → duration of its first gateway call
    stop = asyncio.Event()

    async def client() -> None:
        async with aiohttp.ClientSession() as s:
            while not stop.is_set():
                token = await idp.token()
                kid = jwt.get_unverified_header(token)["kid"]
                sent = time.perf_counter()
                async with s.get(url, headers={"Authorization": f"Bearer {token}"}) as r:
                    await r.read()
                    done = time.perf_counter()
                    results.append((kid, r.status, done))
                    first_call.setdefault(kid, (done - sent) * 1000)

    tasks = [asyncio.create_task(client()) for _ in range(clients)]
    delays: list[float] = []
    calls: list[float] = []
    try:
        await asyncio.sleep(interval)
        for n in range(rotations):
            kid = idp.rotate()
            rotated = idp.rotations[-1][1]
            await asyncio.sleep(interval)
            accepted = [t for k, status, t in results if k == kid and status == 200]
            delay = (min(accepted) - rotated) * 1000 if accepted else float("nan")
            delays.append(delay)
            calls.append(first_call.get(kid, float("nan")))
            print(f"rotation {n + 1:2d}: kid {kid}: first accepted after {delay:7.1f} ms "
                  f"(that gateway call, with the JWKS refetch: {calls[-1]:6.1f} ms)")
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await server.stop()
        await up_runner.cleanup()
        await idp_runner.cleanup()
    refused = [status for _, status, _ in results if status != 200]
    print(f"\n{len(results)} requests by {clients} clients, {len(refused)} refused "
          f"({sorted(set(refused))}), {idp.jwks_fetches} JWKS fetches for {rotations} rotations")
    print(f"delay rotation → first accepted token with the new kid ({alg}): "
          f"min {min(delays):.1f} ms, median {statistics.median(delays):.1f} ms, "
          f"max {max(delays):.1f} ms")
    print(f"first gateway call with a new kid (unknown kid → refetch → verify): "
          f"median {statistics.median(calls):.1f} ms, max {max(calls):.1f} ms")
    return 1 if refused else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rotations", type=int, default=10)
    parser.add_argument("--interval", type=float, default=1.5, help="seconds between rotations")
    parser.add_argument("--alg", default="RS256", choices=["RS256", "ES256", "ES384", "ES512"])
    args = parser.parse_args()
    return asyncio.run(run(args.clients, args.rotations, args.interval, args.alg))


if __name__ == "__main__":
    sys.exit(main())
