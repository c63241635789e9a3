"""Repair state and history in MongoDB.

Starting a repair must be atomic across engines: the guardrails are judged
and the run claimed while holding a per-repair lock document (`locks`,
taken with an upsert that only one writer can win, held under a short
lease of real time so a holder that dies does not block the repair for
ever), the same serialisation the SQL store gets from its lock row.
"""

from __future__ import annotations

import contextlib
import random
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from ...errors import StoreUnavailable
from ...model import Outcome, RepairDecision, RepairRun, RepairState, Verify
from ..base import Judge, RepairDump, RepairRecord, RepairStore
from .client import Mongo, dt, t, translated, wall_now

LOCK_LEASE = timedelta(seconds=30)  # a start takes milliseconds; this only frees a dead holder
LOCK_WAIT = 15.0  # seconds to wait for the lock before giving up (StoreUnavailable)
_CHUNK = 1000  # documents per insert_many, as the audit rows' import

_STATE_FIELDS = (
    "repair_name",
    "host",
    "attempts",
    "last_started_at",
    "running_by",
    "running_until",
    "flagged",
    "flagged_reason",
)


class MongoRepairStore(RepairStore):
    def __init__(self, mongo: Mongo) -> None:
        self.mongo = mongo
        self.where = mongo.where
        db = mongo.db
        self._states, self._runs, self._results, self._locks = (
            db.repair_state,
            db.repair_runs,
            db.results,
            db.locks,
        )

    @translated
    def latest_outcomes(self, audit_name: str, host: str, limit: int) -> list[Outcome]:
        found = (
            self._results.find({"host": host, "audit_name": audit_name}, {"outcome": 1})
            .sort([("finished_at", -1), ("_id", -1)])
            .limit(limit)
        )
        return [Outcome(doc["outcome"]) for doc in found]

    @contextmanager
    def _locked(self, repair_name: str) -> Iterator[None]:
        """Hold the repair's lock document: made once, then taken when free (or expired)."""
        from pymongo.errors import DuplicateKeyError

        key, token = f"repair:{repair_name}", uuid.uuid4().hex
        with contextlib.suppress(DuplicateKeyError):  # another engine made it first: as good
            self._locks.update_one(
                {"_id": key}, {"$setOnInsert": {"holder": None, "until": None}}, upsert=True
            )
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            now = wall_now()
            taken = self._locks.find_one_and_update(
                {"_id": key, "$or": [{"holder": None}, {"until": {"$lt": t(now)}}]},
                {"$set": {"holder": token, "until": t(now + LOCK_LEASE)}},
            )
            if taken is not None:
                break
            if time.monotonic() > deadline:
                raise StoreUnavailable(
                    f"state store {self.where}: repair {repair_name!r} stayed locked by "
                    f"another engine for {LOCK_WAIT:g}s"
                )
            time.sleep(random.uniform(0.005, 0.02))
        try:
            yield
        finally:
            self._locks.update_one({"_id": key, "holder": token}, {"$set": {"holder": None}})

    @translated
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
        with self._locked(repair_name):
            self._states.update_one(
                {"repair_name": repair_name, "host": host},
                {"$setOnInsert": {"attempts": 0, "flagged": False, "updated_at": t(now)}},
                upsert=True,
            )
            states = [_state(doc) for doc in self._states.find({"repair_name": repair_name})]
            own = next(state for state in states if state.host == host)
            own.recovered = own.last_started_at is not None and self._healthy_since(
                audit_name, host, failing, own.last_started_at
            )
            decision = judge(own, [state for state in states if state.host != host])
            values: dict[str, Any] = {"updated_at": t(now)}
            if decision.flag:
                values.update(flagged=True, flagged_reason=decision.flag)
            if decision.fire:
                values.update(
                    running_by=engine_id,
                    running_until=t(lease_until),
                    attempts=decision.attempt,
                    last_started_at=t(now),
                )
            elif own.recovered and own.attempts:
                values.update(attempts=0)
            self._states.update_one({"repair_name": repair_name, "host": host}, {"$set": values})
        return decision

    @translated
    def healthy_since(
        self, audit_name: str, host: str, failing: frozenset[Outcome], since: datetime
    ) -> bool:
        return self._healthy_since(audit_name, host, failing, since)

    def _healthy_since(
        self, audit_name: str, host: str, failing: frozenset[Outcome], since: datetime
    ) -> bool:
        return (
            self._results.find_one(
                {
                    "host": host,
                    "audit_name": audit_name,
                    "finished_at": {"$gte": t(since)},
                    "outcome": {"$nin": [o.value for o in failing]},
                },
                {"_id": 1},
            )
            is not None
        )

    @translated
    def finish(self, run: RepairRun, engine_id: str, flag: str | None = None) -> None:
        result = run.result
        values: dict[str, Any] = {
            "running_by": None,
            "running_until": None,
            "updated_at": t(result.finished_at),
        }
        if run.verify is Verify.FIXED:
            values["attempts"] = 0
        if flag:
            values.update(flagged=True, flagged_reason=flag)
        self._runs.insert_one(_run_doc(run))
        self._states.update_one(
            {"repair_name": run.repair_name, "host": result.host, "running_by": engine_id},
            {"$set": values},
        )

    @translated
    def release(self, engine_id: str, now: datetime) -> int:
        return self._states.update_many(
            {"running_by": engine_id},
            {"$set": {"running_by": None, "running_until": None, "updated_at": t(now)}},
        ).modified_count

    @translated
    def states(self, host: str | None = None, repair_name: str | None = None) -> list[RepairState]:
        query = {k: v for k, v in (("host", host), ("repair_name", repair_name)) if v is not None}
        found = [_state(doc) for doc in self._states.find(query)]
        return sorted(found, key=lambda state: (state.host, state.repair_name))

    @translated
    def reset(self, host: str, repair_name: str | None, now: datetime) -> int:
        query: dict[str, Any] = {"host": host, "$or": [{"flagged": True}, {"attempts": {"$gt": 0}}]}
        if repair_name is not None:
            query["repair_name"] = repair_name
        return self._states.update_many(
            query,
            {
                "$set": {
                    "flagged": False,
                    "flagged_reason": None,
                    "attempts": 0,
                    "updated_at": t(now),
                }
            },
        ).modified_count

    @translated
    def runs(
        self,
        host: str | None = None,
        repair_name: str | None = None,
        outcome: str | None = None,
        limit: int = 100,
        audit_name: str | None = None,
    ) -> list[RepairRecord]:
        query = {
            k: v
            for k, v in (
                ("host", host),
                ("repair_name", repair_name),
                ("outcome", outcome),
                ("audit_name", audit_name),
            )
            if v is not None
        }
        found = self._runs.find(query).sort([("finished_at", -1), ("_id", -1)]).limit(limit)
        return [_record(doc) for doc in found]

    @translated
    def prune(self, before: datetime) -> int:
        return self._runs.delete_many({"finished_at": {"$lt": t(before)}}).deleted_count

    @translated
    def run_counts(self) -> dict[tuple[str, str], int]:
        # One key of both names, NUL between: a compound _id is beyond NX-27017, the tests' server.
        key = {"$concat": ["$repair_name", "\x00", "$outcome"]}
        grouped = self._runs.aggregate([{"$group": {"_id": key, "count": {"$sum": 1}}}])
        counts = {}
        for g in grouped:
            repair, _, outcome = str(g["_id"]).partition("\x00")
            counts[repair, outcome] = int(g["count"])
        return counts

    # -- moving state between stores (`entropy import --with-state`) ---------

    @translated
    def export_all(self) -> RepairDump:
        runs = [_record(doc) for doc in self._runs.find({}).sort("_id", 1)]
        return RepairDump(self.states(), runs)

    @translated
    def import_all(self, dump: RepairDump, now: datetime) -> None:
        """Replace every state and run with the dump's, step by step as import_rows does
        (no multi-document transaction without a replica set; DST's engines are stopped)."""
        self._runs.delete_many({})
        self._states.delete_many({})
        states = [
            {"repair_name": st.repair_name, "host": st.host, "attempts": st.attempts,
             "last_started_at": t(st.last_started_at), "running_by": None,
             "running_until": None, "flagged": st.flagged,
             "flagged_reason": st.flagged_reason, "updated_at": t(now)}
            for st in dump.states
        ]  # fmt: skip
        runs = [_record_doc(record) for record in dump.runs]
        for collection, docs in ((self._states, states), (self._runs, runs)):
            for start in range(0, len(docs), _CHUNK):
                collection.insert_many(docs[start : start + _CHUNK])  # in order: _id keeps it


_RECORD_FIELDS = tuple(RepairRecord.__dataclass_fields__)


def _state(doc: dict[str, Any]) -> RepairState:
    values: dict[str, Any] = {name: doc.get(name) for name in _STATE_FIELDS}  # BSON values
    values["last_started_at"] = dt(values["last_started_at"])
    values["running_until"] = dt(values["running_until"])
    values["attempts"] = int(values["attempts"] or 0)
    values["flagged"] = bool(values["flagged"])
    return RepairState(**values)


def _run_doc(run: RepairRun) -> dict[str, Any]:
    values = run.to_dict()
    values["started_at"], values["finished_at"] = t(values["started_at"]), t(values["finished_at"])
    return values


def _record_doc(record: RepairRecord) -> dict[str, Any]:
    values = record.to_dict()
    values["started_at"], values["finished_at"] = t(values["started_at"]), t(values["finished_at"])
    return values


def _record(doc: dict[str, Any]) -> RepairRecord:
    values: dict[str, Any] = {name: doc.get(name) for name in _RECORD_FIELDS}  # BSON values
    values["started_at"], values["finished_at"] = (
        dt(values["started_at"]),
        dt(values["finished_at"]),
    )
    return RepairRecord(**values)
