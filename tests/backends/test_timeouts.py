"""The [database] time bounds hold on the real databases: a lock held too long, a slow
statement, and a read-only store that refuses writes. Each failure names what bounds it."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, inspect, text

from entropy.backends.base import Timeouts
from entropy.backends.sqlalchemy import state as state_module
from entropy.backends.sqlalchemy.state import SqlStateStore
from entropy.cli import main
from entropy.errors import BackendError
from entropy.model import Outcome, Result
from faults import deadline
from fleets import write_fleet

BOUNDS = Timeouts(connect=5, statement=5, lock=1)


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgresql),
        pytest.param("mysql", marks=pytest.mark.mysql),
    ]
)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        store = SqlStateStore(f"sqlite:///{tmp_path}/state.sqlite")
        store.close()
        return store.url
    return request.getfixturevalue(f"{request.param}_url")


@contextmanager
def row_locked(url: str) -> Iterator[None]:
    """A table `locked` whose one row another connection holds locked (SQLite: the file)."""
    setup = create_engine(url)
    with setup.begin() as conn:
        conn.execute(text("CREATE TABLE locked (id INTEGER PRIMARY KEY)"))
        conn.execute(text("INSERT INTO locked VALUES (1)"))
    if url.startswith("sqlite"):
        holder = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
            setup.dispose()
        return
    with setup.connect() as conn:
        conn.execute(text("SELECT id FROM locked WHERE id = 1 FOR UPDATE"))
        try:
            yield
        finally:
            conn.rollback()
    setup.dispose()


def test_a_lock_held_too_long_fails_the_statement_naming_lock_timeout(url: str) -> None:
    store = SqlStateStore(url, timeouts=BOUNDS)
    try:
        with row_locked(url):
            started = time.monotonic()
            with pytest.raises(BackendError) as failed, store.transaction() as conn:
                conn.execute(text("UPDATE locked SET id = 1 WHERE id = 1"))
            took = time.monotonic() - started
    finally:
        store.close()
    assert 0.8 < took < 3, took
    assert "waited 1s for a lock another writer holds ([database] lock_timeout)" in str(
        failed.value
    )


@pytest.mark.parametrize("server", [
    pytest.param("postgresql", marks=pytest.mark.postgresql),
    pytest.param("mysql", marks=pytest.mark.mysql),
])  # fmt: skip
def test_a_statement_past_statement_timeout_fails_naming_it(
    server: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue(f"{server}_url")
    sleep = "SELECT pg_sleep(10)" if server == "postgresql" else "SELECT SLEEP(10)"
    store = SqlStateStore(url, timeouts=Timeouts(connect=5, statement=1, lock=1))
    try:
        started = time.monotonic()
        with pytest.raises(BackendError) as failed, store.transaction() as conn:
            conn.execute(text(sleep))
        took = time.monotonic() - started
        assert store.audits() == []  # the store still works after it
    finally:
        store.close()
    assert 0.8 < took < 3, took
    assert "[database] statement_timeout" in str(failed.value)


def test_a_read_only_store_refuses_writes(url: str) -> None:
    store = SqlStateStore(url, read_only=True, timeouts=BOUNDS)
    try:
        assert store.audits() == []
        with pytest.raises(BackendError), store.transaction() as conn:
            conn.execute(text("DELETE FROM audits"))
    finally:
        store.close()


def test_db_upgrade_runs_without_a_statement_timeout(url: str) -> None:
    store = SqlStateStore(url, check_schema=False, timeouts=Timeouts(statement=None, lock=1))
    try:
        with store.transaction() as conn:
            if url.startswith("postgresql"):
                assert conn.execute(text("SHOW statement_timeout")).scalar() == "0"
            assert store.upgrade_schema()[1]
    finally:
        store.close()


def test_a_long_history_backlog_is_pruned_in_batches(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One DELETE of weeks of history would run past statement_timeout: it goes in batches."""
    monkeypatch.setattr(state_module, "_PRUNE_BATCH", 3)
    now = datetime(2026, 3, 1, tzinfo=UTC)
    store = SqlStateStore(url, timeouts=BOUNDS)
    try:
        for age in range(10):
            when = now - timedelta(days=8, minutes=age)
            store.record_adhoc(
                None,
                Result(
                    Outcome.OK,
                    "old",
                    started_at=when,
                    finished_at=when,
                    slot=when,
                    engine_id="e",
                    audit_name="a",
                    host="h",
                ),
            )
        store.record_adhoc(
            None,
            Result(
                Outcome.OK,
                "new",
                started_at=now,
                finished_at=now,
                slot=now,
                engine_id="e",
                audit_name="a",
                host="h",
            ),
        )
        assert store.prune_results(now - timedelta(days=7)) == 10
        assert [r.summary for r in store.results()] == ["new"]
    finally:
        store.close()


# -- a whole table locked by another session, through the CLI -------------------------------


@contextmanager
def tables_locked(server: str, url: str) -> Iterator[None]:
    """Every table of the store locked by another session (PostgreSQL ACCESS EXCLUSIVE,
    MariaDB LOCK TABLES ... WRITE): even reading one waits for it."""
    holder = create_engine(url)
    with holder.connect() as conn:
        tables = sorted(inspect(conn).get_table_names())
        assert "audits" in tables and "alembic_version" in tables, tables
        if server == "postgresql":
            conn.execute(text(f"LOCK TABLE {', '.join(tables)} IN ACCESS EXCLUSIVE MODE"))
        else:  # a table lock: a metadata lock, not InnoDB's row locks
            conn.execute(text("LOCK TABLES " + ", ".join(f"`{t}` WRITE" for t in tables)))
        try:
            yield
        finally:
            if server == "mysql":
                conn.execute(text("UNLOCK TABLES"))
            conn.rollback()
    holder.dispose()


@pytest.mark.parametrize("server", [
    pytest.param("postgresql", marks=pytest.mark.postgresql),
    pytest.param("mysql", marks=pytest.mark.mysql),
])  # fmt: skip
@pytest.mark.parametrize("command", [["status"], ["sync"], ["db", "upgrade"]], ids=" ".join)
def test_a_table_locked_by_another_session_fails_the_command_within_lock_timeout(
    server: str, command: list[str], request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """statement_timeout = 0 (db upgrade runs without one anyway): only lock_timeout may end
    the wait. On MariaDB a table lock waited lock_wait_timeout, a day by default."""
    url = request.getfixturevalue(f"{server}_url")
    fleet = write_fleet("dir", tmp_path / "fleet")
    conf = tmp_path / "entropy.conf"
    conf.write_text(
        f"[database]\nlock_timeout = 1\nstatement_timeout = 0\n[dir]\nstate_connection = {url}\n"
    )
    args = ["--config-file", str(conf), "--backend", f"dir:{fleet}", *command]
    with tables_locked(server, url), deadline(20):
        started = time.monotonic()
        done = CliRunner().invoke(main, args, catch_exceptions=False)
        took = time.monotonic() - started
    assert done.exit_code != 0, done.output
    assert "Traceback" not in done.output
    assert "state store" in done.stderr
    assert "waited 1s for a lock another writer holds ([database] lock_timeout)" in done.stderr
    assert took < 10, took
