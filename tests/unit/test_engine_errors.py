"""The engine and the typed store errors, on the memory store with faults switched on;
and its executor seam, with an executor whose results come back later, elsewhere.

The store is the real reference store; only its claim or record raise the
error a test switches on, the way a database would. What is checked is the
engine's answer: retry what can recover, never retry for ever what cannot,
and hold the workers (logged) when results pile up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from entropy import runners
from entropy.backends.base import Backend, RecordItem
from entropy.backends.impl_dir import DirDefinitions
from entropy.backends.impl_memory import MemoryStateStore, forget
from entropy.clock import FakeClock
from entropy.config import load_conf
from entropy.engine import Engine, EngineSettings, Executor, Outlet, Work, WorkerPool
from entropy.engine.pool import WATCHDOG_MARGIN
from entropy.errors import StorageFailure, StoreError, StoreUnavailable
from entropy.model import Outcome, Result
from entropy.scheduler import Due, Scheduler
from fleets import write_fleet

HOSTS = {f"h{i}.example": {"ip_address": "127.0.0.1", "host_type": "web"} for i in range(3)}
SCRIPTS = {"check": {"kind": "python", "function": "os:getpid"}}
SCHEDULES = {"a.yaml": {"web": {"audits": {"check": {"run_every": "10s"}}}}}


class FaultyStore(MemoryStateStore):
    """The memory store, raising `fault` from claim() or record() while it is set."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.claim_fault: Exception | None = None
        self.record_fault: StoreError | None = None
        self.record_calls = 0

    def claim(self, *args: Any, **kwargs: Any) -> dict[int, datetime]:
        if self.claim_fault is not None:
            raise self.claim_fault
        return super().claim(*args, **kwargs)

    def record(self, records: list[RecordItem], engine_id: str) -> int:
        self.record_calls += 1
        if self.record_fault is not None:
            raise self.record_fault
        return super().record(records, engine_id)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[FaultyStore]:
    made = FaultyStore(f"memory:{tmp_path}")
    yield made
    forget(str(tmp_path))


def make_engine(
    tmp_path: Path,
    store: FaultyStore,
    clock: FakeClock,
    inline: bool = True,
    executor: Executor | None = None,
    **settings: Any,
) -> Engine:
    fleet = write_fleet("dir", tmp_path / "fleet", hosts=HOSTS, scripts=SCRIPTS,
                        schedules=SCHEDULES)  # fmt: skip
    conf = load_conf()
    conf.set_override("max_splay", 0)
    backend = Backend(conf, DirDefinitions(conf, str(fleet)), state=store)
    scheduler = Scheduler(backend, clock, refresh_in_background=False)
    scheduler.refresh()
    made = EngineSettings("e1", **settings)
    # inline: the audits run in the test's thread, in order
    pool = WorkerPool(made.max_workers, clock, "e1", inline=inline)
    return Engine(backend, scheduler, clock, made, executor=executor or pool)


def run_due(engine: Engine, clock: FakeClock, record: bool = True) -> list[Due]:
    """Move to the next slot and run one pass of the engine there."""
    clock.set(engine.scheduler.next_due())
    return engine.run_once(record=record)


def test_a_transient_claim_error_keeps_the_audits_waiting(
    tmp_path: Path, store: FaultyStore, clock: FakeClock
) -> None:
    engine = make_engine(tmp_path, store, clock)
    store.claim_fault = StoreUnavailable("state store memory: connection lost")
    batch = run_due(engine, clock)
    assert len(batch) == 3 and engine.dispatcher.waiting() == 3 and engine.recorded == 0
    store.claim_fault = None
    assert engine.run_once() == []  # the loop's next try: nothing new is due, the 3 wait
    assert engine.dispatcher.waiting() == 0 and engine.recorded == 3


def test_a_permanent_claim_error_skips_to_the_next_slot_and_says_so_once(
    tmp_path: Path, store: FaultyStore, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    engine = make_engine(tmp_path, store, clock)
    store.claim_fault = StorageFailure("state store memory: no such column: lease_until")
    first = run_due(engine, clock)
    assert engine.dispatcher.waiting() == 0  # not retried as fast as the loop turns
    assert engine.scheduler.next_due() == first[0].slot + timedelta(seconds=10)  # next slot
    run_due(engine, clock)  # the next slot: refused again, not logged again within a minute
    refused = [r for r in caplog.records if "refuses claims" in r.getMessage()]
    assert len(refused) == 1 and "3 audits skip to their next slot" in refused[0].getMessage()
    store.claim_fault = None
    assert len(run_due(engine, clock)) == 3 and engine.recorded == 3


def test_a_claim_that_raises_a_bug_leaves_the_engine_running(
    tmp_path: Path, store: FaultyStore, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    engine = make_engine(tmp_path, store, clock)
    store.claim_fault = KeyError("next_run")  # say, a reply without a field it should have
    first = run_due(engine, clock)  # returns: the engine loop would go on
    assert "claiming 3 audits failed" in caplog.text and "KeyError" in caplog.text
    assert engine.dispatcher.waiting() == 0
    assert engine.scheduler.next_due() == first[0].slot + timedelta(seconds=10)


def test_results_wait_in_a_bounded_queue_and_the_workers_pause_when_it_is_full(
    tmp_path: Path, store: FaultyStore, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="entropy")
    engine = make_engine(tmp_path, store, clock, result_queue_size=4, flush_size=2,
                         flush_interval=0.01)  # fmt: skip
    due = run_due(engine, clock, record=False)[0]  # one real claim, to have a row to record over
    store.record_fault = StoreUnavailable("state store memory: connection lost")
    engine.recorder.start()

    def result(n: int) -> tuple[Due, Result, datetime]:
        now = clock.now()
        done = Result(Outcome.OK, f"#{n}", started_at=now, finished_at=now, slot=due.slot,
                      engine_id="e1", audit_name="check", host=due.pair.host)  # fmt: skip
        return due, done, now

    worker = threading.Thread(target=lambda: [engine.results.put(result(n)) for n in range(8)])
    worker.start()
    deadline = time.monotonic() + 10
    while "result queue full" not in caplog.text:
        assert time.monotonic() < deadline, "no log line said the queue was full"
        time.sleep(0.01)
    assert worker.is_alive() and engine.results.waiting() <= 4  # held, not growing
    assert engine.dropped == 0  # a transient error drops nothing
    store.record_fault = None
    worker.join(20)
    assert not worker.is_alive()
    assert "the result queue has room again" in caplog.text
    assert engine.recorder.close(20)
    assert (engine.recorded, engine.dropped) == (3 + 8, 0)


def test_an_audit_stuck_past_its_timeout_is_recorded_as_timeout_once_the_clock_says_so(
    tmp_path: Path, store: FaultyStore, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The watchdog's deadlines are on the engine's clock (Clock.monotonic)."""
    engine = make_engine(tmp_path, store, clock, inline=False, default_timeout=5)
    release = threading.Event()

    def stuck(job: Any, clock: FakeClock) -> Result:  # a python audit stuck in a call
        release.wait(30)
        now = clock.now()
        return Result(Outcome.OK, "late", started_at=now, finished_at=now)

    monkeypatch.setattr(runners, "run_job", stuck)
    try:
        assert len(run_due(engine, clock, record=False)) == 3
        wait_for(lambda: engine.executor.running() == 3)
        clock.advance(5 + WATCHDOG_MARGIN)  # at the deadline, not past it
        assert engine.executor.expire_overdue() == 0
        assert (engine.executor.in_flight(), engine.stuck) == (3, 0)
        clock.advance(0.1)
        wait_for(lambda: engine.results.waiting() == 3)  # the watchdog's next look
        engine.recorder.flush()
        stored = store.results(limit=10)
        assert [r.outcome for r in stored] == [Outcome.TIMEOUT] * 3
        assert all("still running after its 5s timeout" in r.summary for r in stored)
        assert (engine.recorded, engine.stuck, engine.owned()) == (3, 3, [])
        release.set()  # the calls return at last: nothing more is recorded
        wait_for(lambda: engine.stuck == 0)
        assert engine.results.waiting() == 0
    finally:
        release.set()
        engine.executor.shutdown()


def wait_for(condition: Any) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


class Remote:
    """An executor as a broker's is: submit() only sends; each result comes back later, on
    a thread of its own (reply()), with its slot, engine, audit and host set."""

    stuck = 0

    def __init__(self) -> None:
        self.out: dict[int, Work] = {}
        self.done = 0
        self.outlet: Outlet | None = None

    def start(self, outlet: Outlet) -> None:
        self.outlet = outlet

    def submit(self, work: list[Work]) -> None:
        self.out.update((due.row_id, (due, job)) for due, job in work)

    def in_flight(self) -> int:
        return len(self.out)

    def holds(self, row_id: int) -> bool:
        return row_id in self.out

    def completed(self) -> int:
        return self.done

    def running(self) -> int:
        return len(self.out)

    def stop_starting(self) -> None: ...

    def abandon(self) -> None: ...

    def shutdown(self) -> None: ...

    def reply(self, clock: FakeClock) -> None:
        """Every result, from another thread (as a broker client's callback would)."""

        def answer() -> None:
            assert self.outlet is not None
            for row_id, (due, job) in list(self.out.items()):
                now = clock.now()
                result = Result(Outcome.OK, "remote", started_at=now, finished_at=now,
                                slot=due.slot, engine_id="e1", audit_name=job.audit_name,
                                host=job.host.name)  # fmt: skip
                del self.out[row_id]
                self.done += 1
                self.outlet.finished(due, result)

        thread = threading.Thread(target=answer)
        thread.start()
        thread.join(10)


def test_another_executor_plugs_into_the_seam_leases_renewed_results_recorded(
    tmp_path: Path, store: FaultyStore, clock: FakeClock
) -> None:
    remote = Remote()
    engine = make_engine(tmp_path, store, clock, executor=remote, lease=30,
                         heartbeat_interval=5, max_clock_skew=2)  # fmt: skip
    batch = run_due(engine, clock, record=False)
    assert len(batch) == 3 and remote.in_flight() == 3
    assert sorted(engine.owned()) == sorted(due.row_id for due in batch)
    for _ in range(12):  # a minute out there: the heartbeat keeps the claims
        clock.advance(5)
        engine.heartbeat.beat()
    assert engine.heartbeat.recovered == 0
    assert {row.status.value for row in store.audits()} == {"processing"}
    remote.reply(clock)
    engine.recorder.flush()  # the same recorder as the pool's results go to
    assert (engine.recorded, engine.owned(), remote.in_flight()) == (3, [], 0)
    stored = store.results(limit=10)
    assert [(r.summary, r.engine_id) for r in stored] == [("remote", "e1")] * 3
    assert {row.status.value for row in store.audits()} == {"processed"}
