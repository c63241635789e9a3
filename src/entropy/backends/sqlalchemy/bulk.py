"""The bulk paths of a sync and a time table: many rows in, every row out.

A first sync of a million pairs inserts a million rows, and an engine's
first load reads them all back. Through SQLAlchemy Core each row's values
went through its bind and result processors one by one (most of the 44 s a
first start took, bench load). These go to the driver with the values
converted once: COPY on PostgreSQL, multi-row executemany elsewhere (SQLite
in one prepared statement, MySQL/MariaDB's driver batches the VALUES).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from ..base import ScheduleRow

COLUMNS = ("host", "ip_address", "audit_name", "next_run", "created_at", "updated_at",
           "disabled", "disabled_reason", "disabled_by", "status", "attempts")  # fmt: skip
_CHUNK = 5000  # rows per executemany (SQLite, MySQL)
_TIMES = ("next_run", "created_at", "updated_at")


def insert_rows(conn: Connection, rows: Iterable[dict[str, Any]]) -> int:
    """Insert new audit rows (column -> value, no id); how many."""
    dialect = conn.dialect.name
    convert = _sqlite_text if dialect == "sqlite" else _naive_utc
    values = _tuples(rows, convert, as_int=dialect == "sqlite")
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    sql = f"INSERT INTO audits ({', '.join(COLUMNS)}) VALUES ({', '.join([mark] * len(COLUMNS))})"
    base = conn.dialect.loaded_dbapi.Error
    try:
        if dialect == "postgresql":
            return _copy(conn, values)
        return _executemany(conn, sql, values)
    except base as exc:  # as SQLAlchemy would raise it: a duplicate key is a race to retry
        raise DBAPIError.instance(sql, None, exc, base, dialect=conn.dialect) from exc


def _executemany(conn: Connection, sql: str, values: Iterator[tuple]) -> int:
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    count = 0
    try:
        while chunk := list(islice(values, _CHUNK)):
            cursor.executemany(sql, chunk)
            count += len(chunk)
    finally:
        cursor.close()
    return count


def _copy(conn: Connection, values: Iterator[tuple]) -> int:
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    count = 0
    try:
        with cursor.copy(f"COPY audits ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for row in values:
                copy.write_row(row)
                count += 1
    finally:
        cursor.close()
    return count


def _tuples(rows: Iterable[dict[str, Any]], convert: Any, as_int: bool) -> Iterator[tuple]:
    """Each row's values in COLUMNS order; times converted once per distinct value."""
    seen: dict[datetime, Any] = {}
    for row in rows:
        values = []
        for name in COLUMNS:
            value = row[name]
            if name in _TIMES:
                got = seen.get(value)
                if got is None:
                    if len(seen) > 65_536:
                        seen.clear()
                    got = seen[value] = convert(value)
                value = got
            elif name == "disabled" and as_int:
                value = int(value)
            values.append(value)
        yield tuple(values)


def schedule_rows(conn: Connection) -> list[ScheduleRow]:
    """Every row's (id, audit_name, host, next_run, disabled, status), read in bulk."""
    sql = "SELECT id, audit_name, host, next_run, disabled, status FROM audits"
    read = _from_sqlite if conn.dialect.name == "sqlite" else _aware
    make = ScheduleRow
    # One str per name, not per row: a host's name repeats once per audit, an audit's
    # once per host (a million rows: 100 MB less).
    names: dict[str, str] = {}
    name = names.setdefault
    return [
        make(
            row_id, name(audit_name, audit_name), name(host, host), read(next_run),
            bool(disabled), name(status, status),
        )
        for row_id, audit_name, host, next_run, disabled, status in conn.exec_driver_sql(sql)
    ]


def _sqlite_text(t: datetime) -> str:
    # SQLAlchemy's SQLite DateTime format, microseconds always written.
    return t.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _naive_utc(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(tzinfo=None)


def _from_sqlite(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _aware(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC)
