"""``include:``: routes kept in more files, e.g. a ``routes.d/`` folder or ConfigMap keys.

The main file names files or glob patterns (relative to its folder); each included file is a
mapping with a single ``routes:`` list, appended to the main file's routes in pattern order
and, within a pattern, in file-name order. A file matched twice is read once. Problems in an
included file name that file, its line and its own ``routes[i]`` index. Included files cannot
include further files.
"""

from __future__ import annotations

import glob as globbing
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ConfigProblem

Loc = tuple[str | int, ...]


class ConfigFiles:
    """The loader's and the compiler's only way to the file system.

    ``reload.ConfigWatcher`` passes a subclass that records every file read and every glob
    pattern expanded, so it knows what to watch.
    """

    def read_bytes(self, path: Path) -> bytes:
        return path.read_bytes()

    def glob(self, pattern: str) -> list[Path]:
        """Regular files matching ``pattern``, sorted (hidden files only when named)."""
        return sorted(Path(p) for p in globbing.glob(pattern) if Path(p).is_file())


@dataclass(frozen=True, slots=True)
class IncludedRoutes:
    """``routes[first:first+count]`` of the merged document come from ``file``."""

    file: str
    first: int
    count: int


def _locate(file: str, includes: Sequence[IncludedRoutes], loc: Loc) -> tuple[str, Loc]:
    """The file a location of the merged document comes from, and the location in that file."""
    if len(loc) >= 2 and loc[0] == "routes" and isinstance(loc[1], int):
        for inc in includes:
            if inc.first <= loc[1] < inc.first + inc.count:
                return inc.file, ("routes", loc[1] - inc.first, *loc[2:])
    return file, loc


def _line(lines: Mapping[Loc, int], includes: Sequence[IncludedRoutes], loc: Loc) -> int | None:
    """Line of the deepest node on ``loc`` that its file has (1-based)."""
    included = _locate("", includes, loc)[0] != ""
    stop = 1 if included else -1  # never fall back from an included route to the main file
    for end in range(len(loc), stop, -1):
        line = lines.get(loc[:end])
        if line is not None:
            return line
    return None


_GLOB_CHARS = frozenset("*?[")


class Includes:
    """Reads the files named by ``include:`` and appends their routes to the document."""

    def __init__(self, file: str, files: ConfigFiles, env: Mapping[str, str]) -> None:
        self.file = file
        self.main = Path(file)
        self.files = files
        self.env = env
        self.problems: list[ConfigProblem] = []
        self.lines: dict[Loc, int] = {}
        self.expanded: dict[str, str] = {}
        self.included: list[IncludedRoutes] = []
        self.texts: list[tuple[str, str]] = []  # (file, text) for the digest

    def expand(self, document: dict[str, Any], main_lines: Mapping[Loc, int]) -> None:
        from . import load  # the YAML builder; load imports this module
        patterns = document.get("include")
        if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
            return  # not a list of strings: the model reports it
        if not patterns:
            return
        merged = document.get("routes")
        if merged is None:
            merged = document["routes"] = []
        if not isinstance(merged, list):
            merged = []  # the model reports the main file's routes; still check the includes
        seen: set[Path] = {self.main.resolve()}
        for k, pattern in enumerate(patterns):
            where = ("include", k)
            target = Path(pattern).expanduser()
            if not target.is_absolute():
                target = self.main.parent / target
            # A literal name goes through glob too, so the watcher notices it appear.
            paths = self.files.glob(str(target))
            if not paths and not _GLOB_CHARS.intersection(pattern):
                self.problems.append(ConfigProblem(
                    self.file, main_lines.get(where), load.format_loc(where),
                    f"{pattern} is not a file (a directory takes a pattern such as "
                    f"{pattern.rstrip('/')}/*.yaml)" if target.is_dir()
                    else f"{pattern} does not exist",
                ))
                continue
            for path in paths:
                resolved = path.resolve()
                if resolved in seen:
                    if resolved == self.main.resolve():
                        self.problems.append(ConfigProblem(
                            self.file, main_lines.get(where), load.format_loc(where),
                            f"{pattern} matches the main config file itself",
                        ))
                    continue
                seen.add(resolved)
                self._read_one(path, merged)

    def _read_one(self, path: Path, merged: list[Any]) -> None:
        from . import load
        file = str(path)
        try:
            text = load.read_text(self.files, path, file)
        except ConfigError as err:
            self.problems.extend(err.problems)
            return
        self.texts.append((file, text))
        first = len(merged)
        root, problem = load.compose(text, file)
        if problem is not None:
            self.problems.append(problem)
            self.included.append(IncludedRoutes(file, first, 0))
            return
        routes: list[Any] = []
        if root is not None:
            builder = load._Builder(file, self.env)
            document = builder.build(root, ())
            self.problems.extend(builder.problems)
            self.expanded.update(builder.expanded)
            if not isinstance(document, dict):
                self.problems.append(ConfigProblem(
                    file, root.start_mark.line + 1, "",
                    "an included file must be a mapping with a `routes:` list",
                ))
            else:
                for key in document:
                    if key != "routes":
                        self.problems.append(ConfigProblem(
                            file, builder.lines.get((key,)), key,
                            "unknown key (an included file holds only `routes:`)",
                        ))
                found = document.get("routes", [])
                if isinstance(found, list):
                    routes = found
                else:
                    self.problems.append(ConfigProblem(
                        file, builder.lines.get(("routes",)), "routes", "must be a list",
                    ))
            for loc, line in builder.lines.items():
                if len(loc) >= 2 and loc[0] == "routes" and isinstance(loc[1], int):
                    self.lines[("routes", first + loc[1], *loc[2:])] = line
        merged.extend(routes)
        self.included.append(IncludedRoutes(file, first, len(routes)))

    def digest(self, text: str) -> str:
        """sha256 of the main text alone, or of the main text and every included file."""
        if not self.texts:
            return hashlib.sha256(text.encode()).hexdigest()
        h = hashlib.sha256(text.encode())
        for file, included in self.texts:
            h.update(b"\0" + file.encode() + b"\0" + included.encode())
        return h.hexdigest()


