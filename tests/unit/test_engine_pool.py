"""The engine's parts alone: the worker pool and its watchdog, the result queue.

The pool is driven through the executor seam (start, submit, the outlet it
hands outcomes to); runners.run_job is replaced by the audit each test
needs (the bench meters it the same way). The watchdog's deadlines are on
the fake clock: a test moves it past them.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from entropy import runners
from entropy.clock import FakeClock
from entropy.engine import WorkerPool
from entropy.engine.pool import CLAIM_LINGER, WATCHDOG_MARGIN
from entropy.engine.results import ResultQueue
from entropy.model import Outcome, Result

SLOT = datetime(2026, 1, 1, tzinfo=UTC)


def due(row_id: int) -> Any:
    return SimpleNamespace(row_id=row_id, slot=SLOT,
                           pair=SimpleNamespace(audit_name="a", host=f"h{row_id}"))  # fmt: skip


def job(timeout: float = 10.0) -> Any:
    return SimpleNamespace(audit_name="a", timeout=timeout, host=SimpleNamespace(name="h"),
                           script=SimpleNamespace(kind="python"))  # fmt: skip


def ok(clock: FakeClock) -> Result:
    return Result(Outcome.OK, "fine", started_at=clock.now(), finished_at=clock.now())


class Outlet:
    """Collects what the pool hands over, as the engine's outlet would record it."""

    def __init__(self) -> None:
        self.results: list[tuple[int, Result]] = []
        self.lost: list[int] = []
        self.lock = threading.Lock()

    def finished(self, d: Any, result: Result) -> None:
        with self.lock:
            self.results.append((d.row_id, result))

    def given_up(self, d: Any) -> None:
        with self.lock:
            self.lost.append(d.row_id)


def started(pool: WorkerPool) -> Outlet:
    outlet = Outlet()
    pool.start(outlet)
    return outlet


def wait_for(condition: Any) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "the workers did not finish"
        time.sleep(0.005)


@pytest.mark.parametrize("workers", [1, 3])
def test_every_queued_audit_runs_once_and_never_more_than_max_workers_at_once(
    workers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    pool = WorkerPool(workers, clock, "e")
    busy, most = [0], [0]
    lock = threading.Lock()

    def run_job(job: Any, clock: FakeClock) -> Result:
        with lock:
            busy[0] += 1
            most[0] = max(most[0], busy[0])
        time.sleep(0.001)
        with lock:
            busy[0] -= 1
        return ok(clock)

    monkeypatch.setattr(runners, "run_job", run_job)
    outlet = started(pool)
    try:
        for start in range(0, 60, 20):  # batches arrive while earlier ones still run
            pool.submit([(due(i), job()) for i in range(start, start + 20)])
        wait_for(lambda: len(outlet.results) == 60 and pool.in_flight() == 0)
    finally:
        pool.shutdown()
    assert sorted(row for row, _ in outlet.results) == list(range(60))
    assert most[0] <= workers
    assert pool.completed() == 60 and pool.running() == 0 and pool.stuck == 0
    # Each result says where it belongs: slot, engine, audit, host.
    row, result = outlet.results[0]
    assert (result.slot, result.engine_id, result.host) == (SLOT, "e", f"h{row}")


def test_a_crashing_audit_does_not_stop_the_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    pool = WorkerPool(1, clock, "e")

    def run_job(job: Any, clock: FakeClock) -> Result:
        if job.timeout == 1:
            raise RuntimeError("a bug")
        return ok(clock)

    monkeypatch.setattr(runners, "run_job", run_job)
    outlet = started(pool)
    try:
        pool.submit([(due(0), job()), (due(1), job(timeout=1)), (due(2), job())])
        wait_for(lambda: pool.in_flight() == 0 and len(outlet.results) == 2)
    finally:
        pool.shutdown()
    assert [row for row, _ in outlet.results] == [0, 2]
    assert outlet.lost == [1]  # no result comes: its lease is let go
    assert not pool.holds(1)  # not left counted as in flight


def test_the_watchdog_gives_up_on_an_audit_past_its_timeout_on_the_engine_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock()
    pool = WorkerPool(2, clock, "e", inline=False)
    release, inside = threading.Event(), threading.Event()

    def run_job(job: Any, clock: FakeClock) -> Result:
        inside.set()
        release.wait(10)  # a python audit stuck in a call
        return ok(clock)

    monkeypatch.setattr(runners, "run_job", run_job)
    outlet = started(pool)
    try:
        pool.submit([(due(7), job(timeout=5))])
        assert inside.wait(10)
        assert pool.expire_overdue() == 0 and pool.running() == 1
        clock.advance(5 + WATCHDOG_MARGIN)  # at the deadline: not past it
        assert pool.expire_overdue() == 0
        clock.advance(0.1)
        assert pool.expire_overdue() == 1
        [(row, result)] = outlet.results
        assert (row, result.outcome, result.engine_id) == (7, Outcome.TIMEOUT, "e")
        assert "still running after its 5s timeout" in result.summary
        assert (pool.in_flight(), pool.stuck) == (0, 1)  # the row is free, the thread is not
        release.set()  # the call returns at last: its result is not handed over again
        wait_for(lambda: pool.stuck == 0)
        assert len(outlet.results) == 1
    finally:
        release.set()
        pool.shutdown()


def test_an_outlet_failing_on_one_timeout_still_hands_over_the_others_and_lets_it_go(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock()
    pool = WorkerPool(2, clock, "e", inline=False)
    release, inside = threading.Event(), threading.Semaphore(0)

    def run_job(job: Any, clock: FakeClock) -> Result:
        inside.release()
        release.wait(10)
        return ok(clock)

    monkeypatch.setattr(runners, "run_job", run_job)
    outlet = started(pool)
    handed = outlet.finished

    def finished(d: Any, result: Result) -> None:
        if d.row_id == 7:
            raise RuntimeError("a bug in the outlet")
        handed(d, result)

    outlet.finished = finished  # type: ignore[method-assign]
    try:
        pool.submit([(due(7), job(timeout=5)), (due(8), job(timeout=5))])
        assert inside.acquire(timeout=10) and inside.acquire(timeout=10)
        clock.advance(5 + WATCHDOG_MARGIN + 0.1)
        assert pool.expire_overdue() == 2
        assert [row for row, _ in outlet.results] == [8]
        assert outlet.lost == [7]  # not left held (its lease renewed) for ever
    finally:
        release.set()
        pool.shutdown()


def test_after_stop_starting_queued_audits_are_dropped_not_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock()
    pool = WorkerPool(1, clock, "e", inline=True)
    ran: list[int] = []
    monkeypatch.setattr(runners, "run_job", lambda job, clock: ran.append(1) or ok(clock))
    outlet = started(pool)
    pool.stop_starting()
    pool.submit([(due(1), job()), (due(2), job())])
    assert (ran, outlet.results, outlet.lost, pool.in_flight()) == ([], [], [], 0)


def test_after_a_full_batch_the_recorder_gets_the_rest_once_nothing_is_running() -> None:
    results = ResultQueue(size=10)
    for i in range(3):
        results.put((due(i), None, None))  # type: ignore[arg-type]
    batch: list = []
    idle = lambda: True  # noqa: E731
    assert results.collect(batch, limit=2, interval=3600.0, idle=idle) is False
    assert len(batch) == 2  # full: a burst
    rest: list = []
    # Nothing claimed is left unfinished: no waiting the hour of the interval.
    assert results.collect(rest, limit=2, interval=3600.0, idle=idle) is False and len(rest) == 1


def test_the_recorder_waits_for_more_while_claimed_audits_are_unfinished() -> None:
    results = ResultQueue(size=10)
    for i in range(3):
        results.put((due(i), None, None))  # type: ignore[arg-type]
    results.collect([], limit=2, interval=3600.0, idle=lambda: False)  # a burst
    batch: list = []
    stopped: list[bool] = []
    collector = threading.Thread(
        target=lambda: stopped.append(results.collect(batch, 2, 3600.0, idle=lambda: False))
    )
    collector.start()
    collector.join(0.2)
    assert collector.is_alive()  # still waiting: an audit may finish any moment
    results.close()
    collector.join(10)
    assert stopped == [True] and len(batch) == 1


def test_the_pool_has_due_audits_wait_a_few_ms_to_be_claimed_together() -> None:
    """At a steady rate, claims of one or two rows were most of the engine's CPU; the engine
    lingers this long (scheduler.next_batch, tested there), a lateness of ms at most."""
    pool = WorkerPool(2, FakeClock(), "e")
    assert pool.claim_linger == CLAIM_LINGER
    assert 0 < CLAIM_LINGER <= 0.005


def test_the_fake_clocks_monotonic_moves_with_it_and_never_back() -> None:
    clock = FakeClock(SLOT)
    start = clock.monotonic()
    clock.advance(2.5)
    clock.wait(threading.Event(), 1.5)  # waiting on a fake clock moves it
    assert clock.monotonic() == start + 4
    clock.set(SLOT)  # back in time: now() goes back, monotonic() stays
    assert (clock.now(), clock.monotonic()) == (SLOT, start + 4)
    clock.set(SLOT.replace(minute=1))
    assert clock.monotonic() == start + 4 + 60
