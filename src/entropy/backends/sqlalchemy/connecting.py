"""Opening a state store's database: time bounds, read-only opening, failures said plainly.

Every connection is bounded ([database] connect_timeout, statement_timeout,
lock_timeout), so a database that accepts TCP and never answers fails the
command, naming the store, instead of hanging it. Read-only commands open a
SQLite file read-only and never create one. A failure is reported as what
an operator can act on: what timed out and which option bounds it, or a
full disk and the file it could not grow.
"""

from __future__ import annotations

import math
import os
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from ...errors import NoState
from ..base import Timeouts

_DISK_ALMOST_FULL = 1 << 20  # bytes free under which a SQLite I/O error means a full disk


def engine_arguments(
    url: URL, bounds: Timeouts, read_only: bool
) -> tuple[URL, dict[str, Any], Callable[[Any, Any], None] | None]:
    """(the URL to open, connect_args, a listener for each new connection) for this dialect."""
    backend, driver = url.get_backend_name(), url.get_driver_name()
    if backend == "sqlite":
        if read_only:
            url = _sqlite_read_only(url)
        return url, {"timeout": bounds.lock}, _sqlite_pragmas(bounds.lock, read_only)
    if backend == "postgresql" and driver in ("psycopg", "psycopg2"):
        settings = [f"-c lock_timeout={_ms(bounds.lock)}"]
        args: dict[str, Any] = {"connect_timeout": max(2, math.ceil(bounds.connect))}
        if bounds.statement:
            settings.append(f"-c statement_timeout={_ms(bounds.statement)}")
            # A peer that stops acknowledging what we send (a network cut) fails too.
            args["tcp_user_timeout"] = _ms(bounds.statement)
        if read_only:
            settings.append("-c default_transaction_read_only=on")
        given = url.query.get("options")
        given = given if isinstance(given, str) else " ".join(given or ())
        args["options"] = " ".join([given, *settings]).strip()
        return url, args, None
    if backend in ("mysql", "mariadb") and driver in ("pymysql", "mysqldb"):
        # The handshake is read under read_timeout: bound it by connect_timeout,
        # then give statements theirs once connected (see _mysql_session).
        seconds = max(1, math.ceil(bounds.connect))
        args = {"connect_timeout": seconds, "read_timeout": seconds}
        if bounds.statement:
            args["write_timeout"] = math.ceil(bounds.statement)
        return url, args, _mysql_session(bounds, read_only)
    if backend in ("mysql", "mariadb"):
        return url, {}, _mysql_session(bounds, read_only)
    return url, {}, None


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _sqlite_read_only(url: URL) -> URL:
    """A URI opening the file read-only; a state file that is not there is NoState.

    mode=ro still needs the -shm file of a WAL database, which it creates
    beside the file when missing. On a read-only filesystem (or a directory
    this user cannot write) with no -shm (no engine has it open), the file
    cannot change under us: it is opened immutable, which needs none.
    """
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return url
    path = Path(database).expanduser()
    if not path.is_file():
        raise NoState(path)
    shm = Path(f"{path}-shm")
    writable = os.access(path.parent, os.W_OK) and not _read_only_mount(path.parent)
    mode = "mode=ro" if writable or shm.exists() else "immutable=1"
    query = {k: v for k, v in url.query.items() if k not in ("mode", "immutable", "uri")}
    return url.set(
        database=f"file:{urllib.parse.quote(str(path.absolute()))}?{mode}",
        query={**query, "uri": "true"},
    )


def _read_only_mount(directory: Path) -> bool:
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _sqlite_pragmas(lock: float, read_only: bool) -> Callable[[Any, Any], None]:
    def pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # Wait for locks rather than fail; first, since switching to WAL takes one.
        cursor.execute(f"PRAGMA busy_timeout={_ms(lock)}")
        if not read_only:
            # WAL lets readers (status, plan) work while an engine writes.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return pragmas


def _mysql_session(bounds: Timeouts, read_only: bool) -> Callable[[Any, Any], None]:
    def session(dbapi_connection: Any, _record: Any) -> None:
        if hasattr(dbapi_connection, "_read_timeout"):  # PyMySQL: past the handshake now
            dbapi_connection._read_timeout = (
                math.ceil(bounds.statement) if bounds.statement else None
            )
        cursor = dbapi_connection.cursor()
        seconds = max(1, math.ceil(bounds.lock))
        cursor.execute(f"SET SESSION innodb_lock_wait_timeout = {seconds}")  # row locks
        # Table and metadata locks (another session's LOCK TABLES, an ALTER): a day by
        # default, and `db upgrade` runs without the client's read timeout.
        cursor.execute(f"SET SESSION lock_wait_timeout = {seconds}")
        if read_only:
            cursor.execute("SET SESSION TRANSACTION READ ONLY")
        cursor.close()

    return session


# -- what went wrong, for an operator ------------------------------------------------


def explain(exc: BaseException, bounds: Timeouts, database: str | None) -> tuple[str, bool]:
    """(What failed, in words an operator can act on; whether it is a full disk).

    The store's name goes in front. `database`: the SQLite file, to name it
    when the disk is full.
    """
    orig = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    text = str(orig).strip()
    reason = text.splitlines()[0] if text else type(orig).__name__
    connecting = isinstance(exc, DBAPIError) and exc.statement is None
    sqlstate = getattr(orig, "sqlstate", None)
    code = orig.args[0] if getattr(orig, "args", None) else None
    timed_out = "timed out" in reason or "timeout expired" in reason
    if timed_out and connecting:
        return (
            f"no answer within {bounds.connect:g}s while connecting "
            f"([database] connect_timeout): {reason}"
        ), False
    if timed_out and code == 2013:  # MySQL: no reply within the client's read timeout
        return (
            f"no answer to a statement within {bounds.statement or 0:g}s "
            f"([database] statement_timeout): {reason}"
        ), False
    if sqlstate == "57014" and "statement timeout" in reason:
        limit = bounds.statement or 0
        return f"a statement ran past {limit:g}s ([database] statement_timeout)", False
    if sqlstate == "55P03" or code == 1205 or reason == "database is locked":
        return (
            f"waited {bounds.lock:g}s for a lock another writer holds "
            f"([database] lock_timeout): {reason}"
        ), False
    if database and _disk_full(orig, database):
        return f"disk full: no space left to write {database} ({reason})", True
    return reason, False


def _disk_full(orig: BaseException, database: str) -> bool:
    name = getattr(orig, "sqlite_errorname", "") or ""
    if name == "SQLITE_FULL" or getattr(orig, "errno", None) == 28:  # ENOSPC
        return True
    if not name.startswith("SQLITE_IOERR") and "disk I/O error" not in str(orig):
        return False
    # A write or a -shm that could not grow: an I/O error that a full disk explains.
    return free_bytes(Path(database).expanduser().parent) < _DISK_ALMOST_FULL


def free_bytes(directory: Path) -> int:
    try:
        stat = os.statvfs(directory)
    except OSError:
        return _DISK_ALMOST_FULL
    return stat.f_bavail * stat.f_frsize
