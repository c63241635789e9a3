"""The shipped Alembic migrations, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, insert, inspect, select

from entropy.backends.sqlalchemy import schema
from entropy.backends.sqlalchemy.state import SqlStateStore
from entropy.backends.sqlalchemy.tables import audits, metadata, removed_disables
from entropy.clock import to_micros
from entropy.errors import BackendError


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgresql),
        pytest.param("mysql", marks=pytest.mark.mysql),
    ]
)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state.sqlite"
    return request.getfixturevalue(f"empty_{request.param}_url")


def test_upgrade_from_empty_creates_every_table(empty_url: str) -> None:
    store = SqlStateStore(empty_url, check_schema=False)
    try:
        assert store.schema_revision() is None
        assert store.upgrade_schema() == (None, schema.head())
        assert store.schema_revision() == schema.head()
        tables = set(inspect(store.engine).get_table_names())
        assert set(metadata.tables) <= tables
        assert store.upgrade_schema() == (schema.head(), schema.head())  # idempotent
    finally:
        store.close()


def test_the_revisions_read_without_alembic_are_alembics(empty_url: str) -> None:
    """schema.head() and schema.current() spare commands Alembic's import: same answers."""
    assert schema.head() == ScriptDirectory.from_config(schema._config()).get_current_head()
    store = SqlStateStore(empty_url, check_schema=False)
    try:
        with store.engine.begin() as conn:
            for step in (None, "0005", "head"):
                if step:
                    command.upgrade(schema._config(conn), step)
                alembics = MigrationContext.configure(conn).get_current_revision()
                assert (
                    schema.current(conn) == alembics == (step if step != "head" else schema.head())
                )
    finally:
        store.close()


def test_the_models_match_the_migrated_schema(empty_url: str) -> None:
    store = SqlStateStore(empty_url, check_schema=False)
    try:
        store.upgrade_schema()
        with store.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
    finally:
        store.close()


@pytest.mark.parametrize("server", [
    pytest.param("postgresql", marks=pytest.mark.postgresql),
    pytest.param("mysql", marks=pytest.mark.mysql),
])  # fmt: skip
def test_a_shared_database_behind_the_code_is_refused(
    server: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue(f"empty_{server}_url")
    with pytest.raises(BackendError, match=r"has no Entropy tables.*Run: entropy db upgrade"):
        SqlStateStore(url)


def test_a_sqlite_state_file_is_upgraded_on_open(tmp_path: Path) -> None:
    store = SqlStateStore(f"sqlite:///{tmp_path}/state.sqlite")
    try:
        assert store.schema_revision() == schema.head()
    finally:
        store.close()


def test_0006_adds_removed_disables_to_a_store_at_0005_and_keeps_its_rows(empty_url: str) -> None:
    store = SqlStateStore(empty_url, check_schema=False)
    try:
        with store.engine.begin() as conn:
            command.upgrade(schema._config(conn), "0005")
            assert "removed_disables" not in inspect(conn).get_table_names()
            now = datetime(2026, 3, 1, tzinfo=UTC)
            conn.execute(insert(audits).values(
                host="h", ip_address="10.0.0.1", audit_name="a", next_run=now, created_at=now,
                updated_at=now, disabled=True, disabled_reason="CHG-1", disabled_by="operator",
                status="new", attempts=0))  # fmt: skip
        assert store.upgrade_schema() == ("0005", schema.head())
        with store.engine.begin() as conn:
            assert conn.execute(select(func.count()).select_from(audits)).scalar() == 1
            assert conn.execute(select(removed_disables)).all() == []
            command.downgrade(schema._config(conn), "0005")
            assert "removed_disables" not in inspect(conn).get_table_names()
    finally:
        store.close()


def test_0011_fills_the_latest_outcome_and_end_from_each_rows_result(empty_url: str) -> None:
    store = SqlStateStore(empty_url, check_schema=False)
    try:
        ended = datetime(2026, 3, 1, 12, 0, 5, 123456, tzinfo=UTC)
        with store.engine.begin() as conn:
            command.upgrade(schema._config(conn), "0010")
            now = datetime(2026, 3, 1, tzinfo=UTC)
            row = {
                "ip_address": "10.0.0.1",
                "next_run": now,
                "created_at": now,
                "updated_at": now,
                "disabled": False,
                "status": "new",
                "attempts": 0,
            }
            conn.execute(insert(audits), [
                {**row, "host": "h", "audit_name": "ran",
                 "result": {"outcome": "critical", "summary": "bad",
                            "finished_at": ended.isoformat()}},
                {**row, "host": "h", "audit_name": "never", "result": None},
            ])  # fmt: skip
        assert store.upgrade_schema() == ("0010", schema.head())
        c = audits.c
        with store.engine.begin() as conn:
            found = conn.execute(select(c.audit_name, c.outcome, c.finished_us)).all()
        got = {audit_name: (outcome, finished_us) for audit_name, outcome, finished_us in found}
        assert got == {"ran": ("critical", to_micros(ended)), "never": (None, None)}
        assert {(p[0], p[2], p[3]) for p in store.pair_outcomes()} == {
            ("ran", "critical", to_micros(ended)),
            ("never", None, None),
        }
    finally:
        store.close()
