"""When audits run: durations, fixed-rate intervals, cron, and the splay.

A Timing answers two questions: when a brand-new (audit, host) pair first
runs, and which slot comes after one that just ran. Slots are fixed-rate
(previous slot + interval, never finish time + interval) and missed slots
coalesce: after downtime the audit runs once, then resumes at the next
future slot.
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter

from .errors import DurationError

_UNIT_SECONDS = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600),
    **dict.fromkeys(("d", "day", "days"), 86400),
    **dict.fromkeys(("w", "wk", "wks", "week", "weeks"), 604800),
}
_PART = re.compile(r"([0-9]+)\s*([a-z]+)\s*")
_EXAMPLES = "e.g. 90s, 30mins, 1hour, 1day, 2days, 1h30m"

DAY = 86400
MAX_DURATION = 10 * 366 * DAY  # no duration Entropy takes is longer (dates stay in range)
MAX_INTERVAL = 366 * DAY  # run_every and a repair's cooldown: a year at most
MAX_TIMEOUT = DAY  # how long one audit or repair may run
CRON_HORIZON_YEARS = 5  # a cron with no run within this long is refused


def parse_duration(value: object, maximum: int = MAX_DURATION) -> int:
    """Seconds in a duration such as '1day', '30mins', '90s' or '1h30m', at most `maximum`.

    A bare number is refused: '60' could mean seconds or minutes, and the
    original notes always wrote a unit.
    """
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise DurationError(f"duration must be text such as '30mins' ({_EXAMPLES}), got {value!r}")
    text = str(value).strip().lower()
    if text.isdigit():
        raise DurationError(f"duration {value!r} has no unit ({_EXAMPLES})")
    total, pos = 0, 0
    while pos < len(text):
        match = _PART.match(text, pos)
        if not match or match.group(2) not in _UNIT_SECONDS:
            raise DurationError(f"invalid duration {_shown(value)} ({_EXAMPLES})")
        digits = match.group(1).lstrip("0")
        if len(digits) > 12:  # int() of thousands of digits is slow, then refused anyway
            raise DurationError(f"duration {_shown(value)} is longer than {_limit(maximum)}")
        total += int(digits or "0") * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if total <= 0:
        raise DurationError(f"duration {_shown(value)} must be longer than zero")
    if total > maximum:
        raise DurationError(
            f"duration {_shown(value)} is longer than {_limit(maximum)}, the most allowed here"
        )
    return total


def _limit(seconds: int) -> str:
    return (
        f"{seconds // DAY} days"
        if seconds % DAY == 0 and seconds > DAY
        else format_duration(seconds)
    )


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def format_duration(seconds: float) -> str:
    """The shortest exact spelling of a duration: 90 -> '1m30s', 86400 -> '1d'."""
    rest = int(seconds)
    parts = []
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


@lru_cache(maxsize=16)
def _next_whole_second(now: datetime) -> datetime:
    """now, rounded up to a whole second (a sync's million new rows share one `now`)."""
    return now.replace(microsecond=0) + timedelta(seconds=1 if now.microsecond else 0)


def splay_fraction(audit_name: str, host: str) -> float:
    """A stable number in [0, 1) for a pair: every engine and restart agrees on it."""
    return zlib.crc32(f"{audit_name}\0{host}".encode()) / 2**32


@dataclass(frozen=True, slots=True)
class Every:
    """Fixed-rate interval: `run_every: 30mins`."""

    seconds: int

    def first_run(
        self, now: datetime, audit_name: str, host: str, max_splay: float = math.inf
    ) -> datetime:
        """The next whole second + a stable splay over the whole interval (or max_splay).

        Over the whole interval, as Icinga does: a new fleet of daily audits
        spreads over the day, and so does every day after (fixed rate). The
        splay is in milliseconds: slots stay on a millisecond grid, which is
        what the scheduler's time table keys on.
        """
        span = min(self.seconds, max_splay)
        splay_ms = int(span * 1000 * splay_fraction(audit_name, host))
        return _next_whole_second(now) + timedelta(milliseconds=splay_ms)

    def latest_next_run(self, now: datetime) -> datetime:
        """No correct next_run lies later than this; a later one is left from old timing."""
        return now + timedelta(seconds=self.seconds)

    def next_slot(self, slot: datetime, now: datetime) -> datetime:
        """The first slot on this pair's grid strictly after both `slot` and `now`."""
        if now < slot:
            return slot + timedelta(seconds=self.seconds)
        missed = math.floor((now - slot).total_seconds() / self.seconds)
        return slot + timedelta(seconds=self.seconds * (missed + 1))

    def following(self, slot: datetime) -> datetime:
        return slot + timedelta(seconds=self.seconds)

    def describe(self) -> str:
        return f"every {format_duration(self.seconds)}"


@dataclass(frozen=True, slots=True)
class Cron:
    """Five-field cron, evaluated in `timezone`: `cron: "*/5 * * * *"`."""

    expr: str
    timezone: str = "UTC"

    def _after(self, t: datetime) -> datetime:
        return _cron_after(self.expr, self.timezone, t)

    def first_run(
        self, now: datetime, audit_name: str, host: str, max_splay: float = math.inf
    ) -> datetime:
        # Cron names exact moments; spreading them would break that promise.
        return self._after(now)

    def latest_next_run(self, now: datetime) -> datetime:
        return self._after(now)

    def next_slot(self, slot: datetime, now: datetime) -> datetime:
        return self._after(max(slot, now))

    def following(self, slot: datetime) -> datetime:
        return self._after(slot)

    def describe(self) -> str:
        return f"cron {self.expr!r} ({self.timezone})"


Timing = Every | Cron


@lru_cache(maxsize=4096)
def _cron_after(expr: str, timezone: str, t: datetime) -> datetime:
    # Cached: a sync asks the same question for every pair of one schedule.
    local = t.astimezone(ZoneInfo(timezone))
    return croniter(expr, local).get_next(datetime).astimezone(UTC)


def parse_cron(expr: object, timezone: str = "UTC") -> Cron:
    """A five-field cron expression that fires within CRON_HORIZON_YEARS of now."""
    if not isinstance(expr, str) or len(expr) > 255 or len(expr.split()) != 5:
        raise DurationError(f"cron must be five fields such as '*/5 * * * *', got {_shown(expr)}")
    if not croniter.is_valid(expr):
        raise DurationError(f"invalid cron expression {expr!r}")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise DurationError(f"unknown timezone {timezone!r} for cron") from exc
    _check_fires(expr, timezone)
    return Cron(expr, timezone)


@lru_cache(maxsize=1024)
def _check_fires(expr: str, timezone: str) -> None:
    """Refuse a cron with no run soon (`0 0 30 2 *`): croniter would raise at every sync."""
    start = datetime.now(UTC).astimezone(ZoneInfo(timezone))
    try:
        croniter(expr, start, max_years_between_matches=CRON_HORIZON_YEARS).get_next(datetime)
    except (CroniterBadDateError, CroniterError, ValueError, OverflowError):
        raise DurationError(
            f"cron {expr!r} never fires (no run within {CRON_HORIZON_YEARS} years)"
        ) from None
