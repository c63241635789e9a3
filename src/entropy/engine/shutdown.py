"""Stopping: the request (from a signal, the store, or a test) and the grace period after it.

Stopping is graceful: no new claims, running audits get shutdown_grace,
then their process groups are killed and their claims go back to `new`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ..clock import Clock
from ..scheduler import Scheduler
from .executor import Executor
from .results import ResultQueue

LOG = logging.getLogger(__name__)

NoticeCallback = Callable[[str], None]
_GRACE_POLL = 0.05  # seconds between looks at what still runs, during the grace period


class StopRequest:
    """Whether the engine was asked to stop, and asked again (hurry): two events, nothing else."""

    def __init__(self, scheduler: Scheduler, executor: Executor) -> None:
        self.scheduler = scheduler
        self.executor = executor
        self._stopping = threading.Event()
        self._hurry = threading.Event()  # asked again: the grace period ends now

    def ask(self) -> None:
        """Safe from a signal handler or any thread; asked again, it ends the grace period.

        At once: the loop wakes to stop claiming, and claimed audits not yet
        started are not started (their claims go back to `new` at the end).
        """
        if self._stopping.is_set():
            self._hurry.set()
        self._stopping.set()
        self.executor.stop_starting()
        self.scheduler.stop()

    def ask_once(self) -> None:
        """Stop, unless already stopping: never hurries (the engine's own way out)."""
        if not self._stopping.is_set():
            self.ask()

    def ask_through_store(self) -> None:
        """A stop asked through the state store (seen at every heartbeat until we stop)."""
        if not self._stopping.is_set():
            LOG.warning("asked to stop through the state store; stopping")
            self.ask()

    def asked(self) -> bool:
        return self._stopping.is_set()

    def hurried(self) -> bool:
        return self._hurry.is_set()

    def wait_for_hurry(self, clock: Clock, timeout: float) -> bool:
        return clock.wait(self._hurry, timeout)


def grace_period(executor: Executor, results: ResultQueue, stop: StopRequest, clock: Clock,
                 grace: float, notice: NoticeCallback) -> None:  # fmt: skip
    """Give running audits the grace period, saying so; then end what still runs.

    Claimed audits not started yet were dropped (StopRequest.ask); the
    deadline is on the engine's clock, like every other.
    """
    running = executor.running()
    if not running:
        notice("stopping: no new claims; no audits running")
    else:
        notice(f"stopping: no new claims; {running} audits running get {grace:g}s "
               "(stop again to end them now)")  # fmt: skip
    began = clock.monotonic()
    deadline = began + grace
    while executor.in_flight() and clock.monotonic() < deadline and not stop.hurried():
        stop.wait_for_hurry(clock, _GRACE_POLL)
    if executor.in_flight():
        notice(f"grace period over: killing {executor.running()} audits still running; "
               "they go back to new")  # fmt: skip
        results.abandon()  # workers waiting for room in the queue stop waiting
        executor.abandon()
    elif running:
        notice(f"grace period over: the running audits finished in "
               f"{clock.monotonic() - began:.1f}s")  # fmt: skip
