"""Connecting to MongoDB, its errors as Entropy's typed errors, and the schema's indexes.

Only documented MongoDB 5.0+ operations are used (README, "The mongodb
backend"): CRUD with the query operators $in, $ne, $lt, $lte, $nin, $or,
the update operators $set, $inc, $setOnInsert, find_one_and_update,
update_many, bulk_write of UpdateOne, insert_many, delete_many, sort on
indexed fields, and create_index (unique and compound). No transactions
(they need a replica set), no aggregation pipelines.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar, overload

from ...errors import (
    BackendError,
    SchemaOutOfDate,
    StorageFailure,
    StoreConflict,
    StoreError,
    StoreUnavailable,
)
from ..base import safe_url

REVISION = "mongo-0001"  # bumped whenever the collections or indexes change
DEFAULT_DATABASE = "entropy"
# Server error codes that mean "try again later" (shutdown, stepdown, timeouts, network).
_TRANSIENT_CODES = frozenset(
    {6, 7, 50, 89, 91, 112, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436}
)
_DUPLICATE_KEY = 11000

# The indexes `entropy db upgrade` creates, by collection.
INDEXES: dict[str, list[tuple[list[tuple[str, int]], dict[str, Any]]]] = {
    "audits": [
        ([("audit_name", 1), ("host", 1)], {"unique": True, "name": "audit_host"}),
        ([("next_run", 1)], {"name": "next_run"}),
        ([("host", 1)], {"name": "host"}),
        ([("claimed_by", 1), ("status", 1)], {"name": "claimed_by_status"}),
        ([("status", 1), ("lease_until", 1)], {"name": "status_lease_until"}),
    ],
    "results": [
        ([("host", 1), ("audit_name", 1), ("finished_at", -1)], {"name": "host_audit_finished"}),
        ([("finished_at", -1)], {"name": "finished_at"}),
    ],
    "repair_state": [
        ([("repair_name", 1), ("host", 1)], {"unique": True, "name": "repair_host"}),
        ([("running_by", 1)], {"name": "running_by"}),
    ],
    "repair_runs": [
        ([("host", 1), ("finished_at", -1)], {"name": "host_finished"}),
        ([("finished_at", -1)], {"name": "finished_at"}),
    ],
    "schedules": [
        ([("target", 1), ("audit_name", 1)], {"unique": True, "name": "target_audit"}),
    ],
    "engines": [([("started_at", 1)], {"name": "started_at"})],
    "removed_disables": [([("removed_at", 1)], {"name": "removed_at"})],
}

P = ParamSpec("P")
R = TypeVar("R")


def translated(method: Callable[P, R]) -> Callable[P, R]:
    """Run a store method with pymongo's errors turned into typed StoreErrors.

    The method's object must have `where` or `mongo.where` (the URL, no password).
    """

    @functools.wraps(method)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except StoreError:
            raise
        except Exception as exc:
            error = translate(exc, _where(args[0]) if args else "?")
            if error is None:
                raise
            raise error from exc

    return call


class Mongo:
    """A client and database for one URL, shared by the state store and the definitions."""

    def __init__(self, url: str) -> None:
        try:
            import pymongo
            from pymongo import uri_parser
        except ModuleNotFoundError:
            raise BackendError(
                "the mongodb backend needs pymongo; install it with: pip install 'entropy[mongodb]'"
            ) from None
        self.url = url
        self.where = safe_url(url)
        try:
            parsed = uri_parser.parse_uri(url)
            options = {k.lower() for k in parsed["options"]}
            defaults: dict[str, Any] = {"tz_aware": True}
            # A dead or silent server is an error within seconds, not pymongo's 30 s.
            for name, value in (
                ("serverSelectionTimeoutMS", 5000),
                ("connectTimeoutMS", 5000),
                ("socketTimeoutMS", 30000),
            ):
                if name.lower() not in options:
                    defaults[name] = value
            self.client = pymongo.MongoClient(url, **defaults)
        except pymongo.errors.PyMongoError as exc:
            raise BackendError(f"invalid MongoDB URL {self.where!r}: {exc}") from None
        self.db = self.client[parsed["database"] or DEFAULT_DATABASE]

    def close(self) -> None:
        self.client.close()

    @translated
    def revision(self) -> str | None:
        found = self.db.meta.find_one({"_id": "schema"})
        return None if found is None else found.get("revision")

    def check_schema(self) -> None:
        at = self.revision()
        if at == REVISION:
            return
        state = f"is at revision {at}" if at else "has no Entropy collections"
        raise SchemaOutOfDate(
            f"state store {self.where} {state}; this Entropy needs revision {REVISION}. "
            "Run: entropy db upgrade"
        )

    @translated
    def upgrade(self) -> tuple[str | None, str]:
        before = self.revision()
        for collection, indexes in INDEXES.items():
            for keys, options in indexes:
                self.db[collection].create_index(keys, **options)
        self.db.meta.update_one(
            {"_id": "schema"},
            {"$set": {"revision": REVISION, "upgraded_at": t(datetime.now(UTC))}},
            upsert=True,
        )
        return before, REVISION

    @translated
    def next_ids(self, counter: str, count: int) -> range:
        """`count` new ids, unique across every engine (a counter document, $inc)."""
        found = self.db.counters.find_one_and_update(
            {"_id": counter}, {"$inc": {"seq": count}}, upsert=True, return_document=True
        )
        assert found is not None  # upsert=True, and the document after it is returned
        end = int(found["seq"])
        return range(end - count + 1, end + 1)


def _where(owner: Any) -> str:
    where = getattr(owner, "where", None)
    if where is None and getattr(owner, "mongo", None) is not None:
        where = owner.mongo.where
    return str(where or "?")


def translate(exc: Exception, where: str) -> StoreError | None:
    """The typed error for a pymongo error; None for anything else (a bug: left as it is)."""
    from bson.errors import BSONError
    from pymongo import errors

    if isinstance(exc, BSONError):  # a value BSON cannot hold: this write never will
        return StorageFailure(f"state store {where}: {exc}")
    if not isinstance(exc, errors.PyMongoError):
        return None
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    for noise in (" (configured timeouts", ", Timeout:", ", full error:"):
        reason = reason.split(noise)[0]  # pymongo's topology and timeout details
    message = f"state store {where}: {reason}"
    if isinstance(exc, errors.DuplicateKeyError):
        return StoreConflict(message)
    if isinstance(exc, errors.BulkWriteError):
        codes = {e.get("code") for e in exc.details.get("writeErrors", [])}
        if codes and codes <= {_DUPLICATE_KEY}:
            return StoreConflict(message)
        if codes & _TRANSIENT_CODES:
            return StoreUnavailable(message)
        return StorageFailure(message)
    if isinstance(
        exc,
        errors.ConnectionFailure
        | errors.ExecutionTimeout
        | errors.WTimeoutError
        | errors.WaitQueueTimeoutError
        | errors.CursorNotFound,
    ):
        return StoreUnavailable(message)
    if isinstance(exc, errors.OperationFailure):
        if exc.code in _TRANSIENT_CODES or exc.has_error_label("RetryableWriteError"):
            return StoreUnavailable(message)
        if exc.code == _DUPLICATE_KEY:
            return StoreConflict(message)
    return StorageFailure(message)


def wall_now() -> datetime:
    return datetime.now(UTC)


def t(value: datetime | None) -> str | None:
    """A time as stored: ISO 8601 text in UTC to the microsecond, always the same width.

    So text order is time order (MongoDB compares strings bytewise), every
    microsecond survives, and a document reads plainly in mongosh.
    """
    return None if value is None else value.astimezone(UTC).isoformat(timespec="microseconds")


@overload
def dt(value: None) -> None: ...
@overload
def dt(value: datetime | str) -> datetime: ...
def dt(value: datetime | str | None) -> datetime | None:
    """A stored time back as an aware UTC datetime (a BSON date written by hand works too)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(value)
