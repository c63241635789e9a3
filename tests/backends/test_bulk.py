"""The bulk paths of a first sync (entropy.backends.sqlalchemy.bulk): what they write is
what the plain inserts wrote, indexes included."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect

from entropy.backends import fetch
from entropy.backends.sqlalchemy import bulk
from entropy.clock import FakeClock
from entropy.config import load_conf
from entropy.errors import StoreConflict
from fleets import ROW_FIELDS, SEED_PAIRS, write_fleet


def indexes(engine: Engine) -> list[tuple]:
    """The audits table's indexes: name, columns, unique (and SQLite's own CREATE text)."""
    found = [(i["name"], tuple(i["column_names"]), bool(i["unique"]))
             for i in inspect(engine).get_indexes("audits")]  # fmt: skip
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            found += conn.exec_driver_sql(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audits'"
            ).all()
    return sorted(found, key=str)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql),
                        pytest.param("mysql", marks=pytest.mark.mysql)])  # fmt: skip
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state.sqlite"
    return request.getfixturevalue(f"{request.param}_url")


def test_a_bulk_first_sync_writes_every_field_and_keeps_the_indexes(
    state_url: str, tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "_DEFER_FROM", 1)  # SQLite: build the indexes after, even here
    conf = load_conf()
    conf.set_override("state_connection", state_url, group="dir")
    backend = fetch(conf, f"dir:{write_fleet('dir', tmp_path / 'fleet')}")
    try:
        engine = backend.state.engine
        before = indexes(engine)
        report = backend.sync(backend.load(), clock.now())
        assert report.added == len(SEED_PAIRS)
        assert indexes(engine) == before
        rows = backend.audits()
        assert {(r.audit_name, r.host) for r in rows} == set(SEED_PAIRS)
        for row in rows:
            assert set(row.public()) == ROW_FIELDS
            assert row.created_at == clock.now() and row.updated_at == clock.now()
            assert row.disabled is False and row.status.value == "new" and row.attempts == 0
            assert clock.now() <= row.next_run <= clock.now() + timedelta(days=2, seconds=1)
        # A second one finds every row there: nothing added twice, no conflict.
        assert backend.sync(backend.load(), clock.now()).added == 0
    finally:
        backend.close()


def test_a_duplicate_in_a_bulk_insert_is_a_conflict_and_changes_nothing(
    state_url: str, tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As another engine's sync winning the race: typed, retried, and rolled back whole."""
    monkeypatch.setattr(bulk, "_DEFER_FROM", 1)
    conf = load_conf()
    conf.set_override("state_connection", state_url, group="dir")
    backend = fetch(conf, f"dir:{write_fleet('dir', tmp_path / 'fleet')}")
    try:
        catalog = backend.load()
        doubled = [*catalog.pairs, next(iter(catalog.pairs))]
        before = indexes(backend.state.engine)
        with pytest.raises(StoreConflict):
            backend.state.sync(doubled, clock.now(), 0.0)
        assert backend.audits() == []
        assert indexes(backend.state.engine) == before
    finally:
        backend.close()
