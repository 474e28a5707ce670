"""``include:``: routes in more files, problems located in the file that has them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from gateway.config.compile import compile_runtime
from gateway.config.include import ConfigFiles
from gateway.config.load import LoadedConfig, load_config
from gateway.errors import ConfigError
from gateway.metrics import GatewayMetrics
from gateway.revocation.memory import MemoryRevocationStore

MAIN = """server: {listen: "127.0.0.1:0"}
include: ["routes.d/*.yaml"]
routes:
  - name: status
    match: {path: /status}
    upstream: "http://127.0.0.1:9001"
    auth: none
"""


def route(name: str, path: str, extra: str = "") -> str:
    return (f"  - name: {name}\n    match: {{path_prefix: {path}}}\n"
            f"    upstream: \"http://127.0.0.1:9001\"\n    auth: none\n{extra}")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "routes.d").mkdir()
    (tmp_path / "gateway.yaml").write_text(MAIN)
    (tmp_path / "routes.d" / "b-billing.yaml").write_text("routes:\n" + route("billing", "/b"))
    (tmp_path / "routes.d" / "a-accounts.yaml").write_text(
        "routes:\n" + route("accounts", "/a") + route("admin", "/adm"))
    return tmp_path


def load_and_compile(path: Path, environ: dict[str, str] | None = None) -> LoadedConfig:
    loaded = load_config(path, environ or {})
    compile_runtime(loaded, metrics=GatewayMetrics(), revocation_store=MemoryRevocationStore(),
                    environ=environ or {})
    return loaded


def problems(path: Path, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_and_compile(path, environ)
    return [str(p) for p in info.value.problems]


def test_included_routes_follow_the_main_ones_in_file_name_order(tree: Path) -> None:
    loaded = load_and_compile(tree / "gateway.yaml")
    assert [r.name for r in loaded.spec.routes] == ["status", "accounts", "admin", "billing"]
    assert loaded.files == (str(tree / "gateway.yaml"), str(tree / "routes.d/a-accounts.yaml"),
                            str(tree / "routes.d/b-billing.yaml"))
    assert loaded.locate(("routes", 2, "match")) == (
        str(tree / "routes.d/a-accounts.yaml"), 7, "routes[1].match")
    assert loaded.locate(("routes", 0)) == (str(tree / "gateway.yaml"), 4, "routes[0]")


def test_the_digest_covers_every_included_file(tree: Path) -> None:
    before = load_config(tree / "gateway.yaml", {}).sha256
    assert before != hashlib.sha256(MAIN.encode()).hexdigest()
    billing = tree / "routes.d" / "b-billing.yaml"
    billing.write_text(billing.read_text().replace("/b", "/bills"))
    assert load_config(tree / "gateway.yaml", {}).sha256 != before


def test_without_includes_the_digest_is_that_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(MAIN.replace('include: ["routes.d/*.yaml"]\n', ""))
    assert load_config(path, {}).sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_main_file_may_leave_every_route_to_its_includes(tree: Path) -> None:
    main = tree / "gateway.yaml"
    main.write_text(MAIN.split("routes:")[0])
    assert [r.name for r in load_and_compile(main).spec.routes] == [
        "accounts", "admin", "billing"]


def test_an_empty_directory_and_no_routes_at_all_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "routes.d").mkdir()
    main = tmp_path / "gateway.yaml"
    main.write_text(MAIN.split("routes:")[0])
    assert problems(main) == [
        f"{main}:1: routes: List should have at least 1 item after validation, not 0"]


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param(route("x", "/x", "    auth: nobody\n"), "6: routes[0].auth: duplicate key",
                 id="a problem names the included file, its line and its own index"),
    pytest.param(route("x", "/x", "    timeout: soon\n"), "6: routes[0].timeout: must be a "
                 "duration like 250ms, 30s, 5m or 24h", id="a schema error points into it"),
    pytest.param(route("status", "/s2"), "2: routes[0].name: duplicate route name 'status' "
                 "(first at routes[0] in {main}:4)", id="a duplicate name points at both files"),
    pytest.param(route("a2", "/a"), "3: routes[0].match: routes 'accounts' and 'a2' tie on "
                 "precedence: prefix '/a', any host vs prefix '/a', any host, overlapping "
                 "methods: any method", id="a tie with a route of another included file"),
])
def test_problems_in_included_files_are_located_there(
    tree: Path, text: str, expected: str
) -> None:
    (tree / "routes.d" / "c.yaml").write_text("routes:\n" + text)
    expected = expected.replace("{main}", str(tree / "gateway.yaml"))
    assert problems(tree / "gateway.yaml") == [f"{tree / 'routes.d' / 'c.yaml'}:{expected}"]


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param("server: {listen: ':1'}\nroutes: []\n", ["1: server: unknown key (an included "
                 "file holds only `routes:`)"], id="only routes may be included"),
    pytest.param("include: [x.yaml]\n", ["1: include: unknown key (an included file holds only "
                 "`routes:`)"], id="includes do not nest"),
    pytest.param("- a\n- b\n", ["1: an included file must be a mapping with a `routes:` list"],
                 id="a list is not an included file"),
    pytest.param("routes: {a: 1}\n", ["1: routes: must be a list"], id="routes must be a list"),
    pytest.param("routes: [\n", ["2: invalid YAML: "], id="bad YAML is located in its file"),
])
def test_included_files_hold_routes_only(tree: Path, text: str, expected: list[str]) -> None:
    (tree / "routes.d" / "c.yaml").write_text(text)
    found = problems(tree / "gateway.yaml")
    assert len(found) == len(expected)
    for got, want in zip(found, expected, strict=True):
        assert got.startswith(f"{tree / 'routes.d' / 'c.yaml'}:{want}")


def test_an_empty_included_file_adds_nothing(tree: Path) -> None:
    (tree / "routes.d" / "c.yaml").write_text("")
    assert len(load_and_compile(tree / "gateway.yaml").spec.routes) == 4


@pytest.mark.parametrize(("pattern", "message"), [
    pytest.param("missing.yaml", "include[0]: missing.yaml does not exist",
                 id="a named file must exist"),
    pytest.param("routes.d", "include[0]: routes.d is not a file (a directory takes a pattern "
                 "such as routes.d/*.yaml)", id="a directory needs a pattern"),
    pytest.param("*.yaml", "include[0]: *.yaml matches the main config file itself",
                 id="the main file cannot include itself"),
])
def test_include_patterns_are_checked(tree: Path, pattern: str, message: str) -> None:
    main = tree / "gateway.yaml"
    main.write_text(MAIN.replace('"routes.d/*.yaml"', f'"{pattern}"'))
    assert problems(main) == [f"{main}:2: {message}"]


def test_a_pattern_matching_nothing_is_fine_and_a_file_matched_twice_is_read_once(
    tree: Path,
) -> None:
    main = tree / "gateway.yaml"
    main.write_text(MAIN.replace('"routes.d/*.yaml"',
                                 '"none/*.yaml", "routes.d/a-*.yaml", "routes.d/*.yaml"'))
    assert [r.name for r in load_and_compile(main).spec.routes] == [
        "status", "accounts", "admin", "billing"]


def test_environment_values_in_included_files_are_expanded_and_never_quoted(
    tree: Path,
) -> None:
    (tree / "routes.d" / "c.yaml").write_text(
        "routes:\n" + route("env", "/env").replace('"http://127.0.0.1:9001"', '"${UP}"'))
    found = problems(tree / "gateway.yaml", {"UP": "ftp://secret-host.example"})
    assert found == [f"{tree / 'routes.d' / 'c.yaml'}:4: routes[0].upstream: must be an "
                     "absolute http:// or https:// URL"]
    assert "secret-host" not in found[0]
    loaded = load_and_compile(tree / "gateway.yaml", {"UP": "http://10.0.0.1"})
    assert loaded.spec.routes[-1].upstream == "http://10.0.0.1"


def test_the_files_object_sees_every_read_and_glob(tree: Path) -> None:
    class Recording(ConfigFiles):
        def __init__(self) -> None:
            self.read: list[str] = []
            self.patterns: list[str] = []

        def read_bytes(self, path: Path) -> bytes:
            self.read.append(path.name)
            return super().read_bytes(path)

        def glob(self, pattern: str) -> list[Path]:
            self.patterns.append(pattern)
            return super().glob(pattern)

    files = Recording()
    load_config(tree / "gateway.yaml", {}, files=files)
    assert files.read == ["gateway.yaml", "a-accounts.yaml", "b-billing.yaml"]
    assert files.patterns == [str(tree / "routes.d/*.yaml")]
