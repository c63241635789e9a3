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
from sqlalchemy import create_engine, text

from entropy.backends.base import Timeouts
from entropy.backends.sqlalchemy import state as state_module
from entropy.backends.sqlalchemy.state import SqlStateStore
from entropy.errors import BackendError
from entropy.model import Outcome, Result

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
