"""The contract every backend keeps: a definitions source plus a state store.

Like TaskFlow's persistence `base.py`: abstract classes say what a backend
must do, typed rows say what it hands back, and each implementation
declares what it can do (`Capability`), so a command it cannot serve is
refused with a clear message instead of failing half way.

- `DefinitionsSource` reads (and, for import/export, writes) the catalog;
  `EditableDefinitions` also takes single changes from the CLI.
- `StateStore` keeps one row per (audit, host), claims them under leases,
  records results and the history; its `repairs` are a `RepairStore` and
  its `engine_registry()` an `EngineRegistry`.
- `Backend` puts one of each together. The state store is chosen by URL
  (`open_state_store`), so YAML definitions can keep their state in any
  store: SQLite, PostgreSQL, MariaDB, MongoDB or memory.

Every store raises the typed errors of `entropy.errors` (StoreUnavailable,
StoreConflict, SchemaOutOfDate, StorageFailure), translated from its driver
in one place.
"""

from __future__ import annotations

import abc
import builtins  # `list` in EngineRegistry is its method: builtins.list is the type
import hashlib
import os
import socket
import threading
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, TypeAlias
from urllib.parse import urlsplit, urlunsplit

from oslo_config import cfg

from ..catalogdiff import SyncScope, pairs_in
from ..config import number, splay_cap, state_dir
from ..errors import BackendError, NoState, Unsupported
from ..model import (
    Ack,
    AuditRow,
    Catalog,
    Downtime,
    Host,
    MonitorState,
    Outcome,
    Pair,
    RepairDecision,
    RepairRule,
    RepairRun,
    RepairState,
    Result,
    Schedule,
    Script,
    SyncReport,
)
from ..removal import RemovalPolicy, RemovalRefused

# -- capabilities -------------------------------------------------------------------


class Capability(StrEnum):
    """What a definitions source or a state store can do beyond the common contract."""

    EDITABLE = "editable"  # definitions change one by one: `entropy host add` ...
    SHARED_ENGINES = "shared_engines"  # several engines may share the state store
    SCHEMA_MIGRATIONS = "schema_migrations"  # `entropy db upgrade` has a schema to manage
    PERSISTENT = "persistent"  # the state outlives the process that wrote it


class Capable:
    """Something that declares capabilities and refuses clearly what it lacks."""

    name: ClassVar[str] = "?"
    capabilities: frozenset[Capability] = frozenset()

    def can(self, capability: Capability) -> bool:
        return capability in self.capabilities

    def require(self, capability: Capability, command: str, why: str) -> None:
        """Raise Unsupported naming `entropy COMMAND` unless this has the capability."""
        if capability not in self.capabilities:
            raise Unsupported(f"`entropy {command}` {why}")


# -- typed rows -----------------------------------------------------------------------


class ScheduleRow(NamedTuple):
    """What the scheduler's time table needs of one audit row."""

    id: int
    audit_name: str
    host: str
    next_run: datetime
    disabled: bool
    status: str


@dataclass(frozen=True, slots=True)
class EngineRecord:
    """One engine's entry in a state store's registry."""

    engine_id: str
    hostname: str
    pid: int
    version: str
    started_at: datetime
    heartbeat_at: datetime
    stopped_at: datetime | None = None
    stop_requested: bool = False

    def state(self, now: datetime, dead_after: float) -> str:
        """running, stopping (asked to), stopped (cleanly) or dead (no heartbeat for too long)."""
        if self.stopped_at is not None:
            return "stopped"
        if now - self.heartbeat_at > timedelta(seconds=dead_after):
            return "dead"
        return "stopping" if self.stop_requested else "running"

    def live(self, now: datetime, dead_after: float) -> bool:
        return self.state(now, dead_after) in ("running", "stopping")

    def to_dict(self, now: datetime, dead_after: float) -> dict[str, Any]:
        return {
            "engine_id": self.engine_id,
            "hostname": self.hostname,
            "pid": self.pid,
            "version": self.version,
            "state": self.state(now, dead_after),
            "started_at": self.started_at,
            "heartbeat_at": self.heartbeat_at,
            "heartbeat_age_s": round((now - self.heartbeat_at).total_seconds(), 3),
            "stopped_at": self.stopped_at,
            "stop_requested": self.stop_requested,
        }


# One audit row as /metrics reads it for every row: (audit_name, host, outcome,
# finished_us), the latest result's outcome and end in microseconds since the Unix epoch
# (clock.to_micros), both None before the first result. Nothing more: no output, no
# datetime to build. A plain tuple, not a NamedTuple: the garbage collector stops
# tracking a tuple of strings and numbers, but keeps tracking a NamedTuple, and 100,000
# of them set off full collections that cost ~0.2 s per read (a scrape at 100,000 pairs).
PairOutcome: TypeAlias = tuple[str, str, str | None, int | None]


class PastDue(NamedTuple):
    """An enabled row whose next_run has passed: what "overdue" is worked out from."""

    audit_name: str
    host: str
    next_run: datetime
    outcome: str | None  # the latest result's; None before the first
    finished_us: int | None  # the latest result's end (clock.to_micros): overdue counts from it
    created_at: datetime  # the row's, what overdue counts from before any result


@dataclass(frozen=True, slots=True)
class RepairRecord:
    """One repair run as stored: what `entropy results --kind repair` shows."""

    repair_name: str
    host: str
    audit_name: str  # the audit that triggered it
    script: str
    attempt: int
    outcome: str
    summary: str | None
    output: str | None
    started_at: datetime
    finished_at: datetime
    engine_id: str | None
    verify: str | None = None  # fixed | not_fixed; None without verify
    verify_outcome: str | None = None
    verify_summary: str | None = None
    trigger_result: dict[str, Any] | None = None

    @classmethod
    def of(cls, run: RepairRun) -> RepairRecord:
        return cls(**run.to_dict())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class StateDump:
    """Everything `entropy import --with-state` moves: the audit rows and the history."""

    rows: list[AuditRow] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)


@dataclass(slots=True)
class RepairDump:
    """What `entropy import --with-state` moves of the repairs: the guardrails' state of
    each (repair, host) (attempts, flags) and the repair history, oldest run first."""

    states: list[RepairState] = field(default_factory=list)
    runs: list[RepairRecord] = field(default_factory=list)


class MonitorRow(NamedTuple):
    """What the monitoring rules need of one pair's row (monitor_rows)."""

    id: int
    audit_name: str
    host: str
    monitor: MonitorState | None  # None: no monitoring state kept (yet)
    outcome: Outcome | None  # the latest result's; None before any
    last_result_at: datetime | None  # when that result finished
    created_at: datetime | None = None  # the row's: a passive pair's freshness counts from it

    @classmethod
    def of(cls, row: AuditRow) -> MonitorRow:
        outcome = (row.result or {}).get("outcome")
        return cls(row.id, row.audit_name, row.host, row.monitor,
                   None if outcome is None else Outcome(outcome), row.last_result_at,
                   row.created_at)  # fmt: skip


RecordItem = tuple[int, Result, datetime]  # (row id, result, the row's next_run after it)
Judge = Callable[[RepairState, list[RepairState]], RepairDecision]


# -- the definitions side -------------------------------------------------------------------


class DefinitionsSource(Capable, abc.ABC):
    """Where hosts, scripts, schedules and repairs come from.

    `load()` reads and validates every definition, raising ValidationError
    with every problem before anything is stored.
    """

    def __init__(self, conf: cfg.ConfigOpts, location: str | None = None) -> None:
        self.conf = conf
        self.location = location
        self._state: Callable[[], StateStore] | None = None

    def attach(self, state: Callable[[], StateStore]) -> None:
        """Give the source its backend's state store, for sources kept in the same database."""
        self._state = state

    @abc.abstractmethod
    def load(self) -> Catalog:
        """Read and validate every definition; raise ValidationError on any problem."""

    @abc.abstractmethod
    def state_url(self) -> str:
        """The URL of the state store this fleet keeps its state in."""

    @abc.abstractmethod
    def hint(self) -> str:
        """Where an operator changes the definitions, for messages."""

    @abc.abstractmethod
    def write_definitions(self, catalog: Catalog) -> None:
        """Replace every definition with the catalog's (import, export)."""

    def watched_paths(self) -> list[Path]:
        """Files whose change should trigger a refresh; none for a database."""
        return []

    def signature(self) -> Hashable:
        """Changes when the definitions may have changed (a watched file, a version)."""
        found: list[tuple[object, ...]] = []  # (path, mtime, size), or (path, None) if gone
        for path in self.watched_paths():
            try:
                stat = path.stat()
            except OSError:
                found.append((str(path), None))
            else:
                found.append((str(path), stat.st_mtime_ns, stat.st_size))
        return tuple(found)

    def describe(self) -> str:
        return f"{self.name}:{self.location}"

    def place(self) -> str:
        """Where the definitions are, to tell whether two sources read the same ones."""
        return f"{self.name}:{self.location}"

    def close(self) -> None:
        """Release what the source holds of its own (most hold nothing)."""

    # Set for commands that only read: state_url() then writes nothing (see fleet_state).
    read_only: bool = False

    def require_present(self) -> None:
        """Raise BackendError when the definitions this source names are not there."""
        return None  # a database is there if it answers


class EditableDefinitions(DefinitionsSource):
    """Definitions changed one by one (`entropy host|script|schedule|repair add|remove`).

    Each change is checked against the whole catalog and refused, changing
    nothing, if it would leave it invalid (ValidationError); removing what
    is not there is NotFound.
    """

    capabilities = frozenset({Capability.EDITABLE})

    @abc.abstractmethod
    def put_host(self, host: Host) -> bool:
        """Add the host, or replace the one of that name; True if it was new."""

    @abc.abstractmethod
    def put_script(self, script: Script) -> bool: ...

    @abc.abstractmethod
    def put_schedule(self, schedule: Schedule) -> bool: ...

    @abc.abstractmethod
    def put_repair(self, rule: RepairRule) -> bool: ...

    @abc.abstractmethod
    def remove_host(self, name: str) -> None: ...

    @abc.abstractmethod
    def remove_script(self, name: str) -> None: ...

    @abc.abstractmethod
    def remove_schedule(self, target: str, audit_name: str) -> None: ...

    @abc.abstractmethod
    def remove_repair(self, name: str) -> None: ...


# -- the state side ------------------------------------------------------------------------


class RepairStore(abc.ABC):
    """What the repair guardrails remember per (repair, host), and the repair history.

    `start` must be atomic across engines: the guardrails are judged and the
    run claimed as one step, so a repair never runs twice at once on a host
    nor more than its max_concurrent across the fleet.
    """

    @abc.abstractmethod
    def latest_outcomes(self, audit_name: str, host: str, limit: int) -> list[Outcome]:
        """The outcomes of the pair's latest results, newest first."""

    @abc.abstractmethod
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

        judge(own, others) sees the host's state (with `recovered` set when
        the audit was healthy since the last run) and every other host's.
        """

    @abc.abstractmethod
    def healthy_since(
        self, audit_name: str, host: str, failing: frozenset[Outcome], since: datetime
    ) -> bool:
        """Whether the pair had a result outside `failing` after `since`."""

    @abc.abstractmethod
    def finish(self, run: RepairRun, engine_id: str, flag: str | None = None) -> None:
        """Record the run and free the (repair, host) for the next one (if still ours)."""

    @abc.abstractmethod
    def release(self, engine_id: str, now: datetime) -> int:
        """Free the repairs this engine was running (it is stopping)."""

    @abc.abstractmethod
    def states(self, host: str | None = None, repair_name: str | None = None) -> list[RepairState]:
        """Ordered by host, then repair."""

    @abc.abstractmethod
    def reset(self, host: str, repair_name: str | None, now: datetime) -> int:
        """Clear the flag and the attempts of host's repairs (or of one); how many changed."""

    @abc.abstractmethod
    def runs(
        self,
        host: str | None = None,
        repair_name: str | None = None,
        outcome: str | None = None,
        limit: int = 100,
        audit_name: str | None = None,
    ) -> list[RepairRecord]:
        """Repair history, newest first; audit_name is the audit that triggered them."""

    @abc.abstractmethod
    def prune(self, before: datetime) -> int:
        """Drop repair runs that finished before `before`."""

    @abc.abstractmethod
    def run_counts(self) -> dict[tuple[str, str], int]:
        """How many runs are kept, by (repair_name, outcome); counted in the database."""

    # -- moving state between stores (`entropy import --with-state`) ------------------

    @abc.abstractmethod
    def export_all(self) -> RepairDump:
        """Every (repair, host) state, by host then repair, and every run, oldest first."""

    @abc.abstractmethod
    def import_all(self, dump: RepairDump, now: datetime) -> None:
        """Replace every repair state and run with the dump's (`now`: when they changed).

        No engine of this store holds a repair the dump shows running (its
        engine ran on another store, and stops before an import): such a
        state arrives not running, its attempt still counted (attempts and
        last_started_at as they were), as if its run had ended with no
        result, so max_attempts and cooldown hold. That run is not in the
        history: it never finished.
        """


class EngineRegistry(abc.ABC):
    """Which engines share a state store, whether they live, and stop requests.

    Each engine keeps one entry and touches its heartbeat on every beat; one
    whose heartbeat is older than `dead_after` is dead. `request_stop` works
    from any machine that reaches the store.
    """

    def __init__(self, where: str) -> None:
        self.where = where  # the store, for messages

    @abc.abstractmethod
    def register(self, me: EngineRecord, now: datetime, dead_after: float) -> None:
        """Add this engine, or take over its id's entry from a stopped or dead engine.

        Refused (BackendError naming the holder) while a live engine has the id,
        or when the store serves one engine at a time and another runs.
        """

    @abc.abstractmethod
    def heartbeat(self, me: EngineRecord, now: datetime) -> bool:
        """Say this engine lives (re-adding its entry if it was removed); True if asked to stop."""

    @abc.abstractmethod
    def stopped(self, engine_id: str, now: datetime) -> None:
        """Mark a clean stop; the entry stays so `entropy engines` can show it."""

    @abc.abstractmethod
    def list(self) -> list[EngineRecord]:
        """Every entry, by start time, then id."""

    @abc.abstractmethod
    def forget_before(self, before: datetime) -> int:
        """Drop entries of engines silent since before `before` (history hygiene)."""

    @abc.abstractmethod
    def _ask_to_stop(self, engine_ids: builtins.list[str]) -> None:
        """Set the stop request of these entries."""

    def request_stop(
        self, engine_id: str | None, now: datetime, dead_after: float
    ) -> builtins.list[str]:
        """Ask one engine (or, with None, every live one) to stop; the ids asked.

        An unknown id is an error naming the known ones; a stopped or dead
        engine is not asked (there is nothing left to stop).
        """
        known = self.list()
        live = [e for e in known if e.live(now, dead_after)]
        if engine_id is not None:
            if engine_id not in {e.engine_id for e in known}:
                names = ", ".join(sorted(e.engine_id for e in known)) or "none"
                raise BackendError(f"state store {self.where}: no engine {engine_id!r}; "
                                   f"known: {names}")  # fmt: skip
            live = [e for e in live if e.engine_id == engine_id]
        ids = [e.engine_id for e in live]
        if ids:
            self._ask_to_stop(ids)
        return ids

    def refuse_if_live(self, other: EngineRecord | None, me: EngineRecord, now: datetime,
                       dead_after: float) -> None:  # fmt: skip
        """Raise if `other` (the entry under my id) belongs to a live engine."""
        if other is None or not other.live(now, dead_after) or _gone(other):
            return
        age = max((now - other.heartbeat_at).total_seconds(), 0.0)
        raise BackendError(
            f"state store {self.where}: engine id {me.engine_id!r} is in use by a live engine "
            f"(pid {other.pid} on {other.hostname}, heartbeat {age:.1f}s ago); give this "
            "engine another engine_id"
        )


def _gone(other: EngineRecord) -> bool:
    """Its entry looks live, but it was this process, or a process of this machine now gone.

    So an engine killed and restarted at once with the same id (pid 1 in a
    container) need not wait for its old heartbeat to age.
    """
    if other.hostname != socket.gethostname():
        return False
    if other.pid == os.getpid():
        return True
    try:
        os.kill(other.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class StateStore(Capable, abc.ABC):
    """Audit rows, claims under leases, results and their history, for one fleet.

    Rows are identified by an integer id the store assigns. Claims are atomic
    (no two engines hold a row), a lease that is not renewed runs out, and
    results are recorded only over rows still claimed by their engine
    (fencing). Every method may raise the typed StoreError kinds.
    """

    def __init__(self, url: str) -> None:
        self.url = url

    def describe(self) -> str:
        """The store's URL, password hidden, for messages."""
        return safe_url(self.url)

    @property
    @abc.abstractmethod
    def repairs(self) -> RepairStore: ...

    @abc.abstractmethod
    def engine_registry(self) -> EngineRegistry:
        """A registry handle for one engine's life (it may hold a lock for it)."""

    # -- schema -----------------------------------------------------------------------

    @abc.abstractmethod
    def schema_revision(self) -> str | None:
        """The revision the store is at; None when it has none yet."""

    @abc.abstractmethod
    def schema_head(self) -> str:
        """The revision this Entropy needs."""

    @abc.abstractmethod
    def upgrade_schema(self) -> tuple[str | None, str]:
        """Create or bring the schema to head; return (before, after)."""

    # -- rows -------------------------------------------------------------------------

    @abc.abstractmethod
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

        With a `scope` (an incremental refresh), `pairs` are the catalog's pairs
        in it, and only the rows it covers are read, added, changed or removed;
        the rest stay as they are, even if edited by hand (the next full sync
        puts those right). max_removal still counts every stored row.

        Kept rows keep their state; they follow the host's address and the
        definitions' disabled flag (an operator's disable stays), and a
        next_run left far out by a shortened interval is pulled in (`skew`
        seconds of slack). Concurrent syncs of one fleet all succeed.
        `policy` (default RemovalPolicy()): removing more than max_removal of
        the rows raises RemovalRefused and changes nothing; an operator's
        disable of a removed pair is remembered for disable_retention and put
        back if the pair returns. syncplan.plan_sync applies these rules.
        """

    @abc.abstractmethod
    def audits(self, host: str | None = None, audit_name: str | None = None) -> list[AuditRow]:
        """The rows, by host then audit name."""

    @abc.abstractmethod
    def pair_outcomes(self) -> list[PairOutcome]:
        """Every row's latest outcome and end as plain tuples (PairOutcome), in no set order:
        one query reading only these. A /metrics scrape reads it for every row: keep it
        free of per-row parsing and of per-row objects."""

    @abc.abstractmethod
    def past_due(self, now: datetime) -> list[PastDue]:
        """The enabled rows whose next_run is before `now`, in no set order: the only ones
        that can be overdue (next_run is one interval after the last run)."""

    @abc.abstractmethod
    def set_disabled(self, pairs: Iterable[Pair], reason: str | None, now: datetime) -> int:
        """Disable these pairs' rows as the operator asked, or, with reason None, lift that.

        Lifting leaves what the definitions say: a pair they disable stays disabled.
        """

    @abc.abstractmethod
    def schedule_rows(
        self, scope: SyncScope | None = None, ids: Collection[int] | None = None
    ) -> list[ScheduleRow]:
        """Every row, for the scheduler's time table; or only those in `scope`, or of `ids`."""

    @abc.abstractmethod
    def disabled_ids(self) -> set[int]:
        """The ids of the disabled rows: how a refresh follows `entropy disable/enable`
        without reading every row."""

    # -- claims, leases, results --------------------------------------------------------

    @abc.abstractmethod
    def claim(
        self,
        ids: list[int],
        engine_id: str,
        now: datetime,
        lease_until: datetime,
        waiting: Iterable[int] = (),
    ) -> dict[int, datetime]:
        """Atomically take the due, enabled, unclaimed rows among `ids`: {row id: slot}.

        The slot is the row's next_run as stored, which may be later than the
        caller expected (another engine ran that one). A row still
        `processing` is never taken, even with its lease run out: it comes
        back through recover_expired(). `waiting` are due rows the caller
        cannot start yet: they are marked `new`.
        """

    @abc.abstractmethod
    def next_runs(self, ids: list[int]) -> dict[int, datetime]:
        """The rows' next_run as stored, for an engine whose claim on them failed."""

    @abc.abstractmethod
    def renew_leases(self, engine_id: str, ids: list[int], lease_until: datetime) -> int:
        """Extend this engine's leases on these rows (still claimed by it); how many it holds."""

    @abc.abstractmethod
    def record(
        self,
        records: list[RecordItem],
        engine_id: str,
        monitor: Mapping[int, MonitorState] | None = None,
    ) -> int:
        """Store results: each row's latest result and next_run, plus one history entry each.

        Only rows still claimed by this engine change, and only their results
        enter the history (fencing). Returns how many rows were updated.
        `monitor`: the monitoring state of the rows that keep one (row id ->
        state), written with their results in the same transaction; None (no
        pair of the batch has monitoring) costs nothing.
        """

    @abc.abstractmethod
    def record_adhoc(
        self, row_id: int | None, result: Result, monitor: MonitorState | None = None
    ) -> None:
        """A run outside the schedule (or a submitted result): history, and the row's latest
        result (and monitoring state, when given), in one transaction; next_run stays."""

    @abc.abstractmethod
    def monitor_rows(self, keys: Collection[tuple[str, str]]) -> dict[tuple[str, str], MonitorRow]:
        """The rows of these (audit, host) pairs, with their monitoring state and latest outcome;
        a pair without a row is left out."""

    # -- downtimes and acknowledgements (monitoring.py) ------------------------------

    @abc.abstractmethod
    def add_downtime(self, downtime: Downtime) -> None:
        """Keep an ad hoc downtime under its name (its id); StoreConflict if that is taken."""

    @abc.abstractmethod
    def downtimes(self) -> list[Downtime]:
        """Every ad hoc downtime kept, by start, then name."""

    @abc.abstractmethod
    def remove_downtime(self, name: str) -> bool:
        """Drop one ad hoc downtime; False if there was none of that name."""

    @abc.abstractmethod
    def expire_downtimes(self, now: datetime) -> int:
        """Drop the ad hoc downtimes that ended (end <= now); how many."""

    @abc.abstractmethod
    def set_ack(self, ack: Ack) -> None:
        """Keep the acknowledgement of its (audit, host), replacing the one there was."""

    @abc.abstractmethod
    def acks(self, host: str | None = None, audit_name: str | None = None) -> list[Ack]:
        """The acknowledgements kept (expired ones until expire_acks), by host then audit."""

    @abc.abstractmethod
    def clear_ack(self, audit_name: str, host: str) -> bool:
        """Lift the pair's acknowledgement; False if it had none."""

    @abc.abstractmethod
    def expire_acks(self, now: datetime) -> int:
        """Drop the acknowledgements that expired (expires_at <= now); how many."""

    @abc.abstractmethod
    def release(self, engine_id: str, now: datetime) -> int:
        """Give this engine's unfinished claims back (`new`), e.g. at shutdown."""

    @abc.abstractmethod
    def take_back_expired(self, now: datetime, skew: float = 0.0) -> list[int]:
        """Rows whose lease ran out more than `skew` ago go back to `new`, attempts + 1.

        Returns their ids, so an engine re-reads only those rows.
        """

    def recover_expired(self, now: datetime, skew: float = 0.0) -> int:
        """take_back_expired(), counted."""
        return len(self.take_back_expired(now, skew))

    @abc.abstractmethod
    def prune_results(self, before: datetime) -> int:
        """Drop history that finished before `before`."""

    @abc.abstractmethod
    def results(
        self,
        host: str | None = None,
        audit_name: str | None = None,
        outcome: str | None = None,
        limit: int = 100,
    ) -> list[Result]:
        """History, newest first."""

    # -- moving state between stores ---------------------------------------------------

    @abc.abstractmethod
    def export_rows(self) -> StateDump:
        """Every audit row and every history entry."""

    @abc.abstractmethod
    def import_rows(self, dump: StateDump) -> None:
        """Replace every audit row and history entry with the dump's (ids are the store's)."""

    def close(self) -> None:
        """Release connections; the store may be used again after."""


# -- choosing and putting together -----------------------------------------------------------

STATE_STORES = "entropy.state_stores"


def state_scheme(url: str) -> str:
    """The state store kind a URL names: `postgresql+psycopg://` -> 'postgresql'."""
    scheme = url.partition(":")[0]
    return scheme.split("+")[0].lower()


def open_state_store(
    url: str,
    check_schema: bool = True,
    *,
    read_only: bool = False,
    timeouts: Timeouts | None = None,
) -> StateStore:
    """The state store a URL names, by its scheme (entry points `entropy.state_stores`).

    check_schema=False opens a store whose schema is behind (for `entropy db`).
    read_only: for commands that only read; a store that is not there yet
    is NoState, never created. timeouts: the bounds of its connections.
    """
    from stevedore import DriverManager  # here: plain use of base.py needs no plugin machinery
    from stevedore.exception import NoMatches

    scheme = state_scheme(url)
    try:
        manager: DriverManager[Callable[..., object]] = DriverManager(
            STATE_STORES, scheme, on_load_failure_callback=_load_failed
        )
    except NoMatches:
        known = ", ".join(sorted(_names(STATE_STORES)))
        raise BackendError(
            f"no state store for {safe_url(url)!r} (scheme {scheme!r}); known schemes: {known}"
        ) from None
    store = manager.driver(url, check_schema=check_schema, read_only=read_only, timeouts=timeouts)
    if not isinstance(store, StateStore):  # an entry point naming something else
        raise BackendError(f"the state store for scheme {scheme!r} is no StateStore: {store!r}")
    return store


def _names(group: str) -> set[str]:
    from importlib.metadata import entry_points

    return {ep.name for ep in entry_points(group=group)}


def _load_failed(_manager: object, entry_point: object, exc: BaseException) -> None:
    raise BackendError(
        f"backend {getattr(entry_point, 'name', entry_point)!r} failed to load: {exc}"
    )


class Backend:
    """A definitions source plus a state store, opened when first used.

    Safe to share between threads (an engine's, the API's requests): the
    stores are, and the two things that are not, opening the store and
    loading the definitions (their parse cache), take a lock.
    """

    def __init__(
        self, conf: cfg.ConfigOpts, definitions: DefinitionsSource, state: StateStore | None = None
    ) -> None:
        """`state`: a store already open (say, one a test made); else opened from state_url()."""
        self.conf = conf
        self.definitions = definitions
        self._state = state
        self._lock = threading.RLock()  # re-entered: a database's definitions load via state
        definitions.attach(lambda: self.state)

    @property
    def name(self) -> str:
        return self.definitions.name

    @property
    def location(self) -> str | None:
        return self.definitions.location

    @property
    def state(self) -> StateStore:
        if self._state is None:
            with self._lock:
                if self._state is None:
                    self._state = self.open_state()
        return self._state

    def state_url(self) -> str:
        return self.definitions.state_url()

    def open_state(self, check_schema: bool = True, long_statements: bool = False) -> StateStore:
        """A state store of its own for this backend (`entropy db` opens one unchecked).

        Bounded by the [database] timeouts; long_statements: no statement
        timeout (`entropy db upgrade`). Read-only, a store not made yet reads
        as an empty one (in memory) and no_state says why.
        """
        bounds = timeouts(self.conf, statement=not long_statements)
        url = self.state_url()
        try:
            return open_state_store(url, check_schema, read_only=self.read_only, timeouts=bounds)
        except NoState as missing:
            if not self.read_only:
                raise
            self.no_state = missing
            return open_state_store("sqlite://", check_schema)  # empty, in memory, this once

    # -- commands that only read (trust-faults) -------------------------------------------

    no_state: NoState | None = None  # why a read-only store read as empty: none was there

    @property
    def read_only(self) -> bool:
        """Set by commands that only read: the store is opened read-only, never created."""
        return self.definitions.read_only

    @read_only.setter
    def read_only(self, value: bool) -> None:
        self.definitions.read_only = value

    def require_present(self) -> None:
        """Raise BackendError when the definitions this backend names are not there."""
        self.definitions.require_present()

    def load(self) -> Catalog:
        """Read and validate every definition; raise ValidationError on any problem."""
        with self._lock:
            return self.definitions.load()

    def definitions_signature(self) -> Hashable:
        return self.definitions.signature()

    def describe(self) -> str:
        state = safe_url(self.state_url())
        described = self.definitions.describe()
        return described if described.endswith(state) else f"{described} (state: {state})"

    def require_editable(self, command: str) -> EditableDefinitions:
        """The definitions, if `entropy COMMAND` can change them; else a clear error."""
        source = self.definitions
        if not isinstance(source, EditableDefinitions):
            raise Unsupported(
                f"`entropy {command}` changes definitions kept in a database; the {self.name} "
                f"backend's live in YAML: edit {source.hint()}"
            )
        return source

    def write_definitions(self, catalog: Catalog) -> None:
        self.definitions.write_definitions(catalog)

    def sync(
        self,
        catalog: Catalog,
        now: datetime,
        *,
        force: bool = False,
        remove: bool = True,
        previous: Catalog | None = None,
        actor: str = "",
        scope: SyncScope | None = None,
    ) -> SyncReport:
        """Make the state rows match the catalog, within max_removal unless forced.

        remove=False only adds and updates rows. A refusal (RemovalRefused)
        names where the rows came from when `previous`, the catalog they were
        synced from, is given. `scope`: only the rows it covers (see
        StateStore.sync), for an incremental refresh.
        """
        policy = RemovalPolicy(
            max_removal=number(self.conf, "max_removal"),
            force=force,
            remove=remove,
            disable_retention=number(self.conf, "disable_retention"),
            actor=actor,
        )
        try:
            return self.state.sync(
                catalog.pairs if scope is None else pairs_in(catalog, scope),
                now,
                splay_cap(self.conf),
                number(self.conf, "max_clock_skew"),
                policy,
                scope,
            )
        except RemovalRefused as exc:
            exc.current, exc.previous = catalog, previous
            raise

    def audits(self, host: str | None = None, audit_name: str | None = None) -> list[AuditRow]:
        return self.state.audits(host=host, audit_name=audit_name)

    def set_disabled(self, pairs: Iterable[Pair], reason: str | None, now: datetime) -> int:
        return self.state.set_disabled(pairs, reason, now)

    def close(self) -> None:
        self.definitions.close()
        if self._state is not None:
            self._state.close()
            self._state = None


# -- helpers for implementations -------------------------------------------------------------


def downtime_order(downtime: Downtime) -> tuple[float, str]:
    """How downtimes() sorts: by start (those without one first), then name."""
    start = downtime.start.timestamp() if downtime.start is not None else float("-inf")
    return (start, downtime.name)


def ack_order(ack: Ack) -> tuple[str, str]:
    """How acks() sorts: by host, then audit (in Python: a database's collation may differ)."""
    return (ack.host, ack.audit_name)


def default_state_url(conf: cfg.ConfigOpts, backend: str, definitions: Path) -> str:
    """A SQLite file per definitions path, so two fleets never share rows by accident."""
    return f"sqlite:///{path_keyed_state(conf, backend, definitions)}"


def path_keyed_state(conf: cfg.ConfigOpts, backend: str, definitions: Path) -> Path:
    """state_dir/<backend>-<name>-<hash of the resolved path>.sqlite."""
    resolved = definitions.expanduser().resolve()
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:8]
    stem = resolved.stem or "root"
    return state_dir(conf) / f"{backend}-{stem}-{digest}.sqlite"


# -- time bounds of a store's connections (trust-faults) ---------------------------------


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds a state store may take to connect, run a statement, wait for a lock.

    statement None: no limit. SQL stores apply all three; other stores
    keep bounds of their own (MongoDB: its client's timeouts).
    """

    connect: float = 10.0
    statement: float | None = 60.0
    lock: float = 10.0


def timeouts(conf: cfg.ConfigOpts, statement: bool = True) -> Timeouts:
    """The [database] options; statement=False for work that may run long (db upgrade)."""
    limit = number(conf, "statement_timeout", "database")
    return Timeouts(
        connect=number(conf, "connect_timeout", "database"),
        statement=limit if limit and statement else None,
        lock=number(conf, "lock_timeout", "database"),
    )


def safe_url(url: str) -> str:
    """The URL with any password hidden, for messages (any scheme)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if not parts.password:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
