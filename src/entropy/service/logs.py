"""Logging for a process: text lines for people, or JSON lines for log shippers.

--log-format json writes one JSON object per line on stderr: time (ISO 8601,
UTC), level, logger, message, and any extra fields a record carries
(exc_info with the traceback when there is one).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from pythonjsonlogger.json import JsonFormatter

FORMATS = ("text", "json")
TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonLines(JsonFormatter):
    def __init__(self) -> None:
        super().__init__(
            "{asctime}{levelname}{name}{message}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


class _Handler(logging.StreamHandler):
    """The handler configure() installs, so a later --log-format finds it."""


NOTICES = "entropy.cli"  # the logger of the lines a command says on stderr, in JSON mode


def formatter(log_format: str) -> logging.Formatter:
    if log_format not in FORMATS:
        raise ValueError(f"log format {log_format!r} is none of {', '.join(FORMATS)}")
    return JsonLines() if log_format == "json" else logging.Formatter(TEXT)


def configure(level: int, log_format: str = "text") -> None:
    """Log at `level` on stderr in `log_format` (unless logging was set up already)."""
    handler = _Handler()
    handler.setFormatter(formatter(log_format))
    logging.basicConfig(level=level, handlers=[handler])
    if log_format == "json":
        at_least_info(NOTICES)


def use_format(log_format: str) -> None:
    """Switch the handler configure() installed to another format."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, _Handler):
            handler.setFormatter(formatter(log_format))
    if log_format == "json":  # a command's own lines (see notice) log at INFO and up
        at_least_info(NOTICES)


def structured() -> bool:
    """Whether logs go out as JSON lines (then a command's own stderr lines should too)."""
    return any(isinstance(h, _Handler) and isinstance(h.formatter, JsonLines)
               for h in logging.getLogger().handlers)  # fmt: skip


def notice(message: str, level: int = logging.INFO) -> None:
    """A line a command says to the operator, as a log record (JSON mode)."""
    logging.getLogger(NOTICES).log(level, message)


def set_level(level: int) -> None:
    logging.getLogger().setLevel(level)


def at_least_info(name: str) -> None:
    """Logger `name` logs INFO too (an engine's start and stop), even when the root is quieter."""
    logging.getLogger(name).setLevel(min(logging.INFO, logging.getLogger().level))
