"""The `pool` executor: claimed audits run on the engine's own futurist threads, watched.

Claimed audits wait on one queue; at most max_workers drainers, each a task
on the futurist pool, take from it in turn (one task per free worker rather
than one future per audit: a future, its queue put and its callbacks cost
more than a no-op audit). The watchdog records as `timeout` an audit still
running WATCHDOG_MARGIN seconds past its timeout: a command is killed at its
timeout by its runner, but a python audit stuck in a call cannot be, and its
row must not stay `processing`. Its thread stays busy until the call returns.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from concurrent.futures import Executor
from datetime import datetime

import futurist

from .. import runners
from ..clock import Clock
from ..model import Outcome, Result
from ..runners.base import Job
from ..scheduler import Due
from .executor import Outlet, Work

LOG = logging.getLogger(__name__)

WATCHDOG_MARGIN = 2.0  # seconds past an audit's timeout before the engine gives up on it
WATCHDOG_PERIOD = 0.25  # seconds between the watchdog's looks (real time: its pace only)
# Seconds a due audit waits for the ones due just after it, to be claimed together. At a
# steady 1,000/s, claims of 1.7 audits each were 60 % of the engine's CPU; 2 ms makes
# them ~4 audits and the engine's CPU a third less, for ~1.5 ms of lateness (bench steady).
CLAIM_LINGER = 0.002


class WorkerPool:
    """An Executor on max_workers threads of this process (inline=True: in the caller's).

    Its state, behind one lock: the rows handed over and not finished, the
    deadlines of those started, the drainer count, how many finished and how
    many are stuck. The queue of claimed audits is a deque (atomic appends
    and pops); the lock guards the decision that a drainer may stop.
    Deadlines are read on the injected clock (clock.monotonic()), so a fake
    clock decides when the watchdog gives up.
    """

    def __init__(
        self, max_workers: int, clock: Clock, engine_id: str, inline: bool = False
    ) -> None:
        self.max_workers = max_workers
        self.clock = clock
        self.engine_id = engine_id
        self.inline = inline  # run each audit in submit()'s thread: tests decide the order
        self.stuck = 0  # workers still inside an audit the watchdog gave up on
        self.claim_linger = CLAIM_LINGER
        self._outlet: Outlet | None = None
        self._pool: Executor | None = None  # futurist's, which are concurrent.futures ones
        self._lock = threading.Lock()
        self._running: dict[int, Due] = {}  # handed over, not finished
        # Started audits: row id -> (monotonic deadline, due, job, started_at).
        self._deadlines: dict[int, tuple[float, Due, Job, datetime]] = {}
        self._completed = 0
        self._queue: deque[Work] = deque()
        self._drainers = 0  # pool tasks taking from _queue (a stuck audit keeps its one)
        self._starting = True  # False once stopping: queued audits are dropped
        self._abandoned = False  # past the grace period: late results are not handed over
        self._watch = threading.Event()  # set: the watchdog stops
        self._watchdog: threading.Thread | None = None

    # -- the Executor seam ------------------------------------------------------

    def start(self, outlet: Outlet) -> None:
        self._outlet = outlet
        if self.inline:
            self._pool = futurist.SynchronousExecutor()
            return
        self._pool = futurist.ThreadPoolExecutor(max_workers=self.max_workers)
        self._watchdog = threading.Thread(target=self._watch_loop, name="entropy-watchdog",
                                          daemon=True)  # fmt: skip
        self._watchdog.start()

    def submit(self, work: list[Work]) -> None:
        """Queue claimed audits; start drainers for them, up to max_workers at once."""
        if not work:
            return
        assert self._pool is not None, "submit() before start()"
        with self._lock:
            for due, _ in work:
                self._running[due.row_id] = due
            self._queue.extend(work)
            spawn = max(min(len(self._queue), self.max_workers - self._drainers), 0)
            self._drainers += spawn
        for _ in range(spawn):
            self._pool.submit(self._drain)

    # Reads of one int or one dict lookup: atomic under the GIL, and used as hints
    # (a claim window, a wake-up) that are looked at again on the next pass.
    def in_flight(self) -> int:
        return len(self._running)

    def holds(self, row_id: int) -> bool:
        return row_id in self._running

    def completed(self) -> int:
        return self._completed

    def running(self) -> int:
        return len(self._deadlines)

    def stop_starting(self) -> None:
        self._starting = False

    def abandon(self) -> None:
        self._abandoned = True
        runners.kill_all()  # local commands and remote (ssh) ones

    def shutdown(self) -> None:
        self._watch.set()
        if self._pool is not None:
            self._pool.shutdown(wait=False)  # stuck workers never return: not joined
        if self._watchdog is not None:
            self._watchdog.join()

    # -- the workers ----------------------------------------------------------------

    def _drain(self) -> None:
        """Run queued audits one after another until the queue is empty."""
        queue, lock = self._queue, self._lock
        while True:
            try:
                due, job = queue.popleft()
            except IndexError:
                with lock:  # submit() counts on us to take what it queued meanwhile
                    if not queue:
                        self._drainers -= 1
                        return
                continue
            try:
                self._run_one(due, job)
            except Exception:  # a bug: keep draining, or the queue would stall
                LOG.exception("%s on %s could not be run", due.pair.audit_name, due.pair.host)
                with lock:
                    self._running.pop(due.row_id, None)
                    self._deadlines.pop(due.row_id, None)
                self._outlet.given_up(due)  # type: ignore[union-attr]

    def _run_one(self, due: Due, job: Job) -> None:
        if not self._starting:  # claimed but not started: goes back to `new`
            with self._lock:
                del self._running[due.row_id]
            return
        clock = self.clock
        started = clock.now()
        deadline = clock.monotonic() + job.timeout + WATCHDOG_MARGIN
        with self._lock:
            self._deadlines[due.row_id] = (deadline, due, job, started)
        result = runners.run_job(job, clock)
        result.slot, result.engine_id = due.slot, self.engine_id
        result.audit_name, result.host = due.pair.audit_name, due.pair.host
        with self._lock:
            if self._deadlines.pop(due.row_id, None) is None:
                self.stuck -= 1
                return  # the watchdog already recorded it as a timeout
            del self._running[due.row_id]
            self._completed += 1
        if self._abandoned:
            return  # killed at shutdown: its claim goes back to `new`
        self._outlet.finished(due, result)  # type: ignore[union-attr]

    # -- the watchdog -----------------------------------------------------------------

    def _watch_loop(self) -> None:
        while not self._watch.wait(WATCHDOG_PERIOD):
            try:
                self.expire_overdue()
            except Exception:  # a bug: the watch must go on
                LOG.exception("the watchdog failed")

    def expire_overdue(self) -> int:
        """Hand over as `timeout` the audits running past their deadline; how many.

        The watchdog thread calls it every WATCHDOG_PERIOD; a test on a fake
        clock calls it after moving the clock past a deadline.
        """
        now = self.clock.monotonic()
        with self._lock:
            overdue = [rid for rid, (deadline, *_) in self._deadlines.items() if deadline < now]
            expired = [self._deadlines.pop(rid) for rid in overdue]
            for rid in overdue:
                del self._running[rid]
            self.stuck += len(overdue)
        for _, due, job, started in expired:
            LOG.warning(
                "%s on %s still running after its %gs timeout; recorded as timeout",
                job.audit_name, job.host.name, job.timeout,
            )  # fmt: skip
            summary = (
                f"still running after its {job.timeout:g}s timeout; a {job.script.kind} audit "
                "cannot be stopped, it keeps a worker until it returns"
            )
            result = Result(
                Outcome.TIMEOUT, summary, started_at=started, finished_at=self.clock.now(),
                slot=due.slot, engine_id=self.engine_id, audit_name=job.audit_name,
                host=job.host.name,
            )  # fmt: skip
            try:
                self._outlet.finished(due, result)  # type: ignore[union-attr]
            except Exception:  # a bug: the others overdue still go on, this row is let go
                LOG.exception("%s on %s: its timeout could not be recorded", job.audit_name,
                              job.host.name)  # fmt: skip
                self._outlet.given_up(due)  # type: ignore[union-attr]
        return len(expired)
