"""Progress on a terminal for long work: reading a large file, a first sync, a first load.

Library code asks for a bar (`Bar.start`, `counted`); one is drawn only
inside `progress_on_terminal()`, which a command enters when stderr is a
terminal and it was not asked for --json. Everywhere else (an engine's
periodic refreshes, tests, scripts) nothing is written.

    reading hosts.yaml: 41% (240,000 entries)
    inserting audit rows: 63% (630,000 of 1,000,000)
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import IO, TypeVar

T = TypeVar("T")
EVERY = 1.0  # seconds between two redraws
FROM = 50_000  # items: smaller jobs end before anyone waits

# Where progress goes: None (the default) or a text stream (see progress_on_terminal).
progress_to: IO[str] | None = None


@contextmanager
def progress_on_terminal(out: IO[str] | None = None, quiet: bool = False) -> Iterator[None]:
    """Within it, long work shows progress on `out` (stderr) if it is a terminal.

    quiet (say, under --json): none at all.
    """
    global progress_to
    out = out if out is not None else sys.stderr
    previous = progress_to
    try:
        tty = out.isatty()
    except (AttributeError, ValueError):
        tty = False
    progress_to = out if tty and not quiet else None
    try:
        yield
    finally:
        progress_to = previous


class Bar:
    """One line on the terminal, redrawn about once a second, ended by done()."""

    def __init__(self, label: str, total: int | None, out: IO[str]) -> None:
        self.label, self.total, self.out = label, total, out
        self.count = 0
        self.next_at = time.monotonic() + EVERY
        self.shown = False

    @classmethod
    def start(cls, label: str, total: int | None = None, size: int = FROM) -> Bar | None:
        """A bar, or None when none is wanted (not on a terminal, or `size` below FROM)."""
        out = progress_to
        if out is None or size < FROM:
            return None
        return cls(label, total, out)

    def advance(self, count: int = 1) -> None:
        self.count += count
        if time.monotonic() >= self.next_at:
            self.next_at = time.monotonic() + EVERY
            self.draw(self.line())

    def line(self) -> str:
        if self.total:
            share = min(self.count / self.total, 1.0)
            return f"{self.label}: {share:4.0%} ({self.count:,} of {self.total:,})"
        return f"{self.label}: {self.count:,}"

    def draw(self, text: str) -> None:
        self.shown = True
        try:
            self.out.write(f"\r{text}")
            self.out.flush()
        except (OSError, ValueError):
            pass

    def done(self, text: str | None = None) -> None:
        if self.shown:
            self.draw(f"{text or f'{self.label}: {self.count:,}'}{' ' * 12}\n")


def counted(items: Iterable[T], label: str, total: int, step: int = 1000) -> Iterator[T]:
    """The items, with a bar counting them on a terminal (a no-op elsewhere)."""
    bar = Bar.start(label, total, size=total)
    if bar is None:
        yield from items
        return
    pending = 0
    for item in items:
        yield item
        pending += 1
        if pending == step:
            bar.advance(pending)
            pending = 0
    bar.advance(pending)
    bar.done(f"{label}: {bar.count:,}")
