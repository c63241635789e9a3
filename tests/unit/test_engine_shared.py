"""Two Engine objects with their own time tables on one shared store, on a fake clock.

The engines' claim and heartbeat logic, step by step: each step is one pass
of Engine.run (Engine.run_once: take the due batch, claim, run, record),
with the pool run inline so the test decides who goes first. No test sleeps;
the stores are the memory reference and the real shared ones (PostgreSQL,
MariaDB, MongoDB).
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from entropy.backends import Backend, fetch
from entropy.clock import FakeClock
from entropy.config import load_conf
from entropy.engine import Engine, EngineSettings, WorkerPool
from entropy.model import Result, Status
from entropy.scheduler import Scheduler
from fleets import write_fleet

HOSTS = {f"h{i}.example": {"ip_address": "127.0.0.1", "host_type": "web"} for i in range(3)}
SCRIPTS = {"check": {"kind": "command", "command": ["true"]}}
SCHEDULES = {"a.yaml": {"web": {"audits": {"check": {"run_every": "2s"}}}}}


@pytest.fixture(
    params=[
        "memory",
        pytest.param("postgresql", marks=pytest.mark.postgresql),
        pytest.param("mysql", marks=pytest.mark.mysql),
        pytest.param("mongodb", marks=pytest.mark.mongodb),
    ]
)
def make_engine(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Iterator:
    fleet = write_fleet("dir", tmp_path / "fleet", hosts=HOSTS, scripts=SCRIPTS,
                        schedules=SCHEDULES)  # fmt: skip
    url = request.getfixturevalue(f"{request.param}_url")
    opened: list[Backend] = []

    def make(engine_id: str, own_clock: FakeClock | None = None, **settings: float) -> Engine:
        engine_clock = own_clock or clock
        conf = load_conf()
        conf.set_override("state_connection", url, group="dir")
        conf.set_override("max_splay", 0)
        backend = fetch(conf, f"dir:{fleet}")
        opened.append(backend)
        scheduler = Scheduler(backend, engine_clock, refresh_in_background=False)
        scheduler.refresh()
        made = EngineSettings(engine_id, **settings)
        inline = WorkerPool(made.max_workers, engine_clock, engine_id, inline=True)  # test's order
        return Engine(backend, scheduler, engine_clock, made, executor=inline)

    yield make
    for backend in opened:
        backend.close()


def step(engine: Engine) -> None:
    """One pass of the engine's loop, then its recorder writes what finished."""
    engine.run_once()


def history(engine: Engine) -> list[Result]:
    return engine.backend.state.results(limit=10**6)


def test_a_lagging_table_runs_the_slot_that_is_due_never_one_already_run(
    make_engine, clock: FakeClock
) -> None:
    a, b = make_engine("a"), make_engine("b")
    clock.set(max(r.next_run for r in a.backend.audits()))
    first = clock.now()
    step(a)  # a runs the first slot of every pair, stores first + 2 s
    assert len(history(a)) == 3
    clock.advance(0.5)
    step(b)  # b's table still says `first`: its claims fail, it reads first + 2 s
    assert len(history(b)) == 3
    assert b.scheduler.next_due() == first + timedelta(seconds=2)
    clock.advance(1.6)
    step(b)  # now b goes first, for first + 2 s
    step(a)  # a's table says first + 2 s too: b has it, a moves on to first + 4 s
    assert a.scheduler.next_due() == first + timedelta(seconds=4)
    slots = Counter((r.host, r.slot, r.engine_id) for r in history(a))
    assert sorted({(slot - first).total_seconds() for _, slot, _ in slots}) == [0.0, 2.0]
    assert {engine for *_, engine in slots} == {"a", "b"}
    assert max(slots.values()) == 1


def test_two_engines_in_random_order_run_every_slot_once(make_engine, clock: FakeClock) -> None:
    a, b = make_engine("a"), make_engine("b")
    clock.set(max(r.next_run for r in a.backend.audits()))
    first = clock.now()
    shuffle = random.Random(7)
    for _ in range(60):
        clock.advance(shuffle.uniform(0.2, 1.5))
        for engine in shuffle.sample([a, b], 2):
            step(engine)
    end = clock.now()
    found = Counter((r.host, r.slot) for r in history(a))
    assert max(found.values()) == 1  # no slot twice
    for host in HOSTS:
        slots = sorted(slot for h, slot in found if h == host)
        assert slots[0] == first and slots[-1] >= end - timedelta(seconds=2)
        assert {(y - x).total_seconds() for x, y in itertools.pairwise(slots)} == {2.0}


def test_a_heartbeat_renews_what_it_holds_and_takes_back_what_a_dead_engine_held(
    make_engine, clock: FakeClock
) -> None:
    live = make_engine("live", lease=30, heartbeat_interval=5, max_clock_skew=2)
    state = live.backend.state
    clock.set(max(r.next_run for r in live.backend.audits()))
    (mine, theirs, *_) = [r.id for r in live.backend.audits()]
    live.registry.register(live.record_of_me(clock.now()), clock.now(), live.dead_after)
    state.claim([mine], "live", clock.now(), clock.now() + timedelta(seconds=30))
    live.leases.hold([mine])  # as the dispatcher does for what it claimed
    state.claim([theirs], "dead", clock.now(), clock.now() + timedelta(seconds=30))
    for due in live.scheduler.next_batch(timeout=0):  # as a lost claim does: its next slot
        live.scheduler.done(due, clock.now())
    for _ in range(6):  # 30 s of heartbeats
        clock.advance(5)
        live.heartbeat.beat()
    rows = {r.id: r for r in live.backend.audits()}
    assert rows[mine].lease_until == clock.now() + timedelta(seconds=30)
    assert rows[theirs].status is Status.PROCESSING  # 30 s: expired, but not by 2 s of skew
    clock.advance(5)
    live.heartbeat.beat()
    rows = {r.id: r for r in live.backend.audits()}
    assert (rows[theirs].status, rows[theirs].attempts) == (Status.NEW, 1)
    assert rows[mine].status is Status.PROCESSING
    assert live.heartbeat.recovered == 1
    # The taken-back row runs now, at the slot it was claimed for, not at its next slot; only
    # its row was read again (no refresh).
    assert not live.scheduler._refresh_requested
    live.scheduler.next_batch(timeout=0)  # the wake-up retime() gave
    slots = {due.row_id: due.slot for due in live.scheduler.next_batch(timeout=0)}
    assert slots[theirs] == rows[theirs].next_run


def test_a_stop_asked_through_the_store_stops_the_engine_at_its_next_heartbeat(
    make_engine, clock: FakeClock
) -> None:
    engine = make_engine("e1")
    engine.registry.register(engine.record_of_me(clock.now()), clock.now(), engine.dead_after)
    engine.heartbeat.beat()
    assert not engine.stopping
    other = engine.backend.state.engine_registry()  # e.g. `entropy engine stop` elsewhere
    assert other.request_stop("e1", clock.now(), engine.dead_after) == ["e1"]
    clock.advance(5)
    engine.heartbeat.beat()
    assert engine.stopping


def test_clocks_skewed_within_the_bound_run_no_slot_twice_and_take_no_live_lease(
    make_engine, clock: FakeClock
) -> None:
    """Engine `fast` reads 1.9 s later than `slow` (max_clock_skew 2 s)."""
    fast_clock = FakeClock(clock.now() + timedelta(seconds=1.9))
    settings = {"lease": 6, "heartbeat_interval": 2, "max_clock_skew": 2}
    slow = make_engine("slow", **settings)
    fast = make_engine("fast", own_clock=fast_clock, **settings)

    def advance(seconds: float) -> None:
        clock.advance(seconds)
        fast_clock.advance(seconds)

    # 1. Schedules: the fast clock runs slots up to 1.9 s early, never one twice.
    start = max(r.next_run for r in slow.backend.audits())
    fast_clock.set(start)  # the first slot just came, on the fast clock
    clock.set(start - timedelta(seconds=1.9))
    shuffle = random.Random(11)
    for _ in range(40):
        advance(shuffle.uniform(0.2, 1.5))
        for engine in shuffle.sample([slow, fast], 2):
            step(engine)
    found = Counter((r.host, r.slot) for r in history(slow))
    assert max(found.values()) == 1
    for host in HOSTS:
        slots = sorted(slot for h, slot in found if h == host)
        assert {(y - x).total_seconds() for x, y in itertools.pairwise(slots)} == {2.0}

    # 2. Leases: slow holds a long audit; fast's heartbeats must not take it while slow beats.
    first = min(slow.backend.audits(), key=lambda r: r.next_run)
    held, state = first.id, slow.backend.state
    advance(max((first.next_run - clock.now()).total_seconds(), 0.0))  # its slot has come
    assert list(state.claim([held], "slow", clock.now(), clock.now() + timedelta(seconds=6)))
    slow.leases.hold([held])
    for _ in range(10):  # 20 s of a long audit
        advance(2)
        slow.heartbeat.beat()
        fast.heartbeat.beat()
    assert fast.heartbeat.recovered == 0
    # slow dies: its lease ends 6 s after its last beat, by slow's clock.
    advance(5.9)
    fast.heartbeat.beat()  # fast's clock: 7.8 s after the beat, yet only 5.9 s really
    assert fast.heartbeat.recovered == 0
    advance(2.2)  # 8.1 s really: expired by any clock within the bound
    fast.heartbeat.beat()
    assert fast.heartbeat.recovered == 1
