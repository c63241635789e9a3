"""The engine: claims due audits, runs them on a worker pool, records results.

It takes batches from the scheduler, claims them in the state store
(new -> processing, with a lease), runs them on a futurist executor of
max_workers, and hands each result to a recorder thread that writes them in
batches (processing -> processed, next_run advanced, one history row each).
It claims no more than it can start soon; the rest wait as `new`.

Recorded results are published as events and handed to the repairer,
which runs the repairs their rules call for on a pool of its own.

Stopping is graceful: no new claims, running audits get a grace period,
then their process groups are killed and their claims go back to `new`.

State store errors are typed (entropy.errors): what can recover
(StoreUnavailable, StoreConflict) is retried with backoff; what cannot
(StorageFailure, SchemaOutOfDate, anything else) is not retried for ever:
claims skip to the next slot, results are tried a few times, then one by
one, and those the store still refuses are logged with their content and
released. Results wait in a bounded queue: when it is full the workers
pause (logged) until the recorder makes room.

Several engines may share one state store. Each registers in it and beats
a heartbeat (see Heartbeat): its leases are renewed while it lives, expired
ones (of an engine that died) are taken back, and a stop asked through the
store (`entropy engine stop`) stops it as SIGTERM would. A claim hands back
the slot the database holds, so an engine whose time table lags behind
another's runs the slot that is really due, never one already run.
"""

from __future__ import annotations

import functools
import gc
import logging
import queue
import threading
import time
import zlib
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import futurist

from . import __version__, runners
from .backends import Backend
from .backends.base import EngineRecord, EngineRegistry
from .clock import Clock
from .errors import BackendError, StoreConflict, StoreUnavailable
from .events import Events
from .model import Outcome, Result
from .repairs import Repairer
from .runners.base import Job
from .scheduler import Due, Scheduler

if TYPE_CHECKING:
    from .engine_broker import BrokerExecutor

LOG = logging.getLogger(__name__)

ResultCallback = Callable[[Result], None]
NoticeCallback = Callable[[str], None]
_RETRY = 0.5  # seconds between tries while due audits wait unclaimed
_MAX_RETRY = 5.0  # the longest wait between claims while the database fails
_TRIES_AT_STOP = 3  # database errors tolerated while flushing the last results
_PERMANENT_TRIES = 3  # tries of a batch the store refuses for good, before one by one
_REPEAT_LOG = 60.0  # seconds between repeats of a lasting permanent error in the log
CLAIM_AHEAD = 0.25  # seconds of the pool's recent throughput claimed ahead
WATCHDOG_MARGIN = 2.0  # seconds past an audit's timeout before the engine gives up on it


@dataclass(frozen=True, slots=True)
class EngineSettings:
    engine_id: str
    max_workers: int = 8
    default_timeout: float = 60.0
    shutdown_grace: float = 10.0
    result_retention: float = 7 * 86400.0
    lease: float = 30.0  # seconds a claim lasts unless a heartbeat renews it
    heartbeat_interval: float = 5.0
    max_clock_skew: float = 2.0  # how far engines' clocks may differ
    hostname: str = ""
    pid: int = 0
    flush_interval: float = 0.05  # how long results may wait to be written together
    flush_size: int = 1000
    result_queue_size: int = 10_000  # finished results waiting for the recorder, at most


class Engine:
    def __init__(
        self,
        backend: Backend,
        scheduler: Scheduler,
        clock: Clock,
        settings: EngineSettings,
        on_result: ResultCallback | None = None,
        repairer: Repairer | None = None,
        events: Events | None = None,
        on_notice: NoticeCallback | None = None,
        broker: BrokerExecutor | None = None,
    ) -> None:
        """on_notice: where the lines an operator watches for go (a stop, its grace period);
        broker: run claimed audits as jobs on workers through it, not on the pool."""
        self.broker = broker
        self.backend = backend
        self.scheduler = scheduler
        self.clock = clock
        self.settings = settings
        self.on_result = on_result
        self.repairer = repairer
        self.events = events
        self.on_notice = on_notice or LOG.warning
        self._pending: OrderedDict[int, Due] = OrderedDict()  # due, not yet claimed
        self._running: dict[int, Due] = {}
        self._running_lock = threading.Lock()
        # Started audits: row id -> (monotonic deadline, due, job, started_at).
        self._deadlines: dict[int, tuple[float, Due, Job, datetime]] = {}
        self._burst = False  # the recorder's last batch was full (see _collect)
        self._results: queue.SimpleQueue[tuple[Due, Result, datetime] | None] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._hurry = threading.Event()  # stop() again: the grace period ends now
        self._flushing = threading.Event()  # the recorder's last call: stop backing off
        self.started = False  # the main loop runs: start-up (register, first refresh) is over
        self._abandoned = False  # past the grace period: late results are not recorded
        self._executor: futurist.ThreadPoolExecutor | None = None
        # Claimed audits not started yet, taken in turn by at most max_workers drainers.
        self._queue: deque[tuple[Due, Job]] = deque()
        self._drainers = 0  # pool tasks taking from _queue (a stuck audit keeps its one)
        self._drain_lock = threading.Lock()
        self._wake_below = 0  # workers wake the loop once fewer than this are unfinished
        self._rate = 0.0  # audits finished per second, recently
        self._finished_since = 0
        self._rate_since = time.monotonic()
        self.recorded = 0
        self.stuck = 0  # workers still inside an audit the watchdog gave up on
        # Claimed rows not yet recorded or given back: the leases the heartbeat renews.
        self._owned: set[int] = set()
        self._claim_failures = 0
        self._claim_refused_logged = 0.0  # monotonic time a permanent claim error was logged
        self._queue_full = False  # workers are waiting for room in _results
        self.dropped = 0  # results the store refused for good (logged, released)
        self.drop_reason = ""  # why the latest ones were (for the exit message)
        self.heartbeat = Heartbeat(self)

    @functools.cached_property
    def registry(self) -> EngineRegistry:
        # On first use, not in __init__: making an Engine opens no database.
        return self.backend.state.engine_registry()

    @property
    def dead_after(self) -> float:
        """Seconds without a heartbeat after which this engine's peers think it dead."""
        return self.settings.lease + self.settings.max_clock_skew

    def record_of_me(self, now: datetime) -> EngineRecord:
        s = self.settings
        return EngineRecord(s.engine_id, s.hostname, s.pid, __version__, now, now)

    # -- lifecycle ------------------------------------------------------------

    def run(self, until: datetime | None = None) -> None:
        """Run until stop() is called (or `until`), then shut down gracefully."""
        state = self.backend.state
        now = self.clock.now()
        # Refused (and nothing else done) when a live engine has our id, or on a
        # SQLite file another engine uses.
        self.registry.register(self.record_of_me(now), now, self.dead_after)
        try:
            recovered = state.recover_expired(now, self.settings.max_clock_skew)
            recovered += state.release(self.settings.engine_id, now)
            if recovered:
                LOG.warning("put %d rows left in processing back to new", recovered)
            self.scheduler.refresh()  # invalid definitions at start-up are an error
        except BaseException:
            self._unregister()
            raise
        # Each audit allocates a few dozen short-lived objects; the default
        # threshold (700) ran a collection every ~20 audits (bench dispatch).
        gc.set_threshold(50_000, 20, 20)
        try:
            if self.broker is not None:
                self.broker.start(self._completed)
            else:
                self._executor = futurist.ThreadPoolExecutor(
                    max_workers=self.settings.max_workers
                )
        except BaseException:
            self._unregister()
            raise
        recorder = threading.Thread(target=self._record_loop, name="entropy-recorder", daemon=True)
        recorder.start()
        self.heartbeat.start()
        self.started = True
        try:
            while not self._stopping.is_set():
                now = self.clock.now()
                if until is not None and now >= until:
                    break
                timeout = None if until is None else (until - now).total_seconds()
                if self._pending:  # e.g. a claim failed: try again soon, later if it fails again
                    retry = min(_RETRY * 2 ** min(self._claim_failures, 8), _MAX_RETRY)
                    timeout = min(timeout or retry, retry)
                batch = self._spread(self.scheduler.next_batch(timeout))
                for due in batch:
                    if due.row_id not in self._running:
                        self._pending[due.row_id] = due
                self._dispatch(fresh=[due.row_id for due in batch])
        finally:
            self._shutdown(recorder)

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

    def stop(self) -> None:
        """Ask the engine to stop; safe from a signal handler or another thread.

        Asked again while stopping, it ends the grace period at once.
        """
        if self._stopping.is_set():
            self._hurry.set()
        self._stopping.set()
        self.scheduler.stop()

    # -- claiming and running ---------------------------------------------------

    def _dispatch(self, fresh: list[int]) -> None:
        """Claim what the pool can start soon; the rest of `fresh` is marked new."""
        window = self._claim_window()
        capacity = window - len(self._running)
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
        jobs = {}
        for due in take:
            try:
                jobs[due.row_id] = Job.for_pair(catalog, due.pair, timeout)
            except KeyError:  # a refresh just removed its host or script
                self.scheduler.done(due, now)
        take = [due for due in take if due.row_id in jobs]
        lease_until = now + timedelta(seconds=self.settings.lease)
        waiting = [row_id for row_id in fresh if row_id in self._pending]
        state = self.backend.state
        try:
            claimed = state.claim(list(jobs), self.settings.engine_id, now, lease_until, waiting)
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
        with self._running_lock:
            self._owned.update(claimed)
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
            work.append((due, jobs[due.row_id]))
        with self._running_lock:
            for due, _ in work:
                self._running[due.row_id] = due
        self._start(work)

    def _claims_refused(self, take: list[Due], now: datetime, exc: BackendError) -> None:
        """A permanent claim error: these audits and every pending one skip to their next slot.

        Retrying would fail the same way, as fast as the loop turns; at their
        next slot they are tried again (the store may have been mended).
        """
        skipped = [*take, *self._pending.values()]
        self._pending.clear()
        for due in skipped:
            self.scheduler.done(due, now)
        if time.monotonic() - self._claim_refused_logged >= _REPEAT_LOG:
            self._claim_refused_logged = time.monotonic()
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
        """How many claimed audits may be unfinished: what the pool starts soon.

        Two per worker, plus what the pool has been finishing in CLAIM_AHEAD
        seconds: a few for slow audits, hundreds for quick ones, so claims
        come in large transactions exactly when audits are cheap.
        """
        if self.broker is not None:
            return self.broker.window()
        now = time.monotonic()
        elapsed = now - self._rate_since
        if elapsed >= 0.1:
            rate = self._finished_since / elapsed
            self._rate = rate if rate > self._rate else 0.5 * (self._rate + rate)
            self._finished_since, self._rate_since = 0, now
        return 2 * self.settings.max_workers + int(self._rate * CLAIM_AHEAD)

    def _start(self, work: list[tuple[Due, Job]]) -> None:
        """Queue claimed audits; start drainers for them, up to max_workers at once.

        One pool task per free worker rather than one future per audit: a
        future, its queue put and its callbacks cost more than a no-op audit.
        """
        if not work:
            return
        if self.broker is not None:
            self.broker.submit(work)
            return
        with self._drain_lock:
            self._queue.extend(work)
            spawn = min(len(self._queue), self.settings.max_workers - self._drainers)
            self._drainers += max(spawn, 0)
        for _ in range(spawn):
            self._executor.submit(self._drain)

    def _drain(self) -> None:
        """Run queued audits one after another until the queue is empty."""
        queue, lock = self._queue, self._drain_lock
        while True:
            try:
                due, job = queue.popleft()
            except IndexError:
                with lock:  # _start() counts on us to take what it queued meanwhile
                    if not queue:
                        self._drainers -= 1
                        return
                continue
            try:
                self._run_one(due, job)
            except Exception:  # a bug: keep draining, or the queue would stall
                LOG.exception("%s on %s could not be run", due.pair.audit_name, due.pair.host)
                with self._running_lock:
                    self._running.pop(due.row_id, None)
                    self._deadlines.pop(due.row_id, None)
                    self._owned.discard(due.row_id)  # its lease runs out and it comes back

    def _run_one(self, due: Due, job: Job) -> None:
        if self._stopping.is_set():  # claimed but not started: goes back to `new`
            with self._running_lock:
                del self._running[due.row_id]
            return
        started = self.clock.now()
        with self._running_lock:
            deadline = time.monotonic() + job.timeout + WATCHDOG_MARGIN
            self._deadlines[due.row_id] = (deadline, due, job, started)
        result = runners.run_job(job, self.clock)
        result.slot, result.engine_id = due.slot, self.settings.engine_id
        result.audit_name, result.host = due.pair.audit_name, due.pair.host
        with self._running_lock:
            if self._deadlines.pop(due.row_id, None) is None:
                self.stuck -= 1
                return  # the watchdog already recorded it as a timeout
        self._completed(due, result)

    def _completed(self, due: Due, result: Result) -> None:
        """A claimed audit's result (from the pool or a worker): to the recorder."""
        with self._running_lock:
            if self._running.pop(due.row_id, None) is None:
                return  # given back meanwhile (a stop past its grace period)
            self._finished_since += 1
        if self._abandoned:
            return  # killed at shutdown: its claim goes back to `new`
        next_run = self.scheduler.done(due, result.finished_at or self.clock.now())
        self._hand_over((due, result, next_run))
        if self._pending and len(self._running) < self._wake_below:
            self.scheduler.wake()  # room for a claim worth making: claim more

    def _hand_over(self, item: tuple[Due, Result, datetime]) -> None:
        """Queue a finished audit for the recorder; wait while the queue is full."""
        if self._results.qsize() >= self.settings.result_queue_size:
            self._wait_for_room()
        self._results.put(item)

    def _wait_for_room(self) -> None:
        """Hold this worker while the result queue is full (the store is not taking them)."""
        limit = self.settings.result_queue_size
        if not self._queue_full:
            self._queue_full = True
            LOG.error("%d results are waiting for the state store (result queue full): audits "
                      "pause until it takes them", self._results.qsize())  # fmt: skip
        while self._results.qsize() >= limit and not self._abandoned:
            time.sleep(0.05)
        if self._queue_full:
            self._queue_full = False
            LOG.warning("the result queue has room again: audits go on")

    def _expire_overdue(self, batch: list[tuple[Due, Result, datetime]]) -> None:
        """Record as `timeout` the audits still running well past their timeout.

        A command is killed at its timeout by its runner; this catches what
        cannot be killed (a python audit stuck in a call), so its row does not
        stay `processing`. Its thread stays busy until the call returns.
        """
        now = time.monotonic()
        with self._running_lock:
            overdue = [rid for rid, (deadline, *_) in self._deadlines.items() if deadline < now]
            expired = [self._deadlines.pop(rid) for rid in overdue]
            for rid in overdue:
                del self._running[rid]
            self.stuck += len(overdue)
        for _, due, job, started in expired:
            finished = self.clock.now()
            LOG.warning(
                "%s on %s still running after its %gs timeout; recorded as timeout",
                job.audit_name, job.host.name, job.timeout,
            )  # fmt: skip
            summary = (
                f"still running after its {job.timeout:g}s timeout; a {job.script.kind} audit "
                "cannot be stopped, it keeps a worker until it returns"
            )
            result = Result(
                Outcome.TIMEOUT, summary, started_at=started, finished_at=finished,
                slot=due.slot, engine_id=self.settings.engine_id, audit_name=job.audit_name,
                host=job.host.name,
            )  # fmt: skip
            batch.append((due, result, self.scheduler.done(due, finished)))

    # -- recording ----------------------------------------------------------------

    def _record_loop(self) -> None:
        """Write results in batches; retry what can recover, never retry for ever what cannot."""
        batch: list[tuple[Due, Result, datetime]] = []
        backoff = 0.5
        next_prune = 0.0
        stop, tries_left, refused = False, _TRIES_AT_STOP, 0
        while True:
            stop = self._collect(batch) or stop
            self._expire_overdue(batch)
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
            if time.monotonic() >= next_prune:
                next_prune = time.monotonic() + 600
                self._prune()

    def _write(self, batch: list[tuple[Due, Result, datetime]]) -> int:
        return self.backend.state.record(
            [(due.row_id, result, next_run) for due, result, next_run in batch],
            self.settings.engine_id,
        )

    def _stored(self, batch: list[tuple[Due, Result, datetime]], stored: int) -> None:
        if stored < len(batch):  # fenced out: our lease ran out, another engine ran them
            LOG.warning("%d results not stored: their rows were taken back after "
                        "this engine's lease ran out", len(batch) - stored)  # fmt: skip
        self._disown(batch)
        self._finish(batch)

    def _one_by_one(
        self, batch: list[tuple[Due, Result, datetime]]
    ) -> list[tuple[Due, Result, datetime]]:
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

    def _drop(
        self, items: list[tuple[Due, Result, datetime]], why: str, cause: str | None = None
    ) -> None:
        """Give up on results: log each with its content, release its row (its lease runs out).

        cause: the store's error alone, for the engine's last word (drop_reason).
        """
        self.dropped += len(items)
        self.drop_reason = cause or why
        LOG.error("dropping %d results the state store did not take: %s", len(items), why)
        for due, result, _ in items:
            LOG.error("dropped result: %s", _content(due, result))
        self._disown(items)

    def _collect(self, batch: list) -> bool:
        """Add waiting results to batch, waiting up to flush_interval; True once told to stop.

        After a full batch (a burst of results), the burst's last results are
        written as soon as no claimed audit is left unfinished, not
        flush_interval later: nothing more can come until the next claim.
        """
        deadline = time.monotonic() + self.settings.flush_interval
        results = self._results
        while len(batch) < self.settings.flush_size:
            try:
                item = results.get_nowait()  # drain what is there without timers
            except queue.Empty:
                if self._burst and not self._running:
                    self._burst = False
                    return False
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._burst = False
                    return False
                try:
                    item = results.get(timeout=remaining)
                except queue.Empty:
                    self._burst = False
                    return False
            if item is None:
                return True
            batch.append(item)
        self._burst = True
        return False

    def _disown(self, batch: list[tuple[Due, Result, datetime]]) -> None:
        with self._running_lock:
            for due, _, _ in batch:
                self._owned.discard(due.row_id)

    def owned(self) -> list[int]:
        """Rows this engine holds: claimed, not yet recorded or given back."""
        with self._running_lock:
            return list(self._owned)

    def _finish(self, batch: list[tuple[Due, Result, datetime]]) -> None:
        self.recorded += len(batch)
        if self.on_result:
            for _, result, _ in batch:
                try:
                    self.on_result(result)
                except Exception:  # a broken printer must not stop recording
                    LOG.exception("result callback failed")
        # Neither may take the recorder down: it is what keeps results stored.
        try:
            if self.events:
                for _, result, _ in batch:
                    self.events.audit(result)
            catalog = self.scheduler.catalog
            if self.repairer and catalog is not None and catalog.repairs:
                recorded = [(due.row_id, due.pair, result) for due, result, _ in batch]
                self.repairer.consider(catalog, recorded)
        except Exception:
            LOG.exception("events or repairs failed for %d results", len(batch))

    def _prune(self) -> None:
        before = self.clock.now() - timedelta(seconds=self.settings.result_retention)
        try:
            pruned = self.backend.state.prune_results(before)
            pruned += self.backend.state.repairs.prune(before)
        except BackendError as exc:
            LOG.warning("cannot prune history: %s", exc)
            return
        if pruned:
            LOG.info("pruned %d results older than %s", pruned, before.isoformat())
        try:
            self.registry.forget_before(before)
        except BackendError as exc:
            LOG.warning("cannot prune the engines registry: %s", exc)

    # -- stopping -------------------------------------------------------------------

    def _shutdown(self, recorder: threading.Thread) -> None:
        self._stopping.set()
        self.scheduler.stop()
        executor = self._executor
        if executor is not None:
            self._wait_for_running()
            executor.shutdown(wait=False)
        if self.broker is not None and self.started:
            self._wait_for_running()
        self._flushing.set()
        self._results.put(None)
        recorder.join()
        if self.repairer:  # after the recorder: it may still hand over repairs
            self.repairer.shutdown()
        if self.broker is not None:  # after the repairs: they may run on workers
            self.broker.close()
        if self.events:
            self.events.close()
        self.heartbeat.stop()
        try:
            released = self.backend.state.release(self.settings.engine_id, self.clock.now())
        except BackendError as exc:  # their leases run out; a peer or our restart takes them
            LOG.error("cannot give unfinished audits back: %s", exc)
        else:
            if released:
                LOG.warning("gave %d unfinished audits back (status new)", released)
            with self._running_lock:
                self._owned.clear()
        self._unregister()

    def _wait_for_running(self) -> None:
        """Give running audits the grace period, saying so; then kill what still runs.

        Claimed audits still queued skip (see _run_one) instead of starting.
        """
        grace = self.settings.shutdown_grace
        running = len(self._running) if self.broker is not None else len(self._deadlines)
        if not running:
            self.on_notice("stopping: no new claims; no audits running")
        else:
            self.on_notice(
                f"stopping: no new claims; {running} audits running get {grace:g}s "
                "(stop again to end them now)"
            )
        began = time.monotonic()
        deadline = began + grace
        while self._running and time.monotonic() < deadline and not self._hurry.is_set():
            self._hurry.wait(0.05)
        if self._running and self.broker is not None:
            self.on_notice(
                f"grace period over: {len(self._running)} audits still out on workers go back "
                "to new; their late results are fenced out"
            )
            self._abandoned = True
        elif self._running:
            left = len(self._deadlines)
            self.on_notice(
                f"grace period over: killing {left} audits still running; "
                "they go back to new"
            )
            self._abandoned = True
            runners.kill_all()  # local commands and remote (ssh) ones
        elif running:
            self.on_notice(
                f"grace period over: the running audits finished in "
                f"{time.monotonic() - began:.1f}s"
            )

    def _unregister(self) -> None:
        try:
            self.registry.stopped(self.settings.engine_id, self.clock.now())
        except BackendError as exc:
            LOG.error("cannot mark this engine stopped in the registry: %s", exc)


def _content(due: Due, result: Result) -> str:
    """A dropped result, as one log line an operator can still read it from."""
    summary = result.summary if len(result.summary) <= 200 else result.summary[:200] + "..."
    slot = result.slot.isoformat() if result.slot else "-"
    finished = result.finished_at.isoformat() if result.finished_at else "-"
    return (f"audit={due.pair.audit_name} host={due.pair.host} row={due.row_id} slot={slot} "
            f"outcome={result.outcome.value} finished={finished} summary={summary!r}")  # fmt: skip


class Heartbeat:
    """Every heartbeat_interval: say we live, renew our leases, take back expired ones.

    - The engine's row in the registry gets heartbeat_at = now; a stop asked
      through the store (`entropy engine stop`) stops the engine here.
    - The leases of what this engine holds are set to now + lease, so an
      audit that runs longer than a lease keeps its claim while we live.
    - Rows whose lease ran out (plus max_clock_skew: leases are set on
      another engine's clock) go back to `new` with attempts + 1, and the
      scheduler re-reads the rows so they run within this heartbeat, not at
      whatever later slot its table held for them.

    A database error is logged once and retried at the next beat: the
    engine carries on, and its leases are long enough to outlast a restart.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failures = 0
        self.recovered = 0
        # A lasting permanent error is logged again every _REPEAT_LOG seconds of beats.
        self._repeat = max(1, int(_REPEAT_LOG / max(engine.settings.heartbeat_interval, 0.1)))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="entropy-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        # Real time, not the engine's clock: a beat is about liveness, not schedule.
        while not self._stop.wait(self.engine.settings.heartbeat_interval):
            try:
                self.beat()
            except Exception:  # a bug, not the database: the beats must go on
                LOG.exception("heartbeat failed")

    def beat(self) -> None:
        """One heartbeat; tests on a fake clock call this directly."""
        engine = self.engine
        settings, state = engine.settings, engine.backend.state
        now = engine.clock.now()
        try:
            stop_asked = engine.registry.heartbeat(engine.record_of_me(now), now)
            state.renew_leases(
                settings.engine_id, engine.owned(), now + timedelta(seconds=settings.lease)
            )
            taken = state.take_back_expired(now, settings.max_clock_skew)
            recovered = len(taken)
        except BackendError as exc:
            lasting = not isinstance(exc, (StoreUnavailable, StoreConflict))
            if not self.failures or (lasting and self.failures % self._repeat == 0):
                LOG.error("heartbeat failed, will retry: %s", exc)
            self.failures += 1
            return
        if self.failures:
            LOG.warning("heartbeat back after %d failed tries", self.failures)
            self.failures = 0
        if recovered:
            self.recovered += recovered
            LOG.warning("took back %d audits whose engine's lease ran out", recovered)
            try:  # only those rows are read again
                engine.scheduler.retime(taken)
            except BackendError as exc:
                LOG.error("could not re-read the rows taken back, refreshing instead: %s", exc)
                engine.scheduler.request_refresh()
        if stop_asked and not engine._stopping.is_set():
            LOG.warning("asked to stop through the state store; stopping")
            engine.stop()
