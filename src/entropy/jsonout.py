"""JSON for `--json` and events: datetimes as ISO 8601 UTC, enums by value, paths as text."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any


def to_json(value: Any, indent: int | None = 2, lenient: bool = False) -> str:
    """lenient: any other value as its text (an audit's odd metric), not an error."""
    return json.dumps(value, default=_lenient if lenient else _default, indent=indent)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def _lenient(value: Any) -> Any:
    try:
        return _default(value)
    except TypeError:
        return str(value)
