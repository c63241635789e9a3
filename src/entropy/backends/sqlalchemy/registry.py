"""The engines registry in SQL: the `engines` table, and one engine per SQLite file.

SQLite serves one engine at a time: a second one on the same file is
refused (a file lock held for the engine's life, so two engines starting
together cannot both get in).
"""

from __future__ import annotations

import fcntl
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import delete, insert, select, update

from ...errors import BackendError
from ..base import EngineRecord, EngineRegistry
from .state import SqlStateStore
from .tables import engines


class SqlEngineRegistry(EngineRegistry):
    """The `engines` table of one SQL state store."""

    def __init__(self, store: SqlStateStore) -> None:
        super().__init__(store.describe())
        self.store = store
        self._sqlite_lock: IO[str] | None = None

    def register(self, me: EngineRecord, now: datetime, dead_after: float) -> None:
        self._lock_sqlite(me)
        c = engines.c
        try:
            with self.store.transaction() as conn:
                row = conn.execute(select(engines).where(c.engine_id == me.engine_id)).first()
                if row is not None:
                    self.refuse_if_live(EngineRecord(**row._mapping), me, now, dead_after)
                    conn.execute(
                        update(engines)
                        .where(c.engine_id == me.engine_id)
                        .values(**_values(me), stopped_at=None, stop_requested=False)
                    )
                else:
                    conn.execute(insert(engines).values(**_values(me), stop_requested=False))
        except BaseException:
            self._unlock_sqlite()
            raise

    def heartbeat(self, me: EngineRecord, now: datetime) -> bool:
        c = engines.c
        with self.store.transaction() as conn:
            touched = conn.execute(
                update(engines)
                .where(c.engine_id == me.engine_id)
                .values(heartbeat_at=now, stopped_at=None)
            ).rowcount
            if not touched:  # removed by hand meanwhile: come back
                again = {**_values(me), "heartbeat_at": now, "stop_requested": False}
                conn.execute(insert(engines).values(**again))
                return False
            return bool(
                conn.execute(
                    select(c.stop_requested).where(c.engine_id == me.engine_id)
                ).scalar_one()
            )

    def stopped(self, engine_id: str, now: datetime) -> None:
        try:
            with self.store.transaction() as conn:
                conn.execute(
                    update(engines)
                    .where(engines.c.engine_id == engine_id)
                    .values(stopped_at=now, heartbeat_at=now)
                )
        finally:
            self._unlock_sqlite()

    def _ask_to_stop(self, engine_ids: list[str]) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                update(engines)
                .where(engines.c.engine_id.in_(engine_ids))
                .values(stop_requested=True)
            )

    def list(self) -> list[EngineRecord]:
        with self.store.transaction() as conn:
            order = (engines.c.started_at, engines.c.engine_id)
            rows = conn.execute(select(engines).order_by(*order)).all()
        return [EngineRecord(**row._mapping) for row in rows]

    def forget_before(self, before: datetime) -> int:
        with self.store.transaction() as conn:
            return conn.execute(delete(engines).where(engines.c.heartbeat_at < before)).rowcount

    # -- one engine per SQLite file ---------------------------------------------

    def _lock_sqlite(self, me: EngineRecord) -> None:
        url = self.store.engine.url
        if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
            return
        path = Path(f"{Path(url.database).expanduser()}.engine-lock")
        lock = open(path, "a+")  # noqa: SIM115 - held for the engine's life
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            holder = self._describe_holder()
            raise BackendError(
                f"state store {self.where} is in use by {holder}; a SQLite state "
                "store serves one engine at a time. To run several engines, share a "
                "PostgreSQL, MariaDB/MySQL or MongoDB state store (state_connection)"
            ) from None
        self._sqlite_lock = lock

    def _unlock_sqlite(self) -> None:
        if self._sqlite_lock is not None:
            self._sqlite_lock.close()  # closing drops the flock
            self._sqlite_lock = None

    def _describe_holder(self) -> str:
        try:
            running = [e for e in self.list() if e.stopped_at is None]
        except BackendError:
            running = []
        if not running:
            return "another engine"
        latest = max(running, key=lambda e: e.heartbeat_at)
        return f"engine {latest.engine_id} (pid {latest.pid} on {latest.hostname})"


def _values(me: EngineRecord) -> dict[str, Any]:
    return {
        "engine_id": me.engine_id,
        "hostname": me.hostname,
        "pid": me.pid,
        "version": me.version,
        "started_at": me.started_at,
        "heartbeat_at": me.heartbeat_at,
    }
