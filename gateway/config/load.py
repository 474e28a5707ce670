"""Config file → YAML (with line numbers) → ``${ENV}`` expansion → validated ``GatewaySpec``.

Every problem is reported as ``file:line: field.path: message``. Messages never quote a value
taken from the environment: it is shown as ``${NAME}`` (``redact``), so a secret passed through
the environment cannot leak through ``check``, a failed reload or the compile step.
``${VAR:-default}`` takes the default when VAR is unset or empty (as in the shell); ``$$`` is a
literal ``$``.

``include:`` names more files (or glob patterns, relative to the config file's folder) that hold
further ``routes:``; their routes are appended to the main file's, in pattern order and, within
a glob, in file-name order. A problem in an included file is reported against that file, its
line and its own ``routes[i]`` index. Every file is read through a ``ConfigFiles`` object, so the
reload watcher learns which files (and which patterns) a config depends on.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from yaml.constructor import SafeConstructor

from ..errors import ConfigError, ConfigProblem
from .include import ConfigFiles, IncludedRoutes, Includes, _line, _locate
from .include import Loc as Loc
from .model import GatewaySpec

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
    #: (value, variable name) of every ``${VAR}`` taken from the environment, for redaction.
    expanded: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    #: Which routes came from which included file (none: everything is in ``path``).
    includes: tuple[IncludedRoutes, ...] = ()

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def files(self) -> tuple[str, ...]:
        """The config file and every included file, in reading order."""
        return (str(self.path), *dict.fromkeys(inc.file for inc in self.includes))

    def line_of(self, loc: Loc) -> int | None:
        """Line of the deepest node on ``loc`` that its file has (1-based)."""
        return _line(self.lines, self.includes, loc)

    def locate(self, loc: Loc) -> tuple[str, int | None, str]:
        """(file, line, field path in that file) of a location of the merged document."""
        file, local = _locate(str(self.path), self.includes, loc)
        return file, self.line_of(loc), format_loc(local)

    def where(self, loc: Loc) -> str:
        """``file:line`` of a location, for messages that point at a second place."""
        file, line, _ = self.locate(loc)
        return f"{file}:{line}" if line is not None else file

    def problem(self, loc: Loc, message: str) -> ConfigProblem:
        message = redact(message, self.expanded)
        file, line, path = self.locate(loc)
        return ConfigProblem(file, line, path, message)


#: Expanded values shorter than this are not redacted (they would mangle ordinary words).
_MIN_REDACTED = 4


def redact(message: str, expanded: tuple[tuple[str, str], ...]) -> str:
    """``message`` with every value taken from the environment replaced by ``${NAME}``.

    Case-insensitive, since host names are quoted lower-cased.
    """
    for value, name in expanded:
        if len(value) >= _MIN_REDACTED:
            marker = "${" + name + "}"
            message = re.compile(re.escape(value), re.I).sub(marker, message)
    return message


_INVALID = object()
_MERGE_TAG = "tag:yaml.org,2002:merge"
_COLLECTION_TAGS = frozenset({"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"})


class _Builder:
    """Turns a composed YAML node tree into plain Python values, recording line numbers."""

    def __init__(self, file: str, environ: Mapping[str, str]) -> None:
        self.file = file
        self.environ = environ
        self.lines: dict[Loc, int] = {}
        self.problems: list[ConfigProblem] = []
        self.expanded: dict[str, str] = {}
        self._constructor = SafeConstructor()

    def build(self, node: yaml.Node, loc: Loc) -> Any:
        self.lines.setdefault(loc, node.start_mark.line + 1)
        if node.tag not in _COLLECTION_TAGS and not isinstance(node, yaml.ScalarNode):
            self._fail(node, loc, f"invalid value: unsupported tag {node.tag!r}")
            return None
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            # Merge keys (``<<: *defaults``) put the merged pairs first; the mapping's own
            # keys override them. Only a key written twice in the mapping itself is an error.
            own_nodes = {id(key_node) for key_node, _ in node.value}
            try:
                self._constructor.flatten_mapping(node)
            except yaml.YAMLError as exc:
                self._fail(node, loc, f"invalid merge: {getattr(exc, 'problem', exc)}")
                node.value = [(k, v) for k, v in node.value if k.tag != _MERGE_TAG]
            own_keys: set[str] = set()
            for key_node, value_node in node.value:
                key = self._scalar(key_node, loc)
                if key is _INVALID:
                    continue
                if not isinstance(key, str):
                    self._fail(key_node, loc, f"keys must be strings, not {key!r}")
                    continue
                if id(key_node) in own_nodes:
                    if key in own_keys:
                        self._fail(key_node, (*loc, key), "duplicate key")
                        continue
                    own_keys.add(key)
                if key in result:  # overriding a merged value: forget where that one was
                    self._forget_lines((*loc, key))
                self.lines[(*loc, key)] = key_node.start_mark.line + 1
                result[key] = self.build(value_node, (*loc, key))
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*loc, i)) for i, item in enumerate(node.value)]
        value = self._scalar(node, loc)
        if value is _INVALID:
            return None
        if isinstance(value, str) and "$" in value:
            return self._expand(value, node, loc)
        return value

    def _scalar(self, node: yaml.Node, loc: Loc) -> Any:
        """The value of a scalar node, or _INVALID (reported) when its tag cannot build it."""
        try:
            return self._constructor.construct_object(node)
        except (yaml.YAMLError, ValueError, TypeError) as exc:
            self._constructor.recursive_objects.clear()
            problem = getattr(exc, "problem", None) or f"not a valid {node.tag.rsplit(':', 1)[-1]}"
            self._fail(node, loc, f"invalid value: {problem}")
            return _INVALID

    def _forget_lines(self, prefix: Loc) -> None:
        for loc in [loc for loc in self.lines if loc[: len(prefix)] == prefix]:
            del self.lines[loc]

    def _expand(self, value: str, node: yaml.Node, loc: Loc) -> str:
        def substitute(m: re.Match[str]) -> str:
            if m.group(0) == "$$":
                return "$"
            name, default = m.group(1), m.group(2)
            found = self.environ.get(name)
            # As in the shell: ${VAR:-default} takes the default when VAR is unset or empty.
            if found is not None and (found or default is None):
                self.expanded[found] = name
                return found
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


def compose(text: str, file: str) -> tuple[yaml.Node | None, ConfigProblem | None]:
    """The YAML node tree of ``text`` (None for an empty document), or the syntax problem."""
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader), None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        if context:
            context_mark = getattr(exc, "context_mark", None)
            if context_mark is not None and context_mark.line + 1 != line:
                context = f"{context} (started on line {context_mark.line + 1})"
            problem = f"{context}, {problem}"
        return None, ConfigProblem(file, line, "", f"invalid YAML: {problem}")


def read_text(files: ConfigFiles, path: Path, file: str) -> str:
    try:
        return files.read_bytes(path).decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError([ConfigProblem(file, None, "", f"cannot read: {reason}")]) from None


def parse_config(
    text: str, file: str, environ: Mapping[str, str] | None = None,
    files: ConfigFiles | None = None,
) -> LoadedConfig:
    """Validate a config document given as text. Raises ConfigError with every problem."""
    env = os.environ if environ is None else environ
    root, problem = compose(text, file)
    if problem is not None:
        raise ConfigError([problem])
    if root is None:
        raise ConfigError([ConfigProblem(file, 1, "", "the file is empty (no YAML document)")])
    builder = _Builder(file, env)
    document = builder.build(root, ())
    if not isinstance(document, dict):
        line = root.start_mark.line + 1
        raise ConfigError([ConfigProblem(file, line, "", "the top level must be a mapping")])
    includes = Includes(file, files or ConfigFiles(), env)
    includes.expand(document, builder.lines)
    loaded_lines = {**builder.lines, **includes.lines}
    included = tuple(includes.included)
    # Longest first, so a value containing another is replaced whole.
    found = {**builder.expanded, **includes.expanded}
    expanded = tuple(sorted(found.items(), key=lambda item: -len(item[0])))
    problems = [*builder.problems, *includes.problems]
    already = {(p.file, p.path) for p in problems}
    try:
        spec = GatewaySpec.model_validate(document)
    except ValidationError as exc:
        for error in exc.errors(include_input=False, include_url=False):
            # "<tag>" segments name the branch of a tagged union (route_model.py): not a YAML key.
            loc: Loc = tuple(p for p in error["loc"] if not str(p).startswith("<"))
            where, local = _locate(file, included, loc)
            if (where, format_loc(local)) in already:
                continue
            message = redact(_message(error), expanded)
            line = _line(loaded_lines, included, loc)
            problems.append(ConfigProblem(where, line, format_loc(local), message))
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    return LoadedConfig(
        Path(file), spec, includes.digest(text), loaded_lines, expanded, included
    )


def load_config(
    path: str | Path, environ: Mapping[str, str] | None = None,
    files: ConfigFiles | None = None,
) -> LoadedConfig:
    """Read and validate the config file at ``path`` and the files it includes."""
    reader = files or ConfigFiles()
    text = read_text(reader, Path(path), str(path))
    return parse_config(text, str(path), environ, reader)
