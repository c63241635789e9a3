"""The engine's hand-off to its workers: queued audits, at most max_workers drainers."""

from __future__ import annotations

import threading
import time
from typing import Any

import futurist
import pytest

from entropy.clock import FakeClock
from entropy.engine import Engine, EngineSettings


class _Due:
    def __init__(self, row_id: int) -> None:
        self.row_id = row_id
        self.pair = type("P", (), {"audit_name": "a", "host": f"h{row_id}"})()


def _engine(workers: int) -> Engine:
    engine = Engine(None, None, FakeClock(), EngineSettings("e", max_workers=workers))  # type: ignore[arg-type]
    engine._executor = futurist.ThreadPoolExecutor(max_workers=workers)
    return engine


def _wait_for(condition: Any) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "the workers did not finish"
        time.sleep(0.005)


@pytest.mark.parametrize("workers", [1, 3])
def test_every_queued_audit_runs_once_and_never_more_than_max_workers_at_once(
    workers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = _engine(workers)
    ran: list[int] = []
    busy, most = [0], [0]
    lock = threading.Lock()

    def run_one(due: _Due, job: object) -> None:
        with lock:
            busy[0] += 1
            most[0] = max(most[0], busy[0])
        time.sleep(0.001)
        with lock:
            busy[0] -= 1
            ran.append(due.row_id)

    monkeypatch.setattr(engine, "_run_one", run_one)
    for start in range(0, 60, 20):  # batches arrive while earlier ones still run
        engine._start([(_Due(i), None) for i in range(start, start + 20)])  # type: ignore[misc]
    _wait_for(lambda: len(ran) == 60 and engine._drainers == 0)
    assert sorted(ran) == list(range(60))
    assert most[0] <= workers
    engine._executor.shutdown()


def test_a_crashing_audit_does_not_stop_the_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = _engine(1)
    ran: list[int] = []

    def run_one(due: _Due, job: object) -> None:
        if due.row_id == 1:
            raise RuntimeError("a bug")
        ran.append(due.row_id)

    monkeypatch.setattr(engine, "_run_one", run_one)
    engine._running.update({i: _Due(i) for i in range(3)})  # type: ignore[misc]
    engine._start([(_Due(i), None) for i in range(3)])  # type: ignore[misc]
    _wait_for(lambda: engine._drainers == 0)
    assert ran == [0, 2]
    assert 1 not in engine._running  # not left counted as running
    engine._executor.shutdown()


def _recorder(flush_size: int) -> Engine:
    settings = EngineSettings("e", flush_size=flush_size, flush_interval=3600.0)
    return Engine(None, None, FakeClock(), settings)  # type: ignore[arg-type]


def test_after_a_full_batch_the_recorder_writes_the_rest_once_nothing_is_running() -> None:
    engine = _recorder(flush_size=2)
    for i in range(3):
        engine._results.put((_Due(i), None, None))  # type: ignore[arg-type]
    batch: list = []
    assert engine._collect(batch) is False and len(batch) == 2  # full: a burst
    rest: list = []
    # Nothing claimed is left unfinished: no waiting the hour of flush_interval.
    assert engine._collect(rest) is False and len(rest) == 1


def test_the_recorder_waits_for_more_while_claimed_audits_are_unfinished() -> None:
    engine = _recorder(flush_size=2)
    engine._burst = True
    engine._running[7] = _Due(7)  # type: ignore[assignment]
    engine._results.put((_Due(1), None, None))  # type: ignore[arg-type]
    batch: list = []
    stopped: list[bool] = []
    collector = threading.Thread(target=lambda: stopped.append(engine._collect(batch)))
    collector.start()
    collector.join(0.2)
    assert collector.is_alive()  # still waiting: audit 7 may finish any moment
    engine._results.put(None)
    collector.join(10)
    assert stopped == [True] and len(batch) == 1
