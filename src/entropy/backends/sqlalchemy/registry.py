"""The engines registry: which engines share a state store, whether they live, stop requests.

Each engine keeps one row in `engines` and touches its `heartbeat_at` on
every heartbeat; an engine whose heartbeat is older than `dead_after` is
dead (its claims expire with their leases). `entropy engine stop` sets
`stop_requested`, which the engine reads on its next heartbeat: the stop
works from any machine that reaches the database, with no signal to send.

SQLite serves one engine at a time: a second one on the same file is
refused (a file lock held for the engine's life, so two engines starting
together cannot both get in).
"""

from __future__ import annotations

import fcntl
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from sqlalchemy import delete, insert, select, update

from ...errors import BackendError
from .state import SqlStateStore, safe_url
from .tables import engines


@dataclass(frozen=True, slots=True)
class EngineRecord:
    """One engine's row in the registry."""

    engine_id: str
    hostname: str
    pid: int
    version: str
    started_at: datetime
    heartbeat_at: datetime
    stopped_at: datetime | None = None
    stop_requested: bool = False

    def state(self, now: datetime, dead_after: float) -> str:
        """running, stopping (asked to), stopped (cleanly) or dead (no heartbeat for too long)."""
        if self.stopped_at is not None:
            return "stopped"
        if now - self.heartbeat_at > timedelta(seconds=dead_after):
            return "dead"
        return "stopping" if self.stop_requested else "running"

    def to_dict(self, now: datetime, dead_after: float) -> dict[str, Any]:
        return {
            "engine_id": self.engine_id,
            "hostname": self.hostname,
            "pid": self.pid,
            "version": self.version,
            "state": self.state(now, dead_after),
            "started_at": self.started_at,
            "heartbeat_at": self.heartbeat_at,
            "heartbeat_age_s": round((now - self.heartbeat_at).total_seconds(), 3),
            "stopped_at": self.stopped_at,
            "stop_requested": self.stop_requested,
        }


class EngineRegistry:
    """The `engines` table of one state store."""

    def __init__(self, store: SqlStateStore) -> None:
        self.store = store
        self._sqlite_lock: IO[str] | None = None

    def register(self, me: EngineRecord, now: datetime, dead_after: float) -> None:
        """Add this engine, or take over its id's row from a stopped or dead engine.

        Refused, naming the database and the holder, when a live engine has
        the same id, or when this is SQLite and another engine is running on it.
        """
        self._lock_sqlite(me)
        c = engines.c
        with self.store.transaction() as conn:
            row = conn.execute(select(engines).where(c.engine_id == me.engine_id)).first()
            if row is not None:
                other = EngineRecord(**row._mapping)
                if other.state(now, dead_after) in ("running", "stopping") and not _gone(other):
                    self._unlock_sqlite()
                    raise BackendError(
                        f"state store {safe_url(self.store.url)}: engine id {me.engine_id!r} "
                        f"is in use by a live engine (pid {other.pid} on {other.hostname}, "
                        f"heartbeat {_age(now, other.heartbeat_at)} ago); give this engine "
                        "another engine_id"
                    )
                conn.execute(
                    update(engines)
                    .where(c.engine_id == me.engine_id)
                    .values(**_values(me), stopped_at=None, stop_requested=False)
                )
            else:
                conn.execute(insert(engines).values(**_values(me), stop_requested=False))

    def heartbeat(self, me: EngineRecord, now: datetime) -> bool:
        """Say this engine lives; True when it has been asked to stop."""
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
        """Mark a clean stop; the row stays so `entropy engines` can show it."""
        try:
            with self.store.transaction() as conn:
                conn.execute(
                    update(engines)
                    .where(engines.c.engine_id == engine_id)
                    .values(stopped_at=now, heartbeat_at=now)
                )
        finally:
            self._unlock_sqlite()

    def request_stop(self, engine_id: str | None, now: datetime, dead_after: float) -> list[str]:
        """Ask one engine (or, with None, every live one) to stop; the ids asked.

        An unknown id is an error naming the known ones; a stopped or dead
        engine is not asked (there is nothing left to stop).
        """
        live = [e for e in self.list() if e.state(now, dead_after) in ("running", "stopping")]
        if engine_id is not None:
            known = {e.engine_id for e in self.list()}
            if engine_id not in known:
                raise BackendError(
                    f"state store {safe_url(self.store.url)}: no engine {engine_id!r}; "
                    f"known: {', '.join(sorted(known)) or 'none'}"
                )
            live = [e for e in live if e.engine_id == engine_id]
        ids = [e.engine_id for e in live]
        if ids:
            with self.store.transaction() as conn:
                conn.execute(
                    update(engines).where(engines.c.engine_id.in_(ids)).values(stop_requested=True)
                )
        return ids

    def list(self) -> list[EngineRecord]:
        with self.store.transaction() as conn:
            order = (engines.c.started_at, engines.c.engine_id)
            rows = conn.execute(select(engines).order_by(*order)).all()
        return [EngineRecord(**row._mapping) for row in rows]

    def forget_before(self, before: datetime) -> int:
        """Drop rows of engines stopped or silent since before `before` (history hygiene)."""
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
                f"state store {safe_url(self.store.url)} is in use by {holder}; a SQLite state "
                "store serves one engine at a time. To run several engines, share a "
                "PostgreSQL or MariaDB/MySQL state store (state_connection)"
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


def _gone(other: EngineRecord) -> bool:
    """Its row looks live, but it was this process, or a process of this machine now gone.

    So an engine killed and restarted at once with the same id (pid 1 in a
    container) need not wait for its old heartbeat to age.
    """
    if other.hostname != socket.gethostname():
        return False
    if other.pid == os.getpid():
        return True
    try:
        os.kill(other.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _age(now: datetime, then: datetime) -> str:
    return f"{max((now - then).total_seconds(), 0.0):.1f}s"
