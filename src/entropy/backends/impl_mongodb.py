"""Definitions and state in one MongoDB database (`entropy_backend = mongodb`).

The collections `hosts`, `scripts`, `schedules` and `repairs` hold one
document per entry, its fields those of the entry in the seed format
(`ip_address`, `host_type`, `run_every: 30m` ...), plus `_id` (the name),
`seq` (the order added) and timestamps. They are read through the same
parsers as the YAML files, so an entry edited by hand in MongoDB is
validated like a YAML one; a problem is reported at `URL#collection:seq`.

Changes (`entropy host add` ...) are checked against the whole catalog
before they are written: one that would leave the definitions invalid
changes nothing. MongoDB gives no multi-document transaction without a
replica set, so two operators editing at the same moment are not
serialised against each other (each change is still validated).
"""

from __future__ import annotations

from collections.abc import Hashable
from datetime import UTC, datetime
from typing import Any

from oslo_config import cfg

from ..config import option
from ..dump import downtime_entry, host_entry, repair_entry, schedule_entry, script_entry
from ..errors import BackendError, NotFound
from ..model import Catalog, Downtime, Host, RepairRule, Schedule, Script
from .base import EditableDefinitions, safe_url
from .entries import (
    Entry,
    ScheduleEntry,
    catalog_from_entries,
    problems_of,
    refuse_new_problems,
)
from .mongodb.client import t, translated
from .mongodb.state import MongoStateStore

_META = ("_id", "seq", "created_at", "updated_at")
_SCHEDULE_META = (*_META, "target", "audit_name")
# downtimes.yaml's entries; `downtimes` is the state store's (ad hoc ones).
_KINDS = ("hosts", "scripts", "schedules", "repairs", "downtime_definitions")


class MongoDefinitions(EditableDefinitions):
    name = "mongodb"

    def __init__(self, conf: cfg.ConfigOpts, location: str | None = None) -> None:
        super().__init__(conf, location)

    def state_url(self) -> str:
        url = self.location or option(self.conf, "connection", "mongodb")
        if not url:
            raise BackendError(
                "the mongodb backend needs a URL: pass --backend mongodb://HOST/DATABASE "
                "or set [mongodb] connection in entropy.conf"
            )
        return _with_database(str(url), option(self.conf, "database", "mongodb"))

    def describe(self) -> str:
        return f"mongodb:{safe_url(self.state_url())}"

    def place(self) -> str:
        return f"mongodb:{self.state_url()}"

    def hint(self) -> str:
        return (
            f"the hosts, scripts, schedules, repairs and downtime_definitions collections of "
            f"{self.describe()}"
        )

    @property
    def where(self) -> str:
        return safe_url(self.state_url())

    def _db(self) -> Any:
        assert self._state is not None, "a source is used through its Backend"
        store = self._state()
        if not isinstance(store, MongoStateStore):  # state_url() is ours: cannot happen
            raise TypeError(f"mongodb definitions need a MongoDB state store, not {store!r}")
        return store.mongo.db

    # -- reading ----------------------------------------------------------------

    @translated
    def signature(self) -> Hashable:
        """Each collection's (documents, latest updated_at): any change moves one of them."""
        db = self._db()
        found = []
        for kind in _KINDS:
            latest = db[kind].find_one({}, {"updated_at": 1}, sort=[("updated_at", -1)])
            found.append((db[kind].count_documents({}), (latest or {}).get("updated_at")))
        return tuple(found)

    @translated
    def load(self) -> Catalog:
        return self._catalog(self._read())

    def _read(self) -> dict[str, list[dict[str, Any]]]:
        db = self._db()
        return {kind: sorted(db[kind].find({}), key=_order) for kind in _KINDS}

    def _catalog(self, docs: dict[str, list[dict[str, Any]]]) -> Catalog:
        def entries(kind: str) -> list[Entry]:
            return [
                (doc["_id"], _entry(doc, _META), int(doc.get("seq") or 0)) for doc in docs[kind]
            ]

        schedules: list[ScheduleEntry] = [
            (
                doc["target"],
                doc["audit_name"],
                _entry(doc, _SCHEDULE_META),
                int(doc.get("seq") or 0),
            )
            for doc in docs["schedules"]
        ]
        return catalog_from_entries(
            self.where,
            str(option(self.conf, "cron_timezone")),
            entries("hosts"),
            entries("scripts"),
            schedules,
            entries("repairs"),
            entries("downtime_definitions"),
        )

    # -- writing ----------------------------------------------------------------

    @translated
    def write_definitions(self, catalog: Catalog) -> None:
        """Replace every definition with the catalog's (not atomic: see the module)."""
        now = datetime.now(UTC)
        # YAML may repeat a (group, audit) entry in two files when the settings agree.
        unique = {(s.target, s.audit_name): s for s in reversed(catalog.schedules)}
        docs = {
            "hosts": [_host_doc(h, now) for h in catalog.hosts.values()],
            "scripts": [_script_doc(s, now) for s in catalog.scripts.values()],
            "schedules": [_schedule_doc(s, now) for s in reversed(unique.values())],
            "repairs": [_repair_doc(r, now) for r in catalog.repairs.values()],
            "downtime_definitions": [_downtime_doc(d, now) for d in catalog.downtimes.values()],
        }
        self._catalog(_numbered(docs))  # what is written must load back
        db = self._db()
        for kind in _KINDS:
            db[kind].delete_many({})
        for kind, found in _numbered(docs).items():
            if found:
                db[kind].insert_many(found)

    @translated
    def _put(self, kind: str, doc: dict[str, Any], match: dict[str, Any]) -> bool:
        docs = self._read()
        before = problems_of(lambda: self._catalog(docs))
        existing = next(
            (d for d in docs[kind] if all(d.get(k) == v for k, v in match.items())), None
        )
        if existing is not None:
            doc = {
                **doc,
                "_id": existing["_id"],
                "seq": existing.get("seq"),
                "created_at": existing.get("created_at", doc["created_at"]),
            }
            docs[kind] = [doc if d is existing else d for d in docs[kind]]
        else:
            doc = {**doc, "seq": max((int(d.get("seq") or 0) for d in docs[kind]), default=0) + 1}
            docs[kind] = [*docs[kind], doc]
        refuse_new_problems(before, problems_of(lambda: self._catalog(docs)))
        collection = self._db()[kind]
        if existing is not None:
            collection.replace_one({"_id": existing["_id"]}, doc)
        else:
            collection.insert_one(doc)
        return existing is None

    @translated
    def _remove(self, kind: str, match: dict[str, Any], missing: str) -> None:
        docs = self._read()
        kept = [d for d in docs[kind] if not all(d.get(k) == v for k, v in match.items())]
        if len(kept) == len(docs[kind]):
            raise NotFound(missing)
        before = problems_of(lambda: self._catalog(docs))
        refuse_new_problems(before, problems_of(lambda: self._catalog({**docs, kind: kept})))
        self._db()[kind].delete_many(match)

    def put_host(self, host: Host) -> bool:
        now = datetime.now(UTC)
        return self._put("hosts", _host_doc(host, now), {"_id": host.name})

    def put_script(self, script: Script) -> bool:
        return self._put("scripts", _script_doc(script, datetime.now(UTC)), {"_id": script.name})

    def put_schedule(self, schedule: Schedule) -> bool:
        match = {"target": schedule.target, "audit_name": schedule.audit_name}
        return self._put("schedules", _schedule_doc(schedule, datetime.now(UTC)), match)

    def put_repair(self, rule: RepairRule) -> bool:
        return self._put("repairs", _repair_doc(rule, datetime.now(UTC)), {"_id": rule.name})

    def remove_host(self, name: str) -> None:
        self._remove("hosts", {"_id": name}, f"no host {name!r}")

    def remove_script(self, name: str) -> None:
        self._remove("scripts", {"_id": name}, f"no script {name!r}")

    def remove_schedule(self, target: str, audit_name: str) -> None:
        self._remove(
            "schedules",
            {"target": target, "audit_name": audit_name},
            f"no schedule of {audit_name!r} on {target!r}",
        )

    def remove_repair(self, name: str) -> None:
        self._remove("repairs", {"_id": name}, f"no repair {name!r}")


def _with_database(url: str, database: object) -> str:
    """The URL with `[mongodb] database` as its path when it names no database."""
    if not database:
        return url
    scheme, _, rest = url.partition("://")
    hosts, _slash, tail = rest.partition("/")
    path, question, query = tail.partition("?")
    if path:
        return url
    return f"{scheme}://{hosts}/{database}" + (f"?{query}" if question else "")


def _order(doc: dict[str, Any]) -> tuple[int, str]:
    return int(doc.get("seq") or 0), str(doc["_id"])


def _entry(doc: dict[str, Any], meta: tuple[str, ...]) -> dict[str, Any]:
    return {key: value for key, value in doc.items() if key not in meta}


def _numbered(docs: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    return {
        kind: [{**doc, "seq": n} for n, doc in enumerate(found, 1)] for kind, found in docs.items()
    }


def _stamped(entry: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {**entry, "created_at": t(now), "updated_at": t(now)}


def _host_doc(host: Host, now: datetime) -> dict[str, Any]:
    return {"_id": host.name, **_stamped(host_entry(host), now)}


def _script_doc(script: Script, now: datetime) -> dict[str, Any]:
    return {"_id": script.name, **_stamped(script_entry(script), now)}


def _schedule_doc(schedule: Schedule, now: datetime) -> dict[str, Any]:
    from bson import ObjectId

    return {
        "_id": ObjectId(),
        "target": schedule.target,
        "audit_name": schedule.audit_name,
        **_stamped(schedule_entry(schedule), now),
    }


def _repair_doc(rule: RepairRule, now: datetime) -> dict[str, Any]:
    return {"_id": rule.name, **_stamped(repair_entry(rule), now)}


def _downtime_doc(downtime: Downtime, now: datetime) -> dict[str, Any]:
    return {"_id": downtime.name, **_stamped(downtime_entry(downtime), now)}
