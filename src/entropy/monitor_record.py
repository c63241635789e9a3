"""Applies monitoring.py's rules to results on their way to the state store.

The engine's recorder calls `apply()` once per batch with only the results of
pairs whose schedule has monitoring (`Schedule.monitoring is not None`: the
one check it makes per result); `entropy result submit` calls it with one.
For each, in order:

1. a dependency (`depends_on`) in a hard problem state makes a failure
   `unreachable` (mark_unreachable);
2. `record()` gives the transition: soft/hard, attempt, flapping, and when
   the pair runs next (a retry at retry_every while soft);
3. the pair's acknowledgement ends on recovery, on a state change unless
   sticky, and at its expiry (ack_after). It is cleared by the caller once
   the result is written (clear_ended_acks): a result the store refused
   never lifts an ack.

One read of the store per batch (the pairs' and their dependencies' rows,
and the acks when any pair of the batch is acknowledged); the states are
written by the caller with the results, in the same write.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from .backends.base import MonitorRow, StateStore
from .events import Events
from .model import Ack, Catalog, Downtime, Host, MonitorState, Outcome, Pair, Result
from .monitoring import (
    Transition,
    ack_active,
    ack_after,
    covering_downtime,
    dependency_keys,
    hard_state_of,
    mark_unreachable,
    problem_event_marks,
    record,
    unreachable_reason,
)


@dataclass(slots=True)
class Applied:
    """One result after the monitoring rules: as it is recorded, and what it did."""

    row_id: int
    pair: Pair
    result: Result  # `unreachable` when a dependency is down
    transition: Transition
    ack: Ack | None  # the pair's acknowledgement still in force after it, if any
    ack_ended: bool = False  # it had one that this result ends: clear it once written

    @property
    def state(self) -> MonitorState:
        return self.transition.after


def apply(
    store: StateStore,
    catalog: Catalog,
    items: Sequence[tuple[int, Pair, Result, datetime | None]],
    now: datetime,
    fresh: Mapping[tuple[str, str], Outcome] | None = None,
) -> list[Applied]:
    """The monitoring rules over (row id, pair, result, slot) of monitored pairs, in order.

    Each pair's schedule must have monitoring. `fresh`: outcomes of pairs
    without monitoring recorded in the same batch, not stored yet (a parent's
    ping beside its children's checks). The states are the caller's to write,
    and then the acks that ended to clear (clear_ended_acks).
    """
    if not items:
        return []
    keys: set[tuple[str, str]] = set()
    for _, pair, _, _ in items:
        keys.add(pair.key)
        dependency = pair.schedule.monitoring.depends_on  # type: ignore[union-attr]
        host = catalog.hosts.get(pair.host)
        if dependency is not None and host is not None:
            keys.update(dependency_keys(dependency, host))
    rows: dict[tuple[str, str], MonitorRow] = dict(store.monitor_rows(keys))
    for key, outcome in (fresh or {}).items():
        row = rows.get(key)
        if row is not None and row.monitor is None:
            rows[key] = row._replace(outcome=outcome)
    acks = _acks_of(store, [pair.key for _, pair, _, _ in items])
    done = []
    for row_id, pair, result, slot in items:
        settings = pair.schedule.monitoring
        assert settings is not None, "only pairs with monitoring come here"
        host = catalog.hosts.get(pair.host)
        if settings.depends_on is not None and host is not None:
            hard = {
                key: hard_state_of(row.monitor, row.outcome)
                for key in dependency_keys(settings.depends_on, host)
                if (row := rows.get(key)) is not None
            }
            result = mark_unreachable(result, unreachable_reason(settings.depends_on, host, hard))
        own = rows.get(pair.key)
        at = result.finished_at or now
        tr = record(own.monitor if own else None, result.outcome, at, settings,
                    pair.schedule.timing, slot)  # fmt: skip
        # Later results of this batch (a child after its parent) see this one.
        rows[pair.key] = MonitorRow(row_id, pair.audit_name, pair.host, tr.after,
                                    result.outcome, at)  # fmt: skip
        ack = acks.get(pair.key)
        kept = ack_after(ack, tr, now) if ack is not None else None
        done.append(Applied(row_id, pair, result, tr, kept, ack is not None and kept is None))
        if ack is not None and kept is None:  # later results of this batch see it gone
            del acks[pair.key]
    return done


def clear_ended_acks(store: StateStore, applied: Iterable[Applied]) -> int:
    """Clear the acks these results ended, once they are written; how many."""
    ended = {a.pair.key for a in applied if a.ack_ended}
    for audit_name, host in ended:
        store.clear_ack(audit_name, host)
    return len(ended)


def _acks_of(store: StateStore, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Ack]:
    wanted = set(keys)
    return {(a.audit_name, a.host): a for a in store.acks() if (a.audit_name, a.host) in wanted}


def live_ack(
    store: StateStore,
    audit_name: str,
    host: str,
    current: Outcome | None,
    now: datetime,
    clear: bool = True,
) -> Ack | None:
    """The pair's acknowledgement if it still holds, for pairs the recorder does not watch.

    A pair without monitoring has no transitions to clear its ack by, so it
    is checked here, where it matters (a repair, a plan): gone at its expiry,
    on recovery (an ok result since it was made), or, unless sticky, when the
    outcome is no longer the one acknowledged. One that no longer holds is
    cleared (unless `clear` is False: a command that only reads).
    """
    found = store.acks(host=host, audit_name=audit_name)
    if not found:
        return None
    ack = found[0]
    holds = (
        ack_active(ack, now)
        and current is not None
        and current is not Outcome.OK
        and (ack.sticky or current is ack.state)
        and not _recovered_since(store, ack)
    )
    if holds:
        return ack
    if clear:
        store.clear_ack(audit_name, host)
    return None


def _recovered_since(store: StateStore, ack: Ack) -> bool:
    if ack.created_at is None:
        return False
    problems = frozenset(o for o in Outcome if o is not Outcome.OK)
    return store.repairs.healthy_since(ack.audit_name, ack.host, problems, ack.created_at)


def publish(
    events: Events,
    result: Result,
    applied: Applied | None,
    downtimes: list[Downtime],
    host: Host | None,
    now: datetime,
) -> None:
    """One recorded result's events when monitoring is in play (the engine's and a submit's).

    A problem in a downtime is marked; a pair without monitoring (applied
    None) is never left out. With monitoring: unreachable and repeated
    acknowledged problems are left out, hard state changes publish
    `state.*`, flapping's start and end `flapping.*`.
    """
    covering = None
    if downtimes and host is not None and result.outcome is not Outcome.OK:
        found = covering_downtime(downtimes, result.audit_name, host, now)
        covering = found[0] if found else None
    if applied is None:
        events.audit(result, problem_event_marks(result.outcome, True, covering))
        return
    tr = applied.transition
    marks = problem_event_marks(result.outcome, tr.state_change, covering, applied.ack, now)
    if marks is not None:
        events.audit(result, marks)
        if tr.hard_change:
            events.state(result, tr, marks)
    if tr.flapping_started or tr.flapping_ended:
        events.flapping(result, tr)
