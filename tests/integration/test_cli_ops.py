"""The operations side of the CLI: `check` lints and `--against`, `explain`, and `run`
reloading on a file change and on SIGHUP (the README's quickstart walkthrough)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import jwt
import pytest
import yaml

from tests.integration.test_cli import (
    Ports,
    cli,
    free_port,
    http,
    in_process,
    quickstart_copy,
    wait_ready,
)

pytestmark = pytest.mark.integration

SECRET = "hmac-secret-0123456789abcdef-xyz"


def config_with_warnings(folder: Path) -> Path:
    (folder / "routes.d").mkdir()
    config = yaml.safe_load(quickstart_copy(folder).read_text())
    config["include"] = ["routes.d/*.yaml"]
    (folder / "routes.d" / "export.yaml").write_text(
        "routes:\n"
        "  - name: orders-export\n"
        "    match: {path_prefix: /api/orders/export, methods: [GET]}\n"
        "    upstream: http://127.0.0.1:9\n"
        "    auth: none\n"
        "  - name: anything-goes\n"
        "    match: {path_prefix: /any}\n"
        "    upstream: http://127.0.0.1:9\n"
    )
    path = folder / "gateway.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_check_prints_lints_as_warnings_and_fails_only_when_strict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config_with_warnings(tmp_path)
    code, out, err = in_process(capsys, "check", str(path))
    included = tmp_path / "routes.d" / "export.yaml"
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith(f"ok: {path} (+1 included file(s)): 5 routes")
    assert lines[1:] == [
        f"{included}:3: routes[0].match: warning[overlap]: route 'orders-export' takes "
        "requests that route 'orders-read' also matches (e.g. GET /api/orders/export/… on any "
        "host) and requires less: no token instead of a token with scopes orders:read",
        f"{included}:6: routes[1]: warning[no_scope]: protected route 'anything-goes' requires "
        "no scope: any valid token of any configured issuer is accepted (add require.scopes or "
        "require.any_of)",
        "2 warning(s)",
    ]
    code, out, _ = in_process(capsys, "check", str(path), "--strict")
    assert code == 1 and out.endswith("2 warning(s): failing (--strict)\n")
    (tmp_path / "quiet").mkdir()
    quiet = quickstart_copy(tmp_path / "quiet")
    assert in_process(capsys, "check", str(quiet), "--strict")[0] == 0


def test_check_against_another_file_names_the_restart_only_changes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    running = quickstart_copy(tmp_path, Ports(8080, 9090, 9001))
    edited = tmp_path / "edited.yaml"
    config = yaml.safe_load(running.read_text())
    config["server"]["listen"] = "127.0.0.1:8443"
    config["routes"][0]["require"]["scopes"] = ["orders:list"]
    edited.write_text(yaml.safe_dump(config))
    code, out, _ = in_process(capsys, "check", str(edited), "--against", str(running))
    assert code == 0
    assert out.splitlines()[1:] == [
        "restart needed: server.listen: 127.0.0.1:8080 → 127.0.0.1:8443",
        "a reload applies everything else; these take effect after a restart",
    ]
    code, out, _ = in_process(capsys, "check", str(running), "--against", str(running))
    assert out.splitlines()[-1] == (
        f"no restart needed: a reload applies every change against {running}")
    code, _, err = in_process(capsys, "check", str(running), "--against",
                              f"http://127.0.0.1:{free_port()}")
    assert code == 1 and "cannot read the running settings from /status" in err


def test_explain_prints_the_decision_and_never_the_token_or_a_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump({
        "issuers": [{"issuer": "https://idp.test/", "audiences": ["api"],
                     "algorithms": ["HS256"], "secret_env": "HMAC_SECRET"}],
        "routes": [{"name": "orders", "match": {"path_prefix": "/api/orders"},
                    "upstream": "http://${UPSTREAM_HOST}:9001",
                    "require": {"scopes": ["orders:read"]}}],
    }))
    token = jwt.encode({"iss": "https://idp.test/", "aud": "api", "sub": "alice",
                        "scope": "orders:write", "exp": int(time.time()) + 60},
                       SECRET, algorithm="HS256")
    env = {"HMAC_SECRET": SECRET, "UPSTREAM_HOST": "orders-backend-secret-name.internal"}
    result = cli("explain", str(path), "GET", "/api/orders/1", "--token", token, cwd=tmp_path,
                 env=env)
    assert result.returncode == 0, result.stderr
    assert "decision     deny: 403 insufficient_scope (missing scopes: orders:read)" in \
        result.stdout
    assert "forwards   http://${UPSTREAM_HOST}:9001/api/orders/1" in result.stdout
    for output in (result.stdout, result.stderr):
        assert token not in output and token.split(".")[2] not in output
        assert SECRET not in output and "orders-backend-secret-name" not in output
    piped = subprocess.run(
        [sys.executable, "-m", "gateway", "explain", str(path), "GET", "/api/orders/1",
         "--token", "-", "--json"], input=token + "\n", capture_output=True, text=True,
        cwd=tmp_path, env={**os.environ, **env}, timeout=30, check=False,
    )
    assert piped.returncode == 0, piped.stderr
    explained = json.loads(piped.stdout)
    assert (explained["decision"], explained["reason"]) == ("deny", "insufficient_scope")
    assert token not in piped.stdout and SECRET not in piped.stdout


def test_explain_usage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = quickstart_copy(tmp_path)
    code, _, err = in_process(capsys, "explain", str(path), "GET", "/x", "--token", "a",
                              "--scopes", "b")
    assert code == 2 and "not allowed with argument" in err
    code, out, _ = in_process(capsys, "explain", "-c", str(path), "get", "/status")
    assert code == 0 and out.splitlines()[-1] == "decision     allow (none): forwarded upstream"


# -- `run` reloading --------------------------------------------------------------------------


@pytest.fixture
def start_run(tmp_path: Path) -> Iterator[Callable[..., tuple[subprocess.Popen[bytes], Ports,
                                                              Path, Path]]]:
    processes: list[subprocess.Popen[bytes]] = []

    def start(*extra: str) -> tuple[subprocess.Popen[bytes], Ports, Path, Path]:
        ports = Ports(free_port(), free_port(), free_port())
        config = quickstart_copy(tmp_path, ports)
        stderr = tmp_path / "run.stderr"
        with stderr.open("wb") as err:
            process = subprocess.Popen(
                [sys.executable, "-m", "gateway", "run", "-c", str(config), *extra],
                cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=err,
            )
        processes.append(process)
        wait_ready(process, ports.admin, stderr)
        return process, ports, config, stderr

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def urllib_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return str(resp.read().decode())


def until(predicate: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)  # polling another process: there is no event to wait on


def events(stderr: Path, name: str) -> list[dict[str, object]]:
    lines = [json.loads(x) for x in stderr.read_text().splitlines() if x.startswith("{")]
    return [x for x in lines if x.get("event") == name]


def test_the_quickstart_walkthrough_edit_reload_and_a_refused_edit(
    start_run: Callable[..., tuple[subprocess.Popen[bytes], Ports, Path, Path]],
    tmp_path: Path,
) -> None:
    process, ports, config, stderr = start_run()  # default: look for changes every second
    orders = f"http://127.0.0.1:{ports.public}/api/orders/42"
    token = cli("token", "-c", str(config), "--scope", "orders:read", cwd=tmp_path).stdout.strip()
    assert http("GET", orders, token)[0] == 200

    text = config.read_text()
    config.write_text(text.replace("- orders:read", "- orders:list"))
    until(lambda: http("GET", orders, token)[0] == 403)
    (reloaded,) = events(stderr, "config_reloaded")
    assert reloaded["routes_changed"] == ["orders-read"]

    broken = text.replace("- orders:read", "- orders list")
    config.write_text(broken)
    until(lambda: len(events(stderr, "config_reload_failed")) == 1)
    line = next(i for i, t in enumerate(broken.splitlines(), 1) if "orders list" in t)
    (failed,) = events(stderr, "config_reload_failed")
    assert failed["problems"] == [
        f"{config}:{line}: routes[0].require.scopes[0]: not a valid scope token (RFC 6749 §3.3)"]
    assert http("GET", orders, token)[0] == 403  # the last good config still serves
    metrics = urllib_text(f"http://127.0.0.1:{ports.admin}/metrics")
    assert 'gateway_config_reloads_total{result="failure"} 1.0' in metrics
    assert 'gateway_config_reloads_total{result="success"} 2.0' in metrics

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0


def test_sighup_reloads_and_check_against_the_running_gateway(
    start_run: Callable[..., tuple[subprocess.Popen[bytes], Ports, Path, Path]],
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    process, ports, config, stderr = start_run("--watch-interval", "0")  # signals only
    status = f"http://127.0.0.1:{ports.public}/status"
    assert http("GET", status)[0] == 200
    edited = yaml.safe_load(config.read_text())
    edited["routes"][2]["auth"] = "required"
    edited["server"]["listen"] = f"127.0.0.1:{free_port()}"
    config.write_text(yaml.safe_dump(edited, sort_keys=False))
    admin = f"http://127.0.0.1:{ports.admin}"

    code, out, _ = in_process(capsys, "check", str(config), "--against", admin)
    assert code == 0
    assert out.splitlines()[2:] == [  # (after the summary and a no_scope warning)
        "1 warning(s)",
        f"restart needed: server.listen: 127.0.0.1:{ports.public} → {edited['server']['listen']}",
        "a reload applies everything else; these take effect after a restart",
    ]
    assert http("GET", status)[0] == 200  # no polling: nothing changed yet

    process.send_signal(signal.SIGHUP)
    until(lambda: http("GET", status)[0] == 401)
    (reloaded,) = events(stderr, "config_reloaded")
    assert reloaded["trigger"] == "SIGHUP"
    (restart,) = events(stderr, "restart_required")
    assert restart["level"] == "warning"
    body = http("GET", admin + "/status")[2]
    assert body["config"]["generation"] == 2
    assert body["config"]["restart_required"] == [
        f"server.listen: 127.0.0.1:{ports.public} → {edited['server']['listen']}"]
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0


def test_routes_marks_shadow_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = quickstart_copy(tmp_path)
    config = yaml.safe_load(path.read_text())
    config["routes"][0]["enforce"] = False
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    code, out, _ = in_process(capsys, "routes", str(path))
    assert code == 0
    rows = {line.split()[1]: line for line in out.splitlines()[1:]}
    assert "token (shadow)" in rows["orders-read"] and "(shadow)" not in rows["orders-write"]
