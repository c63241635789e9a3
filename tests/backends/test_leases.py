"""Several engines on one state store: leases, recovery, fencing, skew, the registry.

On a fake clock, against every state store (memory, SQLite, PostgreSQL,
MariaDB, MongoDB): every call here is the one the engines make; no test
sleeps. What needs several engines runs on the stores that declare
SHARED_ENGINES; the one-engine SQLite file has its own test.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from entropy.backends import Backend, Capability, StateStore, fetch, open_state_store
from entropy.backends.base import EngineRecord
from entropy.clock import FakeClock
from entropy.config import load_conf
from entropy.errors import BackendError
from entropy.model import AuditRow, Outcome, Result, Status
from fleets import write_fleet

HOSTS = {f"h{i}.example": {"ip_address": f"10.0.0.{i}", "host_type": "web"} for i in range(4)}
SCRIPTS = {"check": {"kind": "command", "command": ["true"]}}
SCHEDULES = {"a.yaml": {"web": {"audits": {"check": {"run_every": "2s"}}}}}
LEASE = timedelta(seconds=30)


STORES = [
    "memory",
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.postgresql),
    pytest.param("mysql", marks=pytest.mark.mysql),
    pytest.param("mongodb", marks=pytest.mark.mongodb),
]


def _backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    fleet = write_fleet("dir", tmp_path / "fleet", hosts=HOSTS, scripts=SCRIPTS,
                        schedules=SCHEDULES)  # fmt: skip
    conf = load_conf()
    conf.set_override("state_connection", request.getfixturevalue(f"{request.param}_url"),
                      group="dir")  # fmt: skip
    return fetch(conf, f"dir:{fleet}")


@pytest.fixture(params=STORES)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    found = _backend(request, tmp_path)
    yield found
    found.close()


@pytest.fixture(params=STORES)
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A backend on a store several engines can share (the others skip, saying so)."""
    found = _backend(request, tmp_path)
    if not found.state.can(Capability.SHARED_ENGINES):
        found.close()
        pytest.skip(f"{request.param} declares it serves one engine at a time")
    yield found
    found.close()


def due_rows(backend: Backend, clock: FakeClock) -> list[AuditRow]:
    backend.sync(backend.load(), clock.now())
    rows = backend.audits()
    clock.set(max(row.next_run for row in rows))
    return rows


def row(backend: Backend, row_id: int) -> AuditRow:
    return next(r for r in backend.audits() if r.id == row_id)


def result(r: AuditRow, slot: datetime, at: datetime, engine: str) -> Result:
    return Result(Outcome.OK, "fine", started_at=at, finished_at=at, slot=slot, engine_id=engine,
                  audit_name=r.audit_name, host=r.host)  # fmt: skip


def test_a_renewed_lease_outlives_its_first_term(backend: Backend, clock: FakeClock) -> None:
    state = backend.state
    first, *_ = due_rows(backend, clock)
    state.claim([first.id], "a", clock.now(), clock.now() + LEASE)
    for _ in range(5):  # a long audit: 5 x 25 s, renewed by each heartbeat
        clock.advance(25)
        assert state.renew_leases("a", [first.id], clock.now() + LEASE) == 1
        assert state.recover_expired(clock.now()) == 0
    assert row(backend, first.id).lease_until == clock.now() + LEASE
    assert (row(backend, first.id).status, row(backend, first.id).claimed_by) == (
        Status.PROCESSING, "a")  # fmt: skip
    clock.advance(31)  # its engine died: no more renewals
    assert state.recover_expired(clock.now()) == 1
    got = row(backend, first.id)
    assert (got.status, got.claimed_by, got.lease_until, got.attempts) == (
        Status.NEW,
        None,
        None,
        1,
    )


def test_recovery_counts_every_attempt_and_a_record_resets_the_count(
    backend: Backend, clock: FakeClock
) -> None:
    state = backend.state
    first, *_ = due_rows(backend, clock)
    for attempt in (1, 2):
        state.claim([first.id], f"doomed-{attempt}", clock.now(), clock.now() + LEASE)
        clock.advance(31)
        assert state.recover_expired(clock.now()) == 1
        assert row(backend, first.id).attempts == attempt
    slots = state.claim([first.id], "survivor", clock.now(), clock.now() + LEASE)
    assert slots == {first.id: first.next_run}  # the slot in flight, run again
    state.record([(first.id, result(first, first.next_run, clock.now(), "survivor"),
                   first.next_run + timedelta(seconds=2))], "survivor")  # fmt: skip
    assert (row(backend, first.id).attempts, row(backend, first.id).status) == (
        0, Status.PROCESSED)  # fmt: skip


def test_renewal_touches_only_what_the_engine_still_holds(
    backend: Backend, clock: FakeClock
) -> None:
    state = backend.state
    first, second, *_ = due_rows(backend, clock)
    state.claim([first.id], "a", clock.now(), clock.now() + LEASE)
    clock.advance(31)
    state.recover_expired(clock.now())  # a was cut off; b took the row
    state.claim([first.id], "b", clock.now(), clock.now() + LEASE)
    b_lease = row(backend, first.id).lease_until
    clock.advance(5)
    # a comes back and renews what it believes it holds: nothing of b's changes.
    assert state.renew_leases("a", [first.id, second.id], clock.now() + LEASE) == 0
    assert row(backend, first.id).lease_until == b_lease
    assert row(backend, second.id).lease_until is None


def test_a_stale_engine_cannot_record_over_the_engine_that_took_its_row(
    backend: Backend, clock: FakeClock
) -> None:
    state = backend.state
    first, *_ = due_rows(backend, clock)
    slot = first.next_run
    state.claim([first.id], "stale", clock.now(), clock.now() + LEASE)
    clock.advance(31)
    assert state.recover_expired(clock.now()) == 1
    assert state.claim([first.id], "fresh", clock.now(), clock.now() + LEASE) == {first.id: slot}
    late = result(first, slot, clock.now(), "stale")
    assert state.record([(first.id, late, slot + timedelta(seconds=2))], "stale") == 0
    assert state.results() == []  # fenced out: no history either
    mine = result(first, slot, clock.now(), "fresh")
    assert state.record([(first.id, mine, slot + timedelta(seconds=32))], "fresh") == 1
    assert [r.engine_id for r in state.results()] == ["fresh"]
    # And the stale engine's second try, after the row moved on, is still fenced.
    assert state.record([(first.id, late, slot + timedelta(seconds=2))], "stale") == 0
    assert row(backend, first.id).next_run == slot + timedelta(seconds=32)


def test_an_expired_lease_is_not_taken_by_a_claim_only_by_recovery(
    backend: Backend, clock: FakeClock
) -> None:
    state = backend.state
    first, *_ = due_rows(backend, clock)
    state.claim([first.id], "dead", clock.now(), clock.now() + LEASE)
    clock.advance(60)
    assert state.claim([first.id], "b", clock.now(), clock.now() + LEASE) == {}
    assert state.recover_expired(clock.now()) == 1  # ... which counts the attempt
    assert list(state.claim([first.id], "b", clock.now(), clock.now() + LEASE)) == [first.id]


def test_a_fast_clock_waits_the_skew_bound_before_taking_a_lease(
    backend: Backend, clock: FakeClock
) -> None:
    """Engine a's clock is 2 s behind b's: b must not see a's live lease as expired."""
    state = backend.state
    first, *_ = due_rows(backend, clock)
    a_now = clock.now()
    state.claim([first.id], "a", a_now, a_now + LEASE)
    b_now = a_now + LEASE + timedelta(seconds=1.9)  # b's clock, 1.9 s past a's lease end
    assert state.recover_expired(b_now, skew=2.0) == 0
    assert state.recover_expired(b_now + timedelta(seconds=0.2), skew=2.0) == 1


def test_a_claim_hands_back_the_slot_the_database_holds(backend: Backend, clock: FakeClock) -> None:
    """Engine a ran slot S and stored S + 2 s; b, late, still expects S: it gets S + 2 s."""
    state = backend.state
    first, *_ = due_rows(backend, clock)
    slot = first.next_run
    assert state.claim([first.id], "a", slot, slot + LEASE) == {first.id: slot}
    state.record([(first.id, result(first, slot, slot, "a"), slot + timedelta(seconds=2))], "a")
    # b at S + 1 s: not due any more; it reads where the row is.
    assert state.claim([first.id], "b", slot + timedelta(seconds=1), slot + LEASE) == {}
    assert state.next_runs([first.id]) == {first.id: slot + timedelta(seconds=2)}
    # b at S + 2.1 s, its table still at S: it runs S + 2 s, not S again.
    later = slot + timedelta(seconds=2.1)
    assert state.claim([first.id], "b", later, later + LEASE) == {
        first.id: slot + timedelta(seconds=2)
    }


# -- the registry -------------------------------------------------------------------------


def me(engine_id: str, now: datetime, pid: int = 4242, host: str = "elsewhere") -> EngineRecord:
    return EngineRecord(engine_id, host, pid, "0.1.0", now, now)


def test_engines_register_beat_and_are_asked_to_stop(shared: Backend, clock: FakeClock) -> None:
    registry = shared.state.engine_registry()
    now = clock.now()
    for name in ("a", "b", "c"):
        registry.register(me(name, now), now, dead_after=32)
    clock.advance(10)
    assert registry.heartbeat(me("a", now), clock.now()) is False
    assert registry.heartbeat(me("b", now), clock.now()) is False
    clock.advance(25)  # c has been silent for 35 s > 32: dead
    states = {e.engine_id: e.state(clock.now(), 32) for e in registry.list()}
    assert states == {"a": "running", "b": "running", "c": "dead"}
    assert registry.request_stop(None, clock.now(), 32) == ["a", "b"]  # the dead are not asked
    assert registry.heartbeat(me("a", now), clock.now()) is True
    assert registry.list()[0].state(clock.now(), 32) == "stopping"  # listed by start, then id
    registry.stopped("a", clock.now())
    assert registry.list()[0].state(clock.now(), 32) == "stopped"
    with pytest.raises(BackendError, match=r"no engine 'zz'; known: a, b, c"):
        registry.request_stop("zz", clock.now(), 32)
    assert registry.request_stop("b", clock.now(), 32) == ["b"]


def test_a_live_engine_id_is_not_taken_twice_a_dead_one_is(
    shared: Backend, clock: FakeClock
) -> None:
    registry = shared.state.engine_registry()
    now = clock.now()
    registry.register(me("web:1", now), now, dead_after=32)
    clock.advance(5)
    with pytest.raises(BackendError, match=r"engine id 'web:1' is in use by a live engine "
                       r"\(pid 4242 on elsewhere, heartbeat 5.0s ago\)"):  # fmt: skip
        registry.register(me("web:1", clock.now(), pid=7), clock.now(), dead_after=32)
    clock.advance(30)  # silent for 35 s: dead, its id is free again
    registry.register(me("web:1", clock.now(), pid=7), clock.now(), dead_after=32)
    (only,) = registry.list()
    assert (only.pid, only.started_at, only.stopped_at) == (7, clock.now(), None)


def test_a_second_engine_on_one_sqlite_file_is_refused(tmp_path: Path, clock: FakeClock) -> None:
    fleet = write_fleet("dir", tmp_path / "fleet", hosts=HOSTS, scripts=SCRIPTS,
                        schedules=SCHEDULES)  # fmt: skip
    first, second = fetch(load_conf(), f"dir:{fleet}"), fetch(load_conf(), f"dir:{fleet}")
    one, two = first.state.engine_registry(), second.state.engine_registry()
    now = clock.now()
    one.register(me("one", now), now, dead_after=32)
    try:
        with pytest.raises(BackendError, match=r"sqlite:///.* is in use by engine one \(pid 4242 "
                           r"on elsewhere\); a SQLite state store serves one engine"):  # fmt: skip
            two.register(me("two", now), now, dead_after=32)
    finally:
        one.stopped("one", clock.now())
    two.register(me("two", now), now, dead_after=32)  # once the first has stopped
    two.stopped("two", clock.now())
    first.close()
    second.close()


def claim_together(stores: list[StateStore], ids: list[int], now: datetime) -> dict[int, set]:
    """Every store claims every row at the same moment, half of them in the opposite order."""
    start = threading.Barrier(len(stores))
    got: dict[int, set[int]] = {}

    def claim(n: int) -> None:
        order = ids if n % 2 else list(reversed(ids))
        start.wait()
        got[n] = set(stores[n].claim(order, f"e{n}", now, now + LEASE, waiting=order))

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return got


def test_engines_claiming_the_same_rows_at_once_never_share_one(
    shared: Backend, clock: FakeClock
) -> None:
    """Four engines, each with its own connections, race for every row, 40 times."""
    ids = [r.id for r in due_rows(shared, clock)]
    stores = [open_state_store(shared.state.url) for _ in range(4)]
    try:
        for round_ in range(40):
            for n in range(len(stores)):  # all due and free again
                shared.state.release(f"e{n}", clock.now())
            got = claim_together(stores, ids, clock.now())
            taken = [row_id for claimed in got.values() for row_id in claimed]
            assert sorted(taken) == sorted(ids), (round_, got)  # each row once, none left
            by_row = {r.id: r.claimed_by for r in shared.audits()}
            assert all(by_row[row_id] == f"e{n}" for n, c in got.items() for row_id in c)
    finally:
        for store in stores:
            store.close()


def test_engines_starting_together_all_sync_the_same_rows(
    shared: Backend, clock: FakeClock
) -> None:
    """Their first syncs race to insert the same new pairs: none fails, no row is doubled."""
    catalog = shared.load()
    stores = [open_state_store(shared.state.url) for _ in range(4)]
    start = threading.Barrier(len(stores))
    errors: list[Exception] = []

    def sync(store: StateStore) -> None:
        start.wait()
        try:
            store.sync(catalog.pairs, clock.now(), max_splay=2)
        except Exception as exc:  # recorded, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=sync, args=(store,)) for store in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for store in stores:
        store.close()
    assert errors == []
    assert sorted((r.audit_name, r.host) for r in shared.audits()) == sorted(
        pair.key for pair in catalog.pairs
    )
