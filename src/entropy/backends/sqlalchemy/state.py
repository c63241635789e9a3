"""Audit rows and result history in SQL: the state store every backend uses.

The dir and file backends keep their state here (a SQLite file by default,
or a shared PostgreSQL/MySQL database); the sqlalchemy backend keeps it
beside its definitions. One implementation serves them all.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, create_engine, delete, event, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from ...errors import BackendError
from ...model import AuditRow, DisabledBy, Pair, Status, SyncReport
from .tables import audits, metadata

_CHUNK = 500  # ids per DELETE ... IN (...), well under every database's bind limit


def create_sql_engine(url: str) -> Engine:
    """An engine for URL with the settings Entropy relies on, or a clear BackendError."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise BackendError(f"invalid database URL {url!r}") from None
    options: dict[str, Any] = {"future": True}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    else:
        options["pool_pre_ping"] = True
    try:
        engine = create_engine(parsed, **options)
    except NoSuchModuleError:
        raise BackendError(f"no SQLAlchemy dialect for {parsed.drivername!r}") from None
    except ModuleNotFoundError as exc:
        extra = {"postgresql": "postgresql", "mysql": "mysql"}.get(parsed.get_backend_name(), "")
        hint = f"; install it with: pip install 'entropy[{extra}]'" if extra else ""
        raise BackendError(f"database driver {exc.name!r} is not installed{hint}") from None
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (status, plan) work while an engine writes.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def safe_url(url: str) -> str:
    """The URL with any password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


class SqlStateStore:
    """Audit rows and results for one fleet, in one SQL database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_sql_engine(url)
        with self._connect() as conn:
            metadata.create_all(conn)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _connect(self) -> Iterator[Connection]:
        """A transaction; database failures become a BackendError naming the store."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except DBAPIError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise BackendError(f"state store {safe_url(self.url)}: {reason}") from exc
        except SQLAlchemyError as exc:
            raise BackendError(f"state store {safe_url(self.url)}: {exc}") from exc

    def sync(self, pairs: Iterable[Pair], now: datetime, max_splay: float) -> SyncReport:
        """Make the rows match the pairs: add new ones, remove gone ones, keep the rest.

        Kept rows keep their state. They follow changes to the host's address
        and to the definitions' disabled flag (an operator's disable stays),
        and a next_run left far out by a shortened interval is pulled in.
        """
        desired = {pair.key: pair for pair in pairs}
        c = audits.c
        with self._connect() as conn:
            existing = conn.execute(
                select(
                    c.id,
                    c.audit_name,
                    c.host,
                    c.ip_address,
                    c.next_run,
                    c.disabled,
                    c.disabled_reason,
                    c.disabled_by,
                )
            ).all()
            gone: list[int] = []
            changes: list[dict[str, Any]] = []
            latest: dict[Any, datetime] = {}
            for row in existing:
                pair = desired.pop((row.audit_name, row.host), None)
                if pair is None:
                    gone.append(row.id)
                    continue
                timing = pair.schedule.timing
                if timing not in latest:
                    latest[timing] = timing.latest_next_run(now)
                change = _changes(row, pair, now, max_splay, latest[timing])
                if change is not None:
                    changes.append(change)
            for start in range(0, len(gone), _CHUNK):
                conn.execute(delete(audits).where(c.id.in_(gone[start : start + _CHUNK])))
            if desired:
                conn.execute(
                    audits.insert(), [_new_row(p, now, max_splay) for p in desired.values()]
                )
            if changes:
                conn.execute(
                    update(audits)
                    .where(c.id == bindparam("row_id"))
                    .values(
                        ip_address=bindparam("ip_address"),
                        next_run=bindparam("next_run"),
                        disabled=bindparam("disabled"),
                        disabled_reason=bindparam("disabled_reason"),
                        disabled_by=bindparam("disabled_by"),
                        updated_at=bindparam("updated_at"),
                    ),
                    changes,
                )
        return SyncReport(len(desired), len(gone), len(existing) - len(gone), len(changes))

    def audits(self, host: str | None = None, audit_name: str | None = None) -> list[AuditRow]:
        query = select(audits).order_by(audits.c.host, audits.c.audit_name)
        if host is not None:
            query = query.where(audits.c.host == host)
        if audit_name is not None:
            query = query.where(audits.c.audit_name == audit_name)
        with self._connect() as conn:
            return [_audit_row(row._mapping) for row in conn.execute(query)]

    def set_disabled(self, pairs: Iterable[Pair], reason: str | None, now: datetime) -> int:
        """Disable these pairs' rows as the operator asked, or, with reason None, lift that.

        Lifting leaves what the definitions say: a pair they disable stays disabled.
        """
        params = []
        for pair in pairs:
            if reason is not None:
                state = (True, reason, DisabledBy.OPERATOR.value)
            elif pair.schedule.disabled:
                state = (True, pair.schedule.disabled_reason, DisabledBy.DEFINITIONS.value)
            else:
                state = (False, None, None)
            params.append(
                {
                    "k_audit": pair.audit_name,
                    "k_host": pair.host,
                    "disabled": state[0],
                    "disabled_reason": state[1],
                    "disabled_by": state[2],
                    "updated_at": now,
                }
            )
        if not params:
            return 0
        c = audits.c
        with self._connect() as conn:
            result = conn.execute(
                update(audits)
                .where(c.audit_name == bindparam("k_audit"), c.host == bindparam("k_host"))
                .values(
                    disabled=bindparam("disabled"),
                    disabled_reason=bindparam("disabled_reason"),
                    disabled_by=bindparam("disabled_by"),
                    updated_at=bindparam("updated_at"),
                ),
                params,
            )
            return result.rowcount


def _new_row(pair: Pair, now: datetime, max_splay: float) -> dict[str, Any]:
    schedule = pair.schedule
    return {
        "host": pair.host,
        "ip_address": pair.ip_address,
        "audit_name": pair.audit_name,
        "next_run": schedule.timing.first_run(now, pair.audit_name, pair.host, max_splay),
        "created_at": now,
        "updated_at": now,
        "disabled": schedule.disabled,
        "disabled_reason": schedule.disabled_reason if schedule.disabled else None,
        "disabled_by": DisabledBy.DEFINITIONS.value if schedule.disabled else None,
        "status": Status.NEW.value,
        "attempts": 0,
    }


def _changes(
    row: Any, pair: Pair, now: datetime, max_splay: float, latest_next_run: datetime
) -> dict[str, Any] | None:
    """The new values of a kept row's definition-driven columns, or None if none change."""
    schedule = pair.schedule
    disabled, reason, by = row.disabled, row.disabled_reason, row.disabled_by
    if by != DisabledBy.OPERATOR:
        if schedule.disabled:
            disabled, reason, by = True, schedule.disabled_reason, DisabledBy.DEFINITIONS.value
        else:
            disabled, reason, by = False, None, None
    next_run = row.next_run
    if next_run > latest_next_run:
        next_run = schedule.timing.first_run(now, pair.audit_name, pair.host, max_splay)
    new = (pair.ip_address, next_run, disabled, reason, by)
    if new == (row.ip_address, row.next_run, row.disabled, row.disabled_reason, row.disabled_by):
        return None
    return {
        "row_id": row.id,
        "ip_address": pair.ip_address,
        "next_run": next_run,
        "disabled": disabled,
        "disabled_reason": reason,
        "disabled_by": by,
        "updated_at": now,
    }


def _audit_row(m: Any) -> AuditRow:
    return AuditRow(
        id=m["id"],
        host=m["host"],
        ip_address=m["ip_address"],
        audit_name=m["audit_name"],
        next_run=m["next_run"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        disabled=bool(m["disabled"]),
        disabled_reason=m["disabled_reason"],
        status=Status(m["status"]),
        result=m["result"],
        disabled_by=DisabledBy(m["disabled_by"]) if m["disabled_by"] else None,
        claimed_by=m["claimed_by"],
        lease_until=m["lease_until"],
        attempts=m["attempts"],
    )
