"""What a sync changes, worked out the same way for every state store.

A store reads its rows (only the columns below) and what it remembers of
removed operator disables, asks `plan_sync` what to do, and applies the
plan its own way (SQL statements, MongoDB bulk writes, dicts in memory).
The rules live here once: new pairs get a stable splay, kept rows keep
their state, follow the host's address and the definitions' disabled flag
(never undoing an operator's disable), a next_run left far out by a
shortened interval is pulled in, and removals beyond max_removal need
consent (entropy.removal, checked before anything changes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from ..clock import to_micros
from ..model import DisabledBy, Pair, Status, SyncReport
from ..progress import counted
from ..removal import DisablePlan, KeptDisable, RemovalPolicy, check_removal, plan_disables


class SyncedRow(Protocol):
    """The columns of a stored row a sync looks at (read only: a NamedTuple fits too)."""

    @property
    def id(self) -> int: ...
    @property
    def audit_name(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def ip_address(self) -> str: ...
    @property
    def next_run(self) -> datetime: ...
    @property
    def disabled(self) -> bool: ...
    @property
    def disabled_reason(self) -> str | None: ...
    @property
    def disabled_by(self) -> str | None: ...


TUPLE_COLUMNS = ("host", "ip_address", "audit_name", "next_run", "created_at", "updated_at",
                 "disabled", "disabled_reason", "disabled_by", "status", "attempts")  # fmt: skip
_TIMES = frozenset({"next_run", "created_at", "updated_at"})


class NewRows:
    """The rows a sync inserts (column -> value, no id), made as they are read.

    A first sync of a million pairs would otherwise hold a million dicts at
    once (about 400 MB); a store streams these into its bulk insert instead.
    """

    __slots__ = ("_max_splay", "_now", "_pairs", "restore")

    def __init__(self, pairs: list[Pair], now: datetime, max_splay: float) -> None:
        self._pairs, self._now, self._max_splay = pairs, now, max_splay
        self.restore: dict[Any, KeptDisable] = {}  # operator disables put back

    def __len__(self) -> int:
        return len(self._pairs)

    def __bool__(self) -> bool:
        return bool(self._pairs)

    def tuples(self, when: Callable[[datetime], Any], flag: Callable[[bool], Any]) -> Iterator[
        tuple
    ]:  # fmt: skip
        """The same rows as tuples in TUPLE_COLUMNS order, times and booleans converted as
        a driver takes them (no dict per row: a first sync's bulk path)."""
        if self.restore:
            for values in self:
                yield tuple(
                    when(values[c]) if c in _TIMES else flag(values[c]) if c == "disabled"
                    else values[c]
                    for c in TUPLE_COLUMNS
                )  # fmt: skip
            return
        now, max_splay = self._now, self._max_splay
        at = when(now)
        new, definitions = Status.NEW.value, DisabledBy.DEFINITIONS.value
        on, off = flag(True), flag(False)
        for pair in counted(self._pairs, "inserting audit rows", len(self._pairs)):
            schedule = pair.schedule
            first = schedule.timing.first_run(now, pair.audit_name, pair.host, max_splay)
            if schedule.disabled:
                disabled, reason, by = on, schedule.disabled_reason, definitions
            else:
                disabled, reason, by = off, None, None
            yield (pair.host, pair.ip_address, pair.audit_name, when(first), at, at,
                   disabled, reason, by, new, 0)  # fmt: skip

    def __iter__(self) -> Iterator[dict[str, Any]]:
        now, max_splay, restore = self._now, self._max_splay, self.restore
        for pair in counted(self._pairs, "inserting audit rows", len(self._pairs)):
            values = new_row(pair, now, max_splay)
            back = restore.get(pair.key) if restore else None
            if back is not None:
                values.update(disabled=True, disabled_reason=back.reason,
                              disabled_by=DisabledBy.OPERATOR.value)  # fmt: skip
            yield values


@dataclass(slots=True)
class SyncPlan:
    gone: list[int]  # row ids whose pair left the definitions
    new: NewRows  # rows to insert
    changes: list[dict[str, Any]]  # row_id, old_next_run, and the columns to set
    kept: int
    disables: DisablePlan  # operator disables to remember, put back, forget

    def report(self) -> SyncReport:
        restore = self.disables.restore
        return SyncReport(
            len(self.new), len(self.gone), self.kept, len(self.changes),
            restored=len(restore), remembered=len(self.disables.remember),
            put_back=tuple(kept.describe() for kept in restore.values()),
        )  # fmt: skip


def plan_sync(
    existing: Iterable[SyncedRow],
    pairs: Iterable[Pair],
    now: datetime,
    max_splay: float,
    skew: float = 0.0,
    policy: RemovalPolicy | None = None,
    kept: Iterable[KeptDisable] = (),
    stored: int | None = None,
) -> SyncPlan:
    """Compare the stored rows with the desired pairs; RemovalRefused past max_removal.

    An incremental sync passes only the rows and the pairs of its scope, and
    in `stored` how many rows the store holds in all: max_removal is a share
    of every row, however the change came.

    Each change carries `old_next_run`: a store applies its next_run only if
    the row's next_run is still that one (another engine may have recorded
    a result meanwhile, and its next_run stands). `kept`: the operator
    disables the store remembers of removed pairs; a new pair that had one
    comes back disabled.
    """
    policy = policy or RemovalPolicy()
    existing = existing if isinstance(existing, list) else list(existing)
    if not existing:
        # Nothing to match or remove (a first sync): no dict of every pair (a million, at
        # start-up). The catalog's pairs are unique by key (definitions.expand).
        new = NewRows(list(pairs), now, max_splay)
        disables = plan_disables([], kept, (pair.key for pair in new._pairs), now, policy)
        new.restore = disables.restore
        return SyncPlan([], new, [], 0, disables)
    desired = {pair.key: pair for pair in pairs}
    slack = timedelta(seconds=skew)
    gone: list[SyncedRow] = []
    changes: list[dict[str, Any]] = []
    latest: dict[Any, datetime] = {}
    seen = 0
    for row in existing:
        seen += 1
        pair = desired.pop((row.audit_name, row.host), None)
        if pair is None:
            gone.append(row)
            continue
        timing = pair.schedule.timing
        if timing not in latest:
            latest[timing] = timing.latest_next_run(now + slack)
        change = _changes(row, pair, now, max_splay, latest[timing])
        if change is not None:
            changes.append(change)
    check_removal(seen if stored is None else stored,
                  [(row.audit_name, row.host) for row in gone], policy)  # fmt: skip
    if not policy.remove:
        gone = []
    disables = plan_disables(gone, kept, desired, now, policy)
    new = NewRows(list(desired.values()), now, max_splay)
    new.restore = disables.restore
    return SyncPlan([row.id for row in gone], new, changes, seen - len(gone), disables)


def new_row(pair: Pair, now: datetime, max_splay: float) -> dict[str, Any]:
    """A new pair's row: due after its stable splay, disabled if the definitions say so."""
    schedule = pair.schedule
    return {
        "host": pair.host,
        "ip_address": pair.ip_address,
        "audit_name": pair.audit_name,
        "next_run": schedule.timing.first_run(now, pair.audit_name, pair.host, max_splay),
        "created_at": now,
        "updated_at": now,
        "disabled": schedule.disabled,
        "disabled_reason": schedule.disabled_reason if schedule.disabled else None,
        "disabled_by": DisabledBy.DEFINITIONS.value if schedule.disabled else None,
        "status": Status.NEW.value,
        "attempts": 0,
    }


def _changes(
    row: SyncedRow, pair: Pair, now: datetime, max_splay: float, latest_next_run: datetime
) -> dict[str, Any] | None:
    """The new values of a kept row's definition-driven columns, or None if none change."""
    schedule = pair.schedule
    if (
        not row.disabled
        and not schedule.disabled
        and row.ip_address == pair.ip_address
        and row.next_run <= latest_next_run
    ):
        return None  # the common case: nothing to change
    disabled, reason, by = row.disabled, row.disabled_reason, row.disabled_by
    if by != DisabledBy.OPERATOR:
        if schedule.disabled:
            disabled, reason, by = True, schedule.disabled_reason, DisabledBy.DEFINITIONS.value
        else:
            disabled, reason, by = False, None, None
    next_run = row.next_run
    if next_run > latest_next_run:
        next_run = schedule.timing.first_run(now, pair.audit_name, pair.host, max_splay)
    new = (pair.ip_address, next_run, disabled, reason, by)
    if new == (row.ip_address, row.next_run, row.disabled, row.disabled_reason, row.disabled_by):
        return None
    return {
        "row_id": row.id,
        "ip_address": pair.ip_address,
        "old_next_run": row.next_run,
        "next_run": next_run,
        "disabled": disabled,
        "disabled_reason": reason,
        "disabled_by": by,
        "updated_at": now,
    }


def disabled_state(pair: Pair, reason: str | None) -> tuple[bool, str | None, str | None]:
    """(disabled, disabled_reason, disabled_by) after `entropy disable/enable` on pair.

    reason None lifts the operator's disable; the definitions' own stays.
    """
    if reason is not None:
        return True, reason, DisabledBy.OPERATOR.value
    if pair.schedule.disabled:
        return True, pair.schedule.disabled_reason, DisabledBy.DEFINITIONS.value
    return False, None, None


def latest_of(result: Any) -> dict[str, Any]:
    """The row's `result`: the latest result, small enough to read in bulk (times as ISO text)."""
    return {
        "outcome": result.outcome.value,
        "summary": result.summary,
        "metrics": result.metrics,
        "slot": _iso(result.slot),
        "started_at": _iso(result.started_at),
        "finished_at": _iso(result.finished_at),
        "engine_id": result.engine_id,
    }


def outcome_and_end(latest: Mapping[str, Any] | None) -> tuple[str | None, int | None]:
    """A row's `result` (latest_of's) -> its outcome and its end in microseconds since the
    epoch (clock.to_micros), as pair_outcomes() gives them: (None, None) before any."""
    if not latest:
        return None, None
    ended = latest.get("finished_at")
    return latest.get("outcome"), None if not ended else to_micros(datetime.fromisoformat(ended))


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat()
