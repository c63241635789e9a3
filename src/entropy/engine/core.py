"""Engine: the parts wired together, and the loop that drives them."""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime

from ..backends import Backend
from ..backends.base import EngineRecord, EngineRegistry
from ..clock import Clock
from ..errors import BackendError
from ..events import Events
from ..model import Result
from ..repairs import Repairer
from ..scheduler import Due, Scheduler
from .dispatcher import Dispatcher
from .executor import Executor
from .heartbeat import Heartbeat, Registration
from .leases import Leases
from .metrics import NO_METRICS, EngineMetrics
from .monitor import Downtimes, Monitoring
from .pool import WorkerPool
from .publisher import Publisher, ResultCallback
from .recorder import Recorder
from .results import ResultQueue
from .settings import EngineSettings
from .shutdown import NoticeCallback, StopRequest, grace_period

LOG = logging.getLogger(__name__)


class Engine:
    """Claims due audits, has its executor run them, records the results (see the package doc).

    The parts, each with its own state: dispatcher, executor (a WorkerPool
    unless one is given), results (the queue to the recorder), recorder,
    publisher, leases, registration, heartbeat, stop_request.
    """

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
        executor: Executor | None = None,
        metrics: EngineMetrics | None = None,
    ) -> None:
        """on_notice: where the lines an operator watches for go (a stop, its grace period);
        executor: where claimed audits run (default: a WorkerPool of max_workers threads);
        metrics: where the parts report their figures (engine run --metrics-port; its
        queue depths are watched by whoever serves it: metrics.watch)."""
        self.backend = backend
        self.scheduler = scheduler
        self.clock = clock
        self.settings = settings
        self.on_notice = on_notice or LOG.warning
        self.started = False  # the main loop runs: start-up (register, first refresh) is over
        self.executor: Executor = executor or WorkerPool(
            settings.max_workers, clock, settings.engine_id
        )
        self.leases = Leases()
        self.results = ResultQueue(settings.result_queue_size)
        self.stop_request = StopRequest(scheduler, self.executor)
        self.registration = Registration(backend, settings)
        self.downtimes = Downtimes(backend, clock)  # the catalog's and the ad hoc ones
        self.dispatcher = Dispatcher(backend, scheduler, clock, settings, self.executor,
                                     self.leases, self.downtimes, self.finished,
                                     metrics or NO_METRICS)  # fmt: skip
        self.publisher = Publisher(scheduler, clock, self.downtimes, on_result, events, repairer)
        self.monitoring = Monitoring(backend, scheduler, clock)
        self.recorder = Recorder(backend, _recording(settings, self.executor), clock,
                                 self.results, self.leases,
                                 self.publisher, self.registration,
                                 lambda: not self.executor.in_flight(), self.monitoring,
                                 metrics or NO_METRICS)  # fmt: skip
        self.heartbeat = Heartbeat(backend, self.registration, clock, self.leases, scheduler,
                                   on_stop_asked=self.stop_request.ask_through_store)  # fmt: skip
        self._executor_started = False
        # How long due audits may wait to be claimed together (see executor.py).
        self.claim_linger: float = getattr(self.executor, "claim_linger", 0.0)

    # -- what callers and tests read -----------------------------------------------

    @property
    def registry(self) -> EngineRegistry:
        return self.registration.registry

    @property
    def dead_after(self) -> float:
        """Seconds without a heartbeat after which this engine's peers think it dead."""
        return self.registration.dead_after

    def record_of_me(self, now: datetime) -> EngineRecord:
        return self.registration.record_of_me(now)

    def owned(self) -> list[int]:
        """Rows this engine holds: claimed, not yet recorded or given back."""
        return self.leases.held()

    @property
    def stopping(self) -> bool:
        return self.stop_request.asked()

    @property
    def recorded(self) -> int:
        return self.recorder.recorded

    @property
    def dropped(self) -> int:
        return self.recorder.dropped

    @property
    def drop_reason(self) -> str:
        return self.recorder.drop_reason

    @property
    def stuck(self) -> int:
        return self.executor.stuck

    # -- the executor's outlet ----------------------------------------------------------

    def finished(self, due: Due, result: Result) -> None:
        """From the executor (any thread): the next slot on the table, the result queued."""
        self.results.put((due, result, _next_run(self, due, result)))
        self.dispatcher.room_freed()

    def finished_many(self, finished: list[tuple[Due, Result]]) -> None:
        """Results that came in together (a broker's): as finished() each, queued as one."""
        self.results.put_many([(due, result, _next_run(self, due, result))
                               for due, result in finished])  # fmt: skip
        self.dispatcher.room_freed()

    def given_up(self, due: Due) -> None:
        """From the executor: no result comes for this row; its lease runs out, it comes back."""
        self.leases.let_go((due.row_id,))

    # -- lifecycle ----------------------------------------------------------------------

    def run(self, until: datetime | None = None) -> None:
        """Run until stop() is called (or `until`), then shut down gracefully."""
        self._start_up()
        try:
            self._start_executor()  # the broker's may find it out of reach
        except BaseException:
            self.registration.stopped(self.clock.now())
            raise
        self.recorder.start()
        self.heartbeat.start()
        self.started = True
        try:
            while not self.stop_request.asked():
                now = self.clock.now()
                if until is not None and now >= until:
                    break
                timeout = None if until is None else (until - now).total_seconds()
                retry = self.dispatcher.retry_after()
                if retry is not None:
                    timeout = min(timeout or retry, retry)
                self.dispatcher.take(self.scheduler.next_batch(timeout, self.claim_linger))
        finally:
            self._shutdown()

    def run_once(self, timeout: float = 0.0, record: bool = True) -> list[Due]:
        """One pass of run()'s loop, on this thread: take what is due, claim it, hand it over.

        Then, with record, write every result queued (with an inline
        WorkerPool, all of this pass's). For tests and tools: no start-up, no
        heartbeat thread, no recorder thread (record=False when one runs:
        recorder.start() ... recorder.close()). Returns the due rows taken.
        """
        self._start_executor()
        # A wake-up left by done() makes the first call return [] at once.
        batch = self.scheduler.next_batch(timeout) or self.scheduler.next_batch(timeout)
        self.dispatcher.take(batch)
        if record:
            self.recorder.flush()
        return batch

    def stop(self) -> None:
        """Ask the engine to stop; safe from a signal handler or another thread.

        Asked again while stopping, it ends the grace period at once.
        """
        self.stop_request.ask()

    def _start_executor(self) -> None:
        if not self._executor_started:
            self.executor.start(self)
            self._executor_started = True

    def _start_up(self) -> None:
        """Register, take back what was left in processing, load the definitions."""
        state = self.backend.state
        self.registration.register(self.clock.now())
        try:
            now = self.clock.now()
            recovered = state.recover_expired(now, self.settings.max_clock_skew)
            recovered += state.release(self.settings.engine_id, now)
            if recovered:
                LOG.warning("put %d rows left in processing back to new", recovered)
            self.scheduler.refresh()  # invalid definitions at start-up are an error
        except BaseException:
            self.registration.stopped(self.clock.now())
            raise

    def _shutdown(self) -> None:
        """The grace period, the last results written, our rows given back, unregistered."""
        self.stop_request.ask_once()
        if self._executor_started:
            grace_period(self.executor, self.results, self.stop_request, self.clock,
                         self.settings.shutdown_grace, self.on_notice)  # fmt: skip
            self.executor.shutdown()
        self.recorder.close()
        self.publisher.close()  # after the recorder: it may still hand over repairs
        self.heartbeat.stop()
        try:
            released = self.backend.state.release(self.settings.engine_id, self.clock.now())
        except BackendError as exc:  # their leases run out; a peer or our restart takes them
            LOG.error("cannot give unfinished audits back: %s", exc)
        else:
            if released:
                LOG.warning("gave %d unfinished audits back (status new)", released)
            self.leases.clear()
        self.registration.stopped(self.clock.now())


def _recording(settings: EngineSettings, executor: Executor) -> EngineSettings:
    """The recorder's settings: the executor's flush_interval if it has one (the broker's
    results are written sooner than the pool's)."""
    interval = getattr(executor, "flush_interval", None)
    return settings if interval is None else dataclasses.replace(settings, flush_interval=interval)


def _next_run(engine: Engine, due: Due, result: Result) -> datetime | None:
    """A finished pair's next slot, put on the table; None with monitoring (the recorder's
    monitoring step gives it: engine/monitor.py)."""
    if due.pair.schedule.monitoring is None:
        return engine.scheduler.done(due, result.finished_at or engine.clock.now())
    engine.monitoring.used = True
    return None
