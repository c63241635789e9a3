"""The recorder's monitoring step: soft/hard states, retries, dependencies, acks (issue 15).

Engine.finished() makes the one check per result: a pair whose schedule has
no monitoring gets its next slot there, as before, and nothing here runs
(`used` stays False, so the recorder does not even look at its batches).
A pair with monitoring is queued without a next slot; before the batch is
written, apply() runs monitor_record.apply over those (one store read per
batch), puts each pair back on the scheduler's table at the transition's
next run (a retry at retry_every while soft, never later than its regular
slot), and keeps the states for the write, which stores them with their
results in the same transaction.
"""

from __future__ import annotations

import logging
import math
import threading
from datetime import datetime

from ..backends import Backend
from ..backends.base import StateStore
from ..clock import Clock
from ..errors import BackendError
from ..model import Catalog, Downtime, MonitorState, Result
from ..monitor_record import Applied, apply, clear_ended_acks
from ..monitoring import passive_check, skips_check
from ..scheduler import Due, Scheduler
from .results import Finished

LOG = logging.getLogger(__name__)


class Monitoring:
    """States waiting to be written with their results: the recorder thread's own.

    `used` is set (never cleared) by the executor's threads before they queue
    the first result of a pair with monitoring; the queue hands it over.
    """

    def __init__(self, backend: Backend, scheduler: Scheduler, clock: Clock) -> None:
        self.backend = backend
        self.scheduler = scheduler
        self.clock = clock
        self.used = False
        self.applied: dict[int, Applied] = {}  # row id -> what its result did, until written

    def apply(self, batch: list[Finished]) -> None:
        """Give the batch's monitored results their state and next run, in place."""
        pending = [i for i, (_, _, next_run) in enumerate(batch) if next_run is None]
        if not pending:
            return
        now = self.clock.now()
        items = [(batch[i][0].row_id, batch[i][0].pair, batch[i][1], batch[i][0].slot)
                 for i in pending]  # fmt: skip
        fresh = None
        settings = [pair.schedule.monitoring for _, pair, _, _ in items]
        if any(s is not None and s.depends_on for s in settings):
            # A dependency recorded in this batch is not stored yet: its outcome from here.
            fresh = {due.pair.key: result.outcome for due, result, next_run in batch
                     if next_run is not None}  # fmt: skip
        try:
            catalog = self.scheduler.catalog
            assert catalog is not None, "results come only after the first load"
            done = apply(self.backend.state, catalog, items, now, fresh)
        except Exception as exc:  # the store or a bug: record them plainly, on their slots
            LOG.error("monitoring rules not applied to %d results (recorded without a state "
                      "change, next run on their regular slot): %s", len(pending), exc)  # fmt: skip
            for i in pending:
                due, result, _ = batch[i]
                batch[i] = (due, result, self.scheduler.done(due, result.finished_at or now))
            return
        for i, applied in zip(pending, done, strict=True):
            due = batch[i][0]
            at = applied.result.finished_at or now
            next_run = self.scheduler.done(due, at, next_run=applied.transition.next_run)
            batch[i] = (due, applied.result, next_run)
            self.applied[due.row_id] = applied

    def states(self, batch: list[Finished]) -> dict[int, MonitorState] | None:
        """The states to write with these results; None when none of them has one."""
        if not self.applied:
            return None
        applied = self.applied
        found = {due.row_id: applied[due.row_id].state for due, _, _ in batch
                 if due.row_id in applied}  # fmt: skip
        return found or None

    def written(self, batch: list[Finished], stored: bool = True) -> dict[int, Applied]:
        """Forget the states of a batch written (or dropped: stored False); what they did,
        for the publisher. A written batch's results lift the acks they ended."""
        if not self.applied:
            return {}
        done = {due.row_id: a for due, _, _ in batch
                if (a := self.applied.pop(due.row_id, None)) is not None}  # fmt: skip
        if stored and done:
            try:
                clear_ended_acks(self.backend.state, done.values())
            except BackendError as exc:  # a stale ack still ends at its expiry, or with a repair
                LOG.warning("cannot clear the acknowledgements that results ended: %s", exc)
        return done


ADHOC_EVERY = 10.0  # seconds between reads of the ad hoc downtimes


class Downtimes:
    """The downtimes in play: the catalog's and the ad hoc ones, read at most every 10 s.

    Shared by the dispatcher (skip_checks) and the publisher (events); a
    store error keeps the last ones read.
    """

    def __init__(self, backend: Backend, clock: Clock) -> None:
        self.backend = backend
        self.clock = clock
        self._adhoc: list[Downtime] = []
        self._until = -math.inf
        self._lock = threading.Lock()

    def of(self, catalog: Catalog | None) -> list[Downtime]:
        found = list(catalog.downtimes.values()) if catalog is not None else []
        at = self.clock.monotonic()
        with self._lock:
            if at >= self._until:
                self._until = at + ADHOC_EVERY
                try:
                    self._adhoc = self.backend.state.downtimes()
                except BackendError as exc:
                    LOG.warning("cannot read the ad hoc downtimes: %s", exc)
            return found + self._adhoc if self._adhoc else found

    def skipping(self, catalog: Catalog | None) -> list[Downtime]:
        """Those with skip_checks: the covered audits do not even run."""
        return [d for d in self.of(catalog) if d.skip_checks]


# -- the dispatcher's part: skip_checks downtimes and passive pairs ------------------------


def skip_covered(
    take: list[Due],
    skipping: list[Downtime],
    catalog: Catalog | None,
    scheduler: Scheduler,
    now: datetime,
) -> list[Due]:
    """Leave out what a downtime with skip_checks covers now: on to its next slot."""
    kept = []
    for due in take:
        host = catalog.hosts.get(due.pair.host) if catalog is not None else None
        if host is not None and skips_check(skipping, due.pair.audit_name, host, now):
            scheduler.done(due, now)
        else:
            kept.append(due)
    return kept


def freshness(
    store: StateStore, scheduler: Scheduler, passive: list[Due], now: datetime
) -> dict[int, Result]:
    """Passive pairs (no script; results come from `entropy result submit`): the stale ones.

    A pair with a result within its freshness goes back on the table at the
    time it would go stale; a stale one gets an `unknown` result, returned
    here to be claimed and recorded as any result (monitoring.passive_check).
    """
    try:
        rows = store.monitor_rows([due.pair.key for due in passive])
    except BackendError as exc:  # looked at again at the next freshness slot
        LOG.error("cannot check the freshness of %d passive audits: %s", len(passive), exc)
        for due in passive:
            scheduler.done(due, now)
        return {}
    stale = {}
    for due in passive:
        row = rows.get(due.pair.key)
        settings = due.pair.schedule.monitoring
        fresh_for = settings.freshness if settings is not None else None
        if row is None or not fresh_for:  # a refresh just removed it
            scheduler.done(due, now)
            continue
        since = row.created_at or due.slot
        check = passive_check(due.pair.audit_name, due.pair.host, fresh_for,
                              row.last_result_at, since, now)  # fmt: skip
        if check.result is None:
            scheduler.done(due, now, next_run=check.next_run)
        else:
            stale[due.row_id] = check.result
    return stale
