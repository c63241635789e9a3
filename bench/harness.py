"""A real engine for the engine scenarios: state synced ahead, then Engine on a thread.

The scenarios run the two halves in two fresh interpreters, as an operator
would run `entropy sync` and then `entropy engine`:

    prep = in_fresh_process(prepare_state, fleet, state_url, max_splay=1)
    got = in_fresh_process(some_measure_function, fleet, state_url, ...)

prepare_state() syncs with `now` set `lead` seconds ahead, so the first runs
fall due only once the engine process has started and done its own first
refresh; the engine's readiness is reported (ready_slack) so a run where it
was not ready in time is visible. EngineHarness drives the real
Engine + Scheduler + SystemClock, notes every recorded result (slot,
started_at) from the on_result callback, and meters the four calls every
audit goes through: claim and record (state store), done (scheduler) and
run_job (runner); IdleMeter times the engine loop waiting while it had
work it could start; stop_s is how long the graceful stop took.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import entropy.runners
from entropy.backends import Backend
from entropy.clock import SystemClock
from entropy.engine import Engine, EngineSettings
from entropy.engine.broker_executor import BrokerExecutor
from entropy.gctuning import collector_paused
from entropy.model import Result
from entropy.scheduler import Scheduler
from entropy.service.compose import gc_tuned

from .common import open_backend, percentile
from .fleet import Fleet

ENGINE_THREAD = "entropy-engine"  # the thread Engine.run() runs on
ROLES = ("engine loop", "workers", "recorder")


def thread_role(thread: threading.Thread) -> str:
    """Which part of the engine a thread is: its main loop, a pool worker, the recorder."""
    if thread.name == ENGINE_THREAD:
        return "engine loop"
    if thread.name == "entropy-recorder":
        return "recorder"
    if type(thread).__name__ == "ThreadWorker":  # futurist's pool threads
        return "workers"
    if thread is threading.main_thread():
        return "bench main"
    return thread.name


def prepare_state(
    fleet: Fleet,
    state_url: str,
    max_splay: int,
    lead: float | None = None,
    window: float | None = None,
) -> dict[str, Any]:
    """Load + sync the fleet so that its first runs start `lead` seconds from now.

    lead None: 4 s + 8 x the load time, enough for this sync to finish and a
    fresh engine process to import, load and re-sync before anything is due. window: also count the
    rows due within that many seconds of the first one.
    """
    backend = open_backend(fleet, state_url, max_splay=max_splay)
    try:
        t0 = time.perf_counter()
        catalog = backend.load()
        load_s = time.perf_counter() - t0
        if lead is None:
            lead = 4.0 + 8.0 * load_s
        now = datetime.now(UTC) + timedelta(seconds=lead)
        t1 = time.perf_counter()
        report = backend.sync(catalog, now)
        sync_s = time.perf_counter() - t1
        # Through the contract, so every state store serves (not timed).
        times = sorted(row.next_run for row in backend.state.schedule_rows())
        first, last, rows = times[0], times[-1], len(times)
        due_in_window = None
        if window is not None:
            due_in_window = sum(1 for t in times if t < first + timedelta(seconds=window))
    finally:
        backend.close()
    return {
        "load_s": load_s,
        "sync_s": sync_s,
        "lead_s": lead,
        "pairs": len(catalog.pairs),
        "rows": rows,
        "added": report.added,
        "first_due": first.timestamp(),
        "last_due": last.timestamp(),
        "due_in_window": due_in_window,
    }


class Meter:
    """Calls, items and seconds spent in one wrapped callable; thread-safe, about 1 us a call.

    keep_last: `last` is what the latest call returned (off by default: it
    would keep that value alive, e.g. a million rows).
    """

    def __init__(
        self, count_items: Callable[..., int] | None = None, keep_last: bool = False
    ) -> None:
        self._keep_last = keep_last
        self.calls = 0
        self.items = 0
        self.seconds = 0.0
        self.longest = 0.0
        self.last: Any = None
        self._count_items = count_items
        self._lock = threading.Lock()

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def metered(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                value = fn(*args, **kwargs)
                if self._keep_last:
                    self.last = value
                return value
            finally:
                elapsed = time.perf_counter() - started
                items = self._count_items(*args, **kwargs) if self._count_items else 1
                with self._lock:
                    self.calls += 1
                    self.items += items
                    self.seconds += elapsed
                    self.longest = max(self.longest, elapsed)

        return metered

    def as_dict(self) -> dict[str, float]:
        return {
            "calls": self.calls,
            "items": self.items,
            "seconds": self.seconds,
            "longest_s": self.longest,
        }


class IdleMeter:
    """Time the engine loop spends blocked in next_batch() while audits wait unclaimed
    and a worker is free: work it could have started. Long waits (>= LONG s) are what
    a missed wake-up looks like: the loop sleeps until its retry timeout instead."""

    LONG = 0.1

    def __init__(self, engine: Engine, scheduler: Scheduler) -> None:
        self.seconds = 0.0
        self.waits = 0
        self.long_waits = 0
        next_batch = scheduler.next_batch
        workers = engine.settings.max_workers

        def metered(timeout: float | None = None, linger: float = 0.0) -> Any:
            if not engine.dispatcher.waiting() or engine.executor.in_flight() >= workers:
                return next_batch(timeout, linger)
            started = time.perf_counter()
            try:
                return next_batch(timeout, linger)
            finally:
                elapsed = time.perf_counter() - started
                self.seconds += elapsed  # one thread only: the engine loop
                self.waits += 1
                self.long_waits += elapsed >= self.LONG

        scheduler.next_batch = metered  # type: ignore[method-assign]

    def as_dict(self) -> dict[str, float]:
        return {"seconds": self.seconds, "waits": self.waits, "long_waits": self.long_waits}


class EngineHarness:
    """Engine + Scheduler + SystemClock on a thread, as `entropy engine` runs them.

    Every recorded result is noted from on_result (called once its batch is
    committed): slot, started_at, outcome, and the wall time it was recorded.
    `mark`: results whose slot is before it are also counted in before_mark.
    """

    def __init__(
        self,
        backend: Backend,
        max_workers: int,
        mark: float | None = None,
        broker: BrokerExecutor | None = None,
    ) -> None:
        """broker: run the audits on workers through it (executor = broker); then the
        added latency of each (published -> recorded, minus the run) is noted too."""
        self.backend = backend
        self.clock = SystemClock()
        self.scheduler = Scheduler(backend, self.clock, around_first_load=collector_paused)
        self.engine = Engine(
            backend,
            self.scheduler,
            self.clock,
            EngineSettings(engine_id="bench-engine", max_workers=max_workers),
            on_result=self._on_result,
            executor=broker,
        )
        self.published: dict[tuple[str, str], float] = {}  # (audit, host) -> wall time
        self.added: list[float] = []  # seconds: published -> recorded, minus the run
        if broker is not None:
            submit = broker.submit

            def noting_submit(work: list) -> None:
                now = time.time()
                for due, _ in work:
                    self.published[due.pair.audit_name, due.pair.host] = now
                submit(work)

            broker.submit = noting_submit  # type: ignore[method-assign]
        self.mark = mark
        self.before_mark = 0
        self.count = 0
        self.slots: list[float] = []
        self.started: list[float] = []
        self.outcomes: Counter[str] = Counter()
        self.last_recorded_at: float | None = None  # wall time, time.time()
        self.ready_at: float | None = None  # the end of the engine's first refresh
        self.refreshes: list[float] = []  # seconds each later refresh took
        self.error: BaseException | None = None
        self.stop_s = 0.0  # how long engine.stop() took to return, grace period included
        self._progress = threading.Event()
        self._thread: threading.Thread | None = None
        self.meters = {
            "claim": Meter(lambda ids, *_a, **_k: len(ids)),
            "record": Meter(lambda records, *_a, **_k: len(records)),
            "done": Meter(),
            "run_job": Meter(),
        }
        state = backend.state
        state.claim = self.meters["claim"].wrap(state.claim)  # type: ignore[method-assign]
        state.record = self.meters["record"].wrap(state.record)  # type: ignore[method-assign]
        self.scheduler.done = self.meters["done"].wrap(self.scheduler.done)  # type: ignore[method-assign]
        self._run_job = entropy.runners.run_job
        self.idle = IdleMeter(self.engine, self.scheduler)
        refresh = self.scheduler.refresh

        def noting_refresh(full: bool | None = None) -> bool:
            started = time.perf_counter()
            ok = refresh(full)
            if self.ready_at is None:
                self.ready_at = time.time()
            else:
                self.refreshes.append(time.perf_counter() - started)
            return ok

        self.scheduler.refresh = noting_refresh  # type: ignore[method-assign]

    def _on_result(self, result: Result) -> None:
        slot = result.slot.timestamp() if result.slot else float("nan")
        self.slots.append(slot)
        self.started.append(result.started_at.timestamp() if result.started_at else float("nan"))
        self.outcomes[result.outcome.value] += 1
        if self.mark is not None and slot < self.mark:
            self.before_mark += 1
        self.count += 1
        self.last_recorded_at = now = time.time()
        published = self.published.pop((result.audit_name, result.host), None)
        if published is not None:
            self.added.append(now - published - result.duration)
        self._progress.set()

    def start(self) -> None:
        # The engine module calls runners.run_job through the package: meter it there.
        entropy.runners.run_job = self.meters["run_job"].wrap(self._run_job)
        self._thread = threading.Thread(target=self._run, name=ENGINE_THREAD, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            # As `entropy engine run` does (engine_gc_tuning, on by default): the bench owns
            # this process, the engine library turns no process-wide knob itself.
            with gc_tuned(True):
                self.engine.run()
        except BaseException as exc:  # reported by wait()
            self.error = exc

    def wait(self, until: Callable[[], bool], stall_after: float, deadline: float) -> str | None:
        """Block until until() holds; a problem if the engine dies, stalls or the deadline passes.

        Stalled: nothing recorded for stall_after seconds. deadline: wall time.
        """
        seen, changed = self.count, time.monotonic()
        while not until():
            self._progress.wait(0.1)
            self._progress.clear()
            if self._thread is None or not self._thread.is_alive():
                return f"the engine stopped by itself: {self.error!r}"
            if self.count != seen:
                seen, changed = self.count, time.monotonic()
            elif time.monotonic() - changed > stall_after and self.ready_at is not None:
                return (
                    f"stalled: nothing recorded for {stall_after:g} s after {self.count} "
                    f"results; engine state then: {self.snapshot()}"
                )
            if time.time() > deadline:
                return f"gave up at the deadline after {self.count} results: {self.snapshot()}"
        return None

    def snapshot(self) -> dict[str, int]:
        """The engine's and scheduler's queues, for a stall report."""
        return {
            "pending_unclaimed": self.engine.dispatcher.waiting(),
            "running_or_unrecorded": self.engine.executor.in_flight(),
            "scheduler_in_flight": self.scheduler.in_flight(),
            "scheduler_on_table": len(self.scheduler),
        }

    def stop(self) -> None:
        started = time.perf_counter()
        self.engine.stop()
        if self._thread is not None:
            self._thread.join(self.engine.settings.shutdown_grace + 30)
        self.stop_s = time.perf_counter() - started
        entropy.runners.run_job = self._run_job
        # Let the pool's threads exit too, so their profiles (if any) are complete.
        for thread in threading.enumerate():
            if thread_role(thread) == "workers":
                thread.join(5)

    def lateness(self) -> list[float]:
        """started_at - slot of every recorded result, in seconds."""
        return [s - d for s, d in zip(self.started, self.slots, strict=True)]

    def metered(self) -> dict[str, dict[str, float]]:
        metered = {name: meter.as_dict() for name, meter in self.meters.items()}
        metered["idle_with_backlog"] = self.idle.as_dict()
        return metered


def meter_refresh(scheduler: Scheduler) -> dict[str, Meter]:
    """Meter the parts of Scheduler.refresh(): load, sync, schedule_rows, rebuild."""
    backend = scheduler.backend
    meters = {name: Meter() for name in ("load", "schedule_rows", "rebuild")}
    meters["sync"] = Meter(keep_last=True)  # its SyncReport
    backend.load = meters["load"].wrap(backend.load)  # type: ignore[method-assign]
    backend.sync = meters["sync"].wrap(backend.sync)  # type: ignore[method-assign]
    state = backend.state
    state.schedule_rows = meters["schedule_rows"].wrap(state.schedule_rows)  # type: ignore[method-assign]
    # The table: built anew (a full refresh) or changed in place (an incremental one).
    scheduler._build = meters["rebuild"].wrap(scheduler._build)  # type: ignore[method-assign]
    scheduler._apply = meters["rebuild"].wrap(scheduler._apply)  # type: ignore[method-assign]
    return meters


def stored_counts(backend: Backend) -> dict[str, Any]:
    """What the state store holds after a run: history rows, and audit rows by status."""
    state = backend.state
    history = len(state.results(limit=10**9))
    by_status = dict(Counter(row.status for row in state.schedule_rows()))
    return {"results_rows": history, "audit_status": by_status}


def engine_run_problems(run: dict[str, Any], prep: dict[str, Any], pairs: int,
                        slack_note: str) -> list[str]:  # fmt: skip
    """What makes any engine run's figures wrong, whatever the scenario measures.

    `slack_note` says what a late start would skew (throughput, lateness).
    """
    problems = []
    if prep["rows"] != pairs:
        problems.append(f"setup synced {prep['rows']} rows, expected {pairs}")
    if run["problem"]:
        problems.append(run["problem"])
    if set(run["outcomes"]) - {"ok"}:
        problems.append(f"outcomes {run['outcomes']}: a no-op audit must be ok")
    if not run["ready_slack_s"] > 0:
        problems.append(
            f"the engine was ready {-run['ready_slack_s']:.2f} s after the first slot "
            f"(raise --lead): {slack_note} its start-up"
        )
    return problems


def lateness_summary(values: list[float]) -> dict[str, float]:
    """p50, p99 and max of lateness values, in milliseconds."""
    return {
        "p50_ms": percentile(values, 50) * 1000,
        "p99_ms": percentile(values, 99) * 1000,
        "max_ms": (max(values) if values else float("nan")) * 1000,
    }


def cpu_by_role(
    before: dict[threading.Thread, float], after: dict[threading.Thread, float]
) -> dict[str, float]:
    """CPU seconds per engine part between two thread_cpu_seconds() samples."""
    used: Counter[str] = Counter()
    for thread, seconds in after.items():
        used[thread_role(thread)] += seconds - before.get(thread, 0.0)
    return {role: used.get(role, 0.0) for role in (*ROLES, "bench main")}


def sleep_until(wall: float) -> None:
    while (left := wall - time.time()) > 0:
        time.sleep(min(left, 0.5))
