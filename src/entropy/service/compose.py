"""The composition root of an engine: built from the config, run as the process's main job.

Here, and nowhere below, live the process-wide decisions: the garbage
collector's knobs (engine_gc_tuning), the signal handlers (see signals) and
leaving the process without joining threads that may never return.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import start_http_server

from .. import gctuning
from ..broker.connection import describe
from ..engine import Engine, EngineMetrics, EngineSettings
from ..engine.broker_executor import BrokerExecutor, BrokerSettings
from ..errors import EntropyError
from ..model import RepairRun, Result
from ..repairs import Repairer
from ..scheduler import Scheduler
from .addresses import parse_bind
from .brokerconf import broker_of, uses_broker
from .runtime import Runtime
from .signals import stop_on_signals

LOG = logging.getLogger(__name__)


def broker_executor(rt: Runtime, settings: EngineSettings) -> BrokerExecutor | None:
    """With [executor] executor = broker, what runs the engine's audits on workers."""
    if not uses_broker(rt):
        return None
    url, topology = broker_of(rt)
    return BrokerExecutor(BrokerSettings(
        url, topology, settings.engine_id, settings.lease,
        max_in_flight=int(rt.option("max_in_flight", "executor")),
        watch_interval=max(settings.heartbeat_interval, 1.0),
    ))  # fmt: skip


@dataclass(frozen=True, slots=True)
class EngineReport:
    """How an engine run ended."""

    engine_id: str
    recorded: int  # results stored
    dropped: int  # results the store refused for good (each one is in the log)
    drop_reason: str
    stuck: int  # audits still stuck in their workers

    @property
    def exit_status(self) -> int:
        return 1 if self.dropped else 0


class EngineProcess:
    """An engine with its scheduler, repairer and events, made from a Runtime's config."""

    def __init__(
        self,
        rt: Runtime,
        max_workers: int | None = None,
        on_result: Callable[[Result], None] | None = None,
        on_repair: Callable[[RepairRun], None] | None = None,
        on_notice: Callable[[str], None] | None = None,
        first_load_progress: bool = False,
        metrics_port: str | None = None,
    ) -> None:
        """on_notice: where the lines an operator watches for go (a stop, its grace period);
        first_load_progress: a progress bar on a terminal while the first load runs;
        metrics_port: [HOST:]PORT to serve the engine's own metrics on (HOST: 127.0.0.1)."""
        self.rt = rt
        self.on_notice = on_notice or LOG.warning
        backend = rt.backend  # first: missing definitions are the first thing to say
        self.settings = settings = EngineSettings.from_conf(rt.conf, max_workers)
        scheduler = Scheduler(backend, rt.clock, rt.option("refresh_interval"),
                              actor=f"engine {settings.engine_id}",
                              full_resync_interval=rt.option("full_resync_interval"),
                              first_load_progress=first_load_progress,
                              around_first_load=gctuning.collector_paused)  # fmt: skip
        self.metrics_at = None if metrics_port is None else parse_bind(
            metrics_port, "--metrics-port", default_host="127.0.0.1")  # fmt: skip
        self.metrics = EngineMetrics() if self.metrics_at else None
        self.events = rt.events()
        broker = broker_executor(rt, settings)
        # In broker mode repairs and their verifies run on a worker of the host's zone too.
        repairer = Repairer(
            backend, rt.clock, settings.engine_id, settings.default_timeout, self.events,
            on_repair=on_repair, workers=rt.option("repair_workers"),
            runner=None if broker is None else broker.run,
            run_margin=0.0 if broker is None else broker.wait_margin(),
        )  # fmt: skip
        self.broker = broker
        self.engine = Engine(
            backend, scheduler, rt.clock, settings, on_result=on_result, repairer=repairer,
            events=self.events, on_notice=self.on_notice, executor=broker,
            metrics=self.metrics,
        )  # fmt: skip
        if self.metrics is not None:  # the queue depths, read at each scrape
            e = self.engine
            self.metrics.watch(e.dispatcher, e.executor, e.results)

    def executor_description(self) -> str:
        """Where its audits run, for the start-up line."""
        if self.broker is None:
            return f"{self.settings.max_workers} workers"
        s = self.broker.settings
        return (f"audits through {describe(s.url)} (prefix {s.topology.prefix}, "
                f"{s.max_in_flight} in flight at most)")  # fmt: skip

    def run(
        self, until: datetime | None = None, on_start: Callable[[], None] | None = None
    ) -> EngineReport:
        """Run until stopped (a signal, `entropy engine stop`) or `until`.

        Signals are taken over first (see signals.stop_on_signals), then
        on_start is called (say, to announce the engine), then it runs with
        the GC knobs the config asks for, restored after.
        """
        # A third signal leaves at once, closing nothing: the store may be mid-call.
        stop_on_signals(self.engine, self.on_notice, lambda status: leave_now(None, status))
        with serving(self.metrics, self.metrics_at):
            if on_start is not None:
                on_start()
            with gc_tuned(bool(self.rt.option("engine_gc_tuning"))):
                self.engine.run(until=until)
        e = self.engine
        return EngineReport(self.settings.engine_id, e.recorded, e.dropped, e.drop_reason, e.stuck)

    def exit_if_stuck(self, report: EngineReport) -> None:
        """Audits stuck in their workers never return, and futurist joins its workers at
        exit: leave without them (exit status report.exit_status). Else return."""
        if report.stuck:
            leave_now(self.rt, report.exit_status)


@contextlib.contextmanager
def serving(metrics: EngineMetrics | None, at: tuple[str, int] | None) -> Iterator[None]:
    """The engine's metrics on HTTP at `at` (a thread of prometheus_client's) while it runs."""
    if metrics is None or at is None:
        yield
        return
    try:
        server, thread = start_http_server(at[1], at[0], registry=metrics.registry)
    except OSError as exc:
        raise EntropyError(f"--metrics-port: cannot listen on {at[0]}:{at[1]}: {exc}") from None
    try:
        yield
    finally:
        server.shutdown()
        thread.join(5)


@contextlib.contextmanager
def gc_tuned(enabled: bool) -> Iterator[None]:
    """Within it, the engine's collector thresholds (gctuning.tune_for_engine) when enabled."""
    if not enabled:
        yield
        return
    previous = gc.get_threshold()
    gctuning.tune_for_engine()
    try:
        yield
    finally:
        gc.set_threshold(*previous)


def leave_now(rt: Runtime | None, status: int) -> None:
    """Exit without joining threads that may never return (stuck audits)."""
    if rt is not None:
        rt.close()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # from a signal handler, mid-write perhaps
            stream.flush()
    os._exit(status)
