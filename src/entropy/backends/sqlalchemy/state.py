"""Audit rows and result history in SQL: SQLite, PostgreSQL or MySQL/MariaDB.

The dir and file backends keep their state here by default (a SQLite file,
or a shared PostgreSQL/MySQL database); the sqlalchemy backend keeps it
beside its definitions. One implementation of the StateStore contract
serves the three databases; driver errors become typed StoreErrors in
`errors.translate`.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import threading
import urllib.parse
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    bindparam,
    case,
    create_engine,
    delete,
    event,
    false,
    func,
    select,
    true,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from ...catalogdiff import SyncScope
from ...clock import to_micros
from ...errors import BackendError, NoState, SchemaOutOfDate, StoreUnavailable
from ...model import (
    Ack,
    AuditRow,
    DisabledBy,
    Downtime,
    MonitorState,
    Outcome,
    Pair,
    Result,
    Status,
    SyncReport,
)
from ...removal import RemovalPolicy
from ..base import (
    Capability,
    EngineRegistry,
    MonitorRow,
    PairOutcome,
    PastDue,
    RecordItem,
    RepairStore,
    ScheduleRow,
    StateDump,
    StateStore,
    Timeouts,
)
from ..retry import retried_on_race
from ..syncplan import disabled_state, latest_of, outcome_and_end, plan_sync
from . import bulk, kept_disables, monitoring, rowtext, schema
from .connecting import engine_arguments, explain
from .errors import translate
from .repair_store import SqlRepairStore
from .tables import UTCDateTime, audits, results

LOG = logging.getLogger(__name__)
T = TypeVar("T")

_CHUNK = 500  # ids per DELETE ... IN (...), well under every database's bind limit
_PRUNE_BATCH = 5000  # history rows deleted per transaction


def create_sql_engine(url: str, bounds: Timeouts | None = None, read_only: bool = False) -> Engine:
    """An engine for URL with the settings Entropy relies on, or a clear BackendError.

    Every connection is time-bounded (see connecting.Timeouts). read_only: a
    SQLite file is opened read-only, and one that is not there is NoState.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise BackendError(f"invalid database URL {url!r}") from None
    bounds = bounds or Timeouts()
    # An audit's odd metric value (a Decimal, a datetime) stores as text, never fails a write.
    options: dict[str, Any] = {"future": True, "json_serializer": _to_json}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:" and not read_only:
            parent = Path(parsed.database).expanduser().parent
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise BackendError(
                    f"state store {safe_url(url)}: cannot create {parent}: {exc.strerror}"
                ) from None
    else:
        options["pool_pre_ping"] = True
        if parsed.get_backend_name() in ("mysql", "mariadb"):
            # Engines share rows: in READ COMMITTED an UPDATE locks only the rows it
            # changes, not every row it scans (InnoDB's REPEATABLE READ default).
            options["isolation_level"] = "READ COMMITTED"
    opened, options["connect_args"], on_connect = engine_arguments(parsed, bounds, read_only)
    try:
        engine = create_engine(opened, **options)
    except NoSuchModuleError:
        raise BackendError(f"no SQLAlchemy dialect for {parsed.drivername!r}") from None
    except ModuleNotFoundError as exc:
        extra = {"postgresql": "postgresql", "mysql": "mysql"}.get(parsed.get_backend_name(), "")
        hint = f"; install it with: pip install 'entropy[{extra}]'" if extra else ""
        raise BackendError(f"database driver {exc.name!r} is not installed{hint}") from None
    if on_connect is not None:
        event.listen(engine, "connect", on_connect)
    return engine


@contextmanager
def _schema_lock(engine: Engine, url: str) -> Iterator[None]:
    """Serialise schema creation between processes sharing one SQLite file.

    create_all checks, then creates; two processes starting together (an
    engine and a `status`) would otherwise both try to create the tables.
    """
    database = engine.url.database
    if engine.url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        yield
        return
    path = f"{Path(database).expanduser()}.lock"
    try:
        lock = open(path, "a")  # noqa: SIM115 - closed below
    except OSError as exc:
        full = " (disk full)" if exc.errno == errno.ENOSPC else ""
        raise BackendError(
            f"state store {safe_url(url)}: cannot create {path}: {exc.strerror}{full}"
        ) from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def safe_url(url: str) -> str:
    """The URL with any password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


class SqlStateStore(StateStore):
    """Audit rows and results for one fleet, in one SQL database."""

    name = "sql"

    def __init__(
        self,
        url: str,
        check_schema: bool = True,
        *,
        read_only: bool = False,
        timeouts: Timeouts | None = None,
    ) -> None:
        """read_only: for commands that only read (a SQLite file that is not there is NoState).

        timeouts: the time bounds of every connection (default: Timeouts()).
        """
        super().__init__(url)
        self.read_only = read_only
        self.timeouts = timeouts or Timeouts()
        self.engine = create_sql_engine(url, self.timeouts, read_only)
        self._writer = _HotWriter(self.engine)
        database = self.engine.url.database
        file = self.engine.url.get_backend_name() != "sqlite" or database not in (
            None, "", ":memory:")  # fmt: skip
        # SQLite serves one engine per file (see registry); the servers serve many.
        shared = self.engine.url.get_backend_name() != "sqlite"
        self.capabilities = frozenset(
            {Capability.SCHEMA_MIGRATIONS}
            | ({Capability.PERSISTENT} if file else set())
            | ({Capability.SHARED_ENGINES} if shared else set())
        )
        if check_schema:
            self._ensure_schema()
        self._repairs = SqlRepairStore(self.transaction)

    @property
    def repairs(self) -> RepairStore:
        return self._repairs

    def engine_registry(self) -> EngineRegistry:
        from .registry import SqlEngineRegistry  # it needs this module: imported when used

        return SqlEngineRegistry(self)

    def _ensure_schema(self) -> None:
        """Upgrade a SQLite file in place; refuse a shared database that is behind."""
        needed = schema.head()
        if self.read_only:  # no lock file, no upgrade: this command only reads
            with self._connect() as conn:
                at = schema.current(conn)
                sqlite = conn.dialect.name == "sqlite"
            if at == needed:
                return
            if sqlite and at is None:  # an empty file (an earlier version left it)
                raise NoState(self.engine.url.database)
            if sqlite:
                raise BackendError(
                    f"state store {safe_url(self.url)} is at revision {at}; this Entropy needs "
                    f"revision {needed}. Run `entropy db upgrade` (or `entropy sync`), then "
                    "this command again"
                )
        else:
            with _schema_lock(self.engine, self.url), self._connect() as conn:
                at = schema.current(conn)
                if at == needed:
                    return
                if conn.dialect.name == "sqlite":
                    schema.upgrade(conn)
                    return
        state = f"is at revision {at}" if at else "has no Entropy tables"
        raise SchemaOutOfDate(
            f"state store {safe_url(self.url)} {state}; this Entropy needs revision {needed}. "
            f"Run: entropy db upgrade"
        )

    def schema_revision(self) -> str | None:
        with self._connect() as conn:
            return schema.current(conn)

    def schema_head(self) -> str:
        return schema.head()

    def upgrade_schema(self) -> tuple[str | None, str]:
        """Bring the schema to this version's head; return (before, after)."""
        with _schema_lock(self.engine, self.url), self._connect() as conn:
            before = schema.current(conn)
            schema.upgrade(conn)
            return before, schema.current(conn) or ""

    def close(self) -> None:
        self._writer.close()
        self.engine.dispose()

    def transaction(self) -> AbstractContextManager[Connection]:
        """A transaction on the state store's database, for a backend's own tables."""
        return self._connect()

    @contextmanager
    def _connect(self, hot: bool = False) -> Iterator[Connection]:
        """A transaction; database failures become typed StoreErrors naming the store.

        hot: the engine's claims and records, which take turns on one writer
        connection with SQLite (see _HotWriter).
        """
        try:
            with self._writer.begin() if hot else self.engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise self._failed(exc) from exc

    def _failed(self, exc: SQLAlchemyError) -> BackendError:
        """The typed error naming the store and what went wrong (what timed out, a full disk).

        A full disk is StoreUnavailable: the engine keeps the results and
        retries (someone frees space), rather than dropping them as refused.
        """
        url = self.engine.url
        database = url.database if url.get_backend_name() == "sqlite" else None
        if database and database.startswith("file:"):  # opened read-only (a URI)
            database = urllib.parse.unquote(database[5:].partition("?")[0])
        why, disk_full = explain(exc, self.timeouts, database)
        return translate(exc, safe_url(self.url), why, StoreUnavailable if disk_full else None)

    def sync(
        self,
        pairs: Iterable[Pair],
        now: datetime,
        max_splay: float,
        skew: float = 0.0,
        policy: RemovalPolicy | None = None,
        scope: SyncScope | None = None,
    ) -> SyncReport:
        """Make the rows match the pairs: add new ones, remove gone ones, keep the rest.

        Kept rows keep their state. They follow changes to the host's address
        and to the definitions' disabled flag (an operator's disable stays),
        and a next_run left far out by a shortened interval is pulled in
        (`skew` seconds of slack, for a next_run another engine's clock set).
        Engines sharing the store sync at the same moments (start-up, a
        changed file): when another one's sync got in first (a duplicate
        insert, a deadlock), this one starts over from what it wrote.

        `policy` (default: RemovalPolicy()) says how many rows may go without
        force: beyond that, RemovalRefused and nothing changes. An operator's
        disable of a removed pair is remembered, and put back if the pair
        returns within the policy's disable_retention (see entropy.removal).

        With `scope`, only the rows it covers are read and written (an
        incremental refresh; see StateStore.sync).
        """
        return self._sync(list(pairs), now, max_splay, skew, policy or RemovalPolicy(), scope)

    @retried_on_race
    def _sync(
        self, pairs: list[Pair], now: datetime, max_splay: float, skew: float,
        policy: RemovalPolicy, scope: SyncScope | None,
    ) -> SyncReport:  # fmt: skip
        c = audits.c
        columns = (c.id, c.audit_name, c.host, c.ip_address, c.next_run, c.disabled,
                   c.disabled_reason, c.disabled_by)  # fmt: skip
        with self._connect() as conn:
            stored = None
            if scope is None:
                existing = conn.execute(select(*columns)).all()
            else:
                existing = _in_scope(conn, columns, scope)
                stored = conn.execute(select(func.count()).select_from(audits)).scalar_one()
            plan = plan_sync(existing, pairs, now, max_splay, skew, policy,
                             kept_disables.read(conn), stored)  # fmt: skip
            del existing
            for chunk in _chunks(plan.gone):
                conn.execute(delete(audits).where(c.id.in_(chunk)))
            kept_disables.write(conn, plan.disables)
            if plan.new:
                bulk.insert_rows(conn, plan.new, empty=scope is None and not plan.kept
                                 and not plan.gone)  # fmt: skip
            if plan.changes:
                when = UTCDateTime()
                # Another engine may have recorded a result since the read above: its
                # next_run stands (writing ours back would run its slot again).
                unmoved = c.next_run == bindparam("old_next_run", type_=when)
                conn.execute(
                    update(audits)
                    .where(c.id == bindparam("row_id"))
                    .values(
                        ip_address=bindparam("ip_address"),
                        next_run=case(
                            (unmoved, bindparam("next_run", type_=when)), else_=c.next_run
                        ),
                        disabled=bindparam("disabled"),
                        disabled_reason=bindparam("disabled_reason"),
                        disabled_by=bindparam("disabled_by"),
                        updated_at=bindparam("updated_at"),
                    ),
                    plan.changes,
                )
        return plan.report()

    def audits(self, host: str | None = None, audit_name: str | None = None) -> list[AuditRow]:
        query = select(audits).order_by(audits.c.host, audits.c.audit_name)
        if host is not None:
            query = query.where(audits.c.host == host)
        if audit_name is not None:
            query = query.where(audits.c.audit_name == audit_name)
        with self._connect() as conn:
            return [_audit_row(row._mapping) for row in conn.execute(query)]

    def pair_outcomes(self) -> list[PairOutcome]:
        """Four plain columns (the outcome and end are kept beside `result` when it is
        written): no JSON to open in the database, no datetime to build here. The
        driver's own tuples, as they come: no Row, no conversion (strings and floats)."""
        with self._connect() as conn:
            found = conn.exec_driver_sql(_PAIR_OUTCOMES)
            return list(found.cursor.fetchall())

    def past_due(self, now: datetime) -> list[PastDue]:
        a = audits.c
        query = select(a.audit_name, a.host, a.next_run, a.outcome, a.finished_us, a.created_at)
        query = query.where(a.disabled == false(), a.next_run < now)
        with self._connect() as conn:
            return list(map(PastDue._make, conn.execute(query).all()))

    def set_disabled(self, pairs: Iterable[Pair], reason: str | None, now: datetime) -> int:
        """Disable these pairs' rows as the operator asked, or, with reason None, lift that.

        Lifting leaves what the definitions say: a pair they disable stays disabled.
        """
        params = []
        for pair in pairs:
            state = disabled_state(pair, reason)
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

    # -- what the scheduler and the engine need -------------------------------

    def schedule_rows(
        self, scope: SyncScope | None = None, ids: Collection[int] | None = None
    ) -> list[ScheduleRow]:
        """(id, audit_name, host, next_run, disabled, status) of every row, for the time table.

        Only those `scope` covers, or those of `ids`, when given.
        """
        c = audits.c
        columns = (c.id, c.audit_name, c.host, c.next_run, c.disabled, c.status)
        with self._connect() as conn:
            if ids is not None:
                found: list[Any] = []
                for chunk in _chunks(sorted(ids)):
                    found += conn.execute(select(*columns).where(c.id.in_(chunk))).all()
                return list(map(ScheduleRow._make, found))
            if scope is not None:
                return list(map(ScheduleRow._make, _in_scope(conn, columns, scope)))
            return bulk.schedule_rows(conn)

    def disabled_ids(self) -> set[int]:
        c = audits.c
        with self._connect() as conn:
            return set(conn.execute(select(c.id).where(c.disabled == true())).scalars())

    def claim(
        self,
        ids: list[int],
        engine_id: str,
        now: datetime,
        lease_until: datetime,
        waiting: Iterable[int] = (),
    ) -> dict[int, datetime]:
        """Atomically take the due, enabled, unclaimed rows among `ids`: {row id: slot}.

        The slot is the row's next_run as the database has it, not as the
        caller's time table thought: when another engine has already run the
        slot the caller expected, the row's next_run has moved on, and the
        caller runs that one instead of repeating the old one. A row still
        `processing` is never taken here, even with its lease run out: it
        comes back through recover_expired(), which counts the attempt.
        PostgreSQL and MariaDB/MySQL skip rows another engine has locked
        (FOR UPDATE SKIP LOCKED) instead of waiting for them.

        `waiting` are due rows this engine cannot start yet: they are marked
        `new` in the same transaction. Like record(), this is on the hot path
        and talks to the driver directly (building the statement through
        SQLAlchemy cost more than running it).
        """
        claimed: dict[int, datetime] = {}
        with self._connect(hot=True) as conn:
            sql = _RawSql(conn.dialect)
            at, until, read = sql.time(now), sql.time(lease_until), sql.read_time
            for chunk in _chunks(list(waiting)):
                if sql.returning:
                    conn.exec_driver_sql(sql.mark_new(len(chunk)), (*chunk, at))
                    continue
                # MySQL/MariaDB: lock what is free first, then label it (see mark_new).
                free = conn.exec_driver_sql(sql.mark_new_select(len(chunk)), (*chunk, at)).all()
                if free:
                    conn.exec_driver_sql(sql.mark_new(len(free)), (*[r[0] for r in free], at))
            for chunk in _chunks(ids):
                claimable = (*chunk, at)
                if sql.returning:
                    taken = conn.exec_driver_sql(
                        sql.claim_returning(len(chunk)), (engine_id, until, at, *claimable)
                    ).all()
                else:  # MySQL/MariaDB: no UPDATE ... RETURNING
                    taken = conn.exec_driver_sql(sql.claim_select(len(chunk)), claimable).all()
                    if taken:
                        conn.exec_driver_sql(
                            sql.claim_update(len(taken)),
                            (engine_id, until, at, *[row[0] for row in taken]),
                        )
                claimed.update((row[0], read(row[1])) for row in taken)
        return claimed

    def next_runs(self, ids: list[int]) -> dict[int, datetime]:
        """The rows' next_run as stored, for an engine whose claim on them failed."""
        found: dict[int, datetime] = {}
        with self._connect() as conn:
            sql = _RawSql(conn.dialect)
            for chunk in _chunks(ids):
                rows = conn.exec_driver_sql(sql.select_next_run(len(chunk)), tuple(chunk))
                found.update((row[0], sql.read_time(row[1])) for row in rows)
        return found

    def renew_leases(self, engine_id: str, ids: list[int], lease_until: datetime) -> int:
        """Extend this engine's leases on these rows (still claimed by it); how many it holds.

        The engine renews only what it knows it holds (running, or finished and
        waiting to be written): a claim whose commit was lost with a dropped
        connection is not in that list, so its lease runs out and it comes back.
        """
        renewed = 0
        with self._connect() as conn:
            sql = _RawSql(conn.dialect)
            until = sql.time(lease_until)
            for chunk in _chunks(sorted(ids)):
                renewed += conn.exec_driver_sql(
                    sql.renew(len(chunk)), (until, engine_id, *chunk)
                ).rowcount
        return renewed

    def record(
        self,
        records: list[RecordItem],
        engine_id: str,
        monitor: Mapping[int, MonitorState] | None = None,
    ) -> int:
        """Store results: each row's latest result and next_run, plus one history row each.

        `records` are (row_id, result, next_run). Only rows still claimed by
        this engine are updated, so a stale engine cannot write over a row
        another engine took back. Returns how many rows were updated.

        This is the engine's hot path, so it goes to the driver's executemany
        with values converted once here: SQLAlchemy's per-row bind processing
        cost 45 us of the 52 us a result took to store (SQLite, 5,000 rows).
        """
        if not records:
            return 0
        # In id order, as renew_leases() locks them: the heartbeat and the
        # recorder of one engine touch the same rows and must not deadlock.
        records = sorted(records, key=lambda record: record[0])
        sql = _RawSql(self.engine.dialect)
        if sql.time is _sqlite_time:  # converted before the transaction: it holds the lock
            history, rows = _sqlite_records(records, engine_id)
        else:
            history, rows = _records(records, engine_id, sql.time)
        with self._connect(hot=True) as conn:
            # History first, while the rows are still ours: a fenced-out result leaves none.
            conn.exec_driver_sql(sql.history_insert, history)
            if monitor:  # only pairs with monitoring: none of it without
                monitoring.write_states(conn, monitor, engine_id)
            updated = conn.exec_driver_sql(sql.record_update, rows).rowcount
        return updated

    def record_adhoc(
        self, row_id: int | None, result: Result, monitor: MonitorState | None = None
    ) -> None:
        """A run outside the schedule: history, and the row's latest result; next_run stays."""
        values: dict[str, Any] = {
            "result": latest_of(result),
            "updated_at": result.finished_at,
            "outcome": result.outcome.value,
            "finished_us": _micros(result),
        }
        if monitor is not None:
            values["monitor"] = monitor.to_dict()
        with self._connect() as conn:
            if row_id is not None:
                conn.execute(update(audits).where(audits.c.id == row_id).values(**values))
            conn.execute(results.insert(), [_history(result)])

    def monitor_rows(self, keys: Collection[tuple[str, str]]) -> dict[tuple[str, str], MonitorRow]:
        return monitoring.monitor_rows(self._connect, keys, _audit_row)

    # -- downtimes and acknowledgements (sqlalchemy/monitoring.py) --------------------------

    def add_downtime(self, downtime: Downtime) -> None:
        monitoring.add_downtime(self._connect, downtime, safe_url(self.url))

    def downtimes(self) -> list[Downtime]:
        return monitoring.list_downtimes(self._connect)

    def remove_downtime(self, name: str) -> bool:
        return monitoring.remove_downtime(self._connect, name)

    def expire_downtimes(self, now: datetime) -> int:
        return monitoring.expire_downtimes(self._connect, now)

    def set_ack(self, ack: Ack) -> None:
        monitoring.set_ack(self._connect, ack)

    def acks(self, host: str | None = None, audit_name: str | None = None) -> list[Ack]:
        return monitoring.list_acks(self._connect, host, audit_name)

    def clear_ack(self, audit_name: str, host: str) -> bool:
        return monitoring.clear_ack(self._connect, audit_name, host)

    def expire_acks(self, now: datetime) -> int:
        return monitoring.expire_acks(self._connect, now)

    def release(self, engine_id: str, now: datetime) -> int:
        """Give this engine's unfinished claims back (`new`), e.g. at shutdown."""
        c = audits.c
        with self._connect() as conn:
            return conn.execute(
                update(audits)
                .where(c.claimed_by == engine_id, c.status == Status.PROCESSING.value)
                .values(status=Status.NEW.value, claimed_by=None, lease_until=None, updated_at=now)
            ).rowcount

    def take_back_expired(self, now: datetime, skew: float = 0.0) -> list[int]:
        """Rows whose lease ran out (their engine died) go back to `new`, attempts + 1.

        `skew`: how far the clocks of engines may differ. A lease is set on
        its holder's clock and checked here on ours, so it counts as expired
        only `skew` seconds after it ran out: a fast clock never takes a
        live engine's claim. Returns the ids taken back.
        """
        c = audits.c
        expired = now - timedelta(seconds=skew)
        taken: list[int] = []
        with self._connect() as conn:
            found = conn.execute(
                select(c.id)
                .where(c.lease_until < expired, c.status == Status.PROCESSING.value)
                .with_for_update(skip_locked=True)
            ).scalars().all()  # fmt: skip
            for chunk in _chunks(sorted(found)):
                rows = conn.execute(
                    update(audits)
                    .where(
                        c.id.in_(chunk),
                        c.lease_until < expired,
                        c.status == Status.PROCESSING.value,
                    )
                    .values(
                        status=Status.NEW.value,
                        claimed_by=None,
                        lease_until=None,
                        attempts=c.attempts + 1,
                        updated_at=now,
                    )
                ).rowcount
                if rows:
                    taken += chunk
        return taken

    def prune_results(self, before: datetime) -> int:
        """Delete the history older than `before`, _PRUNE_BATCH rows per transaction.

        One DELETE of a long backlog (a first prune after weeks) would run past
        statement_timeout, fail, and be tried again every time, holding its
        locks meanwhile; batches each finish in a moment and add up.
        """
        r, pruned = results.c, 0
        while True:
            with self._connect() as conn:
                old = (
                    conn.execute(select(r.id).where(r.finished_at < before).limit(_PRUNE_BATCH))
                    .scalars()
                    .all()
                )
                for chunk in _chunks(list(old)):
                    pruned += conn.execute(delete(results).where(r.id.in_(chunk))).rowcount
            if len(old) < _PRUNE_BATCH:
                return pruned

    def results(
        self,
        host: str | None = None,
        audit_name: str | None = None,
        outcome: str | None = None,
        limit: int = 100,
    ) -> list[Result]:
        """History, newest first."""
        r = results.c
        query = select(results).order_by(r.finished_at.desc(), r.id.desc()).limit(limit)
        for column, value in ((r.host, host), (r.audit_name, audit_name), (r.outcome, outcome)):
            if value is not None:
                query = query.where(column == value)
        with self._connect() as conn:
            return [_result(row) for row in conn.execute(query)]

    # -- moving state between stores (`entropy import --with-state`) ---------

    def export_rows(self) -> StateDump:
        """Every audit row and every history result, in id order."""
        with self._connect() as conn:
            rows = [
                _audit_row(row._mapping)
                for row in conn.execute(select(audits).order_by(audits.c.id))
            ]
            history = [_result(row) for row in conn.execute(select(results).order_by(results.c.id))]
        return StateDump(rows, history)

    def import_rows(self, dump: StateDump) -> None:
        """Replace every audit row and result with the dump's, in one transaction.

        Not a hot path: plain SQLAlchemy Core inserts, in chunks.
        """
        rows = [_row_values(row) for row in dump.rows]
        history = [_history(result) for result in dump.results]
        with self._connect() as conn:
            conn.execute(delete(results))
            conn.execute(delete(audits))
            bulk.copy_into(conn, audits, rows)
            bulk.copy_into(conn, results, history)


class _HotWriter:
    """Claims and records on SQLite: one writer connection, taken in turns.

    SQLite has one writer at a time. A second connection that finds the file
    locked polls in growing sleeps (1, 2, 5 ... 100 ms), and each commit by
    one connection empties the other's page cache. The engine's claims and
    records share this connection under a lock instead: each starts the
    moment the other commits, on warm pages. Other databases lock rows, not
    the file: there, and for an in-memory SQLite, a pooled connection each.

    Checkpoints (copying the WAL into the database file) made some commits
    slow: by default the commit that takes the WAL past 1,000 pages runs one
    while it holds the write lock. This connection leaves them to a thread of
    its own, which runs a passive checkpoint (it never blocks a writer) every
    CHECKPOINT_EVERY seconds after writes, mostly outside the GIL. The
    connection still checkpoints past CHECKPOINT_PAGES, should that thread
    fall behind.
    """

    CHECKPOINT_EVERY = 0.5  # seconds
    CHECKPOINT_PAGES = 10_000  # 40 MB of WAL with 4 KiB pages
    # Page cache of this connection, in KiB (SQLite's default is 2,000 KiB). Due rows
    # are scattered over the table, so a claim or record of a thousand rows dirties
    # about as many pages: with 2 MB they spilled to the WAL mid-transaction and were
    # read back from it by the next one.
    CACHE_KIB = 16_384

    def __init__(self, engine: Engine) -> None:
        url = engine.url
        database = url.database
        self._engine = engine
        self._shared = url.get_backend_name() == "sqlite" and database not in (None, "", ":memory:")
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self._wrote = False
        self._closed = threading.Event()
        self._checkpointer: threading.Thread | None = None

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        if not self._shared:
            with self._engine.begin() as conn:
                yield conn
            return
        with self._lock:
            if self._conn is None:
                self._conn = self._open()
            conn = self._conn
            try:
                with conn.begin():
                    yield conn
            except BaseException:
                self._conn = None  # a failed connection is not kept, nor pooled again
                conn.invalidate()
                conn.close()
                raise
            self._wrote = True

    def _open(self) -> Connection:
        conn = self._engine.connect()
        conn.exec_driver_sql(f"PRAGMA wal_autocheckpoint={self.CHECKPOINT_PAGES}").close()
        conn.exec_driver_sql(f"PRAGMA cache_size=-{self.CACHE_KIB}").close()
        conn.commit()  # ends the transaction SQLAlchemy began for the PRAGMA
        if self._checkpointer is None and not self._closed.is_set():
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop, name="entropy-checkpoint", daemon=True
            )
            self._checkpointer.start()
        return conn

    def _checkpoint_loop(self) -> None:
        while not self._closed.wait(self.CHECKPOINT_EVERY):
            if not self._wrote:
                continue
            self._wrote = False
            try:
                with self._engine.connect() as conn:
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").close()
            except Exception as exc:  # the writer's own checkpoints still bound the WAL
                LOG.debug("background checkpoint failed: %s", exc)

    def close(self) -> None:
        self._closed.set()
        if self._checkpointer is not None:
            self._checkpointer.join()
            self._checkpointer = None
        with self._lock:
            if self._conn is not None:
                self._conn.invalidate()  # not back into the pool with its own settings
                self._conn.close()
                self._conn = None
        self._closed.clear()  # a store may be used again after close(), as before


class _RawSql:
    """The recorder's statements in one dialect's paramstyle, and its datetime format."""

    _cache: ClassVar[dict[str, _RawSql]] = {}
    # Set once per dialect in __new__ (the instance is shared and never changed after).
    record_update: str
    history_insert: str
    time: Callable[[datetime | None], object]  # a datetime as the driver binds it
    read_time: Callable[[Any], datetime]  # a stored time (text on SQLite) back, aware
    dialect: str
    mark: str  # the paramstyle's placeholder
    returning: bool  # UPDATE ... RETURNING (not MySQL/MariaDB)

    def __new__(cls, dialect: Any) -> _RawSql:
        key = dialect.name
        if key not in cls._cache:
            self = super().__new__(cls)
            mark = "?" if dialect.paramstyle == "qmark" else "%s"
            self.record_update = (
                f"UPDATE audits SET status = 'processed', result = {mark}, outcome = {mark}, "
                f"finished_us = {mark}, next_run = {mark}, "
                f"claimed_by = NULL, lease_until = NULL, attempts = 0, updated_at = {mark} "
                f"WHERE id = {mark} AND claimed_by = {mark} AND status = 'processing'"
            )
            columns = ("host", "audit_name", "slot", "outcome", "summary", "output", "metrics",
                       "started_at", "finished_at", "engine_id")  # fmt: skip
            values = [mark] * len(columns)
            if dialect.name == "postgresql":  # a text parameter is not JSON by itself there
                values[columns.index("metrics")] = f"CAST({mark} AS JSON)"
            self.history_insert = (
                f"INSERT INTO results ({', '.join(columns)}) SELECT {', '.join(values)} "
                f"FROM audits WHERE id = {mark} AND claimed_by = {mark} "
                f"AND status = 'processing'"
            )
            # What UTCDateTime + the dialect would bind: naive UTC; SQLite stores text.
            self.time = _sqlite_time if dialect.name == "sqlite" else _naive_utc
            self.read_time = _from_sqlite if dialect.name == "sqlite" else _aware_utc
            self.dialect = dialect.name
            self.mark = mark
            self.returning = dialect.update_returning
            cls._cache[key] = self
        return cls._cache[key]

    def _in(self, count: int) -> str:
        return f"id IN ({', '.join([self.mark] * count)})"

    def _waiting(self, count: int) -> str:
        return f"{self._in(count)} AND status = 'processed' AND next_run <= {self.mark}"

    def mark_new(self, count: int) -> str:
        due = self._waiting(count)
        if self.dialect == "postgresql":
            # Only a label for `entropy status`: never wait for (or deadlock with) rows
            # another engine is claiming or recording.
            due = f"id IN (SELECT id FROM audits WHERE {due} FOR UPDATE SKIP LOCKED)"
        return f"UPDATE audits SET status = 'new' WHERE {due}"

    def mark_new_select(self, count: int) -> str:
        """MySQL cannot UPDATE from a subquery on the same table: the rows, locked, first."""
        return f"SELECT id FROM audits WHERE {self._waiting(count)} FOR UPDATE SKIP LOCKED"

    def _claimable(self, count: int) -> str:
        return (
            f"{self._in(count)} AND disabled = false AND next_run <= {self.mark} "
            "AND status <> 'processing'"
        )

    def _take(self) -> str:
        m = self.mark
        return (
            f"UPDATE audits SET status = 'processing', claimed_by = {m}, lease_until = {m}, "
            f"updated_at = {m} WHERE "
        )

    def claim_returning(self, count: int) -> str:
        if self.dialect == "sqlite":  # one writer at a time: nothing to skip
            return f"{self._take()}{self._claimable(count)} RETURNING id, next_run"
        return (
            f"{self._take()}id IN (SELECT id FROM audits WHERE {self._claimable(count)} "
            "FOR UPDATE SKIP LOCKED) RETURNING id, next_run"
        )

    def claim_select(self, count: int) -> str:
        return (
            f"SELECT id, next_run FROM audits WHERE {self._claimable(count)} FOR UPDATE SKIP LOCKED"
        )

    def claim_update(self, count: int) -> str:
        return f"{self._take()}{self._in(count)}"

    def select_next_run(self, count: int) -> str:
        return f"SELECT id, next_run FROM audits WHERE {self._in(count)}"

    def renew(self, count: int) -> str:
        m = self.mark
        return (
            f"UPDATE audits SET lease_until = {m} WHERE claimed_by = {m} "
            f"AND status = 'processing' AND {self._in(count)}"
        )


def _to_json(value: Any) -> str:
    # default=str: an audit's odd metric value (a datetime, a Decimal) still stores.
    return json.dumps(value, default=str)


def _records(
    records: list[tuple[int, Result, datetime]], engine_id: str, when: Any
) -> tuple[list[tuple], list[tuple]]:
    """record()'s history and row parameters, times bound as `when` converts them."""
    as_json = _to_json
    history, rows = [], []
    for row_id, r, next_run in records:
        finished = when(r.finished_at)
        metrics = as_json(r.metrics) if r.metrics else None  # NULL, read back as {}
        history.append((r.host, r.audit_name, when(r.slot), r.outcome.value, r.summary,
                        r.output, metrics, when(r.started_at), finished, r.engine_id,
                        row_id, engine_id))  # fmt: skip
        rows.append((as_json(latest_of(r)), r.outcome.value, _micros(r), when(next_run), finished,
                     row_id, engine_id))  # fmt: skip
    return history, rows


def _sqlite_records(
    records: list[tuple[int, Result, datetime]], engine_id: str
) -> tuple[list[tuple], list[tuple]]:
    """The same as _records(..., _sqlite_time), each time converted once (see rowtext)."""
    times, latest_json, outcomes = rowtext.times, rowtext.latest_json, _OUTCOME_TEXT
    history, rows = [], []
    for row_id, r, next_run in records:
        slot, slot_iso = times(r.slot)
        started, started_iso = times(r.started_at)
        finished, finished_iso = times(r.finished_at)
        metrics = _to_json(r.metrics) if r.metrics else None  # NULL, read back as {}
        outcome = outcomes.get(r.outcome) or r.outcome.value
        history.append((r.host, r.audit_name, slot, outcome, r.summary, r.output, metrics,
                        started, finished, r.engine_id, row_id, engine_id))  # fmt: skip
        latest = latest_json(r, slot_iso, started_iso, finished_iso)
        rows.append((latest, outcome, _micros(r), times(next_run)[0], finished, row_id, engine_id))
    return history, rows


_OUTCOME_TEXT = {outcome: outcome.value for outcome in Outcome}
_PAIR_OUTCOMES = "SELECT audit_name, host, outcome, finished_us FROM audits"


def _micros(result: Result) -> int | None:
    """audits.finished_us: the result's end (clock.to_micros), what pair_outcomes reads."""
    return None if result.finished_at is None else to_micros(result.finished_at)


def _naive_utc(t: datetime | None) -> datetime | None:
    return None if t is None else t.astimezone(UTC).replace(tzinfo=None)


def _aware_utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC)


def _from_sqlite(t: str) -> datetime:
    return datetime.fromisoformat(t + "+00:00")  # one call: 7x faster than .replace()


def _sqlite_time(t: datetime | None) -> str | None:
    # SQLAlchemy's SQLite DateTime format, microseconds always written.
    if t is None:
        return None
    return t.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _in_scope(conn: Connection, columns: Sequence[Any], scope: SyncScope) -> list[Any]:
    """The rows of the scope's audits and hosts (indexed both ways), each once."""
    c = audits.c
    found: dict[int, Any] = {}
    for column, names in ((c.audit_name, scope.audits), (c.host, scope.hosts)):
        for chunk in _chunks(sorted(names)):
            for row in conn.execute(select(*columns).where(column.in_(chunk))):
                found[row[0]] = row
    return list(found.values())


def _chunks(ids: list[T]) -> Iterator[list[T]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


def _history(result: Result) -> dict[str, Any]:
    return {
        "host": result.host,
        "audit_name": result.audit_name,
        "slot": result.slot,
        "outcome": result.outcome.value,
        "summary": result.summary,
        "output": result.output,
        "metrics": result.metrics,
        "started_at": result.started_at,
        "finished_at": result.finished_at,
        "engine_id": result.engine_id,
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
        monitor=None if m["monitor"] is None else MonitorState.from_dict(m["monitor"]),
    )


def _row_values(row: AuditRow) -> dict[str, Any]:
    """An imported row's columns (its id is this store's to give)."""
    values = {name: getattr(row, name) for name in _ROW_COLUMNS}
    values["status"] = Status(row.status).value
    values["disabled_by"] = None if row.disabled_by is None else DisabledBy(row.disabled_by).value
    values["monitor"] = None if row.monitor is None else row.monitor.to_dict()
    values["outcome"], values["finished_us"] = outcome_and_end(row.result)
    return values


# An AuditRow's fields; outcome and finished_us are copies out of its result.
_ROW_COLUMNS = tuple(c.name for c in audits.c if c.name not in ("id", "outcome", "finished_us"))


def _result(row: Any) -> Result:
    return Result(
        Outcome(row.outcome),
        row.summary or "",
        row.output or "",
        row.metrics or {},
        row.started_at,
        row.finished_at,
        row.slot,
        row.engine_id,
        row.audit_name,
        row.host,
    )
