"""Config file → YAML (with line numbers) → ``${ENV}`` expansion → validated ``GatewaySpec``.

Every problem is reported as ``file:line: field.path: message``; expanded values never appear
in a message, so a secret passed through the environment cannot leak through ``check``.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from pydantic import ValidationError

from ..errors import ConfigError, ConfigProblem
from .model import GatewaySpec

Loc = tuple[str | int, ...]

_ENV_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def format_loc(loc: Loc) -> str:
    """``("routes", 2, "require")`` → ``routes[2].require``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """A validated document plus what is needed to report later problems by line."""

    path: Path
    spec: GatewaySpec
    sha256: str
    lines: Mapping[Loc, int] = field(repr=False)

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def line_of(self, loc: Loc) -> int | None:
        """Line of the deepest node on ``loc`` that the file has (1-based)."""
        for end in range(len(loc), -1, -1):
            line = self.lines.get(loc[:end])
            if line is not None:
                return line
        return None

    def problem(self, loc: Loc, message: str) -> ConfigProblem:
        return ConfigProblem(str(self.path), self.line_of(loc), format_loc(loc), message)


class _Builder:
    """Turns a composed YAML node tree into plain Python values, recording line numbers."""

    def __init__(self, file: str, environ: Mapping[str, str]) -> None:
        self.file = file
        self.environ = environ
        self.lines: dict[Loc, int] = {}
        self.problems: list[ConfigProblem] = []
        self._constructor = SafeConstructor()

    def build(self, node: yaml.Node, loc: Loc) -> Any:
        self.lines.setdefault(loc, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            self._constructor.flatten_mapping(node)
            for key_node, value_node in node.value:
                key = self._constructor.construct_object(key_node)  # type: ignore[no-untyped-call]
                if not isinstance(key, str):
                    self._fail(key_node, loc, f"keys must be strings, not {key!r}")
                    continue
                if key in result:
                    self._fail(key_node, (*loc, key), "duplicate key")
                    continue
                self.lines[(*loc, key)] = key_node.start_mark.line + 1
                result[key] = self.build(value_node, (*loc, key))
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*loc, i)) for i, item in enumerate(node.value)]
        value = self._constructor.construct_object(node)  # type: ignore[no-untyped-call]
        if isinstance(value, str) and "$" in value:
            return self._expand(value, node, loc)
        return value

    def _expand(self, value: str, node: yaml.Node, loc: Loc) -> str:
        def substitute(m: re.Match[str]) -> str:
            if m.group(0) == "$$":
                return "$"
            name, default = m.group(1), m.group(2)
            if name in self.environ:
                return self.environ[name]
            if default is not None:
                return default
            self._fail(node, loc, f"environment variable {name} is not set and has no default")
            return ""

        return _ENV_REF.sub(substitute, value)

    def _fail(self, node: yaml.Node, loc: Loc, message: str) -> None:
        self.problems.append(
            ConfigProblem(self.file, node.start_mark.line + 1, format_loc(loc), message)
        )


def _message(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    msg = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    return msg


def parse_config(text: str, file: str, environ: Mapping[str, str] | None = None) -> LoadedConfig:
    """Validate a config document given as text. Raises ConfigError with every problem."""
    env = os.environ if environ is None else environ
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([ConfigProblem(file, line, "", f"invalid YAML: {problem}")]) from None
    if root is None:
        raise ConfigError([ConfigProblem(file, None, "", "the file is empty")])
    builder = _Builder(file, env)
    document = builder.build(root, ())
    if not isinstance(document, dict):
        raise ConfigError([ConfigProblem(file, 1, "", "the top level must be a mapping")])
    loaded_lines = dict(builder.lines)
    problems = list(builder.problems)
    already = {p.path for p in problems}
    try:
        spec = GatewaySpec.model_validate(document)
    except ValidationError as exc:
        for error in exc.errors(include_input=False, include_url=False):
            loc: Loc = tuple(error["loc"])
            if format_loc(loc) in already:
                continue
            line = None
            for end in range(len(loc), -1, -1):
                line = loaded_lines.get(loc[:end])
                if line is not None:
                    break
            problems.append(ConfigProblem(file, line, format_loc(loc), _message(error)))
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    digest = hashlib.sha256(text.encode()).hexdigest()
    return LoadedConfig(Path(file), spec, digest, loaded_lines)


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> LoadedConfig:
    """Read and validate the config file at ``path``."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError([ConfigProblem(file, None, "", f"cannot read: {reason}")]) from None
    return parse_config(text, file, environ)
