"""`memory:NAME`: definitions and state in this process, the reference implementation.

Simple on purpose: plain dicts and lists behind one lock per store, every
rule of the contract written out once in the most obvious way. Every other
store runs the same contract suite and must behave like this one. Uses:

- unit tests of the engine, the scheduler and the repairs (`memory:` state
  under YAML definitions: `[dir] state_connection = memory:NAME`, or
  `--backend memory:NAME` with definitions written by `write_definitions`);
- trying Entropy out: `entropy --backend memory: ...` keeps nothing.

Stores are named: every backend opened on `memory:NAME` in one process
shares that store (as processes share a database). `memory:` alone is the
store named `default`. Nothing survives the process.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import threading
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, TypeGuard

from oslo_config import cfg

from ..catalogdiff import SyncScope
from ..definitions import Problems, build_catalog
from ..errors import NotFound, SchemaOutOfDate, StoreConflict
from ..model import (
    Ack,
    AuditRow,
    Catalog,
    DisabledBy,
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
    Status,
    SyncReport,
    Verify,
)
from ..removal import KeptDisable, RemovalPolicy
from .base import (
    Capability,
    EditableDefinitions,
    EngineRecord,
    EngineRegistry,
    Judge,
    MonitorRow,
    PairOutcome,
    PastDue,
    RecordItem,
    RepairDump,
    RepairRecord,
    RepairStore,
    ScheduleRow,
    StateDump,
    StateStore,
    ack_order,
    downtime_order,
)
from .syncplan import disabled_state, latest_of, outcome_and_end, plan_sync

REVISION = "memory-1"
_spaces: dict[str, _Space] = {}
_spaces_lock = threading.Lock()


def space_name(url_or_location: str | None) -> str:
    """`memory:NAME` or `NAME` -> NAME; empty -> 'default'."""
    name = (url_or_location or "").removeprefix("memory:").strip("/")
    return name or "default"


def forget(name: str) -> None:
    """Drop a named store and its definitions (tests clean up with this)."""
    with _spaces_lock:
        _spaces.pop(space_name(name), None)


def _space(name: str) -> _Space:
    with _spaces_lock:
        found = _spaces.get(name)
        if found is None:
            found = _spaces[name] = _Space(name)
        return found


class _Space:
    """One named store: its definitions and its state, behind one lock."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lock = threading.RLock()
        # definitions
        self.hosts: dict[str, Host] = {}
        self.scripts: dict[str, Script] = {}
        self.schedules: list[Schedule] = []
        self.repairs: dict[str, RepairRule] = {}
        self.downtime_definitions: dict[str, Downtime] = {}
        self.version = 0  # bumped by every change of the definitions
        # state
        self.rows: dict[int, AuditRow] = {}
        self.keys: dict[tuple[str, str], int] = {}
        self.last_id = 0
        self.results: list[Result] = []  # in the order recorded
        self.repair_states: dict[tuple[str, str], RepairState] = {}
        self.repair_runs: list[RepairRecord] = []
        self.engines: dict[str, EngineRecord] = {}
        self.kept_disables: dict[tuple[str, str], KeptDisable] = {}
        self.downtimes: dict[str, Downtime] = {}  # ad hoc, by name (their id)
        self.acks: dict[tuple[str, str], Ack] = {}


# -- definitions ----------------------------------------------------------------------


class MemoryDefinitions(EditableDefinitions):
    name = "memory"

    def __init__(self, conf: cfg.ConfigOpts, location: str | None = None) -> None:
        super().__init__(conf, location)
        self.space = _space(space_name(location))

    def state_url(self) -> str:
        return f"memory:{self.space.name}"

    def hint(self) -> str:
        return f"memory:{self.space.name} (`entropy host|script|schedule|repair add`)"

    def describe(self) -> str:
        return f"memory:{self.space.name}"

    def place(self) -> str:
        return self.describe()

    def signature(self) -> int:
        return self.space.version

    def load(self) -> Catalog:
        space = self.space
        with space.lock:
            parts = (
                dict(space.hosts),
                dict(space.scripts),
                list(space.schedules),
                dict(space.repairs),
                dict(space.downtime_definitions),
            )
        return self._catalog(*parts)

    def _catalog(
        self,
        hosts: dict[str, Host],
        scripts: dict[str, Script],
        schedules: list[Schedule],
        repairs: dict[str, RepairRule],
        downtimes: dict[str, Downtime] | None = None,
    ) -> Catalog:
        """Check the parts as the YAML would be checked (ValidationError on any problem)."""
        return build_catalog(hosts, scripts, schedules, [self.describe()], Problems(), repairs,
                             downtimes)  # fmt: skip

    def write_definitions(self, catalog: Catalog) -> None:
        space = self.space
        with space.lock:
            space.hosts, space.scripts = dict(catalog.hosts), dict(catalog.scripts)
            space.schedules, space.repairs = list(catalog.schedules), dict(catalog.repairs)
            space.downtime_definitions = dict(catalog.downtimes)
            space.version += 1

    def _change(self, **parts: Any) -> None:
        """Make the change only if the whole catalog stays valid."""
        space = self.space
        whole = {
            "hosts": space.hosts,
            "scripts": space.scripts,
            "schedules": space.schedules,
            "repairs": space.repairs,
            **parts,
        }
        self._catalog(**whole)  # raises ValidationError, changing nothing
        for name, value in parts.items():
            setattr(space, name, value)
        space.version += 1

    def put_host(self, host: Host) -> bool:
        with self.space.lock:
            new = host.name not in self.space.hosts
            self._change(hosts={**self.space.hosts, host.name: host})
            return new

    def put_script(self, script: Script) -> bool:
        with self.space.lock:
            new = script.name not in self.space.scripts
            self._change(scripts={**self.space.scripts, script.name: script})
            return new

    def put_schedule(self, schedule: Schedule) -> bool:
        key = (schedule.target, schedule.audit_name)
        with self.space.lock:
            kept = [s for s in self.space.schedules if (s.target, s.audit_name) != key]
            new = len(kept) == len(self.space.schedules)
            self._change(schedules=[*kept, schedule])
            return new

    def put_repair(self, rule: RepairRule) -> bool:
        with self.space.lock:
            new = rule.name not in self.space.repairs
            self._change(repairs={**self.space.repairs, rule.name: rule})
            return new

    def remove_host(self, name: str) -> None:
        with self.space.lock:
            if name not in self.space.hosts:
                raise NotFound(f"no host {name!r}")
            self._change(hosts={k: v for k, v in self.space.hosts.items() if k != name})

    def remove_script(self, name: str) -> None:
        with self.space.lock:
            if name not in self.space.scripts:
                raise NotFound(f"no script {name!r}")
            self._change(scripts={k: v for k, v in self.space.scripts.items() if k != name})

    def remove_schedule(self, target: str, audit_name: str) -> None:
        with self.space.lock:
            kept = [
                s for s in self.space.schedules if (s.target, s.audit_name) != (target, audit_name)
            ]
            if len(kept) == len(self.space.schedules):
                raise NotFound(f"no schedule of {audit_name!r} on {target!r}")
            self._change(schedules=kept)

    def remove_repair(self, name: str) -> None:
        with self.space.lock:
            if name not in self.space.repairs:
                raise NotFound(f"no repair {name!r}")
            self._change(repairs={k: v for k, v in self.space.repairs.items() if k != name})


# -- state ------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """As a JSON column would give it back: odd values (a Decimal, a datetime) as text."""
    return json.loads(json.dumps(value, default=str))


def _copy(row: AuditRow) -> AuditRow:
    return dataclasses.replace(row, result=copy.deepcopy(row.result))


def _stored(result: Result) -> Result:
    return dataclasses.replace(result, metrics=_plain(result.metrics) if result.metrics else {})


class MemoryStateStore(StateStore):
    """The reference state store: rows, leases, history and registry in dicts."""

    name = "memory"
    capabilities = frozenset({Capability.SHARED_ENGINES})  # engines of this process

    def __init__(self, url: str, check_schema: bool = True, **_opened: object) -> None:
        """_opened: read_only, timeouts (see open_state_store): nothing to bound in memory."""
        super().__init__(f"memory:{space_name(url)}")
        self.space = _space(space_name(url))
        self._repairs = MemoryRepairStore(self.space)
        if check_schema and self.schema_revision() != REVISION:  # pragma: no cover
            raise SchemaOutOfDate(f"state store {self.url} is not at {REVISION}")

    @property
    def repairs(self) -> RepairStore:
        return self._repairs

    def engine_registry(self) -> EngineRegistry:
        return MemoryEngineRegistry(self.space, self.url)

    def schema_revision(self) -> str | None:
        return REVISION

    def schema_head(self) -> str:
        return REVISION

    def upgrade_schema(self) -> tuple[str | None, str]:
        return REVISION, REVISION

    # -- rows -----------------------------------------------------------------------

    def sync(
        self,
        pairs: Iterable[Pair],
        now: datetime,
        max_splay: float,
        skew: float = 0.0,
        policy: RemovalPolicy | None = None,
        scope: SyncScope | None = None,
    ) -> SyncReport:
        space = self.space
        with space.lock:
            rows = list(space.rows.values())
            stored = None
            if scope is not None:
                stored = len(rows)
                rows = [r for r in rows if scope.covers(r.audit_name, r.host)]
            plan = plan_sync(rows, pairs, now, max_splay, skew, policy,
                             list(space.kept_disables.values()), stored)  # fmt: skip
            for row_id in plan.gone:
                row = space.rows.pop(row_id)
                del space.keys[(row.audit_name, row.host)]
            kept, disables = space.kept_disables, plan.disables
            expired = disables.expired_before
            if expired is not None:  # as the other stores: None forgets nothing
                for key in [k for k, v in kept.items() if v.removed_at < expired]:
                    del kept[key]
            for key in disables.restore:
                kept.pop(key, None)
            kept.update((k.key, k) for k in disables.remember)
            for values in plan.new:
                space.last_id += 1
                row = AuditRow(
                    id=space.last_id,
                    result=None,
                    **{
                        **values,
                        "status": Status(values["status"]),
                        "disabled_by": _by(values["disabled_by"]),
                    },
                )
                space.rows[row.id] = row
                space.keys[(row.audit_name, row.host)] = row.id
            for change in plan.changes:
                row = space.rows[change["row_id"]]
                if row.next_run == change["old_next_run"]:
                    row.next_run = change["next_run"]
                row.ip_address = change["ip_address"]
                row.disabled, row.disabled_reason = change["disabled"], change["disabled_reason"]
                row.disabled_by = _by(change["disabled_by"])
                row.updated_at = change["updated_at"]
        return plan.report()

    def audits(self, host: str | None = None, audit_name: str | None = None) -> list[AuditRow]:
        with self.space.lock:
            rows = [
                _copy(row)
                for row in self.space.rows.values()
                if (host is None or row.host == host)
                and (audit_name is None or row.audit_name == audit_name)
            ]
        return sorted(rows, key=lambda row: (row.host, row.audit_name))

    def pair_outcomes(self) -> list[PairOutcome]:
        with self.space.lock:
            rows = [(row.audit_name, row.host, row.result) for row in self.space.rows.values()]
        return [(audit_name, host, *outcome_and_end(latest)) for audit_name, host, latest in rows]

    def past_due(self, now: datetime) -> list[PastDue]:
        with self.space.lock:
            rows = [row for row in self.space.rows.values()
                    if not row.disabled and row.next_run < now]  # fmt: skip
            return [PastDue(row.audit_name, row.host, row.next_run, *outcome_and_end(row.result),
                            row.created_at) for row in rows]  # fmt: skip

    def set_disabled(self, pairs: Iterable[Pair], reason: str | None, now: datetime) -> int:
        changed = 0
        space = self.space
        with space.lock:
            for pair in pairs:
                row_id = space.keys.get(pair.key)
                if row_id is None:
                    continue
                row = space.rows[row_id]
                disabled, why, by = disabled_state(pair, reason)
                row.disabled, row.disabled_reason, row.disabled_by = disabled, why, _by(by)
                row.updated_at = now
                changed += 1
        return changed

    def schedule_rows(
        self, scope: SyncScope | None = None, ids: Collection[int] | None = None
    ) -> list[ScheduleRow]:
        with self.space.lock:
            rows: Iterable[AuditRow] = self.space.rows.values()
            if ids is not None:
                rows = [self.space.rows[i] for i in ids if i in self.space.rows]
            elif scope is not None:
                rows = [r for r in rows if scope.covers(r.audit_name, r.host)]
            return [
                ScheduleRow(r.id, r.audit_name, r.host, r.next_run, r.disabled, r.status.value)
                for r in rows
            ]

    def disabled_ids(self) -> set[int]:
        with self.space.lock:
            return {row.id for row in self.space.rows.values() if row.disabled}

    # -- claims, leases, results ------------------------------------------------------

    def claim(
        self,
        ids: list[int],
        engine_id: str,
        now: datetime,
        lease_until: datetime,
        waiting: Iterable[int] = (),
    ) -> dict[int, datetime]:
        claimed: dict[int, datetime] = {}
        space = self.space
        with space.lock:
            for row_id in waiting:
                row = space.rows.get(row_id)
                if row is not None and row.status is Status.PROCESSED and row.next_run <= now:
                    row.status = Status.NEW
            for row_id in ids:
                row = space.rows.get(row_id)
                if (
                    row is None
                    or row.disabled
                    or row.next_run > now
                    or row.status is Status.PROCESSING
                ):
                    continue
                row.status, row.claimed_by, row.lease_until = (
                    Status.PROCESSING,
                    engine_id,
                    lease_until,
                )
                row.updated_at = now
                claimed[row_id] = row.next_run
        return claimed

    def next_runs(self, ids: list[int]) -> dict[int, datetime]:
        with self.space.lock:
            rows = self.space.rows
            return {row_id: rows[row_id].next_run for row_id in ids if row_id in rows}

    def _holds(self, row: AuditRow | None, engine_id: str) -> TypeGuard[AuditRow]:
        return row is not None and row.claimed_by == engine_id and row.status is Status.PROCESSING

    def renew_leases(self, engine_id: str, ids: list[int], lease_until: datetime) -> int:
        renewed = 0
        with self.space.lock:
            for row_id in ids:
                row = self.space.rows.get(row_id)
                if self._holds(row, engine_id):
                    row.lease_until = lease_until
                    renewed += 1
        return renewed

    def record(
        self,
        records: list[RecordItem],
        engine_id: str,
        monitor: Mapping[int, MonitorState] | None = None,
    ) -> int:
        space = self.space
        updated = 0
        with space.lock:
            if monitor:  # first, while the rows are still ours (fencing)
                for row_id, state in monitor.items():
                    row = space.rows.get(row_id)
                    if self._holds(row, engine_id):
                        row.monitor = state
            # The history first, while the rows are still ours: a fenced-out result leaves none.
            ours = {
                row_id for row_id, _, _ in records if self._holds(space.rows.get(row_id), engine_id)
            }
            space.results.extend(_stored(r) for row_id, r, _ in records if row_id in ours)
            for row_id, result, next_run in sorted(records, key=lambda record: record[0]):
                row = space.rows.get(row_id)
                if not self._holds(row, engine_id):
                    continue
                assert row is not None
                row.status, row.result = Status.PROCESSED, _plain(latest_of(result))
                row.next_run, row.claimed_by, row.lease_until = next_run, None, None
                row.attempts, row.updated_at = 0, result.finished_at or row.updated_at
                updated += 1
        return updated

    def record_adhoc(
        self, row_id: int | None, result: Result, monitor: MonitorState | None = None
    ) -> None:
        space = self.space
        with space.lock:
            row = space.rows.get(row_id) if row_id is not None else None
            if row is not None:
                row.result = _plain(latest_of(result))
                row.updated_at = result.finished_at or row.updated_at
                if monitor is not None:
                    row.monitor = monitor
            space.results.append(_stored(result))

    def monitor_rows(self, keys: Collection[tuple[str, str]]) -> dict[tuple[str, str], MonitorRow]:
        space = self.space
        with space.lock:
            found = [space.rows[space.keys[k]] for k in keys if k in space.keys]
            return {(r.audit_name, r.host): MonitorRow.of(_copy(r)) for r in found}

    # -- downtimes and acknowledgements -------------------------------------------------

    def add_downtime(self, downtime: Downtime) -> None:
        with self.space.lock:
            if downtime.name in self.space.downtimes:
                raise StoreConflict(f"state store {self.url}: downtime {downtime.name!r} exists")
            self.space.downtimes[downtime.name] = downtime

    def downtimes(self) -> list[Downtime]:
        with self.space.lock:
            found = list(self.space.downtimes.values())
        return sorted(found, key=downtime_order)

    def remove_downtime(self, name: str) -> bool:
        with self.space.lock:
            return self.space.downtimes.pop(name, None) is not None

    def expire_downtimes(self, now: datetime) -> int:
        with self.space.lock:
            kept = self.space.downtimes
            ended = [n for n, d in kept.items() if d.end is not None and d.end <= now]
            for name in ended:
                del kept[name]
        return len(ended)

    def set_ack(self, ack: Ack) -> None:
        with self.space.lock:
            self.space.acks[(ack.audit_name, ack.host)] = ack

    def acks(self, host: str | None = None, audit_name: str | None = None) -> list[Ack]:
        with self.space.lock:
            found = [
                a for a in self.space.acks.values()
                if (host is None or a.host == host)
                and (audit_name is None or a.audit_name == audit_name)
            ]  # fmt: skip
        return sorted(found, key=ack_order)

    def clear_ack(self, audit_name: str, host: str) -> bool:
        with self.space.lock:
            return self.space.acks.pop((audit_name, host), None) is not None

    def expire_acks(self, now: datetime) -> int:
        with self.space.lock:
            acks = self.space.acks
            gone = [k for k, a in acks.items() if a.expires_at is not None and a.expires_at <= now]
            for key in gone:
                del acks[key]
        return len(gone)

    def release(self, engine_id: str, now: datetime) -> int:
        released = 0
        with self.space.lock:
            for row in self.space.rows.values():
                if self._holds(row, engine_id):
                    row.status, row.claimed_by, row.lease_until = Status.NEW, None, None
                    row.updated_at = now
                    released += 1
        return released

    def take_back_expired(self, now: datetime, skew: float = 0.0) -> list[int]:
        expired = now - timedelta(seconds=skew)
        taken = []
        with self.space.lock:
            for row in self.space.rows.values():
                if (
                    row.status is Status.PROCESSING
                    and row.lease_until is not None
                    and row.lease_until < expired
                ):
                    row.status, row.claimed_by, row.lease_until = Status.NEW, None, None
                    row.attempts += 1
                    row.updated_at = now
                    taken.append(row.id)
        return taken

    def prune_results(self, before: datetime) -> int:
        space = self.space
        with space.lock:
            kept = [r for r in space.results if r.finished_at is None or r.finished_at >= before]
            pruned = len(space.results) - len(kept)
            space.results = kept
        return pruned

    def results(
        self,
        host: str | None = None,
        audit_name: str | None = None,
        outcome: str | None = None,
        limit: int = 100,
    ) -> list[Result]:
        with self.space.lock:
            found = [
                (r.finished_at, n, r)
                for n, r in enumerate(self.space.results)
                if (host is None or r.host == host)
                and (audit_name is None or r.audit_name == audit_name)
                and (outcome is None or r.outcome.value == outcome)
            ]
        found.sort(key=lambda item: (item[0], item[1]), reverse=True)
        return [dataclasses.replace(r) for _, _, r in found[:limit]]

    def export_rows(self) -> StateDump:
        with self.space.lock:
            rows = [_copy(self.space.rows[row_id]) for row_id in sorted(self.space.rows)]
            history = [dataclasses.replace(r) for r in self.space.results]
        return StateDump(rows, history)

    def import_rows(self, dump: StateDump) -> None:
        space = self.space
        with space.lock:
            space.rows, space.keys, space.results = {}, {}, []
            for row in dump.rows:
                space.last_id += 1
                mine = dataclasses.replace(
                    _copy(row),
                    id=space.last_id,
                    status=Status(row.status),
                    disabled_by=_by(row.disabled_by),
                )
                space.rows[mine.id] = mine
                space.keys[(mine.audit_name, mine.host)] = mine.id
            space.results = [_stored(r) for r in dump.results]


def _by(value: str | None) -> DisabledBy | None:
    return None if value is None else DisabledBy(value)


# -- repairs ---------------------------------------------------------------------------


class MemoryRepairStore(RepairStore):
    def __init__(self, space: _Space) -> None:
        self.space = space

    def latest_outcomes(self, audit_name: str, host: str, limit: int) -> list[Outcome]:
        with self.space.lock:
            pair = [
                (r.finished_at, n, r.outcome)
                for n, r in enumerate(self.space.results)
                if r.host == host and r.audit_name == audit_name
            ]
        pair.sort(key=lambda item: (item[0], item[1]), reverse=True)
        return [outcome for _, _, outcome in pair[:limit]]

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
        space = self.space
        with space.lock:  # judged and claimed as one step
            own = space.repair_states.setdefault(
                (repair_name, host), RepairState(repair_name, host)
            )
            own.recovered = own.last_started_at is not None and self._healthy_since(
                audit_name, host, failing, own.last_started_at
            )
            others = [
                dataclasses.replace(state)
                for (name, other), state in space.repair_states.items()
                if name == repair_name and other != host
            ]
            decision = judge(dataclasses.replace(own), others)
            if decision.flag:
                own.flagged, own.flagged_reason = True, decision.flag
            if decision.fire:
                own.running_by, own.running_until = engine_id, lease_until
                own.attempts, own.last_started_at = decision.attempt, now
            elif own.recovered and own.attempts:
                own.attempts = 0
            own.recovered = False  # not stored
        return decision

    def healthy_since(
        self, audit_name: str, host: str, failing: frozenset[Outcome], since: datetime
    ) -> bool:
        with self.space.lock:
            return self._healthy_since(audit_name, host, failing, since)

    def _healthy_since(
        self, audit_name: str, host: str, failing: frozenset[Outcome], since: datetime
    ) -> bool:
        return any(
            r.host == host
            and r.audit_name == audit_name
            and r.finished_at is not None
            and r.finished_at >= since
            and r.outcome not in failing
            for r in self.space.results
        )

    def finish(self, run: RepairRun, engine_id: str, flag: str | None = None) -> None:
        space = self.space
        with space.lock:
            space.repair_runs.append(RepairRecord(**_plain_run(run)))
            state = space.repair_states.get((run.repair_name, run.result.host))
            if state is None or state.running_by != engine_id:
                return  # a lease someone else took over stays theirs
            state.running_by = state.running_until = None
            if run.verify is Verify.FIXED:
                state.attempts = 0
            if flag:
                state.flagged, state.flagged_reason = True, flag

    def release(self, engine_id: str, now: datetime) -> int:
        released = 0
        with self.space.lock:
            for state in self.space.repair_states.values():
                if state.running_by == engine_id:
                    state.running_by = state.running_until = None
                    released += 1
        return released

    def states(self, host: str | None = None, repair_name: str | None = None) -> list[RepairState]:
        with self.space.lock:
            found = [
                dataclasses.replace(state)
                for (name, on), state in self.space.repair_states.items()
                if (host is None or on == host) and (repair_name is None or name == repair_name)
            ]
        return sorted(found, key=lambda state: (state.host, state.repair_name))

    def reset(self, host: str, repair_name: str | None, now: datetime) -> int:
        changed = 0
        with self.space.lock:
            for (name, on), state in self.space.repair_states.items():
                if on != host or (repair_name is not None and name != repair_name):
                    continue
                if state.flagged or state.attempts > 0:
                    state.flagged, state.flagged_reason, state.attempts = False, None, 0
                    changed += 1
        return changed

    def runs(
        self,
        host: str | None = None,
        repair_name: str | None = None,
        outcome: str | None = None,
        limit: int = 100,
        audit_name: str | None = None,
    ) -> list[RepairRecord]:
        with self.space.lock:
            found = [
                (r.finished_at, n, r)
                for n, r in enumerate(self.space.repair_runs)
                if (host is None or r.host == host)
                and (repair_name is None or r.repair_name == repair_name)
                and (outcome is None or r.outcome == outcome)
                and (audit_name is None or r.audit_name == audit_name)
            ]
        found.sort(key=lambda item: (item[0], item[1]), reverse=True)
        return [r for _, _, r in found[:limit]]

    def prune(self, before: datetime) -> int:
        space = self.space
        with space.lock:
            kept = [r for r in space.repair_runs if r.finished_at >= before]
            pruned = len(space.repair_runs) - len(kept)
            space.repair_runs = kept
        return pruned

    def run_counts(self) -> dict[tuple[str, str], int]:
        counts: dict[tuple[str, str], int] = {}
        with self.space.lock:
            for r in self.space.repair_runs:
                counts[r.repair_name, r.outcome] = counts.get((r.repair_name, r.outcome), 0) + 1
        return counts

    def export_all(self) -> RepairDump:
        with self.space.lock:
            runs = list(self.space.repair_runs)  # records are frozen: shared, not copied
        return RepairDump(self.states(), runs)

    def import_all(self, dump: RepairDump, now: datetime) -> None:
        states = {
            (state.repair_name, state.host): dataclasses.replace(
                state, running_by=None, running_until=None, recovered=False
            )  # no engine here runs it: not running, its attempt still counted
            for state in dump.states
        }
        runs = [
            dataclasses.replace(record, trigger_result=_plain(record.trigger_result))
            for record in dump.runs
        ]
        with self.space.lock:
            self.space.repair_states, self.space.repair_runs = states, runs


def _plain_run(run: RepairRun) -> dict[str, Any]:
    values = run.to_dict()
    values["trigger_result"] = _plain(values["trigger_result"])
    return values


# -- the engines registry --------------------------------------------------------------------


class MemoryEngineRegistry(EngineRegistry):
    def __init__(self, space: _Space, where: str) -> None:
        super().__init__(where)
        self.space = space

    def register(self, me: EngineRecord, now: datetime, dead_after: float) -> None:
        with self.space.lock:
            self.refuse_if_live(self.space.engines.get(me.engine_id), me, now, dead_after)
            self.space.engines[me.engine_id] = dataclasses.replace(
                me, stopped_at=None, stop_requested=False
            )

    def heartbeat(self, me: EngineRecord, now: datetime) -> bool:
        engines = self.space.engines
        with self.space.lock:
            found = engines.get(me.engine_id)
            if found is None:  # removed meanwhile: come back
                engines[me.engine_id] = dataclasses.replace(me, heartbeat_at=now)
                return False
            engines[me.engine_id] = dataclasses.replace(found, heartbeat_at=now, stopped_at=None)
            return found.stop_requested

    def stopped(self, engine_id: str, now: datetime) -> None:
        engines = self.space.engines
        with self.space.lock:
            if engine_id in engines:
                engines[engine_id] = dataclasses.replace(
                    engines[engine_id], stopped_at=now, heartbeat_at=now
                )

    def _ask_to_stop(self, engine_ids: list[str]) -> None:
        engines = self.space.engines
        with self.space.lock:
            for engine_id in engine_ids:
                if engine_id in engines:
                    engines[engine_id] = dataclasses.replace(
                        engines[engine_id], stop_requested=True
                    )

    def list(self) -> list[EngineRecord]:
        with self.space.lock:
            found = list(self.space.engines.values())
        return sorted(found, key=lambda e: (e.started_at, e.engine_id))

    def forget_before(self, before: datetime) -> int:
        engines = self.space.engines
        with self.space.lock:
            old = [k for k, e in engines.items() if e.heartbeat_at < before]
            for engine_id in old:
                del engines[engine_id]
        return len(old)
