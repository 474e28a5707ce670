"""Sizes written with their unit: ``512``, ``64KiB``, ``10MiB``, ``1GiB`` (``KB``/``MB``/``GB``
are decimal); a bare number means bytes."""

from __future__ import annotations

import re

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|KiB|MB|MiB|GB|GiB)?\s*$")
_UNIT_BYTES = {
    None: 1, "B": 1, "KB": 1000, "KiB": 1024, "MB": 1000**2, "MiB": 1024**2,
    "GB": 1000**3, "GiB": 1024**3,
}
_MESSAGE = "must be a size like 512, 64KiB, 10MiB or 1GiB"


def parse_size(value: object) -> int:
    """Bytes in ``value``; a bare number means bytes. Raises ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(_MESSAGE)
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        m = _SIZE.match(value)
        if m:
            return int(float(m.group(1)) * _UNIT_BYTES[m.group(2)])
    raise ValueError(_MESSAGE)
