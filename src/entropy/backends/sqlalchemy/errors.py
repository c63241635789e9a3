"""Driver errors of SQLite, PostgreSQL and MySQL/MariaDB as Entropy's typed store errors.

The one place that knows the three databases' codes: everything else
catches StoreUnavailable (retry with backoff), StoreConflict (lost a race,
run the transaction again) or StorageFailure (permanent, don't retry).
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from ...errors import StorageFailure, StoreConflict, StoreError, StoreUnavailable

# PostgreSQL SQLSTATEs (https://www.postgresql.org/docs/current/errcodes-appendix.html).
_PG_CONFLICT = frozenset({"40001", "40P01", "23505"})  # serialization, deadlock, unique
_PG_UNAVAILABLE = frozenset(
    {"57P01", "57P02", "57P03", "53300", "55P03", "57014", "58000", "58030"}
)  # shut down, cannot connect now, too many connections, lock not available, cancelled
_PG_UNAVAILABLE_CLASSES = ("08",)  # connection exceptions
# MySQL/MariaDB error numbers (server and client).
_MYSQL_CONFLICT = frozenset({1213, 1205, 1062})  # deadlock, lock wait timeout, duplicate key
_MYSQL_UNAVAILABLE = frozenset(
    {1040, 1053, 1158, 1159, 1160, 1161, 1927, 2002, 2003, 2005, 2006, 2013, 2055, 3024, 4031}
)  # too many connections, shutdown, network, gone away, lost, timeouts, killed
# SQLite reports by message only.
_SQLITE_UNAVAILABLE = ("database is locked", "database table is locked", "unable to open",
                       "disk i/o error")  # fmt: skip


def translate(
    exc: SQLAlchemyError,
    where: str,
    reason: str | None = None,
    kind: type[StoreError] | None = None,
) -> StoreError:
    """The typed error for `exc`, its message naming the store `where`.

    reason, kind: what the caller knows better (connecting.explain: what timed
    out, a full disk); by default the driver's first line and the code's kind.
    """
    kind = kind or _kind(exc)
    if reason is not None:
        pass
    elif isinstance(exc, DBAPIError) and exc.orig is not None:
        reason = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else repr(exc.orig)
    else:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    error = kind(f"state store {where}: {reason}")
    error.__cause__ = exc
    return error


def _kind(exc: SQLAlchemyError) -> type[StoreError]:
    if isinstance(exc, PoolTimeout):
        return StoreUnavailable  # every pooled connection busy for too long
    if not isinstance(exc, DBAPIError):
        return StorageFailure
    if exc.connection_invalidated:
        return StoreUnavailable
    orig = exc.orig
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int):  # MySQL/MariaDB: an error number (PyMySQL also
        if args[0] in _MYSQL_CONFLICT:  # sets a SQLSTATE, too coarse: 23000, HY000)
            return StoreConflict
        if args[0] in _MYSQL_UNAVAILABLE:
            return StoreUnavailable
        return StorageFailure
    state = getattr(orig, "sqlstate", None)
    if isinstance(state, str):
        if state in _PG_CONFLICT:
            return StoreConflict
        if state in _PG_UNAVAILABLE or state.startswith(_PG_UNAVAILABLE_CLASSES):
            return StoreUnavailable
        return StorageFailure
    message = str(orig).lower()
    if isinstance(exc, IntegrityError):
        return StoreConflict if "unique" in message else StorageFailure
    if type(orig).__module__.startswith("sqlite3"):
        return StoreUnavailable if message.startswith(_SQLITE_UNAVAILABLE) else StorageFailure
    if exc.__class__.__name__ in ("OperationalError", "InterfaceError"):
        return StoreUnavailable  # no SQLSTATE: the connection itself failed (refused, reset)
    return StorageFailure
