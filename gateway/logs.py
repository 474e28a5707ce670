"""JSON logging. Tokens are never logged: only their jti, subject or a reason."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from aiohttp.http_exceptions import BadHttpMessage

ACCESS = logging.getLogger("gateway.access")
EVENTS = logging.getLogger("gateway.events")

_RESERVED = frozenset(vars(logging.makeLogRecord({})))


class JsonFormatter(logging.Formatter):
    _second: int = -1
    _second_text: str = ""

    def _timestamp(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:  # strftime once a second, not once a line
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._second_text}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self._timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class ParserErrorRedactor(logging.Filter):
    """aiohttp logs a rejected request with the start of the offending line, which may be
    an Authorization header: keep the error class, drop the echoed bytes."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, BadHttpMessage):
            record.msg = "rejected a malformed HTTP request: %s"
            record.args = (type(exc).__name__,)
            record.exc_info = None
            record.exc_text = None
        return True


def setup_logging(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ParserErrorRedactor())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def access_log(**fields: Any) -> None:
    ACCESS.info("request", extra=fields)


def event(name: str, message: str, *, level: int = logging.INFO, **fields: Any) -> None:
    """A gateway event as one JSON line on the ``gateway.events`` logger.

    ``name`` is a stable snake_case identifier (``config_reloaded``, ``config_reload_failed``,
    ``restart_required``, …) for log queries; ``message`` is for people. Other components log
    their state changes the same way (key refreshes, revocation store connectivity).
    """
    EVENTS.log(level, message, extra={"event": name, **fields})
