"""The recorder: writes finished results in batches, on a thread of its own.

Each batch is one call to the store's record(): rows become `processed`
with their latest result and next slot, one history row each, only over
rows this engine still holds (fencing). What can recover (StoreUnavailable,
StoreConflict) is retried with backoff; what cannot (StorageFailure, a bug)
is tried a few times, then one by one, and the results the store still
refuses are logged with their content and let go (their leases run out).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from datetime import timedelta

from ..backends import Backend
from ..backends.base import RecordItem
from ..clock import Clock
from ..errors import BackendError, StoreConflict, StoreUnavailable
from ..model import Result
from ..scheduler import Due
from .heartbeat import Registration
from .leases import Leases
from .metrics import NO_METRICS, NoMetrics
from .monitor import Monitoring
from .publisher import Publisher
from .results import Finished, ResultQueue
from .settings import EngineSettings

LOG = logging.getLogger(__name__)

_TRIES_AT_STOP = 3  # database errors tolerated while flushing the last results
_PERMANENT_TRIES = 3  # tries of a batch the store refuses for good, before one by one
_PRUNE_EVERY = 600.0  # seconds between prunings of the history


class Recorder:
    """Takes batches from the result queue, writes them, hands them to the publisher.

    Its state (the batch, its counters) is its thread's own; recorded,
    dropped and drop_reason are read by others once it stopped. Backoff
    waits are real time: they pace retries against a real store.
    """

    def __init__(self, backend: Backend, settings: EngineSettings, clock: Clock,
                 results: ResultQueue, leases: Leases, publisher: Publisher,
                 registration: Registration, idle: Callable[[], bool],
                 monitoring: Monitoring, metrics: NoMetrics = NO_METRICS) -> None:  # fmt: skip
        """idle: True when nothing handed to the executor is unfinished (ResultQueue.collect);
        monitoring: the step that gives monitored results their state (engine/monitor.py)."""
        self.backend = backend
        self.metrics = metrics
        self.settings = settings
        self.clock = clock
        self.results = results
        self.leases = leases
        self.publisher = publisher
        self.registration = registration
        self.idle = idle
        self.monitoring = monitoring
        self.recorded = 0
        self.dropped = 0  # results the store refused for good (logged, let go)
        self.drop_reason = ""  # why the latest ones were (for the exit message)
        self._next_prune = -math.inf
        self._flushing = threading.Event()  # the last call: stop backing off
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="entropy-recorder", daemon=True)
        self._thread.start()

    def close(self, timeout: float | None = None) -> bool:
        """Write what is queued (a few tries if the store fails), stop the thread; True once
        it has ended (False: still writing after timeout seconds)."""
        self._flushing.set()
        self.results.close()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def flush(self) -> None:
        """Write everything queued now, on this thread (no recorder thread may be running)."""
        self.results.close()
        self.run()

    def run(self) -> None:
        """Write results in batches until the queue is closed; retry, but never for ever."""
        batch: list[Finished] = []
        backoff = 0.5
        stop, tries_left, refused = False, _TRIES_AT_STOP, 0
        settings = self.settings
        while True:
            stop = self.results.collect(batch, settings.flush_size, settings.flush_interval,
                                        self.idle) or stop  # fmt: skip
            if batch and self.monitoring.used:
                self.monitoring.apply(batch)  # once: applied results have their next run
            if batch:
                try:
                    stored = self._write(batch)
                except (StoreUnavailable, StoreConflict) as exc:
                    if stop:
                        tries_left -= 1
                    if stop and not tries_left:
                        self._drop(batch, f"stopping without recording them: {exc}", str(exc))
                        return
                    LOG.error("cannot record %d results, will retry: %s", len(batch), exc)
                    if stop:  # a few quick tries, not the backoff of a long outage
                        time.sleep(min(backoff, 1.0))
                    else:  # until the engine stops: then at once
                        self._flushing.wait(backoff)
                    backoff = min(backoff * 2, 10.0)
                    continue
                except Exception as exc:  # permanent (StorageFailure, a bug): a few tries only
                    refused += 1
                    if refused < _PERMANENT_TRIES and not stop:
                        LOG.error("the state store refused %d results (try %d of %d): %s",
                                  len(batch), refused, _PERMANENT_TRIES, exc)  # fmt: skip
                        time.sleep(0.1 * refused)
                        continue
                    refused = 0
                    batch = self._one_by_one(batch)
                    continue
                backoff, refused = 0.5, 0
                self._stored(batch, stored)
                batch = []
            if stop:
                return
            if self.clock.monotonic() >= self._next_prune:
                self._next_prune = self.clock.monotonic() + _PRUNE_EVERY
                self.prune()

    def _write(self, batch: list[Finished]) -> int:
        # Every next run is set by now (the monitoring step gave those it decides).
        records: list[RecordItem] = [(due.row_id, result, next_run)  # type: ignore[misc]
                                     for due, result, next_run in batch]  # fmt: skip
        states = self.monitoring.states(batch)
        with self.metrics.recording():
            if states:  # written with their results, in the same transaction
                return self.backend.state.record(records, self.settings.engine_id, states)
            return self.backend.state.record(records, self.settings.engine_id)

    def _stored(self, batch: list[Finished], stored: int) -> None:
        if stored < len(batch):  # fenced out: our lease ran out, another engine ran them
            LOG.warning("%d results not stored: their rows were taken back after "
                        "this engine's lease ran out", len(batch) - stored)  # fmt: skip
        self.leases.let_go(due.row_id for due, _, _ in batch)
        self.recorded += len(batch)
        applied = self.monitoring.written(batch)
        self.metrics.recorded([result for _, result, _ in batch])
        self.publisher.recorded(batch, applied)  # the one place recorded results are handed on

    def _one_by_one(self, batch: list[Finished]) -> list[Finished]:
        """After a batch failed for good: store each result alone, drop those still refused.

        One bad result (say, one the database cannot hold) then costs only
        itself. What is left when the store becomes unavailable meanwhile is
        handed back, to be retried as a batch.
        """
        for n, item in enumerate(batch):
            try:
                stored = self._write([item])
            except (StoreUnavailable, StoreConflict):
                return batch[n:]
            except Exception as exc:
                self._drop([item], str(exc))
            else:
                self._stored([item], stored)
        return []

    def _drop(self, items: list[Finished], why: str, cause: str | None = None) -> None:
        """Give up on results: log each with its content, let go of its row (its lease runs out).

        cause: the store's error alone, for the engine's last word (drop_reason).
        """
        self.dropped += len(items)
        self.drop_reason = cause or why
        LOG.error("dropping %d results the state store did not take: %s", len(items), why)
        for due, result, _ in items:
            LOG.error("dropped result: %s", _content(due, result))
        self.leases.let_go(due.row_id for due, _, _ in items)
        self.monitoring.written(items, stored=False)

    def prune(self) -> None:
        """Forget history (results, repair runs, stopped engines) older than result_retention,
        and ended downtimes and expired acks."""
        before = self.clock.now() - timedelta(seconds=self.settings.result_retention)
        state = self.backend.state
        try:
            pruned = state.prune_results(before)
            pruned += state.repairs.prune(before)
        except BackendError as exc:
            LOG.warning("cannot prune history: %s", exc)
            return
        if pruned:
            LOG.info("pruned %d results older than %s", pruned, before.isoformat())
        self.registration.forget_before(before)
        try:  # ended downtimes and expired acks (issue 15): nothing to do without any
            now = self.clock.now()
            gone = state.expire_downtimes(now) + state.expire_acks(now)
        except BackendError as exc:
            LOG.warning("cannot expire downtimes and acks: %s", exc)
        else:
            if gone:
                LOG.info("forgot %d ended downtimes and expired acks", gone)


def _content(due: Due, result: Result) -> str:
    """A dropped result, as one log line an operator can still read it from."""
    summary = result.summary if len(result.summary) <= 200 else result.summary[:200] + "..."
    slot = result.slot.isoformat() if result.slot else "-"
    finished = result.finished_at.isoformat() if result.finished_at else "-"
    return (f"audit={due.pair.audit_name} host={due.pair.host} row={due.row_id} slot={slot} "
            f"outcome={result.outcome.value} finished={finished} summary={summary!r}")  # fmt: skip
