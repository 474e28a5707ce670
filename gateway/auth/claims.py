"""Claim paths and claim conditions (pure): ``realm_access.roles contains admin`` and friends.

A path is a tuple of object member names (``realm_access.roles`` → ``("realm_access",
"roles")``); it only walks JSON objects, never lists. A JSON ``null`` counts as absent.
Comparisons are strict about types: ``true`` never equals ``1`` and ``"1"`` never equals ``1``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Scalar = str | int | float | bool
Operator = Literal["equals", "one_of", "contains", "present"]
_MISSING = object()


def parse_path(path: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``"a.b"`` → ``("a", "b")``; a list is taken as the segments (for names with dots)."""
    parts = tuple(path.split(".")) if isinstance(path, str) else tuple(path)
    if not parts or any(not p for p in parts):
        raise ValueError("a claim path needs non-empty segments, e.g. realm_access.roles")
    return parts


def lookup(claims: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    """The value at ``path``, or ``_MISSING``."""
    node: Any = claims
    for part in path:
        if not isinstance(node, Mapping):
            return _MISSING
        node = node.get(part, _MISSING)
        if node is _MISSING or node is None:
            return _MISSING
    return node


def is_present(claims: Mapping[str, Any], path: tuple[str, ...]) -> bool:
    return lookup(claims, path) is not _MISSING


def same(a: Any, b: Scalar) -> bool:
    """JSON equality of a claim value and a configured scalar (bool is not a number)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return isinstance(a, str) and isinstance(b, str) and a == b


@dataclass(frozen=True, slots=True)
class ClaimCondition:
    """One condition on one claim path.

    ``equals``: the value is the scalar · ``one_of``: the value is one of the scalars ·
    ``contains``: the value is a list holding every one of the scalars · ``present``: the claim
    exists (``values == (True,)``) or does not (``(False,)``).
    """

    path: tuple[str, ...]
    op: Operator
    values: tuple[Scalar, ...]

    def holds(self, claims: Mapping[str, Any]) -> bool:
        value = lookup(claims, self.path)
        if self.op == "present":
            return (value is not _MISSING) == bool(self.values[0])
        if value is _MISSING:
            return False
        if self.op == "equals":
            return same(value, self.values[0])
        if self.op == "one_of":
            return any(same(value, v) for v in self.values)
        # contains
        if not isinstance(value, list):
            return False
        return all(any(same(item, v) for item in value) for v in self.values)

    def describe(self) -> str:
        name = ".".join(self.path)
        if self.op == "present":
            return f"{name} {'present' if self.values[0] else 'absent'}"
        shown = ", ".join(repr(v) for v in self.values)
        return f"{name} {self.op.replace('_', ' ')} {shown}"
