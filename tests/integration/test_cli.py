"""The CLI: the real entry point (``python -m gateway``) as a subprocess for each command and
exit code, plus ``main()`` in-process for the many variations of one behaviour; `run` end to end.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
import yaml
from cryptography.hazmat.primitives import serialization

from gateway import __version__
from gateway.auth.devkey import sign_dev_token
from gateway.cli import main

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "config" / "quickstart.yaml"
DEV_ISSUER = "http://localhost:8080/dev"
SECRET = "S3CRET-VALUE"


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None,
        timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args], cwd=cwd, capture_output=True, text=True,
        timeout=timeout, env={**os.environ, **(env or {})}, check=False,
    )


def in_process(
    capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    """``main(args)`` in this process: the same code as the entry point, without the
    interpreter start-up (about a second here), for the many variations of one behaviour."""
    try:
        code = main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Ports:
    public: int
    admin: int
    demo: int


def quickstart_copy(folder: Path, ports: Ports | None = None) -> Path:
    """The quickstart config in ``folder``, on the given (or unused) loopback ports."""
    ports = ports or Ports(free_port(), free_port(), free_port())
    config = yaml.safe_load(QUICKSTART.read_text())
    config["server"]["listen"] = f"127.0.0.1:{ports.public}"
    config["admin"]["listen"] = f"127.0.0.1:{ports.admin}"
    config["demo_upstream"]["listen"] = f"127.0.0.1:{ports.demo}"
    for route in config["routes"]:
        route["upstream"] = f"http://127.0.0.1:{ports.demo}"
    path = folder / "gateway.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


# -- check -------------------------------------------------------------------------------


def summary(path: Path, revocation: str = "memory (on_unavailable=deny)",
            shown: str | None = None) -> str:
    sha = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    routes = yaml.safe_load(path.read_text())["routes"]
    public = sum(1 for r in routes if r.get("auth") == "none")
    return (f"ok: {shown or path}: {len(routes)} routes ({len(routes) - public} protected, "
            f"{public} public), 1 issuer(s), revocation: {revocation}, sha256 {sha}\n")


@pytest.mark.parametrize(
    "form",
    [
        pytest.param(["check", "{file}"], id="the file as an argument"),
        pytest.param(["check", "-c", "{file}"], id="the file with -c"),
    ],
)
def test_check_prints_a_one_line_summary(tmp_path: Path, form: list[str]) -> None:
    result = cli(*(a.format(file=QUICKSTART) for a in form), cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, summary(QUICKSTART), "")


@pytest.mark.parametrize(
    "form",
    [
        pytest.param(["check", "--config", "{file}"], id="the file with --config"),
        pytest.param(["check", "{file}", "-c", "{file}"], id="the same file given twice"),
        pytest.param(["check"], id="gateway.yaml by default"),
    ],
)
def test_check_forms_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    form: list[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    path = quickstart_copy(tmp_path)
    result = in_process(capsys, *(a.format(file="gateway.yaml") for a in form))
    assert result == (0, summary(path, shown="gateway.yaml"), "")
    assert not (tmp_path / ".gateway-dev").exists()  # check creates nothing


def test_check_says_when_revocation_is_not_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = yaml.safe_load(QUICKSTART.read_text())
    del config["revocation"]
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    assert in_process(capsys, "check", str(path)) == (
        0, summary(path, "not checked (no revocation section)"), ""
    )


def test_check_prints_every_error_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("""server:
  listen: "${GATEWAY_TEST_LISTEN}"
  bogus: true
routes:
  - name: a
    match: {path: /a/../b}
    upstream: "http://127.0.0.1:9001"
    auth: none
  - name: a
    match: {path: /c}
    upstream: "ftp://127.0.0.1"
    auth: none
""")
    result = cli("check", str(path), cwd=tmp_path, env={"GATEWAY_TEST_LISTEN": SECRET})
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.splitlines() == [
        f"{path}:2: server.listen: must be HOST:PORT, e.g. 0.0.0.0:8080 or [::1]:8080 "
        "(port 0: any free port)",
        f"{path}:3: server.bogus: unknown key",
        f"{path}:11: routes[1].upstream: must be an absolute http:// or https:// URL",
        "3 error(s): config is invalid",
    ]
    assert SECRET not in result.stderr


def test_check_reports_compile_errors_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GATEWAY_TEST_TOKEN_DIR", f"/{SECRET}")
    path = tmp_path / "gateway.yaml"
    path.write_text("""admin:
  token_file: "${GATEWAY_TEST_TOKEN_DIR}/admin-token"
routes:
  - {name: a, match: {path: /a/../b}, upstream: "http://127.0.0.1:9001", auth: none}
  - {name: a, match: {path: /c}, upstream: "http://127.0.0.1:9001", auth: none}
""")
    code, out, err = in_process(capsys, "check", str(path))
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        f"{path}:4: routes[0].match.path: route 'a': path '/a/../b' is not canonical "
        "(canonical form: '/b')",
        f"{path}:5: routes[1].name: duplicate route name 'a' (first at routes[0])",
        f"{path}:2: admin.token_file: cannot read ${{GATEWAY_TEST_TOKEN_DIR}}/admin-token: "
        "No such file or directory",
        "3 error(s): config is invalid",
    ]
    assert SECRET not in err


def test_a_missing_config_file_exits_1(tmp_path: Path) -> None:
    result = cli("check", "missing.yaml", cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (
        1, "", "oauth2-gateway: config file missing.yaml not found\n"
    )


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["routes", "-c", "missing.yaml"], id="routes"),
        pytest.param(["run", "-c", "missing.yaml"], id="run"),
        pytest.param(["token", "-c", "missing.yaml"], id="token"),
        pytest.param(["revoke", "-c", "missing.yaml", "--sub", "x"], id="revoke"),
        pytest.param(["unrevoke", "-c", "missing.yaml", "--sub", "x"], id="unrevoke"),
        pytest.param(["revocations", "-c", "missing.yaml"], id="revocations"),
        pytest.param(["check"], id="check of the default gateway.yaml"),
    ],
)
def test_every_command_needs_its_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    args: list[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    name = "gateway.yaml" if args == ["check"] else "missing.yaml"
    assert in_process(capsys, *args) == (
        1, "", f"oauth2-gateway: config file {name} not found\n"
    )


def test_an_unknown_command_is_a_usage_error(tmp_path: Path) -> None:
    result = cli("deploy", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith("usage: oauth2-gateway")
    assert "argument COMMAND: invalid choice: 'deploy'" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param([], "the following arguments are required: COMMAND", id="no command"),
        pytest.param(["revoke", "-c", "{q}"], "one of the arguments --jti --sub --client-id "
                     "--issuer-wide is required", id="revoke without --jti or --sub"),
        pytest.param(["revoke", "-c", "{q}", "--jti", "a", "--sub", "b"],
                     "argument --sub: not allowed with argument --jti",
                     id="revoke with --jti and --sub"),
        pytest.param(["unrevoke", "-c", "{q}"], "one of the arguments --jti --sub --client-id "
                     "--issuer-wide is required", id="unrevoke without a subject"),
        pytest.param(["check", "{q}", "-c", "other.yaml"],
                     "give the config file once (positionally or with --config)",
                     id="check with two different files"),
        pytest.param(["routes", "{q}", "--config", "other.yaml"],
                     "give the config file once (positionally or with --config)",
                     id="routes with two different files"),
        pytest.param(["check", "--verbose", "{q}"], "unrecognized arguments: --verbose",
                     id="an unknown option"),
        pytest.param(["revoke", "-c", "{q}", "--jti", "a", "--exp", "tomorrow"],
                     "argument --exp: invalid float value: 'tomorrow'", id="a non-numeric exp"),
        pytest.param(["revocations", "-c", "{q}", "--kind", "user"],
                     "argument --kind: invalid choice: 'user'", id="an unknown kind"),
        pytest.param(["run", "-c", "{q}", "--log-level", "loud"],
                     "argument --log-level: invalid choice: 'loud'", id="an unknown log level"),
    ],
)
def test_usage_errors_exit_2(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = in_process(capsys, *(a.format(q=QUICKSTART) for a in args))
    assert (code, out) == (2, "")
    assert err.startswith("usage: oauth2-gateway")
    assert message in err


def test_version(tmp_path: Path) -> None:
    result = cli("version", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, f"oauth2-gateway {__version__}\n")


# -- routes ------------------------------------------------------------------------------


def test_routes_prints_the_table_in_precedence_order(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("""issuers:
  - issuer: "http://localhost:8080/dev"
    audiences: ["quickstart"]
    algorithms: [ES256]
    dev_signing_key: "dev.pem"
routes:
  - {name: root, match: {path_prefix: /}, upstream: "http://127.0.0.1:9001", auth: none}
  - name: orders-write
    match: {path_prefix: /api/orders, methods: [POST, DELETE]}
    upstream: "http://127.0.0.1:9002/v1"
    require: {scopes: [orders:write, orders:read]}
  - name: orders-eu
    match: {host: eu.example.com, path_prefix: /api/orders}
    upstream: "http://127.0.0.1:9003"
    require: {any_of: [eu, admin]}
  - {name: status, match: {path: /status}, upstream: "http://127.0.0.1:9001", auth: none}
""")
    result = cli("routes", str(path), cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    rows = [line.split() for line in result.stdout.splitlines()]
    assert rows == [
        ["#", "NAME", "HOST", "MATCH", "METHODS", "AUTH", "REQUIRES", "UPSTREAM"],
        ["1", "status", "*", "exact", "/status", "*", "none", "-", "http://127.0.0.1:9001"],
        ["2", "orders-eu", "eu.example.com", "prefix", "/api/orders", "*", "token",
         "any(admin", "eu)", "http://127.0.0.1:9003"],
        ["3", "orders-write", "*", "prefix", "/api/orders", "DELETE,POST", "token",
         "orders:read", "orders:write", "http://127.0.0.1:9002/v1"],
        ["4", "root", "*", "prefix", "/", "*", "none", "-", "http://127.0.0.1:9001"],
    ]


def test_routes_of_an_invalid_config_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("routes: []\n")
    assert in_process(capsys, "routes", "-c", str(path)) == (1, "", (
        f"{path}:1: routes: List should have at least 1 item after validation, not 0\n"
        "1 error(s): config is invalid\n"
    ))


# -- token -------------------------------------------------------------------------------


def test_token_signs_with_a_dev_key_created_in_an_ignored_folder(tmp_path: Path) -> None:
    path = quickstart_copy(tmp_path)
    result = cli("token", "-c", str(path), "--scope", "orders:read orders:write",
                 "--sub", "S", "--ttl", "5m", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert result.stdout == token + "\n" and token.count(".") == 2

    key_path = tmp_path / ".gateway-dev" / "dev-signing-key.pem"
    assert f"created development signing key {key_path}" in result.stderr
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / ".gateway-dev" / "admin-token").stat().st_mode) == 0o600

    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["iss"] == DEV_ISSUER
    assert claims["aud"] == "quickstart"
    assert claims["sub"] == "S"
    assert claims["scope"] == "orders:read orders:write"
    assert claims["exp"] - claims["iat"] == 300
    assert abs(claims["iat"] - time.time()) < 60
    assert isinstance(claims["jti"], str) and claims["jti"]
    assert jwt.get_unverified_header(token)["alg"] == "ES256"
    # really signed by the key on disk
    public = serialization.load_pem_private_key(key_path.read_bytes(), None).public_key()
    assert jwt.decode(token, public, algorithms=["ES256"],  # type: ignore[arg-type]
                      audience="quickstart", issuer=DEV_ISSUER) == claims

    # the folder ignores itself, so neither the key nor the admin token can be committed
    assert (tmp_path / ".gateway-dev" / ".gitignore").read_text() == "*\n"
    git = shutil.which("git")
    if git is not None:
        subprocess.run([git, "init", "-q"], cwd=tmp_path, check=True)
        status = subprocess.run([git, "status", "--porcelain", "--untracked-files=all"],
                                cwd=tmp_path, capture_output=True, text=True, check=True)
        assert status.stdout == "?? gateway.yaml\n"


def test_token_reuses_the_key_and_takes_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = quickstart_copy(tmp_path)
    code, first, err = in_process(capsys, "token", "-c", str(path))
    assert code == 0 and "created development signing key" in err
    key = (tmp_path / ".gateway-dev" / "dev-signing-key.pem").read_bytes()
    code, second, err = in_process(capsys, "token", "-c", str(path), "--ttl", "1h",
                                   "--client-id", "my-cli", "--audience", "other-aud")
    assert (code, err) == (0, "")
    assert (tmp_path / ".gateway-dev" / "dev-signing-key.pem").read_bytes() == key
    public = serialization.load_pem_private_key(key, None).public_key()
    defaults = jwt.decode(first.strip(), public, algorithms=["ES256"],  # type: ignore[arg-type]
                          audience="quickstart")
    assert (defaults["sub"], defaults["scope"], defaults["client_id"]) == (
        "dev-user", "", "dev-cli"
    )
    assert defaults["exp"] - defaults["iat"] == 300
    options = jwt.decode(second.strip(), public, algorithms=["ES256"],  # type: ignore[arg-type]
                         audience="other-aud")
    assert (options["client_id"], options["exp"] - options["iat"]) == ("my-cli", 3600)


def test_token_with_a_bad_ttl_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = quickstart_copy(tmp_path)
    assert in_process(capsys, "token", "-c", str(path), "--ttl", "soon") == (
        1, "", "oauth2-gateway: --ttl: must be a duration like 250ms, 30s, 5m or 24h\n"
    )


def test_token_without_a_dev_issuer_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("""routes:
  - {name: status, match: {path: /status}, upstream: "http://127.0.0.1:9001", auth: none}
""")
    result = cli("token", "-c", str(path), "--scope", "a", cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", (
        "oauth2-gateway: no issuer with dev_signing_key in the config: "
        "`token` is for development\n"
    ))
    assert not (tmp_path / ".gateway-dev").exists()


# -- run, revoke, unrevoke, revocations ----------------------------------------------------


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    ports: Ports
    config: Path
    stderr: Path


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    """`oauth2-gateway run` on a copy of the quickstart, killed at teardown whatever happens."""
    ports = Ports(free_port(), free_port(), free_port())
    config = quickstart_copy(tmp_path, ports)
    stderr = tmp_path / "run.stderr"
    with stderr.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "run", "-c", str(config)], cwd=tmp_path,
            stdout=subprocess.DEVNULL, stderr=err,
        )
    try:
        wait_ready(process, ports.admin, stderr)
        yield Running(process, ports, config, stderr)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def wait_ready(process: subprocess.Popen[bytes], admin_port: int, stderr: Path) -> None:
    deadline = time.monotonic() + 20
    while True:
        if process.poll() is not None:
            pytest.fail(f"`run` exited with {process.returncode}: {stderr.read_text()}")
        try:
            if http("GET", f"http://127.0.0.1:{admin_port}/readyz")[0] == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"`run` not ready in time: {stderr.read_text()}")
        time.sleep(0.05)  # polling another process: there is no event to wait on


def http(method: str, url: str, token: str | None = None) -> tuple[int, dict[str, str], Any]:
    request = urllib.request.Request(url, method=method)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            status, headers, raw = resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        status, headers, raw = err.code, dict(err.headers), err.read()
    return status, headers, json.loads(raw) if raw else None


def test_run_serves_and_the_cli_revokes_through_the_admin_api(
    running: Running, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, ports = str(running.config), running.ports
    assert "created development signing key" in running.stderr.read_text()
    orders = f"http://127.0.0.1:{ports.public}/api/orders/7"

    token = cli("token", "-c", config, "--scope", "orders:read", cwd=tmp_path).stdout.strip()
    status, _, body = http("GET", orders, token)
    assert status == 200
    assert (body["service"], body["path"]) == ("demo-upstream", "/api/orders/7")
    assert body["headers"]["X-Auth-Subject"] == "dev-user"
    assert http("GET", orders)[0] == 401
    write = sign_dev_token(
        (tmp_path / ".gateway-dev" / "dev-signing-key.pem").read_bytes(), issuer=DEV_ISSUER,
        audience="quickstart", subject="dev-user", scopes="orders:write", ttl=300,
    )
    assert http("GET", orders, write)[0] == 403

    revoke = cli("revoke", "-c", config, "--sub", "dev-user", "--reason", "test", cwd=tmp_path)
    assert revoke.returncode == 0, revoke.stderr
    entry = json.loads(revoke.stdout)
    assert (entry["kind"], entry["value"], entry["issuer"], entry["actor"], entry["reason"]) == (
        "sub", "dev-user", DEV_ISSUER, "cli", "test"
    )
    status, headers, body = http("GET", orders, token)
    assert status == 401
    assert headers["WWW-Authenticate"] == (
        'Bearer realm="gateway", error="invalid_token", error_description="token revoked"'
    )
    assert body["error_description"] == "token revoked"

    listing = cli("revocations", "-c", config, cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    assert [(e["kind"], e["value"]) for e in json.loads(listing.stdout)["entries"]] == [
        ("sub", "dev-user")
    ]

    unrevoke = cli("unrevoke", "-c", config, "--sub", "dev-user", cwd=tmp_path)
    assert unrevoke.returncode == 0, unrevoke.stderr
    assert json.loads(unrevoke.stdout) == {
        "removed": True, "kind": "sub", "iss": DEV_ISSUER, "value": "dev-user"
    }
    assert http("GET", orders, token)[0] == 200

    # more of the same commands, in-process against the running gateway
    assert in_process(capsys, "unrevoke", "-c", config, "--sub", "dev-user") == (
        1, "", "oauth2-gateway: admin API answered 404: no such revocation\n"
    )
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    code, out, err = in_process(
        capsys, "revoke", "-c", config, "--jti", jti, "--exp", str(int(time.time()) + 300),
        "--admin-url", f"http://127.0.0.1:{ports.admin}/",
    )
    assert (code, err) == (0, "")
    assert json.loads(out)["kind"] == "jti"
    assert http("GET", orders, token)[0] == 401
    assert http("GET", orders, write)[0] == 403  # another token of the same subject
    code, out, _ = in_process(capsys, "revocations", "-c", config, "--kind", "sub")
    assert (code, json.loads(out)) == (0, {"entries": [], "next_cursor": None})

    other = tmp_path / "other.yaml"
    other_config = yaml.safe_load(running.config.read_text())
    other_config["admin"] = {"listen": f"127.0.0.1:{ports.admin}", "token_file": "wrong-token"}
    other.write_text(yaml.safe_dump(other_config))
    (tmp_path / "wrong-token").write_text("not-the-admin-token\n")
    assert in_process(capsys, "revoke", "-c", str(other), "--sub", "dev-user") == (
        1, "", "oauth2-gateway: admin API answered 401: admin token required\n"
    )

    # SIGTERM stops it cleanly, after one JSON access-log line per request, none with a token
    running.process.send_signal(signal.SIGTERM)
    assert running.process.wait(timeout=10) == 0
    log = running.stderr.read_text()
    access = [json.loads(line) for line in log.splitlines() if '"gateway.access"' in line]
    assert [(a["route"], a["status"], a["subject"], a["reason"]) for a in access] == [
        ("orders-read", 200, "dev-user", "ok"),
        ("orders-read", 401, None, "missing_token"),
        ("orders-read", 403, "dev-user", "insufficient_scope"),
        ("orders-read", 401, "dev-user", "revoked"),
        ("orders-read", 200, "dev-user", "ok"),
        ("orders-read", 401, "dev-user", "revoked"),
        ("orders-read", 403, "dev-user", "insufficient_scope"),
    ]
    assert token not in log and write not in log


def test_revoke_without_a_running_gateway_exits_1(tmp_path: Path) -> None:
    ports = Ports(free_port(), free_port(), free_port())
    path = quickstart_copy(tmp_path, ports)
    result = cli("revoke", "-c", str(path), "--sub", "dev-user", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.startswith(
        f"oauth2-gateway: cannot reach the admin API at http://127.0.0.1:{ports.admin} "
        "(is the gateway running?): "
    )
    assert result.stderr.count("\n") == 1


def test_run_with_an_invalid_config_exits_1_without_serving(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("routes:\n  - {name: a, match: {path: /a}, upstream: 'http://x'}\n")
    result = cli("run", "-c", str(path), cwd=tmp_path)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.splitlines() == [
        f"{path}:2: routes[0].auth: route needs a token but no issuers are configured",
        "1 error(s): config is invalid",
    ]


def test_run_on_a_busy_port_exits_1(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        ports = Ports(busy.getsockname()[1], free_port(), free_port())
        result = cli("run", "-c", str(quickstart_copy(tmp_path, ports)), cwd=tmp_path)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.splitlines()[-1].startswith("oauth2-gateway: cannot listen: ")


def test_event_loop_runner_choices() -> None:
    import asyncio

    from gateway.cli import event_loop_runner

    assert event_loop_runner("asyncio") is asyncio.run
    uvloop = pytest.importorskip("uvloop")
    assert event_loop_runner("auto") is uvloop.run
    assert event_loop_runner("uvloop") is uvloop.run
