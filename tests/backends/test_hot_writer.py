"""SQLite claims and records: one writer connection in turns, checkpoints on a thread."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from entropy.backends.sqlalchemy.state import SqlStateStore
from entropy.backends.sqlalchemy.tables import audits
from entropy.errors import BackendError

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _store(tmp_path: Path) -> tuple[SqlStateStore, list[int]]:
    store = SqlStateStore(f"sqlite:///{tmp_path / 'state.sqlite'}")
    with store.transaction() as conn:
        conn.execute(
            audits.insert(),
            [
                {
                    "host": f"h{i}",
                    "ip_address": "10.0.0.1",
                    "audit_name": "a",
                    "next_run": NOW,
                    "created_at": NOW,
                    "updated_at": NOW,
                    "disabled": False,
                    "status": "new",
                    "attempts": 0,
                }
                for i in range(5)
            ],
        )
    return store, [row.id for row in store.audits()]


def _checkpointers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "entropy-checkpoint"]


def test_claims_share_one_connection_and_close_stops_the_checkpointer(tmp_path: Path) -> None:
    before = len(_checkpointers())
    store, ids = _store(tmp_path)
    lease = NOW + timedelta(minutes=1)
    assert set(store.claim(ids[:2], "e", NOW, lease)) == set(ids[:2])
    with store._connect(hot=True) as one, store.transaction() as pooled:
        assert one is store._writer._conn and pooled is not one
    assert len(_checkpointers()) == before + 1
    store.close()
    assert len(_checkpointers()) == before
    assert set(store.claim(ids[2:], "e", NOW, lease)) == set(ids[2:])  # usable again, as before
    store.close()


def test_a_failed_hot_transaction_rolls_back_and_drops_its_connection(tmp_path: Path) -> None:
    store, ids = _store(tmp_path)
    lease = NOW + timedelta(minutes=1)
    with pytest.raises(BackendError), store._connect(hot=True) as conn:
        first = conn
        conn.exec_driver_sql("UPDATE audits SET status = 'processing'")
        conn.exec_driver_sql("SELECT * FROM no_such_table")
    assert {row.status.value for row in store.audits()} == {"new"}  # rolled back
    assert set(store.claim(ids, "e", NOW, lease)) == set(ids)
    with store._connect(hot=True) as conn:
        assert conn is not first
    store.close()
