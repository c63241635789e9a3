"""Repair state and history in SQL, beside the audit rows.

Starting a repair is the one step that must be atomic across engines: the
guardrails (one run per host, max_concurrent, cooldown, max_attempts) are
checked and the run is claimed in one transaction, serialised per repair by
a lock row (host ''), so two engines never both see a free slot.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ...model import Outcome, RepairDecision, RepairRun, RepairState, Verify
from ..base import Judge, RepairDump, RepairRecord, RepairStore
from ..retry import retried_on_race
from .bulk import copy_into
from .tables import repair_runs, repair_state, results

_LOCK_HOST = ""  # the per-repair lock row; no host has an empty name


class SqlRepairStore(RepairStore):
    def __init__(self, transaction: Callable[[], AbstractContextManager[Connection]]) -> None:
        self._transaction = transaction

    def latest_outcomes(self, audit_name: str, host: str, limit: int) -> list[Outcome]:
        """The outcomes of the pair's latest results, newest first."""
        r = results.c
        query = (
            select(r.outcome)
            .where(r.host == host, r.audit_name == audit_name)
            .order_by(r.finished_at.desc(), r.id.desc())
            .limit(limit)
        )
        with self._transaction() as conn:
            return [Outcome(row.outcome) for row in conn.execute(query)]

    @retried_on_race
    def start(
        self,
        repair_name: str,
        host: str,
        audit_name: str,
        failing: frozenset[Outcome],
        judge: Judge,
        engine_id: str,
        now: datetime,
        lease_until: datetime,
    ) -> RepairDecision:
        """Ask `judge` whether the repair may run on host now; if so, claim it.

        judge(own, others) sees the host's state (with `recovered` set when the
        audit was healthy since the last run) and every other host's.
        """
        s = repair_state.c
        lock = update(repair_state).where(s.repair_name == repair_name, s.host == _LOCK_HOST)
        with self._transaction() as conn:
            # Everyone starting this repair queues here until we commit. Update
            # first: InnoDB's INSERT IGNORE of an existing row takes a shared
            # lock, and two shared holders both wanting it exclusive deadlock.
            if not conn.execute(lock.values(updated_at=now)).rowcount:
                _insert_ignore(conn, repair_state, _fresh(repair_name, _LOCK_HOST, now))
                conn.execute(lock.values(updated_at=now))
            _insert_ignore(conn, repair_state, _fresh(repair_name, host, now))
            rows = conn.execute(
                select(repair_state)
                .where(s.repair_name == repair_name, s.host != _LOCK_HOST)
                .with_for_update()  # MariaDB: read the latest rows, not the snapshot
            ).all()
            states = [_state(row._mapping) for row in rows]
            own = next(state for state in states if state.host == host)
            own.recovered = own.last_started_at is not None and _healthy_since(
                conn, audit_name, host, failing, own.last_started_at
            )
            decision = judge(own, [state for state in states if state.host != host])
            values: dict[str, Any] = {"updated_at": now}
            if decision.flag:
                values.update(flagged=True, flagged_reason=decision.flag)
            if decision.fire:
                values.update(
                    running_by=engine_id,
                    running_until=lease_until,
                    attempts=decision.attempt,
                    last_started_at=now,
                )
            elif own.recovered and own.attempts:
                values.update(attempts=0)
            conn.execute(
                update(repair_state)
                .where(s.repair_name == repair_name, s.host == host)
                .values(values)
            )
        return decision

    def healthy_since(
        self, audit_name: str, host: str, failing: frozenset[Outcome], since: datetime
    ) -> bool:
        """Whether the pair had a result outside `failing` after `since`."""
        with self._transaction() as conn:
            return _healthy_since(conn, audit_name, host, failing, since)

    def finish(self, run: RepairRun, engine_id: str, flag: str | None = None) -> None:
        """Record the run and free the (repair, host) for the next one."""
        result, s = run.result, repair_state.c
        values: dict[str, Any] = {
            "running_by": None,
            "running_until": None,
            "updated_at": result.finished_at,
        }
        if run.verify is Verify.FIXED:
            values["attempts"] = 0
        if flag:
            values.update(flagged=True, flagged_reason=flag)
        with self._transaction() as conn:
            conn.execute(repair_runs.insert().values(run.to_dict()))
            conn.execute(
                update(repair_state)
                .where(
                    s.repair_name == run.repair_name,
                    s.host == result.host,
                    s.running_by == engine_id,  # a lease someone else took over stays theirs
                )
                .values(values)
            )

    def release(self, engine_id: str, now: datetime) -> int:
        """Free the repairs this engine was running (it is stopping)."""
        s = repair_state.c
        with self._transaction() as conn:
            return conn.execute(
                update(repair_state)
                .where(s.running_by == engine_id)
                .values(running_by=None, running_until=None, updated_at=now)
            ).rowcount

    def states(self, host: str | None = None, repair_name: str | None = None) -> list[RepairState]:
        s = repair_state.c
        query = select(repair_state).where(s.host != _LOCK_HOST).order_by(s.host, s.repair_name)
        if host is not None:
            query = query.where(s.host == host)
        if repair_name is not None:
            query = query.where(s.repair_name == repair_name)
        with self._transaction() as conn:
            return [_state(row._mapping) for row in conn.execute(query)]

    def reset(self, host: str, repair_name: str | None, now: datetime) -> int:
        """Clear the flag and the attempts of host's repairs (or of one); how many changed."""
        s = repair_state.c
        query = update(repair_state).where(
            s.host == host,
            (s.flagged == True) | (s.attempts > 0),  # noqa: E712
        )
        if repair_name is not None:
            query = query.where(s.repair_name == repair_name)
        with self._transaction() as conn:
            return conn.execute(
                query.values(flagged=False, flagged_reason=None, attempts=0, updated_at=now)
            ).rowcount

    def runs(
        self,
        host: str | None = None,
        repair_name: str | None = None,
        outcome: str | None = None,
        limit: int = 100,
        audit_name: str | None = None,
    ) -> list[RepairRecord]:
        """Repair history, newest first; audit_name is the audit that triggered them."""
        r = repair_runs.c
        query = select(repair_runs).order_by(r.finished_at.desc(), r.id.desc()).limit(limit)
        filters = ((r.host, host), (r.repair_name, repair_name), (r.outcome, outcome),
                   (r.audit_name, audit_name))  # fmt: skip
        for column, value in filters:
            if value is not None:
                query = query.where(column == value)
        with self._transaction() as conn:
            return [_record(row._mapping) for row in conn.execute(query)]

    def prune(self, before: datetime) -> int:
        with self._transaction() as conn:
            return conn.execute(
                delete(repair_runs).where(repair_runs.c.finished_at < before)
            ).rowcount

    def run_counts(self) -> dict[tuple[str, str], int]:
        r = repair_runs.c
        query = select(r.repair_name, r.outcome, func.count()).group_by(r.repair_name, r.outcome)
        with self._transaction() as conn:
            return {(name, outcome): count for name, outcome, count in conn.execute(query)}

    # -- moving state between stores (`entropy import --with-state`) ---------

    def export_all(self) -> RepairDump:
        """Every state (lock rows aside) by host then repair, and every run in id order."""
        s, r = repair_state.c, repair_runs.c
        with self._transaction() as conn:
            states = [
                _state(row._mapping)
                for row in conn.execute(
                    select(repair_state).where(s.host != _LOCK_HOST).order_by(s.host, s.repair_name)
                )
            ]
            runs = [
                _record(row._mapping) for row in conn.execute(select(repair_runs).order_by(r.id))
            ]
        return RepairDump(states, runs)

    def import_all(self, dump: RepairDump, now: datetime) -> None:
        """Replace every state and run with the dump's, in one transaction.

        The lock rows go too: start() makes them again. Not a hot path: plain
        SQLAlchemy Core inserts, in chunks.
        """
        states = [
            {"repair_name": st.repair_name, "host": st.host, "attempts": st.attempts,
             "last_started_at": st.last_started_at, "running_by": None, "running_until": None,
             "flagged": st.flagged, "flagged_reason": st.flagged_reason, "updated_at": now}
            for st in dump.states
        ]  # fmt: skip
        runs = [record.to_dict() for record in dump.runs]
        with self._transaction() as conn:
            conn.execute(delete(repair_runs))
            conn.execute(delete(repair_state))
            copy_into(conn, repair_state, states)
            copy_into(conn, repair_runs, runs)


def _healthy_since(
    conn: Connection, audit_name: str, host: str, failing: frozenset[Outcome], since: datetime
) -> bool:
    r = results.c
    query = (
        select(r.id)
        .where(
            r.host == host,
            r.audit_name == audit_name,
            r.finished_at >= since,
            r.outcome.not_in([o.value for o in failing]),
        )
        .limit(1)
    )
    return conn.execute(query).first() is not None


def _insert_ignore(conn: Connection, table: Table, values: dict[str, Any]) -> None:
    """Insert unless a row with the same unique key exists (then wait for its writer)."""
    name = conn.dialect.name
    if name == "postgresql":
        statement: Any = postgresql.insert(table).values(values).on_conflict_do_nothing()
    elif name == "sqlite":
        statement = sqlite.insert(table).values(values).on_conflict_do_nothing()
    else:  # MySQL/MariaDB
        statement = table.insert().values(values).prefix_with("IGNORE")
    conn.execute(statement)


def _fresh(repair_name: str, host: str, now: datetime) -> dict[str, Any]:
    return {"repair_name": repair_name, "host": host, "attempts": 0, "flagged": False,
            "updated_at": now}  # fmt: skip


def _state(m: Any) -> RepairState:
    return RepairState(
        repair_name=m["repair_name"],
        host=m["host"],
        attempts=m["attempts"],
        last_started_at=m["last_started_at"],
        running_by=m["running_by"],
        running_until=m["running_until"],
        flagged=bool(m["flagged"]),
        flagged_reason=m["flagged_reason"],
    )


_RECORD_FIELDS = tuple(RepairRecord.__dataclass_fields__)


def _record(m: Any) -> RepairRecord:
    return RepairRecord(**{name: m[name] for name in _RECORD_FIELDS})
