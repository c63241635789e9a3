"""Reading the state: audit rows, status, the plan ahead and the result history.

Listings come as a Page: filtered, at most `limit` items from `offset` on,
and where the next page starts (None when this is the last).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from ..backends.base import RepairRecord
from ..config import splay_cap
from ..model import AuditRow, Catalog, Host, Outcome, RepairState, Result, Schedule, Status
from ..monitoring import ack_active, covering_downtime
from ..runplan import PlannedRun, planned_runs
from .errors import BadRequest
from .runtime import Runtime

T = TypeVar("T")
E = TypeVar("E", Outcome, Status)


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    offset: int = 0
    next_offset: int | None = None  # None: nothing after this page

    @classmethod
    def of(cls, found: Sequence[T], offset: int, limit: int | None) -> Page[T]:
        """A page of `found`, which holds (at least) one item past the page when there are more."""
        end = None if limit is None else offset + limit
        items = list(found[offset:end])
        more = end is not None and len(found) > end
        return cls(items, offset, end if more else None)


def _member(kind: type[E], value: E | str, name: str) -> E:
    try:
        return kind(value)
    except ValueError:
        known = ", ".join(m.value for m in kind)
        raise BadRequest(f"{name} {value!r} is none of {known}", name) from None


def _check_window(limit: int | None, offset: int) -> None:
    if limit is not None and limit < 1:
        raise BadRequest(f"limit must be at least 1, not {limit}", "limit")
    if offset < 0:
        raise BadRequest(f"offset must be 0 or more, not {offset}", "offset")


def audits(
    rt: Runtime,
    host: str | None = None,
    audit_name: str | None = None,
    status: Status | str | None = None,
    outcome: Outcome | str | None = None,
    disabled: bool | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> Page[AuditRow]:
    """The audit rows, by host then audit; outcome filters on the latest result's."""
    _check_window(limit, offset)
    wanted: list[Callable[[AuditRow], bool]] = []
    if status is not None:
        state = _member(Status, status, "status")
        wanted.append(lambda r: r.status == state)
    if outcome is not None:
        verdict = _member(Outcome, outcome, "outcome").value
        wanted.append(lambda r: (r.result or {}).get("outcome") == verdict)
    if disabled is not None:
        wanted.append(lambda r: r.disabled == disabled)
    rows = rt.backend.audits(host=host, audit_name=audit_name)
    if wanted:
        rows = [r for r in rows if all(test(r) for test in wanted)]
    return Page.of(rows, offset, limit)


def hosts(
    rt: Runtime, group: str | None = None, limit: int | None = None, offset: int = 0
) -> Page[Host]:
    """The hosts of the definitions (or of one group), by name."""
    _check_window(limit, offset)
    found = rt.backend.load().hosts.values()
    chosen = sorted((h for h in found if group is None or h.in_group(group)),
                    key=lambda h: h.name)  # fmt: skip
    return Page.of(chosen, offset, limit)


@dataclass(frozen=True, slots=True)
class StatusView:
    """`entropy status`: the rows, the hosts flagged for a human, the latest repair runs.

    marks: what the monitoring rules say of a pair beyond its row (in downtime,
    acknowledged), by (audit, host).
    """

    now: datetime
    rows: list[AuditRow]
    flagged: list[RepairState] = field(default_factory=list)
    repairs: list[RepairRecord] = field(default_factory=list)
    marks: dict[tuple[str, str], str] = field(default_factory=dict)


def status(
    rt: Runtime, host: str | None = None, audit_name: str | None = None, latest_repairs: int = 5
) -> StatusView:
    rows = rt.backend.audits(host=host, audit_name=audit_name)
    now = rt.clock.now()
    if not rows:
        return StatusView(now, rows)
    store = rt.backend.state.repairs
    flagged = [s for s in store.states(host=host) if s.flagged]
    marks = monitoring_marks(rt, rows, now)
    return StatusView(now, rows, flagged, store.runs(host=host, limit=latest_repairs), marks)


def monitoring_marks(
    rt: Runtime, rows: list[AuditRow], now: datetime, catalog: Catalog | None = None
) -> dict[tuple[str, str], str]:
    """ "in downtime NAME until T" and "acknowledged by U" per pair.

    catalog: the definitions, when the caller loaded them already (plan).
    """
    state = rt.backend.state
    adhoc, acks = state.downtimes(), state.acks()
    catalog = catalog or rt.backend.load()
    every = [*catalog.downtimes.values(), *adhoc]
    marks: dict[tuple[str, str], list[str]] = {}
    if every:
        for row in rows:
            host = catalog.hosts.get(row.host)
            found = covering_downtime(every, row.audit_name, host, now) if host else None
            if found is not None:
                marks.setdefault((row.audit_name, row.host), []).append(
                    f"in downtime {found[0].name} until {found[1].strftime('%Y-%m-%d %H:%M')}Z"
                )
    for ack in acks:
        if ack_active(ack, now):
            by = f" by {ack.created_by}" if ack.created_by else ""
            marks.setdefault((ack.audit_name, ack.host), []).append(f"acknowledged{by}")
    return {key: "; ".join(found) for key, found in marks.items()}


@dataclass(frozen=True, slots=True)
class Plan:
    now: datetime
    runs: list[PlannedRun]
    marks: dict[tuple[str, str], str] = field(default_factory=dict)  # see monitoring_marks


def plan(
    rt: Runtime, within: float, host: str | None = None, audit_name: str | None = None
) -> Plan:
    """Every run due within `within` seconds, in time order (overdue ones at their missed time).

    Pairs not synced yet show when their first run would be; disabled rows
    never run and are left out.
    """
    backend = rt.backend
    catalog = backend.load()
    now = rt.clock.now()
    rows = {(r.audit_name, r.host): r for r in backend.audits(host=host, audit_name=audit_name)}
    pairs = [
        p for p in catalog.pairs
        if not (host and p.host != host) and not (audit_name and p.audit_name != audit_name)
    ]  # fmt: skip
    end = now + timedelta(seconds=within)
    runs = planned_runs(pairs, rows, now, end, splay_cap(backend.conf))
    marks = monitoring_marks(rt, list(rows.values()), now, catalog) if runs else {}
    return Plan(now, runs, marks)


def results(
    rt: Runtime,
    host: str | None = None,
    audit_name: str | None = None,
    outcome: Outcome | str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page[Result]:
    """Audit results, newest first."""
    _check_window(limit, offset)
    wanted = None if outcome is None else _member(Outcome, outcome, "outcome").value
    found = rt.backend.state.results(host, audit_name, wanted, offset + limit + 1)
    return Page.of(found, offset, limit)


def repair_results(
    rt: Runtime,
    host: str | None = None,
    repair_name: str | None = None,
    audit_name: str | None = None,
    outcome: Outcome | str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page[RepairRecord]:
    """Repair runs, newest first; audit_name is the audit that triggered them."""
    _check_window(limit, offset)
    wanted = None if outcome is None else _member(Outcome, outcome, "outcome").value
    store = rt.backend.state.repairs
    found = store.runs(host, repair_name, wanted, offset + limit + 1, audit_name)
    return Page.of(found, offset, limit)


@dataclass(frozen=True, slots=True)
class AuditSchedule:
    """Where the definitions schedule an audit: a target (group or host) and its timing."""

    target: str
    timing: str  # e.g. "every 30m", "cron '*/5 * * * *' (UTC)"
    hosts: int  # the pairs this entry gives
    disabled: bool
    where: str  # file:line of the entry


def audit_schedules(rt: Runtime, audit_name: str) -> list[AuditSchedule]:
    """The schedule entries of AUDIT, by target; NotFound for an audit no entry runs."""
    pairs = rt.backend.load().select(audit_name)
    by_target: dict[str, list[Schedule]] = {}
    for pair in pairs:
        by_target.setdefault(pair.schedule.target, []).append(pair.schedule)
    return [
        AuditSchedule(target, found[0].timing.describe(), len(found), found[0].disabled,
                      str(found[0].where))
        for target, found in sorted(by_target.items())
    ]  # fmt: skip
