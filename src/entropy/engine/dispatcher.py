"""The dispatcher: claims due rows, as many as the executor starts soon, and hands them over.

It runs on the engine loop's thread only. A claim hands back the slot the
database holds, so an engine whose time table lags behind another's runs
the slot that is really due, never one already run. Claims the store
refuses for good skip to the next slot; a lost race puts the pair back
where the database says it is due.
"""

from __future__ import annotations

import logging
import math
import zlib
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta

from ..backends import Backend
from ..clock import Clock
from ..errors import BackendError, StoreConflict, StoreUnavailable
from ..model import Result
from ..runners.base import Job
from ..scheduler import Due, Scheduler
from .executor import Executor
from .leases import Leases
from .metrics import NO_METRICS, NoMetrics
from .monitor import Downtimes, freshness, skip_covered
from .settings import EngineSettings

LOG = logging.getLogger(__name__)

_RETRY = 0.5  # seconds between tries while due audits wait unclaimed
_MAX_RETRY = 5.0  # the longest wait between claims while the database fails
_REPEAT_LOG = 60.0  # seconds between repeats of a lasting permanent error in the log
CLAIM_AHEAD = 0.25  # seconds of the executor's recent throughput claimed ahead


class Dispatcher:
    """Due rows not yet claimed, the claim window and claim retries: the loop thread's own state.

    Executor threads only call room_freed(), which reads how many wait (one
    len(), atomic under the GIL: a hint, looked at again on the next pass).
    """

    def __init__(self, backend: Backend, scheduler: Scheduler, clock: Clock,
                 settings: EngineSettings, executor: Executor, leases: Leases,
                 downtimes: Downtimes, finished: Callable[[Due, Result], None],
                 metrics: NoMetrics = NO_METRICS) -> None:  # fmt: skip
        """downtimes: for skip_checks; finished: where a passive pair's stale result goes
        once claimed (Engine.finished)."""
        self.backend = backend  # its state store is opened on first use, not here
        self.metrics = metrics
        self.scheduler = scheduler
        self.clock = clock
        self.settings = settings
        self.executor = executor
        self.leases = leases
        self._pending: OrderedDict[int, Due] = OrderedDict()  # due, not yet claimed
        self._claim_failures = 0
        self._refused_logged = -math.inf  # clock.monotonic() a permanent claim error was logged
        self._wake_below = 0  # finishing audits wake the loop once fewer are in flight
        self._rate = 0.0  # audits finished per second, recently
        self._rate_count = 0  # executor.completed() when _rate_since was taken
        self._rate_since = clock.monotonic()
        self.downtimes = downtimes
        self.finished = finished

    def waiting(self) -> int:
        """Due rows waiting to be claimed."""
        return len(self._pending)

    def retry_after(self) -> float | None:
        """How soon the loop should try again though nothing new is due (audits wait), if at all."""
        if not self._pending:  # e.g. a claim failed: try again soon, later if it fails again
            return None
        return min(_RETRY * 2 ** min(self._claim_failures, 8), _MAX_RETRY)

    def room_freed(self) -> None:
        """An audit finished (any thread): wake the loop once a claim is worth making."""
        if self._pending and self.executor.in_flight() < self._wake_below:
            self.scheduler.wake()

    def take(self, batch: list[Due]) -> None:
        """What next_batch() gave: wait for a claim, claim what the executor starts soon."""
        batch = self._spread(batch)
        for due in batch:
            if not self.executor.holds(due.row_id):
                self._pending[due.row_id] = due
        self._dispatch(fresh=[due.row_id for due in batch])

    def _spread(self, batch: list[Due]) -> list[Due]:
        """A backlog, started at a point of its own for each engine.

        Engines sharing a store pop the same due rows in the same order; taken
        from the same end, their claims would collide on the same rows (one
        wins, the others skip them) instead of taking different ones.
        """
        if len(batch) <= self.settings.max_workers:
            return batch
        start = zlib.crc32(self.settings.engine_id.encode()) % len(batch)
        return batch[start:] + batch[:start]

    def _dispatch(self, fresh: list[int]) -> None:
        """Claim what the executor can start soon; the rest of `fresh` is marked new."""
        window = self._claim_window()
        capacity = window - self.executor.in_flight()
        # With a backlog, claim in batches of at least half a pool, and at least an
        # eighth of the window: at thousands of audits/s, a claim per few audits
        # cost a transaction and a loop wake-up each (bench dispatch).
        batch = max(1, self.settings.max_workers // 2, window // 8)
        self._wake_below = window - batch + 1
        worth_a_claim = min(len(self._pending), batch)
        if capacity < worth_a_claim and not fresh:
            return
        take = [
            self._pending.popitem(last=False)[1]
            for _ in range(max(0, min(capacity, len(self._pending))))
        ]
        now = self.clock.now()
        catalog, timeout = self.scheduler.catalog, self.settings.default_timeout
        if take:
            skipping = self.downtimes.skipping(catalog)
            if skipping:  # none in the usual case: nothing is looked at per audit
                take = skip_covered(take, skipping, catalog, self.scheduler, now)
        jobs = {}
        passive = []
        for due in take:
            assert catalog is not None  # a due pair comes from a loaded catalog
            try:
                jobs[due.row_id] = Job.for_pair(catalog, due.pair, timeout)
            except KeyError:  # no script: passive, or a refresh just removed its host or script
                settings = due.pair.schedule.monitoring
                if settings is not None and settings.passive and due.pair.host in catalog.hosts:
                    passive.append(due)
                else:
                    self.scheduler.done(due, now)
        stale = freshness(self.backend.state, self.scheduler, passive, now) if passive else {}
        take = [due for due in take if due.row_id in jobs or due.row_id in stale]
        lease_until = now + timedelta(seconds=self.settings.lease)
        waiting = [row_id for row_id in fresh if row_id in self._pending]
        state = self.backend.state
        try:
            with self.metrics.claiming():
                claimed = state.claim([*jobs, *stale], self.settings.engine_id, now,
                                      lease_until, waiting)  # fmt: skip
        except (StoreUnavailable, StoreConflict) as exc:
            # A claim whose commit was lost with the connection is not ours to
            # renew: its lease runs out and it comes back (recover_expired).
            if not self._claim_failures:
                LOG.error("cannot claim audits, will retry: %s", exc)
            self._claim_failures += 1
            for due in reversed(take):
                self._pending[due.row_id] = due
                self._pending.move_to_end(due.row_id, last=False)
            return
        except BackendError as exc:  # the store refuses claims for good: not retried
            self._claims_refused(take, now, exc)
            return
        except Exception as exc:  # a bug: the engine goes on; these audits skip a slot
            LOG.exception("claiming %d audits failed", len(take))
            self._claims_refused(take, now, BackendError(f"unexpected {exc!r}"))
            return
        if self._claim_failures:
            LOG.warning("claiming again after %d failed tries", self._claim_failures)
            self._claim_failures = 0
        self.leases.hold(claimed)
        lost = [due.row_id for due in take if due.row_id not in claimed]
        try:  # after the claim committed: a failure here must not disown what it took
            stored = state.next_runs(lost) if lost else {}
        except Exception as exc:  # BackendError, or a bug: either way the claim stands
            LOG.warning("cannot read where lost claims are due; their next slots: %s", exc)
            stored = {}
        work = []
        for due in take:
            slot = claimed.get(due.row_id)
            if slot is None:
                self._lost_claim(due, stored.get(due.row_id), now)
                continue
            if slot != due.slot:  # the database knows better what is due (see claim())
                due = Due(due.row_id, due.pair, slot)
            if due.row_id in stale:  # nothing to run: its result is already known
                result = stale[due.row_id]
                result.slot, result.engine_id = due.slot, self.settings.engine_id
                self.finished(due, result)
                continue
            work.append((due, jobs[due.row_id]))
        self.executor.submit(work)

    def _claims_refused(self, take: list[Due], now: datetime, exc: BackendError) -> None:
        """A permanent claim error: these audits and every pending one skip to their next slot.

        Retrying would fail the same way, as fast as the loop turns; at their
        next slot they are tried again (the store may have been mended).
        """
        skipped = [*take, *self._pending.values()]
        self._pending.clear()
        for due in skipped:
            self.scheduler.done(due, now)
        if self.clock.monotonic() - self._refused_logged >= _REPEAT_LOG:
            self._refused_logged = self.clock.monotonic()
            LOG.error("the state store refuses claims (%d audits skip to their next slot): %s",
                      len(skipped), exc)  # fmt: skip

    def _lost_claim(self, due: Due, stored: datetime | None, now: datetime) -> None:
        """Put a row we could not claim back on the table, where the database says it is due.

        Disabled, or being run by another engine: its next slot. Already run by
        another engine (its next_run moved past now): exactly that next_run,
        so this engine neither repeats the slot nor skips the next one.
        """
        if stored is not None and stored > now:
            self.scheduler.done(due, now, next_run=stored)
        else:
            self.scheduler.done(due, now)

    def _claim_window(self) -> int:
        """How many claimed audits may be unfinished: what the executor starts soon.

        Two per worker, plus what it has been finishing in CLAIM_AHEAD seconds:
        a few for slow audits, hundreds for quick ones, so claims come in large
        transactions exactly when audits are cheap.
        """
        window = getattr(self.executor, "window", None)  # optional (see executor.py)
        fixed = window() if window is not None else None
        if fixed is not None:
            return int(fixed)
        now = self.clock.monotonic()
        elapsed = now - self._rate_since
        if elapsed >= 0.1:
            count = self.executor.completed()
            rate = (count - self._rate_count) / elapsed
            self._rate = rate if rate > self._rate else 0.5 * (self._rate + rate)
            self._rate_count, self._rate_since = count, now
        return 2 * self.settings.max_workers + int(self._rate * CLAIM_AHEAD)
