"""The fleet's health at a glance: what /metrics exports and the dashboard's overview shows.

Read in a few queries, however big the fleet: every row's latest outcome
(pair_outcomes, no output), the repair runs counted in the database, the
repair states, the engines. Overdue is worked out here, from the rows and
the definitions' timings.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from ..backends.base import PairOutcome
from ..model import RepairState
from .engines import EngineList, engines
from .runtime import Runtime


@dataclass(frozen=True, slots=True)
class Health:
    now: datetime
    pairs: list[PairOutcome]  # every row, in no set order
    overdue: list[PairOutcome]  # enabled rows with no run for twice their interval
    repair_runs: dict[tuple[str, str], int]  # (repair, outcome) -> runs kept
    flagged: list[RepairState]  # hosts a repair gave up on
    engines: EngineList
    outcomes: Counter[str] = field(default_factory=Counter)  # outcome ("none": no result yet)

    def dead_engines(self) -> list[str]:
        return [e["engine_id"] for e in self.engines.to_dicts() if e["state"] == "dead"]


def health(rt: Runtime) -> Health:
    backend = rt.backend
    state = backend.state
    now = rt.clock.now()
    pairs = state.pair_outcomes()
    timings = {p.key: p.schedule.timing for p in backend.load().pairs}
    overdue = []
    for p in pairs:
        timing = timings.get((p.audit_name, p.host))
        # next_run is one interval after the last run: one more interval past it is
        # twice the interval without a result (a new row: since its first run was due).
        if not p.disabled and timing is not None and timing.following(p.next_run) < now:
            overdue.append(p)
    repairs = state.repairs
    flagged = [s for s in repairs.states() if s.flagged]
    outcomes = Counter(p.outcome or "none" for p in pairs)
    return Health(now, pairs, overdue, repairs.run_counts(), flagged, engines(rt), outcomes)
