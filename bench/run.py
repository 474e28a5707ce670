"""Benchmark the gateway against a plain aiohttp pass-through proxy, in the same run.

    python bench/run.py --duration 10 --connections 32

Everything runs on 127.0.0.1, on free ports, each part in its own process: a fast upstream
(``bench/upstream.py``), the baseline proxy (``bench/passthrough.py``) and two gateways
(``python -m gateway run -c <generated config> --loop asyncio``: one without a revocation
section, one with ``revocation: {store: memory}`` holding some unrelated revocations). The RSA
key, the JWKS file, the config and the RS256 token are created here for this run only. See
bench/README.md for what the columns mean and the measured results.

Scenarios, each for ``--duration`` seconds at ``--connections`` connections after a short
warm-up: (a) upstream direct, (b) baseline proxy, (c) gateway with a valid token, (d) gateway with
revocation on, (e) gateway refusing a request without a token (401). The load generator is
``wrk`` when it is on PATH (with ``bench/wrk_report.lua``), else ``bench/loadgen.py``.

Prints a markdown table and writes JSON to ``bench/results/latest.json``. The ratio
gateway/baseline, not an absolute number, says what the gateway costs. Exit status: 0 when every
scenario answered as expected (only 2xx where 200 is expected, only non-2xx for the 401
scenario, no socket errors), 1 otherwise, 130 on Ctrl-C. Every process started here is stopped
at the end (SIGTERM, then SIGKILL), on errors and Ctrl-C too.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.util
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jwt
import yaml
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
DEFAULT_OUTPUT = BENCH / "results" / "latest.json"
WRK_SCRIPT = BENCH / "wrk_report.lua"

ISSUER = "https://idp.bench.invalid/"
AUDIENCE = "https://api.bench.invalid"
SCOPE = "bench:read"
PATH = "/api/items/42?view=full"
ADMIN_TOKEN = "bench-admin-token-" + uuid.uuid4().hex
REALM_CHALLENGE = 'Bearer realm="gateway"'
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
NOISY_OTHER_CORES = 0.2  # foreign CPU use above this during a scenario is reported


class BenchError(Exception):
    """A part did not start or did not answer as expected; the message says which."""


# -- processes ------------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return "(no log)"
        return "\n".join("    " + line for line in text)


class Processes:
    """Everything this run started; ``stop_all`` terminates, waits, then kills."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.procs: list[Proc] = []

    def start(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None) -> Proc:
        log = self.logdir / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=REPO, env=env, start_new_session=True,  # Ctrl-C reaches us, not them
            )
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def stop(self, proc: Proc) -> None:
        if proc.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.popen.terminate()
            try:
                proc.popen.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.popen.kill()
                proc.popen.wait(STOP_TIMEOUT)
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in list(self.procs):
            if proc.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.popen.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        for proc in list(self.procs):
            try:
                proc.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.popen.kill()
                proc.popen.wait(STOP_TIMEOUT)
        self.procs.clear()


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (all held open at once while picking)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


def http(method: str, url: str, headers: dict[str, str] | None = None,
         body: bytes | None = None, timeout: float = 5.0) -> Reply:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return Reply(resp.status, dict(resp.headers.items()), resp.read())
    except urllib.error.HTTPError as err:
        return Reply(err.code, dict(err.headers.items()), err.read())


def wait_ready(proc: Proc, url: str, timeout: float = STARTUP_TIMEOUT) -> None:
    """Poll ``url`` until it answers 200; fail early if the process dies."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise BenchError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.tail()}")
        try:
            reply = http("GET", url, timeout=1.0)
            if reply.status == 200:
                return
            last = f"HTTP {reply.status}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.05)
    raise BenchError(f"{proc.name} not ready at {url} after {timeout:.0f}s ({last}):\n"
                     f"{proc.tail()}")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux /proc), None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- keys, token, config --------------------------------------------------------------------


@dataclass
class Credentials:
    private_key: rsa.RSAPrivateKey
    kid: str

    def token(self, *, scope: str = SCOPE, jti: str | None = None, ttl: int = 3600) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER, "aud": AUDIENCE, "sub": "bench-user", "client_id": "bench-client",
            "scope": scope, "iat": now, "nbf": now, "exp": now + ttl,
            "jti": jti or uuid.uuid4().hex,
        }
        return jwt.encode(claims, self.private_key, algorithm="RS256",
                          headers={"kid": self.kid, "typ": "at+jwt"})


def make_credentials(workdir: Path) -> tuple[Credentials, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = "bench-" + uuid.uuid4().hex[:8]
    jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwk.update({"kid": kid, "alg": "RS256", "use": "sig"})
    jwks = workdir / "idp.jwks.json"
    jwks.write_text(json.dumps({"keys": [jwk]}))
    return Credentials(key, kid), jwks


def gateway_config(workdir: Path, name: str, public: int, admin: int, upstream: str,
                   jwks: Path, *, revocation: bool) -> Path:
    token_file = workdir / "admin-token"
    token_file.write_text(ADMIN_TOKEN + "\n")
    config: dict[str, Any] = {
        "server": {"listen": f"127.0.0.1:{public}"},
        "admin": {"listen": f"127.0.0.1:{admin}", "token_file": str(token_file)},
        "issuers": [{
            "issuer": ISSUER, "audiences": [AUDIENCE], "keys": [str(jwks)],
            "algorithms": ["RS256"], "leeway": "30s",
        }],
        "routes": [
            {"name": "bench-read", "match": {"path_prefix": "/api/items", "methods": ["GET"]},
             "upstream": upstream, "require": {"scopes": [SCOPE]}},
            {"name": "health", "match": {"path": "/health"}, "upstream": upstream,
             "auth": "none"},
        ],
    }
    if revocation:
        config["revocation"] = {"store": "memory", "on_unavailable": "deny"}
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def seed_revocations(admin_url: str, count: int) -> None:
    """Unrelated revocations, so each lookup reads a non-empty store."""
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}
    exp = time.time() + 3600
    bodies: list[dict[str, Any]] = [{"jti": f"bench-revoked-{i}", "exp": exp}
                                    for i in range(count)]
    bodies.append({"sub": "someone-else", "reason": "bench"})
    for body in bodies:
        reply = http("POST", f"{admin_url}/admin/revocations", headers,
                     json.dumps(body).encode())
        if reply.status != 201:
            raise BenchError(f"seeding revocation {body}: HTTP {reply.status} {reply.body[:200]!r}")


# -- load generators ------------------------------------------------------------------------


@dataclass
class LoadResult:
    requests: int
    duration_s: float
    requests_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    non_2xx_3xx: int
    socket_errors: int
    raw: dict[str, Any] = field(default_factory=dict)


_WRK_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _wrk_ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if m is None:
        raise BenchError(f"cannot read wrk latency {text!r}")
    return float(m[1]) * _WRK_UNITS[m[2]]


def parse_wrk(output: str) -> LoadResult:
    """wrk's text report, cross-checked with the WRK_JSON line of wrk_report.lua."""
    m = re.search(r"^WRK_JSON (\{.*\})$", output, re.M)
    if m is None:
        raise BenchError(f"wrk printed no WRK_JSON line:\n{output}")
    data: dict[str, Any] = json.loads(m[1])
    non2xx_line = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    non2xx = int(non2xx_line[1]) if non2xx_line else 0
    if non2xx != data["non_2xx_3xx"]:
        raise BenchError(f"wrk's Non-2xx line says {non2xx}, its summary {data['non_2xx_3xx']}")
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                     output)
    socket_errors = sum(int(x) for x in sock.groups()) if sock else 0
    rps_line = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50_line = re.search(r"^\s+50%\s+(\S+)$", output, re.M)
    p99_line = re.search(r"^\s+99%\s+(\S+)$", output, re.M)
    duration = data["duration_us"] / 1e6
    data["text_p50_ms"] = _wrk_ms(p50_line[1]) if p50_line else None
    data["text_p99_ms"] = _wrk_ms(p99_line[1]) if p99_line else None
    data["text_requests_per_s"] = float(rps_line[1]) if rps_line else None
    return LoadResult(
        requests=data["requests"],
        duration_s=round(duration, 3),
        requests_per_s=round(data["requests"] / duration, 1) if duration else 0.0,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        non_2xx_3xx=non2xx,
        socket_errors=socket_errors,
        raw=data,
    )


class LoadGenerator:
    def __init__(self, kind: str, procs: Processes, *, connections: int, threads: int,
                 uvloop: bool) -> None:
        self.kind = kind
        self.procs = procs
        self.connections = connections
        self.threads = threads
        self.uvloop = uvloop
        self.version = self._version()

    def _version(self) -> str:
        if self.kind == "wrk":
            out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=10)
            first = (out.stdout or out.stderr).strip().splitlines()
            return first[0].split(" Copyright")[0] if first else "wrk"
        import aiohttp

        return f"bench/loadgen.py (aiohttp {aiohttp.__version__})"

    def argv(self, url: str, duration: int, headers: dict[str, str]) -> list[str]:
        header_args = [a for k, v in headers.items() for a in ("-H", f"{k}: {v}")]
        if self.kind == "wrk":
            return ["wrk", "-t", str(self.threads), "-c", str(self.connections),
                    "-d", f"{duration:g}s", "--timeout", "5s", "--latency",
                    "-s", str(WRK_SCRIPT), *header_args, url]
        return [sys.executable, str(BENCH / "loadgen.py"), url,
                "--connections", str(self.connections), "--duration", f"{duration:g}",
                *header_args, *(["--uvloop"] if self.uvloop else [])]

    def run(self, name: str, url: str, duration: int, headers: dict[str, str]) -> LoadResult:
        proc = self.procs.start(f"load-{name}", self.argv(url, duration, headers))
        try:
            proc.popen.wait(duration + 30)
        except subprocess.TimeoutExpired:
            raise BenchError(f"load generator for {name} did not finish in time") from None
        finally:
            self.procs.stop(proc)
        output = proc.log.read_text(errors="replace")
        if proc.popen.returncode != 0:
            raise BenchError(f"load generator for {name} exited {proc.popen.returncode}:\n"
                             f"{output[-2000:]}")
        if self.kind == "wrk":
            return parse_wrk(output)
        data = json.loads(output.strip().splitlines()[-1])
        return LoadResult(
            requests=data["requests"], duration_s=data["duration_s"],
            requests_per_s=data["requests_per_s"], p50_ms=data["p50_ms"],
            p99_ms=data["p99_ms"], non_2xx_3xx=data["non_2xx_3xx"],
            socket_errors=data["socket_errors"], raw=data,
        )


# -- scenarios ------------------------------------------------------------------------------


@dataclass
class Scenario:
    key: str
    title: str
    url: str
    headers: dict[str, str]
    expect: int          # 200: every response 2xx; 401: no response 2xx/3xx
    proxy: Proc | None   # the process between load generator and upstream (CPU accounting)


@dataclass
class Outcome:
    key: str
    title: str
    expect: int
    probe_status: int
    result: LoadResult
    proxy_cpu_us_per_req: float | None
    upstream_cpu_us_per_req: float | None
    loadgen_cpu_cores: float | None   # CPU the load generator used, in cores
    other_cpu_cores: float | None     # CPU used by processes not started here, in cores
    ok: bool
    problems: list[str]


def probe(scenario: Scenario, reference_body: bytes) -> int:
    """One request before the load: the status and body/challenge must be the expected ones."""
    reply = http("GET", scenario.url, scenario.headers)
    if reply.status != scenario.expect:
        raise BenchError(f"{scenario.title}: probe got HTTP {reply.status}, expected "
                         f"{scenario.expect}: {reply.body[:300]!r}")
    if scenario.expect == 200 and reply.body != reference_body:
        raise BenchError(f"{scenario.title}: probe body {reply.body[:200]!r} is not the "
                         "upstream's")
    if scenario.expect == 401:
        challenge = reply.headers.get("WWW-Authenticate")
        if challenge != REALM_CHALLENGE:
            raise BenchError(f"{scenario.title}: WWW-Authenticate {challenge!r}, expected "
                             f"{REALM_CHALLENGE!r}")
    return reply.status


@dataclass
class CpuSnapshot:
    """CPU seconds at one moment: per process of ours, reaped children, us, the whole machine."""

    at: float
    procs: dict[str, float | None]
    children: float
    own: float
    system_busy: float | None

    @classmethod
    def take(cls, procs: Sequence[Proc]) -> CpuSnapshot:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        own = resource.getrusage(resource.RUSAGE_SELF)
        return cls(
            at=time.monotonic(),
            procs={p.name: cpu_seconds(p.pid) for p in procs},
            children=children.ru_utime + children.ru_stime,
            own=own.ru_utime + own.ru_stime,
            system_busy=system_busy_seconds(),
        )


def system_busy_seconds() -> float | None:
    """Busy CPU seconds of the whole machine since boot, all cores (Linux /proc/stat)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def run_scenario(load: LoadGenerator, scenario: Scenario, upstream: Proc, servers: list[Proc],
                 duration: int, warmup: int, reference_body: bytes) -> Outcome:
    status = probe(scenario, reference_body)
    if warmup > 0:
        load.run(f"{scenario.key}-warmup", scenario.url, warmup, scenario.headers)
    before = CpuSnapshot.take(servers)
    result = load.run(scenario.key, scenario.url, duration, scenario.headers)
    after = CpuSnapshot.take(servers)

    def used(proc: Proc) -> float | None:
        b, a = before.procs.get(proc.name), after.procs.get(proc.name)
        return None if a is None or b is None else a - b

    def per_request(proc: Proc | None) -> float | None:
        seconds = None if proc is None else used(proc)
        if seconds is None or not result.requests:
            return None
        return round(seconds / result.requests * 1e6, 1)

    elapsed = after.at - before.at
    loadgen = after.children - before.children  # the load generator was reaped in between
    other = None
    if before.system_busy is not None and after.system_busy is not None:
        ours = sum(x for x in (used(p) for p in servers) if x is not None)
        ours += loadgen + after.own - before.own
        other = round(max(0.0, after.system_busy - before.system_busy - ours) / elapsed, 2)

    problems = []
    if result.requests == 0:
        problems.append("no request completed")
    if result.socket_errors:
        problems.append(f"{result.socket_errors} socket errors")
    if scenario.expect == 200 and result.non_2xx_3xx:
        problems.append(f"{result.non_2xx_3xx} non-2xx/3xx responses where 200 was expected")
    if scenario.expect != 200 and result.non_2xx_3xx != result.requests:
        problems.append(f"{result.requests - result.non_2xx_3xx} 2xx/3xx responses where "
                        f"{scenario.expect} was expected")
    return Outcome(
        key=scenario.key, title=scenario.title, expect=scenario.expect, probe_status=status,
        result=result, proxy_cpu_us_per_req=per_request(scenario.proxy),
        upstream_cpu_us_per_req=per_request(upstream),
        loadgen_cpu_cores=round(loadgen / elapsed, 2), other_cpu_cores=other,
        ok=not problems, problems=problems,
    )


def median_outcome(rounds: list[Outcome]) -> Outcome:
    """One outcome per scenario from several rounds: the median of every number."""
    if len(rounds) == 1:
        return rounds[0]

    def med(values: list[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return round(statistics.median(present), 3) if present else None

    def med_int(values: list[int]) -> int:
        return round(statistics.median(values))

    first = rounds[0]
    rs = [o.result for o in rounds]
    result = LoadResult(
        requests=med_int([r.requests for r in rs]),
        duration_s=med([r.duration_s for r in rs]) or 0.0,
        requests_per_s=med([r.requests_per_s for r in rs]) or 0.0,
        p50_ms=med([r.p50_ms for r in rs]), p99_ms=med([r.p99_ms for r in rs]),
        non_2xx_3xx=med_int([r.non_2xx_3xx for r in rs]),
        socket_errors=sum(r.socket_errors for r in rs),
        raw={"rounds": len(rounds)},
    )
    return Outcome(
        key=first.key, title=first.title, expect=first.expect, probe_status=first.probe_status,
        result=result,
        proxy_cpu_us_per_req=med([o.proxy_cpu_us_per_req for o in rounds]),
        upstream_cpu_us_per_req=med([o.upstream_cpu_us_per_req for o in rounds]),
        loadgen_cpu_cores=med([o.loadgen_cpu_cores for o in rounds]),
        other_cpu_cores=med([o.other_cpu_cores for o in rounds]),
        ok=all(o.ok for o in rounds),
        problems=[p for o in rounds for p in o.problems],
    )


# -- profiling ------------------------------------------------------------------------------


def find_py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def _package_of(frame: str) -> str:
    """'func (aiohttp/client.py:12)' → the owner: aiohttp, asyncio, gateway.auth, logging, …

    py-spy shortens paths to the importable part (``aiohttp/client.py``, ``selectors.py``,
    ``gateway/auth/verify.py``); gateway frames keep their sub-package.
    """
    m = re.search(r"\((.*?)(?::\d+)?\)$", frame)
    parts = Path(m[1] if m else frame).parts
    if not parts:
        return frame
    if "site-packages" in parts:
        parts = parts[parts.index("site-packages") + 1:]
    if parts[0] == "gateway" and len(parts) > 2:
        return f"gateway.{parts[1]}"
    return parts[0].removesuffix(".py")


_ENTRY_FUNCTIONS = frozenset({"<module>", "main", "serve", "cmd_run", "_run"})
OUTSIDE = "(no own frame: event loop, aiohttp server/parser, socket writes)"


def _is_own(frame: str) -> bool:
    """A frame of the code under test (gateway/…, bench/passthrough.py), not its entry point."""
    m = re.match(r"(.*?) \((.*?)(?::\d+)?\)$", frame)
    if m is None:
        return False
    function, path = m[1], m[2]
    if function in _ENTRY_FUNCTIONS:
        return False
    parts = Path(path).parts
    return bool(parts) and (parts[0] == "gateway" or parts[-1] == "passthrough.py")


def summarise_profile(folded: Path, top: int = 15) -> dict[str, Any]:
    """Shares of py-spy samples: per function (self), per package (self), per own function.

    ``attributed`` charges each sample to the deepest frame of the code under test on its
    stack, so a gateway function's share includes the library calls it made but not the share
    of the gateway functions it called. ``own_inclusive`` is the usual inclusive share.
    """
    own_self: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    attributed: Counter[str] = Counter()
    own_inclusive: Counter[str] = Counter()
    total = 0
    for line in folded.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += count
        own_self[frames[-1]] += count
        packages[_package_of(frames[-1])] += count
        mine = [f for f in frames if _is_own(f)]
        attributed[mine[-1] if mine else OUTSIDE] += count
        for frame in set(mine):
            own_inclusive[frame] += count

    def share(counter: Counter[str]) -> list[dict[str, Any]]:
        return [{"name": k, "percent": round(100 * v / total, 1)}
                for k, v in counter.most_common(top)]

    if total == 0:
        return {"samples": 0}
    return {"samples": total, "self": share(own_self), "self_by_package": share(packages),
            "attributed": share(attributed), "own_inclusive": share(own_inclusive)}


def profile_process(py_spy: str, load: LoadGenerator, scenario: Scenario, duration: int,
                    out: Path, procs: Processes) -> dict[str, Any]:
    """py-spy on ``scenario.proxy`` (paused per sample) while the scenario's load runs."""
    assert scenario.proxy is not None
    spy = procs.start(f"py-spy-{scenario.key}", [
        py_spy, "record", "--pid", str(scenario.proxy.pid), "--duration", f"{duration:g}",
        "--rate", "200", "--function", "--format", "raw", "-o", str(out),
    ])
    time.sleep(0.5)  # let py-spy attach before the load starts
    try:
        load.run(f"{scenario.key}-profiled", scenario.url, duration, scenario.headers)
        spy.popen.wait(duration + 30)
    except subprocess.TimeoutExpired:
        raise BenchError("py-spy did not finish in time") from None
    finally:
        procs.stop(spy)
    if not out.exists():
        raise BenchError(f"py-spy wrote no profile:\n{spy.tail()}")
    return {"file": str(out), **summarise_profile(out)}


# -- report ---------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def ratios(outcomes: dict[str, Outcome]) -> dict[str, dict[str, float | None]]:
    base = outcomes.get("baseline")
    out: dict[str, dict[str, float | None]] = {}
    if base is None:
        return out

    def div(a: float | None, b: float | None) -> float | None:
        return None if a is None or not b else round(a / b, 3)

    for key in ("gateway", "gateway_revocation", "gateway_401"):
        o = outcomes.get(key)
        if o is None:
            continue
        out[f"{key}/baseline"] = {
            "requests_per_s": div(o.result.requests_per_s, base.result.requests_per_s),
            "p50_ms": div(o.result.p50_ms, base.result.p50_ms),
            "p99_ms": div(o.result.p99_ms, base.result.p99_ms),
            "proxy_cpu_us_per_req": div(o.proxy_cpu_us_per_req, base.proxy_cpu_us_per_req),
        }
    return out


def flat(o: Outcome) -> dict[str, Any]:
    return {**{k: v for k, v in asdict(o).items() if k != "result"}, **asdict(o.result)}


def markdown_table(outcomes: list[Outcome], base: Outcome | None) -> str:
    rows = [
        "| scenario | expect | req/s | p50 ms | p99 ms | non-2xx | socket err | "
        "proxy CPU µs/req | req/s vs baseline | other load (cores) | ok |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for o in outcomes:
        r = o.result
        vs = (f"{r.requests_per_s / base.result.requests_per_s:.2f}x"
              if base and base.result.requests_per_s else "-")
        rows.append(
            f"| {o.title} | {o.expect} | {_fmt(r.requests_per_s, 0)} | {_fmt(r.p50_ms)} | "
            f"{_fmt(r.p99_ms)} | {r.non_2xx_3xx} | {r.socket_errors} | "
            f"{_fmt(o.proxy_cpu_us_per_req, 0)} | {vs} | {_fmt(o.other_cpu_cores)} | "
            f"{'yes' if o.ok else 'NO'} |"
        )
    return "\n".join(rows)


def source_info() -> dict[str, Any]:
    """The commit measured and whether gateway/ had uncommitted changes (read-only git)."""
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                                 timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    status = git("status", "--porcelain", "--", "gateway")
    return {"commit": git("rev-parse", "--short", "HEAD"),
            "gateway_modified": None if status is None else bool(status)}


def machine_info() -> dict[str, Any]:
    model = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    import aiohttp

    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    return {
        "nproc": affinity or os.cpu_count(),
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "aiohttp": aiohttp.__version__,
        "pyjwt": jwt.__version__,
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


# -- main -----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--duration", type=int, default=10,
                        help="seconds per scenario (whole seconds: wrk takes no fractions)")
    parser.add_argument("--connections", type=int, default=32, help="concurrent connections")
    parser.add_argument("--threads", type=int, default=1,
                        help="wrk threads (on a 2-core machine every thread competes with the "
                             "processes under test)")
    parser.add_argument("--warmup", type=int, default=1,
                        help="seconds of unmeasured load before each scenario")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds over all scenarios; the table shows per-scenario medians")
    parser.add_argument("--load-generator", choices=["auto", "wrk", "python"], default="auto",
                        help="auto: wrk when on PATH, else bench/loadgen.py")
    parser.add_argument("--scenarios", default="direct,baseline,gateway,gateway_revocation,"
                        "gateway_401", help="comma-separated subset, in this order")
    parser.add_argument("--revoked", type=int, default=100,
                        help="unrelated jti revocations seeded into the revocation gateway")
    parser.add_argument("--gateway-log-level", default="info",
                        choices=["debug", "info", "warning", "error"],
                        help="the gateway's --log-level (info: one JSON access-log line per "
                             "request, written to a log file)")
    parser.add_argument("--uvloop", action="store_true",
                        help="run upstream, baseline, fallback load generator and gateway on "
                             "uvloop (default: all on asyncio's own loop)")
    parser.add_argument("--profile", action="store_true",
                        help="after the measured runs, sample the gateway and the baseline "
                             "with py-spy under the same load (unmeasured)")
    parser.add_argument("--profile-dir", type=Path, default=Path(tempfile.gettempdir()),
                        help="where --profile writes its folded stacks")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON results")
    parser.add_argument("--keep-logs", action="store_true",
                        help="keep the work directory with configs and process logs")
    args = parser.parse_args(argv)
    if min(args.duration, args.connections, args.threads, args.repeat) <= 0 or args.warmup < 0:
        parser.error("--duration, --connections, --threads and --repeat must be positive, "
                     "--warmup >= 0")
    if args.threads > args.connections:
        parser.error("--threads cannot exceed --connections")
    if args.uvloop and importlib.util.find_spec("uvloop") is None:
        parser.error("--uvloop: uvloop is not importable (pip install uvloop)")
    if args.load_generator == "wrk" and shutil.which("wrk") is None:
        parser.error("--load-generator wrk: wrk is not on PATH")
    return args


def gateway_has_loop_option() -> bool:
    """Whether ``gateway run`` takes ``--loop`` (asyncio|uvloop)."""
    out = subprocess.run([sys.executable, "-m", "gateway", "run", "--help"], cwd=REPO,
                         capture_output=True, text=True, timeout=30)
    return "--loop" in out.stdout


def gateway_argv(config: Path, log_level: str, uvloop: bool, loop_option: bool) -> list[str]:
    """The gateway's command line, on the same event loop as the baseline.

    With ``--loop`` the gateway is told which loop to use (its default, ``auto``, would pick
    uvloop whenever it is installed, and the comparison would be unfair); without it, uvloop
    is installed as the event loop policy before the CLI runs.
    """
    cli = ["run", "-c", str(config), "--log-level", log_level]
    if loop_option:
        return [sys.executable, "-m", "gateway", *cli, "--loop", "uvloop" if uvloop else "asyncio"]
    if not uvloop:
        return [sys.executable, "-m", "gateway", *cli]
    shim = ("import asyncio, sys, uvloop; asyncio.set_event_loop_policy(uvloop.EventLoopPolicy());"
            " from gateway.cli import main; sys.exit(main(sys.argv[1:]))")
    return [sys.executable, "-c", shim, *cli]


@contextlib.contextmanager
def workdir(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    try:
        yield path
    finally:
        if keep:
            print(f"work directory kept: {path}", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)


def bench(args: argparse.Namespace, work: Path, procs: Processes) -> dict[str, Any]:
    kind = args.load_generator
    if kind == "auto":
        kind = "wrk" if shutil.which("wrk") else "python"
    load = LoadGenerator(kind, procs, connections=args.connections, threads=args.threads,
                         uvloop=args.uvloop)
    print(f"load generator: {load.version}", file=sys.stderr)
    uv = ["--uvloop"] if args.uvloop else []
    (p_up, p_base, p_gw, p_gw_admin, p_rev, p_rev_admin) = free_ports(6)
    upstream_url = f"http://127.0.0.1:{p_up}"

    credentials, jwks = make_credentials(work)
    token = credentials.token()
    cfg_plain = gateway_config(work, "gateway", p_gw, p_gw_admin, upstream_url, jwks,
                               revocation=False)
    cfg_rev = gateway_config(work, "gateway-revocation", p_rev, p_rev_admin, upstream_url, jwks,
                             revocation=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("PYTHONDEVMODE", None)
    env.pop("PYTHONASYNCIODEBUG", None)

    upstream = procs.start("upstream", [sys.executable, str(BENCH / "upstream.py"),
                                        "--port", str(p_up), *uv], env)
    baseline = procs.start("baseline", [sys.executable, str(BENCH / "passthrough.py"),
                                        "--port", str(p_base), "--upstream", upstream_url, *uv],
                           env)
    loop_option = gateway_has_loop_option()
    gw = procs.start("gateway", gateway_argv(cfg_plain, args.gateway_log_level, args.uvloop,
                                             loop_option), env)
    gw_rev = procs.start("gateway-revocation", gateway_argv(
        cfg_rev, args.gateway_log_level, args.uvloop, loop_option), env)
    wait_ready(upstream, f"{upstream_url}/health")
    wait_ready(baseline, f"http://127.0.0.1:{p_base}/health")
    wait_ready(gw, f"http://127.0.0.1:{p_gw_admin}/readyz")
    wait_ready(gw_rev, f"http://127.0.0.1:{p_rev_admin}/readyz")
    seed_revocations(f"http://127.0.0.1:{p_rev_admin}", args.revoked)
    revoked_token = credentials.token(jti="bench-revoked-0")
    reply = http("GET", f"http://127.0.0.1:{p_rev}{PATH}",
                 {"Authorization": f"Bearer {revoked_token}"})
    if reply.status != 401:
        raise BenchError(f"a revoked token got HTTP {reply.status} from the revocation gateway")
    reference = http("GET", f"{upstream_url}{PATH}").body
    print("all processes ready", file=sys.stderr)

    bearer = {"Authorization": f"Bearer {token}"}
    all_scenarios = {
        "direct": Scenario("direct", "(a) upstream direct", f"{upstream_url}{PATH}", {}, 200,
                           None),
        "baseline": Scenario("baseline", "(b) baseline aiohttp pass-through",
                             f"http://127.0.0.1:{p_base}{PATH}", bearer, 200, baseline),
        "gateway": Scenario("gateway", "(c) gateway, valid token",
                            f"http://127.0.0.1:{p_gw}{PATH}", bearer, 200, gw),
        "gateway_revocation": Scenario("gateway_revocation",
                                       "(d) gateway + revocation (memory), valid token",
                                       f"http://127.0.0.1:{p_rev}{PATH}", bearer, 200, gw_rev),
        "gateway_401": Scenario("gateway_401", "(e) gateway, no token → 401",
                                f"http://127.0.0.1:{p_gw}{PATH}", {}, 401, gw),
    }
    wanted = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in all_scenarios]
    if unknown:
        raise BenchError(f"unknown scenarios {unknown}; known: {list(all_scenarios)}")

    servers = [upstream, baseline, gw, gw_rev]
    rounds: dict[str, list[Outcome]] = {key: [] for key in wanted}
    for round_no in range(1, args.repeat + 1):
        for key in wanted:
            scenario = all_scenarios[key]
            label = f" (round {round_no}/{args.repeat})" if args.repeat > 1 else ""
            print(f"running {scenario.title} for {args.duration}s{label} …", file=sys.stderr)
            outcome = run_scenario(load, scenario, upstream, servers, args.duration,
                                   args.warmup, reference)
            r = outcome.result
            print(f"  {r.requests_per_s:,.0f} req/s  p50 {_fmt(r.p50_ms)} ms  "
                  f"p99 {_fmt(r.p99_ms)} ms  non-2xx {r.non_2xx_3xx}  "
                  f"socket errors {r.socket_errors}  other load "
                  f"{_fmt(outcome.other_cpu_cores)} cores"
                  + ("" if outcome.ok else "  PROBLEMS: " + "; ".join(outcome.problems)),
                  file=sys.stderr)
            rounds[key].append(outcome)
    outcomes = [median_outcome(rounds[key]) for key in wanted]

    profiles: dict[str, Any] = {}
    if args.profile:
        py_spy = find_py_spy()
        if py_spy is None:
            print("--profile: py-spy not found (pip install py-spy); skipped", file=sys.stderr)
        else:
            args.profile_dir.mkdir(parents=True, exist_ok=True)
            for key in ("gateway", "baseline"):
                scenario = all_scenarios[key]
                out = args.profile_dir / f"bench-profile-{key}.folded"
                print(f"profiling {scenario.title} for {args.duration:g}s …", file=sys.stderr)
                profiles[key] = profile_process(py_spy, load, scenario, args.duration, out,
                                                procs)

    by_key = {o.key: o for o in outcomes}
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "machine": machine_info(),
        "source": source_info(),
        "parameters": {
            "duration_s": args.duration, "connections": args.connections,
            "threads": args.threads, "warmup_s": args.warmup, "repeat": args.repeat,
            "path": PATH,
            "revoked_entries": args.revoked + 1, "gateway_log_level": args.gateway_log_level,
            "uvloop": args.uvloop,
            "event_loop": "uvloop" if args.uvloop else "asyncio",
            "gateway_loop_option": loop_option,
        },
        "load_generator": load.version,
        "scenarios": [flat(o) for o in outcomes],
        "rounds": {key: [flat(o) for o in runs] for key, runs in rounds.items()}
        if args.repeat > 1 else None,
        "ratios": ratios(by_key),
        "profiles": profiles,
        "ok": all(o.ok for o in outcomes),
        "table_markdown": markdown_table(outcomes, by_key.get("baseline")),
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with workdir(args.keep_logs) as work:
        procs = Processes(work)
        # SIGTERM behaves like Ctrl-C, so the finally below always runs.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            report = bench(args, work, procs)
        except KeyboardInterrupt:
            print("interrupted: stopping everything", file=sys.stderr)
            return 130
        except BenchError as err:
            print(f"bench failed: {err}", file=sys.stderr)
            return 1
        finally:
            procs.stop_all()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print()
    print(f"{report['date']} · {report['load_generator']} · {args.connections} connections · "
          f"{args.duration:g}s per scenario · nproc {report['machine']['nproc']} · "
          f"Python {report['machine']['python']}")
    print()
    print(report["table_markdown"])
    print()
    for name, r in report["ratios"].items():
        parts = [f"{k} {_fmt(v, 3)}" for k, v in r.items()]
        print(f"{name}: " + ", ".join(parts))
    for key, prof in report["profiles"].items():
        if prof.get("samples"):
            print(f"\nprofile of {key} ({prof['samples']} samples, {prof['file']}), self time:")
            for row in prof["self"][:10]:
                print(f"  {row['percent']:5.1f}%  {row['name']}")
            print("  by package: " + ", ".join(
                f"{row['name']} {row['percent']}%" for row in prof["self_by_package"][:8]))
            print("  charged to the deepest own frame:")
            for row in prof["attributed"][:10]:
                print(f"  {row['percent']:5.1f}%  {row['name']}")
    busy = [(row["title"], row["other_cpu_cores"]) for row in report["scenarios"]
            if (row["other_cpu_cores"] or 0) > NOISY_OTHER_CORES]
    if busy:
        print("\nnoisy: processes not started by this run used CPU during "
              + ", ".join(f"{title} ({cores} cores)" for title, cores in busy)
              + "; compare ratios within a run, or use --repeat")
    print(f"\nJSON: {args.output}")
    if not report["ok"]:
        print("some scenarios did not answer as expected (see 'ok' column)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
