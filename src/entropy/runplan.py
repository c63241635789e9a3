"""The runs a fleet's schedules give within a window: pure, from pairs and their rows.

`entropy plan` and the API's /v1/plan use it; the scheduler keeps its own
time table for what is due now. Same rules as the engine: an overdue row
runs once at its missed time, then from its next slot on (missed slots
coalesce); a pair not synced yet starts at its stable splay; disabled rows
never run.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime

from .model import AuditRow, Pair
from .timing import Timing


@dataclass(frozen=True, slots=True, order=True)
class PlannedRun:
    time: datetime
    host: str
    audit_name: str

    def to_dict(self) -> dict[str, object]:
        return {"time": self.time, "host": self.host, "audit_name": self.audit_name}


def planned_runs(
    pairs: Iterable[Pair],
    rows: Mapping[tuple[str, str], AuditRow],
    now: datetime,
    end: datetime,
    max_splay: float = math.inf,
) -> list[PlannedRun]:
    """Every run of `pairs` from the overdue ones up to `end`, in time order.

    rows: the stored rows by (audit_name, host); a pair without one runs
    first at now + its splay (capped at max_splay seconds).
    """
    streams = []
    for pair in pairs:
        row = rows.get(pair.key)
        if (row is not None and row.disabled) or (row is None and pair.schedule.disabled):
            continue
        timing = pair.schedule.timing
        first = row.next_run if row else timing.first_run(now, *pair.key, max_splay)
        streams.append(slots(first, timing, now, end, pair))
    return list(heapq.merge(*streams))


def slots(
    first: datetime, timing: Timing, now: datetime, end: datetime, pair: Pair
) -> Iterator[PlannedRun]:
    """One pair's runs: `first` (even when overdue), then every slot up to `end`."""
    when = first
    if when <= now:
        yield PlannedRun(when, pair.host, pair.audit_name)
        when = timing.next_slot(when, now)
    while when <= end:
        yield PlannedRun(when, pair.host, pair.audit_name)
        when = timing.following(when)
