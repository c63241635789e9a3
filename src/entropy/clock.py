"""Where time comes from: the real clock, or a fake one that tests move by hand."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back: for deadlines and rates, not dates."""
        ...

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        """Block until `event` is set or `timeout` seconds pass; True if it was set."""
        ...


class SystemClock:
    # The builtin itself, not a method around it: the engine reads it once per audit.
    monotonic = staticmethod(time.monotonic)

    def now(self) -> datetime:
        return datetime.now(UTC)

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        return event.wait(timeout)


class FakeClock:
    """A clock that only moves when told to; `wait` returns at once.

    Waiting on a fake clock advances it by the timeout, so code that sleeps
    until something is due reaches that moment without real time passing.
    Its monotonic() moves with it, forward only: set() to an earlier time
    leaves it where it is, as a real monotonic clock would.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._monotonic = 1000.0  # any start: only differences mean something
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        with self._lock:
            return self._monotonic

    def advance(self, seconds: float = 0, **delta: float) -> datetime:
        step = timedelta(seconds=seconds, **delta)
        with self._lock:
            self._now += step
            self._monotonic += max(step.total_seconds(), 0.0)
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            self._monotonic += max((when - self._now).total_seconds(), 0.0)
            self._now = when

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        if event.is_set():
            return True
        if timeout is not None:
            self.advance(timeout)
        return event.is_set()


# Times as integer microseconds since the Unix epoch: exact (a float of seconds rounds
# some microseconds), and cheap to write as text (`{us}e-6`, what /metrics does).
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def to_micros(t: datetime) -> int:
    """An aware datetime as microseconds since the Unix epoch (a naive one is taken as UTC)."""
    return ((t if t.tzinfo else t.replace(tzinfo=UTC)) - EPOCH) // _MICROSECOND


def from_micros(us: int) -> datetime:
    """to_micros back: an aware UTC datetime."""
    return EPOCH + timedelta(microseconds=us)
