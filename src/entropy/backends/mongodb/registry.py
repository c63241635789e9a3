"""The engines registry in MongoDB: one document per engine id in `engines`."""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

from ...errors import BackendError
from ..base import EngineRecord, EngineRegistry
from .client import Mongo, dt, t, translated

_FIELDS = (
    "hostname",
    "pid",
    "version",
    "started_at",
    "heartbeat_at",
    "stopped_at",
    "stop_requested",
)


class MongoEngineRegistry(EngineRegistry):
    def __init__(self, mongo: Mongo) -> None:
        super().__init__(mongo.where)
        self._engines = mongo.db.engines

    @translated
    def register(self, me: EngineRecord, now: datetime, dead_after: float) -> None:
        from pymongo.errors import DuplicateKeyError

        found = self._engines.find_one({"_id": me.engine_id})
        other = None if found is None else _record(found)
        self.refuse_if_live(other, me, now, dead_after)
        doc = {**_doc(me), "stopped_at": None, "stop_requested": False}
        try:
            if found is None:
                self._engines.insert_one({"_id": me.engine_id, **doc})
                return
        except DuplicateKeyError:
            pass  # registered by another engine this very moment: refused below
        else:
            # Replace the entry only as read: an engine taking the id meanwhile wins.
            taken = self._engines.replace_one(
                {"_id": me.engine_id, "heartbeat_at": found["heartbeat_at"]}, doc
            ).matched_count
            if taken:
                return
        raise BackendError(
            f"state store {self.where}: engine id {me.engine_id!r} was just taken by another "
            "engine; give this engine another engine_id"
        )

    @translated
    def heartbeat(self, me: EngineRecord, now: datetime) -> bool:
        from pymongo.errors import DuplicateKeyError

        found = self._engines.find_one_and_update(
            {"_id": me.engine_id},
            {"$set": {"heartbeat_at": t(now), "stopped_at": None}},
            {"stop_requested": 1},
        )
        if found is None:  # removed by hand meanwhile: come back
            doc = {**_doc(me), "heartbeat_at": t(now), "stopped_at": None, "stop_requested": False}
            with contextlib.suppress(DuplicateKeyError):
                self._engines.insert_one({"_id": me.engine_id, **doc})
            return False
        return bool(found.get("stop_requested"))

    @translated
    def stopped(self, engine_id: str, now: datetime) -> None:
        self._engines.update_one(
            {"_id": engine_id}, {"$set": {"stopped_at": t(now), "heartbeat_at": t(now)}}
        )

    @translated
    def _ask_to_stop(self, engine_ids: list[str]) -> None:
        self._engines.update_many({"_id": {"$in": engine_ids}}, {"$set": {"stop_requested": True}})

    @translated
    def list(self) -> list[EngineRecord]:
        found = [_record(doc) for doc in self._engines.find({})]
        return sorted(found, key=lambda e: (e.started_at, e.engine_id))

    @translated
    def forget_before(self, before: datetime) -> int:
        return self._engines.delete_many({"heartbeat_at": {"$lt": t(before)}}).deleted_count


def _doc(me: EngineRecord) -> dict[str, Any]:
    return {
        "hostname": me.hostname,
        "pid": me.pid,
        "version": me.version,
        "started_at": t(me.started_at),
        "heartbeat_at": t(me.heartbeat_at),
    }


def _record(doc: dict[str, Any]) -> EngineRecord:
    values: dict[str, Any] = {name: doc.get(name) for name in _FIELDS}  # BSON values
    values["stop_requested"] = bool(values["stop_requested"])
    for name in ("started_at", "heartbeat_at", "stopped_at"):
        values[name] = dt(values[name])
    return EngineRecord(engine_id=doc["_id"], **values)
