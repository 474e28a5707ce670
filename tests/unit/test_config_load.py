"""Loading config files: YAML with lines → ${ENV} expansion → validated document.

The data-driven tests read ``tests/data/configs``: every ``valid/*.yaml`` (and the quickstart)
must load and compile; every ``invalid/*.yaml`` starts with one or more lines
``# expect: LINE: field.path: message fragment`` (``-`` for no field path) and must fail with
exactly those problems, in that order, when loaded and compiled as ``run`` does.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from gateway.auth.devkey import ensure_dev_key
from gateway.config.compile import compile_runtime
from gateway.config.load import LoadedConfig, load_config, parse_config
from gateway.errors import ConfigError
from gateway.metrics import GatewayMetrics
from gateway.revocation.memory import MemoryRevocationStore
from tests.fixtures.keys import KeyPair

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "configs"
VALID = sorted((DATA / "valid").glob("*.yaml"))
INVALID = sorted((DATA / "invalid").glob("*.yaml"))
QUICKSTART = ROOT / "config" / "quickstart.yaml"
SECRET = "S3CRET-VALUE"
ADMIN_TOKEN = "admin-token-from-env"


@pytest.fixture(scope="module")
def keys_dir(
    tmp_path_factory: pytest.TempPathFactory, rsa_key: KeyPair, ec_key: KeyPair,
    other_rsa_key: KeyPair,
) -> Path:
    """Every key file the data configs name through ${KEYS_DIR}, generated for this run."""
    d = tmp_path_factory.mktemp("keys")
    (d / "rsa.pem").write_bytes(rsa_key.public_pem())
    (d / "rsa.jwks.json").write_text(json.dumps({"keys": [rsa_key.jwk()]}))
    (d / "rsa-same-kid.jwks.json").write_text(json.dumps({"keys": [other_rsa_key.jwk()]}))
    (d / "ec.jwks.json").write_text(json.dumps({"keys": [ec_key.jwk()]}))
    (d / "rsa-private.pem").write_bytes(rsa_key.private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))
    (d / "private.jwks.json").write_text(json.dumps({"keys": [{**rsa_key.jwk(), "d": "AQAB"}]}))
    (d / "garbage.pem").write_text("this is not a key\n")
    (d / "broken.jwks.json").write_text('{"keys": [')
    (d / "admin-token").write_text("file-admin-token\n")
    (d / "empty-token").write_text("\n")
    (d / "hmac-secret").write_bytes(b"0123456789abcdef0123456789abcdef\n")
    ensure_dev_key(d / "dev-signing-key.pem")
    return d


def environment(keys_dir: Path) -> dict[str, str]:
    return {"KEYS_DIR": str(keys_dir), "GATEWAY_TEST_ADMIN_TOKEN": ADMIN_TOKEN}


def compile_as_run(loaded: LoadedConfig, environ: dict[str, str]) -> None:
    compile_runtime(
        loaded, metrics=GatewayMetrics(), revocation_store=MemoryRevocationStore(),
        environ=environ,
    )


def expectations(path: Path) -> list[tuple[int, str, str]]:
    """(line, field path, message fragment) from the file's leading ``# expect:`` lines."""
    found = []
    for text in path.read_text().splitlines():
        if not text.startswith("# expect: "):
            break
        line, where, *fragment = text.removeprefix("# expect: ").split(": ", 2)
        found.append((int(line), "" if where == "-" else where, fragment[0] if fragment else ""))
    assert found, f"{path.name} has no '# expect: LINE: PATH' first line"
    return found


def parse(text: str, environ: dict[str, str] | None = None) -> LoadedConfig:
    return parse_config(text, "gw.yaml", environ or {})


def problems_of(text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(text, environ)
    return [str(p) for p in info.value.problems]


PUBLIC_ROUTE = """routes:
  - name: status
    match: {path: /status}
    upstream: "http://127.0.0.1:9001"
    auth: none
"""


# -- the data files ------------------------------------------------------------------------


def test_there_are_data_files() -> None:
    assert len(VALID) >= 5
    assert len(INVALID) >= 60


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_invalid_config_is_reported_at_its_line(path: Path, keys_dir: Path) -> None:
    expected = expectations(path)
    environ = environment(keys_dir)
    with pytest.raises(ConfigError) as info:
        compile_as_run(load_config(path, environ), environ)
    problems = info.value.problems
    assert [(p.line, p.path) for p in problems] == [(line, where) for line, where, _ in expected]
    for problem, (line, where, fragment) in zip(problems, expected, strict=True):
        location = f"{path}:{line}: {where}: " if where else f"{path}:{line}: "
        assert str(problem).startswith(location)
        assert fragment in problem.message
        # Values from the environment (here: the keys folder) are never quoted.
        assert str(keys_dir) not in str(problem)
    assert str(info.value) == "\n".join(str(p) for p in problems)


@pytest.mark.parametrize("path", [*VALID, QUICKSTART], ids=lambda p: p.name)
def test_valid_config_loads_and_compiles(path: Path, keys_dir: Path) -> None:
    environ = environment(keys_dir)
    loaded = load_config(path, environ)
    runtime = compile_runtime(
        loaded, metrics=GatewayMetrics(), revocation_store=MemoryRevocationStore(),
        environ=environ,
        # the quickstart's key and admin token are created by its first `run`, as `check` allows
        missing_dev_key_ok=path == QUICKSTART,
    )
    assert sorted(rule.name for rule in runtime.routes.rules()) == sorted(
        r.name for r in loaded.spec.routes
    )
    assert runtime.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert runtime.source == str(path)


def test_the_issue_example_means_what_it_says(keys_dir: Path) -> None:
    loaded = load_config(DATA / "valid" / "issue-example.yaml", environment(keys_dir))
    spec = loaded.spec
    assert spec.server.listen == "0.0.0.0:8080"
    assert spec.admin.token_file == f"{keys_dir}/admin-token"
    issuer = spec.issuers[0]
    assert issuer.algorithms == ["RS256", "ES256"]
    assert issuer.leeway == 30.0
    assert spec.revocation is not None and spec.revocation.on_unavailable == "deny"
    assert spec.revocation.max_token_lifetime == 86400.0
    assert spec.routes[0].require.scopes == ["orders:read"]
    assert spec.routes[0].match.methods == ["GET", "HEAD"]
    assert spec.routes[1].auth == "none"
    assert spec.routes[0].timeout == 30.0


def test_environment_expansion_file_takes_defaults_and_values(keys_dir: Path) -> None:
    path = DATA / "valid" / "environment-expansion.yaml"
    defaults = load_config(path, {"KEYS_DIR": str(keys_dir)}).spec
    assert defaults.server.listen == "127.0.0.1:8080"
    assert defaults.server.realm == "price $5 "
    assert defaults.routes[0].match.path == "/status"
    assert defaults.routes[0].upstream == "http://127.0.0.1:9001"
    overridden = load_config(path, {
        "KEYS_DIR": str(keys_dir), "GATEWAY_TEST_LISTEN": "0.0.0.0:80",
        "GATEWAY_TEST_REALM_SUFFIX": "(staging)", "GATEWAY_TEST_STATUS_PATH": "/healthz",
        "GATEWAY_TEST_UPSTREAM_HOST": "status.internal", "GATEWAY_TEST_UPSTREAM_PORT": "80",
    }).spec
    assert overridden.server.listen == "0.0.0.0:80"
    assert overridden.server.realm == "price $5 (staging)"
    assert overridden.routes[0].match.path == "/healthz"
    assert overridden.routes[0].upstream == "http://status.internal:80"


# -- ${VAR} expansion ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "environ", "expected"),
    [
        pytest.param("${REALM}", {"REALM": "orders"}, "orders", id="a set variable"),
        pytest.param("${REALM:-fallback}", {}, "fallback", id="an unset variable with a default"),
        pytest.param("${REALM:-fallback}", {"REALM": "orders"}, "orders",
                     id="a set variable ignores its default"),
        pytest.param("${REALM:-fallback}", {"REALM": ""}, "fallback",
                     id="an empty variable takes the default as in the shell"),
        pytest.param("x${REALM}", {"REALM": ""}, "x", id="an empty variable without default"),
        pytest.param("x${REALM:-}", {}, "x", id="an empty default"),
        pytest.param("${REALM:-a:b-c}", {}, "a:b-c", id="a default with colons and dashes"),
        pytest.param("a-${X}-${Y}-b", {"X": "1", "Y": "2"}, "a-1-2-b",
                     id="several variables inside a value"),
        pytest.param("cost $$5", {}, "cost $5", id="double dollar is a literal dollar"),
        pytest.param("$${REALM}", {"REALM": "orders"}, "${REALM}",
                     id="an escaped reference is not expanded"),
        pytest.param("$$$${X}", {"X": "1"}, "$${X}", id="two escapes in a row"),
        pytest.param("a $ b", {}, "a $ b", id="a lone dollar stays"),
        pytest.param("$REALM", {"REALM": "orders"}, "$REALM",
                     id="a reference without braces is not expanded"),
        pytest.param("${X}", {"X": "${Y}", "Y": "nested"}, "${Y}",
                     id="expanded values are not expanded again"),
    ],
)
def test_environment_references_are_expanded(
    value: str, environ: dict[str, str], expected: str
) -> None:
    loaded = parse(f"server:\n  realm: '{value}'\n" + PUBLIC_ROUTE, environ)
    assert loaded.spec.server.realm == expected


def test_an_expanded_number_is_validated_as_a_number() -> None:
    loaded = parse("server:\n  max_token_bytes: ${MAX}\n" + PUBLIC_ROUTE, {"MAX": "16384"})
    assert loaded.spec.server.max_token_bytes == 16384


def test_the_environment_is_read_from_os_environ_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GATEWAY_TEST_REALM", "from-os-environ")
    loaded = parse_config("server:\n  realm: ${GATEWAY_TEST_REALM}\n" + PUBLIC_ROUTE, "gw.yaml")
    assert loaded.spec.server.realm == "from-os-environ"


def test_every_unset_variable_is_reported_at_its_line() -> None:
    text = """server:
  listen: "${LISTEN}"
  realm: "${REALM:-ok}"
routes:
  - name: status
    match: {path: /status}
    upstream: "http://${UPSTREAM_HOST}:9001"
    auth: none
"""
    assert problems_of(text) == [
        "gw.yaml:2: server.listen: environment variable LISTEN is not set and has no default",
        "gw.yaml:7: routes[0].upstream: environment variable UPSTREAM_HOST is not set and has "
        "no default",
    ]


SECRET_LEAKS = [
    pytest.param('server:\n  listen: "${SECRET}"\n' + PUBLIC_ROUTE,
                 "gw.yaml:2: server.listen: must be HOST:PORT", id="a listen address"),
    pytest.param('server:\n  listen: "127.0.0.1:${SECRET}"\n' + PUBLIC_ROUTE,
                 "gw.yaml:2: server.listen: must be HOST:PORT", id="a port"),
    pytest.param(PUBLIC_ROUTE.replace('"http://127.0.0.1:9001"', '"http://h:${SECRET}/"'),
                 "gw.yaml:4: routes[0].upstream: not a valid URL", id="an upstream port"),
    pytest.param(PUBLIC_ROUTE.replace('"http://127.0.0.1:9001"', '"http://${SECRET} x/"'),
                 "gw.yaml:4: routes[0].upstream: the host is not a valid host name",
                 id="an upstream host"),
    pytest.param(PUBLIC_ROUTE.replace("auth: none", "auth: ${SECRET}"),
                 "gw.yaml:5: routes[0].auth: Input should be 'required' or 'none'",
                 id="an enum value"),
    pytest.param(PUBLIC_ROUTE.replace("name: status", "name: '${SECRET} x'"),
                 "gw.yaml:2: routes[0].name: String should match pattern", id="a route name"),
    pytest.param("server:\n  max_token_bytes: '${SECRET}'\n" + PUBLIC_ROUTE,
                 "gw.yaml:2: server.max_token_bytes: Input should be a valid integer",
                 id="an integer"),
    pytest.param("issuers:\n  - issuer: x\n    audiences: [a]\n    keys: [k]\n"
                 "    leeway: '${SECRET}'\n" + PUBLIC_ROUTE,
                 "gw.yaml:5: issuers[0].leeway: must be a duration", id="a duration"),
    pytest.param(PUBLIC_ROUTE.replace("path: /status", "path: /status, host: '${SECRET}:1'"),
                 "gw.yaml:3: routes[0].match.host: must be a host name without port",
                 id="a match host"),
]


@pytest.mark.parametrize(("text", "expected"), SECRET_LEAKS)
def test_an_expanded_value_never_appears_in_a_load_error(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(text, {"SECRET": SECRET})
    assert str(info.value).startswith(expected)
    assert SECRET.lower() not in str(info.value).lower()
    assert SECRET.lower() not in repr(info.value.problems).lower()


# -- YAML and document shape ---------------------------------------------------------------


def test_every_problem_is_reported_in_one_error() -> None:
    text = """server:
  listen: nowhere
  bogus: 1
issuers:
  - issuer: x
    audiences: []
    keys: [k]
routes:
  - name: status
    match: {path: /status, methods: [get]}
    upstream: "ftp://127.0.0.1"
    auth: none
"""
    assert problems_of(text) == [
        "gw.yaml:2: server.listen: must be HOST:PORT, e.g. 0.0.0.0:8080 or [::1]:8080 "
        "(port 0: any free port)",
        "gw.yaml:3: server.bogus: unknown key",
        "gw.yaml:6: issuers[0].audiences: List should have at least 1 item after validation, "
        "not 0",
        "gw.yaml:10: routes[0].match.methods[0]: Input should be 'GET', 'HEAD', 'POST', 'PUT', "
        "'PATCH', 'DELETE', 'OPTIONS' or 'TRACE'",
        "gw.yaml:11: routes[0].upstream: must be an absolute http:// or https:// URL",
    ]


def test_a_duplicate_key_is_reported_once_at_the_second_occurrence() -> None:
    text = PUBLIC_ROUTE + "    auth: required\n"
    assert problems_of(text) == ["gw.yaml:6: routes[0].auth: duplicate key"]


ROUTES_WITH_MERGE = """routes:
  - &status
    name: status
    match: {path: /status}
    upstream: "http://127.0.0.1:9001"
    auth: none
  - <<: *status
    name: health
    match:
      path: /healthz
"""


def test_merge_keys_share_settings_and_own_keys_override_them() -> None:
    routes = parse(ROUTES_WITH_MERGE).spec.routes
    assert [(r.name, r.match.path, r.auth, r.upstream) for r in routes] == [
        ("status", "/status", "none", "http://127.0.0.1:9001"),
        ("health", "/healthz", "none", "http://127.0.0.1:9001"),
    ]


def test_an_error_in_an_overriding_value_is_reported_at_the_override() -> None:
    text = ROUTES_WITH_MERGE.replace("path: /healthz", "path: /healthz\n      methods: [GOT]")
    assert problems_of(text) == [
        "gw.yaml:11: routes[1].match.methods[0]: Input should be 'GET', 'HEAD', 'POST', 'PUT', "
        "'PATCH', 'DELETE', 'OPTIONS' or 'TRACE'",
    ]


def test_an_error_in_a_merged_value_is_reported_where_it_is_written() -> None:
    text = ROUTES_WITH_MERGE.replace("auth: none", "auth: nobody")
    assert problems_of(text) == [
        "gw.yaml:6: routes[0].auth: Input should be 'required' or 'none'",
        "gw.yaml:6: routes[1].auth: Input should be 'required' or 'none'",
    ]


def test_a_key_written_twice_next_to_a_merge_is_still_a_duplicate() -> None:
    text = ROUTES_WITH_MERGE + "    name: health-again\n"
    assert problems_of(text) == ["gw.yaml:11: routes[1].name: duplicate key"]


def test_the_loaded_config_keeps_its_hash_and_lines(tmp_path: Path) -> None:
    path = tmp_path / "gw.yaml"
    path.write_text("# comment\n" + PUBLIC_ROUTE)
    loaded = load_config(path, {})
    assert loaded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert loaded.base_dir == tmp_path
    assert loaded.line_of(("routes", 0, "match")) == 4
    assert loaded.line_of(("routes", 0, "match", "path")) == 4
    # a key the file does not have is located at its nearest ancestor
    assert loaded.line_of(("routes", 0, "timeout")) == 3
    assert str(loaded.problem(("routes", 0, "timeout"), "boom")) == (
        f"{path}:3: routes[0].timeout: boom"
    )


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        pytest.param(lambda p: None, "cannot read: No such file or directory",
                     id="a missing file"),
        pytest.param(lambda p: p.mkdir(), "cannot read: Is a directory", id="a directory"),
        pytest.param(lambda p: p.write_bytes(b"routes: \xff\xfe\n"), "cannot read: 'utf-8' codec",
                     id="a file that is not UTF-8"),
    ],
)
def test_an_unreadable_file_is_one_problem_without_a_line(
    tmp_path: Path, setup: object, message: str
) -> None:
    path = tmp_path / "gw.yaml"
    setup(path)  # type: ignore[operator]
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    [problem] = info.value.problems
    assert problem.line is None
    assert str(problem).startswith(f"{path}: {message}")
