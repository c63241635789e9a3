"""The bulk paths of a sync and a time table: many rows in, every row out.

A first sync of a million pairs inserts a million rows, and an engine's
first load reads them all back. Through SQLAlchemy Core each row's values
went through its bind and result processors one by one (most of the 44 s a
first start took, bench load). These go to the driver with the values
converted once: COPY on PostgreSQL, multi-row executemany elsewhere (SQLite
in one prepared statement, MySQL/MariaDB's driver batches the VALUES).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.exc import DBAPIError

from ...progress import Bar
from ..base import ScheduleRow
from ..syncplan import TUPLE_COLUMNS, NewRows
from .rowtext import times
from .tables import audits

_CHUNK = 5000  # rows per executemany (SQLite, MySQL)
# Indexes a bulk insert into an empty SQLite table builds afterwards, in one sorted pass,
# instead of row by row (1.7 s of 7.5 s at a million rows, measured).
_DEFERRED = ("ix_audits_next_run", "ix_audits_host")
_DEFER_FROM = 50_000  # rows
_BULK_CACHE_KIB = 65_536  # SQLite's page cache while it inserts that many rows


def insert_rows(conn: Connection, rows: NewRows, empty: bool = False) -> int:
    """Insert new audit rows; how many. `empty`: the table had no row before this sync."""
    dialect = conn.dialect.name
    sqlite = dialect == "sqlite"
    values = rows.tuples(_sqlite_text if sqlite else _naive_utc, int if sqlite else bool)
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    sql = (f"INSERT INTO audits ({', '.join(TUPLE_COLUMNS)}) "
           f"VALUES ({', '.join([mark] * len(TUPLE_COLUMNS))})")  # fmt: skip
    base = conn.dialect.loaded_dbapi.Error
    try:
        if dialect == "postgresql":
            return _copy(conn, values)
        if sqlite and empty and len(rows) >= _DEFER_FROM:
            return _with_indexes_after(conn, sql, values)
        return _executemany(conn, sql, values)
    except base as exc:  # as SQLAlchemy would raise it: a duplicate key is a race to retry
        raise DBAPIError.instance(sql, None, exc, base, dialect=conn.dialect) from exc


def _with_indexes_after(conn: Connection, sql: str, values: Iterator[tuple]) -> int:
    """SQLite, empty table: drop the plain indexes, insert, build them again (all in the
    sync's transaction: a failure leaves them as they were)."""
    indexes = [index for index in audits.indexes if index.name in _DEFERRED]
    for index in indexes:
        conn.exec_driver_sql(f"DROP INDEX IF EXISTS {index.name}")
    # The unique (audit, host) index is still built row by row: with SQLite's default
    # 2 MB page cache it spills and reads back pages all along (twice the time).
    cache = conn.exec_driver_sql("PRAGMA cache_size").scalar_one()
    conn.exec_driver_sql(f"PRAGMA cache_size=-{_BULK_CACHE_KIB}")
    try:
        count = _executemany(conn, sql, values)
        for index in indexes:
            index.create(conn)
    finally:
        conn.exec_driver_sql(f"PRAGMA cache_size={int(cache)}")
    return count


def _executemany(conn: Connection, sql: str, values: Iterator[tuple]) -> int:
    # None only once the connection is closed or detached; this one is checked out.
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
    # None only once the connection is closed or detached; this one is checked out.
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    count = 0
    try:
        with cursor.copy(f"COPY audits ({', '.join(TUPLE_COLUMNS)}) FROM STDIN") as copy:
            for row in values:
                copy.write_row(row)
                count += 1
    finally:
        cursor.close()
    return count


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
            row_id,
            name(audit_name, audit_name),
            name(host, host),
            read(next_run),
            bool(disabled),
            name(status, status),
        )
        for row_id, audit_name, host, next_run, disabled, status in conn.exec_driver_sql(sql)
    ]


def _sqlite_text(t: datetime) -> str:
    """SQLAlchemy's SQLite DateTime format, microseconds always written (rowtext's cache)."""
    return times(t)[0]  # type: ignore[return-value]  # str: t is not None


def _naive_utc(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(tzinfo=None)


def _from_sqlite(text: str) -> datetime:
    return datetime.fromisoformat(text + "+00:00")  # one call: 7x faster than .replace()


def _aware(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC)


def copy_into(conn: Connection, table: Table, items: list[dict[str, Any]]) -> None:
    """Insert `items` (column -> value) into table in chunks, with a progress bar: what
    `entropy import --with-state` writes. Not a hot path: plain SQLAlchemy Core inserts."""
    bar = Bar.start(f"copying {table.name}", len(items), size=len(items))
    for start in range(0, len(items), _CHUNK):
        chunk = items[start : start + _CHUNK]
        conn.execute(table.insert(), chunk)
        if bar is not None:
            bar.advance(len(chunk))
    if bar is not None:
        bar.done()
