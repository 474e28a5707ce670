"""Durations written with their unit: ``250ms``, ``30s``, ``5m``, ``24h``, ``1d``."""

from __future__ import annotations

import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: object) -> float:
    """Seconds in ``value``; a bare number means seconds. Raises ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("must be a duration like 250ms, 30s, 5m or 24h")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    raise ValueError("must be a duration like 250ms, 30s, 5m or 24h")
