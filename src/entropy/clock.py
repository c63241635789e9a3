"""Where time comes from: the real clock, or a fake one that tests move by hand."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        """Block until `event` is set or `timeout` seconds pass; True if it was set."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        return event.wait(timeout)


class FakeClock:
    """A clock that only moves when told to; `wait` returns at once.

    Waiting on a fake clock advances it by the timeout, so code that sleeps
    until something is due reaches that moment without real time passing.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float = 0, **delta: float) -> datetime:
        with self._lock:
            self._now += timedelta(seconds=seconds, **delta)
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = when

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        if event.is_set():
            return True
        if timeout is not None:
            self.advance(timeout)
        return event.is_set()
