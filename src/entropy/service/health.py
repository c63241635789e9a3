"""The fleet's health at a glance: what /metrics exports and the dashboard's overview shows.

Read in a few queries, however big the fleet: every row's latest outcome and
end (pair_outcomes: four plain columns a row), the enabled rows past their
next_run (past_due: the only ones that can be overdue, few in a healthy
fleet), the repair runs counted in the database, the repair states, the
engines. Overdue is worked out here, from those rows and the definitions'
timings.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from ..backends.base import PairOutcome, PastDue
from ..clock import from_micros
from ..model import RepairState
from ..monitoring import overdue_since
from ..timing import Timing
from .engines import EngineList, engines
from .runtime import Runtime


@dataclass(frozen=True, slots=True)
class Health:
    now: datetime
    pairs: list[PairOutcome]  # every row, in no set order
    overdue: list[PastDue]  # enabled rows with no run for twice their interval
    repair_runs: dict[tuple[str, str], int]  # (repair, outcome) -> runs kept
    flagged: list[RepairState]  # hosts a repair gave up on
    engines: EngineList
    outcomes: Counter[str] = field(default_factory=Counter)  # outcome ("none": no result yet)


def health(rt: Runtime) -> Health:
    backend = rt.backend
    state = backend.state
    now = rt.clock.now()
    pairs = state.pair_outcomes()
    overdue = _overdue(rt, state.past_due(now), now)
    repairs = state.repairs
    flagged = [s for s in repairs.states() if s.flagged]
    outcomes = Counter(outcome or "none" for _, _, outcome, _ in pairs)
    return Health(now, pairs, overdue, repairs.run_counts(), flagged, engines(rt), outcomes)


def _overdue(rt: Runtime, past_due: list[PastDue], now: datetime) -> list[PastDue]:
    """The rows `entropy status --overdue` names: their last result (or their row's
    creation) older than twice their interval (monitoring.overdue_since).

    Only past-due rows can be: next_run is one interval after the last run. An
    audit scheduled with one timing everywhere (the usual case) needs no look at
    its pairs; an audit with several timings is looked up pair by pair.
    """
    if not past_due:
        return []
    catalog = rt.backend.load()
    timings: dict[str, set[Timing]] = {}
    for schedule in catalog.schedules:
        timings.setdefault(schedule.audit_name, set()).add(schedule.timing)
    mixed = {p.audit_name for p in past_due if len(timings.get(p.audit_name, ())) > 1}
    by_pair = {}
    if mixed:  # a walk over every pair of the catalog: only when some audit needs it
        by_pair = {p.key: p.schedule.timing for p in catalog.pairs if p.audit_name in mixed}
    late = []
    for p in past_due:
        found = timings.get(p.audit_name)
        if not found:  # removed from the definitions since the last sync
            continue
        timing = by_pair.get((p.audit_name, p.host)) if p.audit_name in mixed else next(iter(found))
        last = p.created_at if p.finished_us is None else from_micros(p.finished_us)
        if timing is not None and overdue_since(timing, last, now) is not None:
            late.append(p)
    return late
