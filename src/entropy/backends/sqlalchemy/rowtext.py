"""Results as the text the recorder stores, made cheaply: it runs once per audit.

Two conversions dominated the recorder's time (bench dispatch): a timestamp
to text, seven times per result, and the row's `result` column through
json.dumps. Both give exactly what the plain versions give:

- times(t) -> (SQLite text, ISO text), from a prefix cached per second: the
  same as `_sqlite_time(t)` and `t.isoformat()` for a UTC datetime.
- latest_json(...) -> the `result` column: the same string as
  `json.dumps(syncplan.latest_of(result), default=str)`, with json.dumps kept for the
  metrics (when there are any).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii as _quote  # what json.dumps uses
from typing import Any

from ...model import Outcome, Result

_CACHE_LIMIT = 4096
_prefixes: dict[int, tuple[str, str]] = {}  # whole second -> (SQLite text, ISO text)
_OUTCOMES = {outcome: _quote(outcome.value) for outcome in Outcome}


def times(t: datetime | None) -> tuple[str | None, str | None]:
    """(`_sqlite_time(t)`, `t.isoformat()`) of an aware datetime, or (None, None)."""
    if t is None:
        return None, None
    if t.tzinfo is not UTC:
        naive = t.astimezone(UTC).replace(tzinfo=None)
        return naive.isoformat(" ", "microseconds"), t.isoformat()
    stamp = t.timestamp()
    if stamp < 0:
        return t.replace(tzinfo=None).isoformat(" ", "microseconds"), t.isoformat()
    # Exact: a double resolves well under a microsecond here, so int() is the second.
    second = int(stamp)
    prefix = _prefixes.get(second)
    if prefix is None:
        if len(_prefixes) >= _CACHE_LIMIT:
            _prefixes.clear()
        whole = t.replace(microsecond=0, tzinfo=None)
        prefix = _prefixes[second] = (whole.isoformat(" "), whole.isoformat())
    micro = t.microsecond
    if micro:
        fraction = f".{micro:06d}"
        return prefix[0] + fraction, f"{prefix[1]}{fraction}+00:00"
    return prefix[0] + ".000000", prefix[1] + "+00:00"


def latest_json(result: Result, slot: str | None, started: str | None,
                finished: str | None) -> str:  # fmt: skip
    """The row's `result` column, given the result's ISO times (from times())."""
    outcome = _OUTCOMES.get(result.outcome) or _quote(Outcome(result.outcome).value)
    metrics = json.dumps(result.metrics, default=str) if result.metrics else "{}"
    engine_id = result.engine_id
    return (
        f'{{"outcome": {outcome}, "summary": {_text(result.summary)}, "metrics": {metrics}, '
        f'"slot": {_text(slot)}, "started_at": {_text(started)}, '
        f'"finished_at": {_text(finished)}, '
        f'"engine_id": {"null" if engine_id is None else _text(engine_id)}}}'
    )


def _text(value: Any) -> str:
    if value is None:
        return "null"
    if type(value) is str:
        return _quote(value)
    return json.dumps(value, default=str)
