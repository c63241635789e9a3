"""Audit rows, claims, results and history in MongoDB: the StateStore contract.

One document per (audit, host) in `audits` (the design's fields, an integer
`_id` from a counter document), one per result in `results`. Without
multi-document transactions (they need a replica set), each step is made
safe on its own:

- claims: one `update_many` over the wanted ids whose filter says "due,
  enabled, not processing", tagging what it takes with a fresh claim token;
  each document's update is atomic, so two engines never both take one.
  A `find` by the token then gives the slots taken (two round trips a batch).
- records: one `bulk_write` of fenced updates (`claimed_by` = this engine,
  `status` = processing), then the history of exactly the rows it updated.
  A fenced-out result leaves no history. An engine dying between the two
  loses that batch's history entries (the rows keep the latest result);
  the SQL stores write both in one transaction.
- times are ISO 8601 text in UTC, to the microsecond and of fixed width
  (client.t): text order is time order, so `$lte`/`$lt`/sort work on them,
  nothing is rounded, and documents stay readable.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Collection, Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from ...catalogdiff import SyncScope
from ...errors import StoreConflict
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
from ...removal import DisablePlan, KeptDisable, RemovalPolicy
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
    ack_order,
    downtime_order,
)
from ..retry import retried_on_race
from ..syncplan import disabled_state, latest_of, outcome_and_end, plan_sync
from .client import Mongo, dt, t, translated

_CHUNK = 1000  # ids per $in
_HISTORY_TRIES = 3  # a history insert after its rows were updated is worth a few tries


class _Synced(NamedTuple):
    id: int
    audit_name: str
    host: str
    ip_address: str
    next_run: datetime
    disabled: bool
    disabled_reason: str | None
    disabled_by: str | None


_SYNC_FIELDS = {name: 1 for name in _Synced._fields if name != "id"}


class MongoStateStore(StateStore):
    """The state of one fleet in one MongoDB database."""

    name = "mongodb"
    capabilities = frozenset(
        {Capability.SHARED_ENGINES, Capability.SCHEMA_MIGRATIONS, Capability.PERSISTENT}
    )

    def __init__(self, url: str, check_schema: bool = True, **_opened: object) -> None:
        """_opened: read_only, timeouts (see open_state_store); the client's own timeouts hold."""
        super().__init__(url)
        self.mongo = Mongo(url)
        self.where = self.mongo.where
        db = self.mongo.db
        self._audits, self._results, self._kept = db.audits, db.results, db.removed_disables
        self._downtimes, self._acks = db.downtimes, db.acks  # monitoring (issue 15)
        if check_schema:
            try:
                self.mongo.check_schema()
            except BaseException:
                self.mongo.close()
                raise
        from .repair_store import MongoRepairStore

        self._repairs = MongoRepairStore(self.mongo)

    @property
    def repairs(self) -> RepairStore:
        return self._repairs

    def engine_registry(self) -> EngineRegistry:
        from .registry import MongoEngineRegistry

        return MongoEngineRegistry(self.mongo)

    def close(self) -> None:
        self.mongo.close()

    def schema_revision(self) -> str | None:
        return self.mongo.revision()

    def schema_head(self) -> str:
        from .client import REVISION

        return REVISION

    def upgrade_schema(self) -> tuple[str | None, str]:
        return self.mongo.upgrade()

    # -- rows -------------------------------------------------------------------------

    def sync(
        self,
        pairs: Iterable[Pair],
        now: datetime,
        max_splay: float,
        skew: float = 0.0,
        policy: RemovalPolicy | None = None,
        scope: SyncScope | None = None,
    ) -> SyncReport:
        return self._sync(list(pairs), now, max_splay, skew, policy, scope)

    @retried_on_race  # engines starting together insert the same new pairs: the loser re-reads
    @translated
    def _sync(
        self,
        pairs: list[Pair],
        now: datetime,
        max_splay: float,
        skew: float,
        policy: RemovalPolicy | None,
        scope: SyncScope | None,
    ) -> SyncReport:
        from pymongo import UpdateOne

        stored = None
        if scope is None:
            existing = [_synced(doc) for doc in self._audits.find({}, _SYNC_FIELDS)]
        else:
            existing = [_synced(doc) for doc in self._audits.find(_scope_query(scope),
                                                                  _SYNC_FIELDS)]  # fmt: skip
            stored = self._audits.count_documents({})
        kept = [_kept(doc) for doc in self._kept.find({})]
        plan = plan_sync(existing, pairs, now, max_splay, skew, policy, kept, stored)
        for chunk in _chunks(plan.gone):
            self._audits.delete_many({"_id": {"$in": chunk}})
        self._write_disables(plan.disables)
        if plan.new:
            ids = self.mongo.next_ids("audits", len(plan.new))
            docs = [
                {"_id": row_id, **values, "result": None, "claimed_by": None, "lease_until": None,
                 **{k: t(values[k]) for k in ("next_run", "created_at", "updated_at")}}
                for row_id, values in zip(ids, plan.new, strict=True)
            ]  # fmt: skip
            for start in range(0, len(docs), _CHUNK):
                self._audits.insert_many(docs[start : start + _CHUNK], ordered=False)
        if plan.changes:
            writes = []
            for change in plan.changes:
                row_id = change["row_id"]
                values = {
                    k: change[k]
                    for k in ("ip_address", "disabled", "disabled_reason", "disabled_by")
                }
                values["updated_at"] = t(change["updated_at"])
                writes.append(UpdateOne({"_id": row_id}, {"$set": values}))
                if change["next_run"] != change["old_next_run"]:
                    # Only if no engine recorded a result since the read: its next_run stands.
                    writes.append(
                        UpdateOne(
                            {"_id": row_id, "next_run": t(change["old_next_run"])},
                            {"$set": {"next_run": t(change["next_run"])}},
                        )
                    )
            self._audits.bulk_write(writes, ordered=True)
        return plan.report()

    def _write_disables(self, plan: DisablePlan) -> None:
        """Forget the expired and the restored, then remember the newly removed (replacing)."""
        if plan.expired_before is not None:
            self._kept.delete_many({"removed_at": {"$lt": t(plan.expired_before)}})
        done = [_kept_id(*key) for key in [*plan.restore, *(k.key for k in plan.remember)]]
        for start in range(0, len(done), _CHUNK):
            self._kept.delete_many({"_id": {"$in": done[start : start + _CHUNK]}})
        if plan.remember:
            self._kept.insert_many([_kept_doc(k) for k in plan.remember])

    @translated
    def audits(self, host: str | None = None, audit_name: str | None = None) -> list[AuditRow]:
        query: dict[str, Any] = {}
        if host is not None:
            query["host"] = host
        if audit_name is not None:
            query["audit_name"] = audit_name
        rows = [_audit_row(doc) for doc in self._audits.find(query)]
        return sorted(rows, key=lambda row: (row.host, row.audit_name))

    @translated
    def pair_outcomes(self) -> list[PairOutcome]:
        """Only these fields cross the wire (a projection); the row's result holds no output.
        (Not "result.outcome": NX-27017, the tests' server, projects no dotted path.)"""
        fields = {"audit_name": 1, "host": 1, "result": 1}
        return [
            (doc["audit_name"], doc["host"], *outcome_and_end(doc.get("result")))
            for doc in self._audits.find({}, fields)
        ]

    @translated
    def past_due(self, now: datetime) -> list[PastDue]:
        fields = {"audit_name": 1, "host": 1, "next_run": 1, "result": 1, "created_at": 1}
        found = self._audits.find({"disabled": False, "next_run": {"$lt": t(now)}}, fields)
        return [
            PastDue(doc["audit_name"], doc["host"], dt(doc["next_run"]),
                    *outcome_and_end(doc.get("result")), dt(doc["created_at"]))
            for doc in found
        ]  # fmt: skip

    @translated
    def set_disabled(self, pairs: Iterable[Pair], reason: str | None, now: datetime) -> int:
        from pymongo import UpdateOne

        writes = []
        for pair in pairs:
            disabled, why, by = disabled_state(pair, reason)
            writes.append(
                UpdateOne(
                    {"audit_name": pair.audit_name, "host": pair.host},
                    {
                        "$set": {
                            "disabled": disabled,
                            "disabled_reason": why,
                            "disabled_by": by,
                            "updated_at": t(now),
                        }
                    },
                )
            )
        if not writes:
            return 0
        return self._audits.bulk_write(writes, ordered=False).matched_count

    @translated
    def schedule_rows(
        self, scope: SyncScope | None = None, ids: Collection[int] | None = None
    ) -> list[ScheduleRow]:
        fields = {"audit_name": 1, "host": 1, "next_run": 1, "disabled": 1, "status": 1}
        queries: list[dict[str, Any]] = [{}]
        if ids is not None:
            queries = [{"_id": {"$in": chunk}} for chunk in _chunks(sorted(ids))]
        elif scope is not None:
            queries = [_scope_query(scope)]
        return [
            ScheduleRow(
                d["_id"], d["audit_name"], d["host"], dt(d["next_run"]), d["disabled"], d["status"]
            )
            for query in queries
            for d in self._audits.find(query, fields)
        ]

    @translated
    def disabled_ids(self) -> set[int]:
        return {doc["_id"] for doc in self._audits.find({"disabled": True}, {"_id": 1})}

    # -- claims, leases, results --------------------------------------------------------

    @translated
    def claim(
        self,
        ids: list[int],
        engine_id: str,
        now: datetime,
        lease_until: datetime,
        waiting: Iterable[int] = (),
    ) -> dict[int, datetime]:
        at, until = t(now), t(lease_until)
        for chunk in _chunks(list(waiting)):
            self._audits.update_many(
                {
                    "_id": {"$in": chunk},
                    "status": Status.PROCESSED.value,
                    "next_run": {"$lte": at},
                },
                {"$set": {"status": Status.NEW.value}},
            )
        claimed: dict[int, datetime] = {}
        for chunk in _chunks(ids):
            token = uuid.uuid4().hex
            taken = self._audits.update_many(
                {
                    "_id": {"$in": chunk},
                    "disabled": False,
                    "next_run": {"$lte": at},
                    "status": {"$ne": Status.PROCESSING.value},
                },
                {
                    "$set": {
                        "status": Status.PROCESSING.value,
                        "claimed_by": engine_id,
                        "lease_until": until,
                        "updated_at": at,
                        "claim": token,
                    }
                },
            )
            if taken.modified_count:
                found = self._audits.find({"_id": {"$in": chunk}, "claim": token}, {"next_run": 1})
                claimed.update((doc["_id"], dt(doc["next_run"])) for doc in found)
        return claimed

    @translated
    def next_runs(self, ids: list[int]) -> dict[int, datetime]:
        found: dict[int, datetime] = {}
        for chunk in _chunks(ids):
            for doc in self._audits.find({"_id": {"$in": chunk}}, {"next_run": 1}):
                found[doc["_id"]] = dt(doc["next_run"])
        return found

    @translated
    def renew_leases(self, engine_id: str, ids: list[int], lease_until: datetime) -> int:
        renewed = 0
        for chunk in _chunks(sorted(ids)):
            renewed += self._audits.update_many(
                {"_id": {"$in": chunk}, "claimed_by": engine_id, "status": Status.PROCESSING.value},
                {"$set": {"lease_until": t(lease_until)}},
            ).matched_count
        return renewed

    @translated
    def record(
        self,
        records: list[RecordItem],
        engine_id: str,
        monitor: Mapping[int, MonitorState] | None = None,
    ) -> int:
        from pymongo import UpdateOne

        if not records:
            return 0
        records = sorted(records, key=lambda record: record[0])
        token = uuid.uuid4().hex
        fenced = {"claimed_by": engine_id, "status": Status.PROCESSING.value}
        writes = []
        for row_id, result, next_run in records:
            values = {
                "status": Status.PROCESSED.value,
                "result": _latest(result),
                "next_run": t(next_run),
                "claimed_by": None,
                "lease_until": None,
                "attempts": 0,
                "updated_at": t(result.finished_at),
                "recorded": token,
            }
            state = monitor.get(row_id) if monitor else None
            if state is not None:  # in the result's own document update: atomic with it
                values["monitor"] = state.to_dict()
            writes.append(UpdateOne({"_id": row_id, **fenced}, {"$set": values}))
        updated = self._audits.bulk_write(writes, ordered=False).matched_count
        if updated == len(records):
            ours = [result for _, result, _ in records]
        elif updated:  # some were fenced out: the history of the others only
            ids = [row_id for row_id, _, _ in records]
            mine = {
                doc["_id"]
                for doc in self._audits.find({"_id": {"$in": ids}, "recorded": token}, {"_id": 1})
            }
            ours = [result for row_id, result, _ in records if row_id in mine]
        else:
            ours = []
        if ours:
            self._insert_history([_history(result) for result in ours])
        return updated

    def _insert_history(self, docs: list[dict[str, Any]]) -> None:
        """The rows are already updated: a passing failure here is tried again, not raised."""
        from pymongo.errors import AutoReconnect

        for attempt in range(_HISTORY_TRIES):
            try:
                self._results.insert_many(docs, ordered=False)
                return
            except AutoReconnect:
                if attempt + 1 == _HISTORY_TRIES:
                    raise
                time.sleep(0.2 * (attempt + 1))

    @translated
    def record_adhoc(
        self, row_id: int | None, result: Result, monitor: MonitorState | None = None
    ) -> None:
        if row_id is not None:
            values = {"result": _latest(result), "updated_at": t(result.finished_at)}
            if monitor is not None:
                values["monitor"] = monitor.to_dict()
            self._audits.update_one({"_id": row_id}, {"$set": values})
        self._results.insert_one(_history(result))

    @translated
    def monitor_rows(self, keys: Collection[tuple[str, str]]) -> dict[tuple[str, str], MonitorRow]:
        wanted = sorted(set(keys))
        found: dict[tuple[str, str], MonitorRow] = {}
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            query = {"$or": [{"audit_name": a, "host": h} for a, h in chunk]}
            for doc in self._audits.find(query):
                row = MonitorRow.of(_audit_row(doc))
                found[(row.audit_name, row.host)] = row
        return found

    # -- downtimes and acknowledgements -------------------------------------------------

    @translated
    def add_downtime(self, downtime: Downtime) -> None:
        from pymongo.errors import DuplicateKeyError

        doc = {"_id": downtime.name, "downtime": downtime.to_dict(), "ends_at": t(downtime.end)}
        try:
            self._downtimes.insert_one(doc)
        except DuplicateKeyError:
            message = f"state store {self.where}: downtime {downtime.name!r} exists"
            raise StoreConflict(message) from None

    @translated
    def downtimes(self) -> list[Downtime]:
        found = [Downtime.from_dict(doc["downtime"]) for doc in self._downtimes.find({})]
        return sorted(found, key=downtime_order)

    @translated
    def remove_downtime(self, name: str) -> bool:
        return self._downtimes.delete_one({"_id": name}).deleted_count > 0

    @translated
    def expire_downtimes(self, now: datetime) -> int:
        ended = {"ends_at": {"$ne": None, "$lte": t(now)}}
        return self._downtimes.delete_many(ended).deleted_count

    @translated
    def set_ack(self, ack: Ack) -> None:
        key = _kept_id(ack.audit_name, ack.host)
        doc = {"audit_name": ack.audit_name, "host": ack.host, "ack": ack.to_dict(),
               "expires_at": t(ack.expires_at)}  # fmt: skip
        self._acks.update_one({"_id": key}, {"$set": doc}, upsert=True)

    @translated
    def acks(self, host: str | None = None, audit_name: str | None = None) -> list[Ack]:
        query = {k: v for k, v in (("host", host), ("audit_name", audit_name)) if v is not None}
        found = [Ack.from_dict(doc["ack"]) for doc in self._acks.find(query)]
        return sorted(found, key=ack_order)

    @translated
    def clear_ack(self, audit_name: str, host: str) -> bool:
        return self._acks.delete_one({"_id": _kept_id(audit_name, host)}).deleted_count > 0

    @translated
    def expire_acks(self, now: datetime) -> int:
        expired = {"expires_at": {"$ne": None, "$lte": t(now)}}
        return self._acks.delete_many(expired).deleted_count

    @translated
    def release(self, engine_id: str, now: datetime) -> int:
        return self._audits.update_many(
            {"claimed_by": engine_id, "status": Status.PROCESSING.value},
            {
                "$set": {
                    "status": Status.NEW.value,
                    "claimed_by": None,
                    "lease_until": None,
                    "updated_at": t(now),
                }
            },
        ).modified_count

    @translated
    def take_back_expired(self, now: datetime, skew: float = 0.0) -> list[int]:
        expired = t(now - timedelta(seconds=skew))
        query = {"status": Status.PROCESSING.value, "lease_until": {"$lt": expired}}
        found = [doc["_id"] for doc in self._audits.find(query, {"_id": 1})]
        taken = []
        for chunk in _chunks(found):
            done = self._audits.update_many(
                {**query, "_id": {"$in": chunk}},
                {
                    "$set": {
                        "status": Status.NEW.value,
                        "claimed_by": None,
                        "lease_until": None,
                        "updated_at": t(now),
                    },
                    "$inc": {"attempts": 1},
                },
            )
            if done.modified_count:
                taken += chunk
        return taken

    @translated
    def prune_results(self, before: datetime) -> int:
        return self._results.delete_many({"finished_at": {"$lt": t(before)}}).deleted_count

    @translated
    def results(
        self,
        host: str | None = None,
        audit_name: str | None = None,
        outcome: str | None = None,
        limit: int = 100,
    ) -> list[Result]:
        query = {
            k: v
            for k, v in (("host", host), ("audit_name", audit_name), ("outcome", outcome))
            if v is not None
        }
        found = self._results.find(query).sort([("finished_at", -1), ("_id", -1)]).limit(limit)
        return [_result(doc) for doc in found]

    # -- moving state between stores ---------------------------------------------------

    @translated
    def export_rows(self) -> StateDump:
        rows = [_audit_row(doc) for doc in self._audits.find({}).sort("_id", 1)]
        history = [_result(doc) for doc in self._results.find({}).sort("_id", 1)]
        return StateDump(rows, history)

    @translated
    def import_rows(self, dump: StateDump) -> None:
        self._results.delete_many({})
        self._audits.delete_many({})
        if dump.rows:
            ids = self.mongo.next_ids("audits", len(dump.rows))
            docs = [_row_doc(row_id, row) for row_id, row in zip(ids, dump.rows, strict=True)]
            for start in range(0, len(docs), _CHUNK):
                self._audits.insert_many(docs[start : start + _CHUNK])
        history = [_history(result) for result in dump.results]
        for start in range(0, len(history), _CHUNK):
            self._results.insert_many(history[start : start + _CHUNK])


def _chunks(ids: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


def _metrics_text(metrics: dict[str, Any] | None) -> str | None:
    """Metrics as JSON text: perfdata labels may hold dots and dollars, odd values stay text."""
    return json.dumps(metrics, default=str) if metrics else None


def _latest(result: Result) -> dict[str, Any]:
    latest = latest_of(result)
    latest["metrics"] = _metrics_text(result.metrics)
    return latest


def _history(result: Result) -> dict[str, Any]:
    return {
        "host": result.host,
        "audit_name": result.audit_name,
        "slot": t(result.slot),
        "outcome": result.outcome.value,
        "summary": result.summary,
        "output": result.output,
        "metrics": _metrics_text(result.metrics),
        "started_at": t(result.started_at),
        "finished_at": t(result.finished_at),
        "engine_id": result.engine_id,
    }


def _result(doc: dict[str, Any]) -> Result:
    return Result(
        Outcome(doc["outcome"]),
        doc.get("summary") or "",
        doc.get("output") or "",
        json.loads(doc["metrics"]) if doc.get("metrics") else {},
        dt(doc.get("started_at")),
        dt(doc.get("finished_at")),
        dt(doc.get("slot")),
        doc.get("engine_id"),
        doc.get("audit_name", ""),
        doc.get("host", ""),
    )


def _audit_row(doc: dict[str, Any]) -> AuditRow:
    result = doc.get("result")
    if result is not None:
        result = {
            **result,
            "metrics": json.loads(result["metrics"]) if result.get("metrics") else {},
        }
    by = doc.get("disabled_by")
    return AuditRow(
        id=doc["_id"],
        host=doc["host"],
        ip_address=doc["ip_address"],
        audit_name=doc["audit_name"],
        next_run=dt(doc["next_run"]),
        created_at=dt(doc["created_at"]),
        updated_at=dt(doc["updated_at"]),
        disabled=bool(doc["disabled"]),
        disabled_reason=doc.get("disabled_reason"),
        status=Status(doc["status"]),
        result=result,
        disabled_by=DisabledBy(by) if by else None,
        claimed_by=doc.get("claimed_by"),
        lease_until=dt(doc.get("lease_until")),
        attempts=int(doc.get("attempts") or 0),
        monitor=MonitorState.from_dict(doc["monitor"]) if doc.get("monitor") else None,
    )


def _row_doc(row_id: int, row: AuditRow) -> dict[str, Any]:
    result = row.result
    if result is not None:
        result = {**result, "metrics": _metrics_text(result.get("metrics"))}
    return {
        "_id": row_id,
        "host": row.host,
        "ip_address": row.ip_address,
        "audit_name": row.audit_name,
        "next_run": t(row.next_run),
        "created_at": t(row.created_at),
        "updated_at": t(row.updated_at),
        "disabled": row.disabled,
        "disabled_reason": row.disabled_reason,
        "disabled_by": None if row.disabled_by is None else DisabledBy(row.disabled_by).value,
        "status": Status(row.status).value,
        "result": result,
        "claimed_by": row.claimed_by,
        "lease_until": t(row.lease_until),
        "attempts": row.attempts,
        "monitor": None if row.monitor is None else row.monitor.to_dict(),
    }


def _scope_query(scope: SyncScope) -> dict[str, Any]:
    return {"$or": [{"audit_name": {"$in": sorted(scope.audits)}},
                    {"host": {"$in": sorted(scope.hosts)}}]}  # fmt: skip


def _synced(doc: dict[str, Any]) -> _Synced:
    return _Synced(
        doc["_id"],
        doc["audit_name"],
        doc["host"],
        doc["ip_address"],
        dt(doc["next_run"]),
        bool(doc["disabled"]),
        doc.get("disabled_reason"),
        doc.get("disabled_by"),
    )


def _kept_id(audit_name: str, host: str) -> str:
    return json.dumps([audit_name, host])


def _kept_doc(kept: KeptDisable) -> dict[str, Any]:
    return {"_id": _kept_id(*kept.key), "audit_name": kept.audit_name, "host": kept.host,
            "disabled_reason": kept.reason, "removed_at": t(kept.removed_at),
            "removed_by": kept.removed_by or None}  # fmt: skip


def _kept(doc: dict[str, Any]) -> KeptDisable:
    return KeptDisable(doc["audit_name"], doc["host"], doc.get("disabled_reason"),
                       dt(doc["removed_at"]), doc.get("removed_by") or "")  # fmt: skip
