"""A real permanent store error under a running engine: logged, bounded, never an endless loop.

The results table loses a column while the engine runs (on real SQLite and
PostgreSQL): its recorder must try a few times, then one result at a time,
then give up on each one with its content in the log and release it, and
go on with the next results instead of retrying the same batch for ever.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from entropy.backends import fetch
from entropy.clock import FakeClock
from entropy.config import load_conf
from entropy.engine import Engine, EngineSettings, WorkerPool
from entropy.errors import StorageFailure, StoreUnavailable
from entropy.scheduler import Scheduler
from fleets import write_fleet

HOSTS = {f"h{i}.example": {"ip_address": "127.0.0.1", "host_type": "web"} for i in range(3)}
SCRIPTS = {"check": {"kind": "command", "command": ["true"]}}
SCHEDULES = {"a.yaml": {"web": {"audits": {"check": {"run_every": "2s"}}}}}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def engine(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Iterator[Engine]:
    if request.param == "sqlite" and sqlite3.sqlite_version_info < (3, 35):
        pytest.skip(f"SQLite {sqlite3.sqlite_version} cannot drop a column (3.35+)")
    url = request.getfixturevalue(f"{request.param}_url")
    fleet = write_fleet("dir", tmp_path / "fleet", hosts=HOSTS, scripts=SCRIPTS,
                        schedules=SCHEDULES)  # fmt: skip
    conf = load_conf()
    conf.set_override("state_connection", url, group="dir")
    conf.set_override("max_splay", 0)
    backend = fetch(conf, f"dir:{fleet}")
    scheduler = Scheduler(backend, clock, refresh_in_background=False)
    scheduler.refresh()
    settings = EngineSettings("e1", flush_interval=0.01)
    inline = WorkerPool(settings.max_workers, clock, "e1", inline=True)  # run inline, in order
    yield Engine(backend, scheduler, clock, settings, executor=inline)
    backend.close()


def run_due(engine: Engine, clock: FakeClock) -> int:
    """Advance to the next slot and run what is due there (the results go to the recorder)."""
    clock.set(engine.scheduler.next_due())
    return len(engine.run_once(record=False))  # the recorder's thread writes them


def wait_for(condition, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def drop_output_column(engine: Engine) -> None:
    admin = create_engine(engine.backend.state.url)
    try:
        with admin.begin() as conn:
            conn.execute(text("ALTER TABLE results DROP COLUMN output"))
    finally:
        admin.dispose()


def test_a_dropped_column_gives_a_logged_bounded_failure(
    engine: Engine, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="entropy")
    engine.recorder.start()
    try:
        assert run_due(engine, clock) == 3
        wait_for(lambda: engine.recorded == 3, "the first results to be stored")

        drop_output_column(engine)  # the store now refuses every history row, for good
        with pytest.raises(StorageFailure):  # typed as permanent: not worth retrying
            engine.backend.state.results()
        assert run_due(engine, clock) == 3
        wait_for(lambda: engine.dropped == 3, "the refused results to be dropped")
        # Two logged tries (the batch may grow meanwhile), the third goes one by one.
        logged = [r.getMessage() for r in caplog.records]
        tries = [line for line in logged if "the state store refused" in line]
        assert [line.split("(")[1][:10] for line in tries] == ["try 1 of 3", "try 2 of 3"]
        assert all("has no column named output" in line or "does not exist" in line
                   for line in tries), tries  # fmt: skip
        dropped = [r.getMessage() for r in caplog.records if "dropped result:" in r.getMessage()]
        assert len(dropped) == 3
        assert all("audit=check" in line and "outcome=ok" in line for line in dropped)
        assert {line.split("host=")[1].split()[0] for line in dropped} == set(HOSTS)
        assert engine.owned() == []  # released: their leases run out, they come back

        # No endless loop: once given up on, nothing more is tried, and new results go on.
        seen = len(caplog.records)
        time.sleep(0.5)
        assert [r.getMessage() for r in caplog.records[seen:]] == []
        # Released: no longer renewed, their leases run out and a heartbeat takes them back.
        clock.advance(engine.dead_after + 1)
        engine.heartbeat.beat()
        assert engine.heartbeat.recovered == 3
        assert run_due(engine, clock) == 3
        wait_for(lambda: engine.dropped == 6, "the next results to be dropped in turn")
    finally:
        ended = engine.recorder.close(10)
    assert ended
    assert engine.recorded == 3


def test_an_unreachable_store_is_transient_and_the_results_wait(
    engine: Engine, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """The other kind: StoreUnavailable. Nothing is dropped while the store may come back."""
    if not engine.backend.state.url.startswith("sqlite"):
        pytest.skip("making a shared PostgreSQL unreachable is the disruptive tests' business")
    caplog.set_level(logging.INFO, logger="entropy")
    state = engine.backend.state
    database = Path(state.url.removeprefix("sqlite:///"))
    assert run_due(engine, clock) == 3  # claimed and run; the recorder is not running yet
    state.close()  # no connection left open on the file
    away = database.with_suffix(".away")
    database.rename(away)
    database.mkdir()  # a directory where the file was: SQLite cannot open it
    engine.recorder.start()
    try:
        with pytest.raises(StoreUnavailable):
            state.audits()
        wait_for(lambda: "cannot record 3 results, will retry" in caplog.text, "a retry")
        database.rmdir()
        away.rename(database)
        wait_for(lambda: engine.recorded == 3, "the results, once the store is back")
    finally:
        assert engine.recorder.close(10)
    assert (engine.recorded, engine.dropped) == (3, 0)
