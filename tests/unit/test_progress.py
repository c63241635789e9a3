"""Progress bars: on a terminal only, never under --json, never in an engine's later refreshes."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from entropy import progress
from entropy.backends import fetch
from entropy.clock import FakeClock
from entropy.config import load_conf
from entropy.scheduler import Scheduler
from fleets import write_fleet


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_counted_draws_on_a_terminal_and_nowhere_else(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "EVERY", 0.0)
    for out, quiet, drawn in ((Terminal(), False, True), (io.StringIO(), False, False),
                              (Terminal(), True, False)):  # fmt: skip
        with progress.progress_on_terminal(out, quiet=quiet):
            assert sum(progress.counted(range(120_000), "counting", 120_000)) == 7199940000
        text = out.getvalue()
        assert (text.endswith("counting: 120,000" + " " * 12 + "\n") and
                "\rcounting:  50% (60,000 of 120,000)" in text) is drawn, text  # fmt: skip
        assert bool(text) is drawn
    assert sum(progress.counted(range(10), "small", 10)) == 45  # outside: nothing to draw on


@pytest.mark.parametrize("wanted", [True, False])
def test_an_engines_first_load_shows_progress_only_when_asked(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, wanted: bool
) -> None:
    monkeypatch.setattr(progress, "FROM", 1)
    monkeypatch.setattr(progress, "EVERY", 0.0)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    conf = load_conf()
    conf.set_override("state_connection", f"sqlite:///{tmp_path}/s.sqlite", group="dir")
    backend = fetch(conf, f"dir:{write_fleet('dir', tmp_path / 'fleet')}")
    try:
        scheduler = Scheduler(backend, clock, refresh_in_background=False,
                              first_load_progress=wanted)  # fmt: skip
        scheduler.refresh()
        first = terminal.getvalue()
        scheduler.refresh(full=True)  # a later refresh: never
        assert terminal.getvalue() == first
    finally:
        backend.close()
    if wanted:
        assert "inserting audit rows: 8" in first and "building the time table: 8" in first
    else:
        assert first == ""


def test_the_collector_is_paused_only_where_a_program_asks(
    tmp_path: Path, clock: FakeClock
) -> None:
    """Library code leaves the cyclic GC alone; `around_first_load` is the program's choice."""
    import gc

    from entropy.gctuning import collector_paused

    seen: list[bool] = []
    conf = load_conf()
    conf.set_override("state_connection", f"sqlite:///{tmp_path}/s.sqlite", group="dir")
    backend = fetch(conf, f"dir:{write_fleet('dir', tmp_path / 'fleet')}")
    load = backend.load
    backend.load = lambda: seen.append(gc.isenabled()) or load()  # type: ignore[method-assign]
    try:
        assert gc.isenabled()
        plain = Scheduler(backend, clock, refresh_in_background=False)
        plain.refresh()
        plain.refresh(full=True)
        paused = Scheduler(backend, clock, refresh_in_background=False,
                           around_first_load=collector_paused)  # fmt: skip
        paused.refresh()
        paused.refresh(full=True)  # only the first load
    finally:
        backend.close()
    assert seen == [True, True, False, True] and gc.isenabled()
