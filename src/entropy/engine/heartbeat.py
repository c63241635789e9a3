"""The engine's presence in the state store: its registry row, and the heartbeat that keeps it."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from .. import __version__
from ..backends import Backend
from ..backends.base import EngineRecord, EngineRegistry
from ..clock import Clock
from ..errors import BackendError, StoreConflict, StoreUnavailable
from ..scheduler import Scheduler
from .leases import Leases
from .settings import EngineSettings

LOG = logging.getLogger(__name__)

_REPEAT_LOG = 60.0  # seconds between repeats of a lasting permanent error in the log


class Registration:
    """This engine's row in the engines registry: registered at start, stopped at the end."""

    def __init__(self, backend: Backend, settings: EngineSettings) -> None:
        self.backend = backend
        self.settings = settings

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

    def register(self, now: datetime) -> None:
        """Refused (raises) when a live engine has our id, or on a SQLite file another uses."""
        self.registry.register(self.record_of_me(now), now, self.dead_after)

    def stopped(self, now: datetime) -> None:
        try:
            self.registry.stopped(self.settings.engine_id, now)
        except BackendError as exc:
            LOG.error("cannot mark this engine stopped in the registry: %s", exc)

    def forget_before(self, before: datetime) -> None:
        try:
            self.registry.forget_before(before)
        except BackendError as exc:
            LOG.warning("cannot prune the engines registry: %s", exc)


class Heartbeat:
    """Every heartbeat_interval: say we live, renew our leases, take back expired ones.

    - The engine's row in the registry gets heartbeat_at = now; a stop asked
      through the store (`entropy engine stop`) calls on_stop_asked here.
    - The leases of what this engine holds are set to now + lease, so an
      audit that runs longer than a lease keeps its claim while we live.
    - Rows whose lease ran out (plus max_clock_skew: leases are set on
      another engine's clock) go back to `new` with attempts + 1, and the
      scheduler re-reads the rows so they run within this heartbeat, not at
      whatever later slot its table held for them.

    A database error is logged once and retried at the next beat: the
    engine carries on, and its leases are long enough to outlast a restart.
    Its own state (failures, recovered) is touched by its thread only, or by
    a test calling beat() with the thread not started.
    """

    def __init__(self, backend: Backend, registration: Registration, clock: Clock,
                 leases: Leases, scheduler: Scheduler,
                 on_stop_asked: Callable[[], None]) -> None:  # fmt: skip
        self.backend = backend
        self.registration = registration
        self.settings = registration.settings
        self.clock = clock
        self.leases = leases
        self.scheduler = scheduler
        self.on_stop_asked = on_stop_asked  # idempotent: called at every beat that sees a stop
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failures = 0
        self.recovered = 0
        # A lasting permanent error is logged again every _REPEAT_LOG seconds of beats.
        self._repeat = max(1, int(_REPEAT_LOG / max(self.settings.heartbeat_interval, 0.1)))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="entropy-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        # Real time, not the engine's clock: a beat's pace is about liveness, not schedule.
        while not self._stop.wait(self.settings.heartbeat_interval):
            try:
                self.beat()
            except Exception:  # a bug, not the database: the beats must go on
                LOG.exception("heartbeat failed")

    def beat(self) -> None:
        """One heartbeat; tests on a fake clock call this directly."""
        settings, state = self.settings, self.backend.state
        now = self.clock.now()
        me = self.registration
        try:
            stop_asked = me.registry.heartbeat(me.record_of_me(now), now)
            state.renew_leases(
                settings.engine_id, self.leases.held(), now + timedelta(seconds=settings.lease)
            )
            taken = state.take_back_expired(now, settings.max_clock_skew)
        except BackendError as exc:
            lasting = not isinstance(exc, (StoreUnavailable, StoreConflict))
            if not self.failures or (lasting and self.failures % self._repeat == 0):
                LOG.error("heartbeat failed, will retry: %s", exc)
            self.failures += 1
            return
        if self.failures:
            LOG.warning("heartbeat back after %d failed tries", self.failures)
            self.failures = 0
        if taken:
            self.recovered += len(taken)
            LOG.warning("took back %d audits whose engine's lease ran out", len(taken))
            try:  # only those rows are read again
                self.scheduler.retime(taken)
            except BackendError as exc:
                LOG.error("could not re-read the rows taken back, refreshing instead: %s", exc)
                self.scheduler.request_refresh()
        if stop_asked:
            self.on_stop_asked()
