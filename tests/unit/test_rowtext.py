"""The recorder's fast conversions give exactly what the plain ones give."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from entropy.backends.sqlalchemy import rowtext
from entropy.backends.sqlalchemy.state import (
    _records,
    _sqlite_records,
    _sqlite_time,
    _to_json,
)
from entropy.backends.syncplan import _iso
from entropy.backends.syncplan import latest_of as _latest
from entropy.model import Outcome, Result

BASE = datetime(2026, 1, 1, tzinfo=UTC)


def _samples() -> list[datetime]:
    rng = random.Random(7)
    samples = [
        BASE,
        BASE + timedelta(microseconds=1),
        BASE + timedelta(microseconds=999_999),
        BASE - timedelta(microseconds=1),
        datetime(1969, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(2106, 2, 7, 6, 28, 15, 999_999, tzinfo=UTC),
        datetime(2026, 3, 29, 1, 30, 0, 250_000, tzinfo=ZoneInfo("Europe/Paris")),
        datetime(2026, 6, 1, 12, 0, 0, 7, tzinfo=timezone(timedelta(hours=-5))),
        datetime(2026, 6, 1, 12, 0, 0, 7, tzinfo=ZoneInfo("UTC")),
    ]
    for _ in range(2000):
        samples.append(BASE + timedelta(microseconds=rng.randrange(10**14)))
    return samples


@pytest.mark.parametrize("repeat", [1, 2])  # the second pass reads the cache
def test_times_match_the_plain_conversions(repeat: int) -> None:
    for t in _samples():
        assert rowtext.times(t) == (_sqlite_time(t), _iso(t)), t
    assert rowtext.times(None) == (None, None)


def test_the_prefix_cache_stays_bounded() -> None:
    for s in range(rowtext._CACHE_LIMIT + 10):
        rowtext.times(BASE + timedelta(seconds=s, microseconds=3))
    assert len(rowtext._prefixes) <= rowtext._CACHE_LIMIT


def _results() -> list[Result]:
    t = BASE + timedelta(seconds=3, microseconds=120)
    return [
        Result(Outcome.OK, "ok", started_at=t, finished_at=t, slot=BASE, engine_id="e1"),
        Result(
            Outcome.CRITICAL,
            'disk "/" at 99% \u00e9\u4e2d\n\ttab',
            "out\u2028put",
            metrics={"used": {"value": 1.5, "unit": "%"}, "odd": Decimal("2.50"), "when": t},
            started_at=t,
            finished_at=t + timedelta(seconds=1),
            slot=t,
            engine_id='engine "two"',
        ),
        Result(Outcome.ERROR, "crashed"),  # no times, no engine
        Result(Outcome.TIMEOUT, "", started_at=t, finished_at=t, slot=None, engine_id=None),
    ]


def test_latest_json_is_json_dumps_of_latest() -> None:
    for r in _results():
        _, slot = rowtext.times(r.slot)
        _, started = rowtext.times(r.started_at)
        _, finished = rowtext.times(r.finished_at)
        assert rowtext.latest_json(r, slot, started, finished) == _to_json(_latest(r))


def test_sqlite_records_match_the_generic_conversion() -> None:
    records = [(i, r, BASE + timedelta(days=1, microseconds=i)) for i, r in enumerate(_results())]
    assert _sqlite_records(records, "me") == _records(records, "me", _sqlite_time)
