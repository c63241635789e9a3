"""The scheduler on a fake clock: no test here sleeps."""

from __future__ import annotations

import itertools
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from entropy.backends import Backend, fetch
from entropy.clock import FakeClock
from entropy.config import load_conf
from entropy.errors import ValidationError
from entropy.model import Outcome, Result
from entropy.removal import RemovalRefused
from entropy.scheduler import Due, Scheduler
from fleets import SEED_HOSTS, SEED_SCHEDULES, SEED_SCRIPTS, write_fleet

HOSTS = {
    "a.example": {"ip_address": "10.0.0.1", "host_type": "compute"},
    "b.example": {"ip_address": "10.0.0.2", "host_type": "compute"},
    "c.example": {"ip_address": "10.0.0.3", "host_type": "compute"},
}
SCRIPTS = {"check": {"kind": "command", "command": ["true"]},
           "other": {"kind": "command", "command": ["true"]}}  # fmt: skip


def every(seconds: int, **extra: Any) -> dict[str, Any]:
    return {"x.yaml": {"compute": {"audits": {"check": {"run_every": f"{seconds}s", **extra}}}}}


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    return tmp_path / "fleet"


def open_backend(fleet: Path, **options: Any) -> Backend:
    """The fleet's YAML, its state in the reference memory store (kept across reopenings)."""
    conf = load_conf()
    conf.set_override("state_connection", f"memory:{fleet}", group="dir")
    for name, value in options.items():
        conf.set_override(name, value)
    return fetch(conf, f"dir:{fleet}")


def make(
    fleet: Path, clock: FakeClock, schedules: dict, max_removal: float = 0.1, **kw: Any
) -> Scheduler:
    """max_removal=1: the test removes most of its tiny fleet on purpose."""
    write_fleet("dir", fleet, hosts=HOSTS, scripts=SCRIPTS, schedules=schedules)
    kw.setdefault("refresh_in_background", False)  # refreshes in step with the fake clock
    scheduler = Scheduler(open_backend(fleet, max_removal=max_removal), clock, **kw)
    scheduler.refresh()
    return scheduler


def complete(scheduler: Scheduler, due: Due, now: datetime) -> datetime:
    """Finish an audit as the engine does: claim its row, record a result, report back."""
    state = scheduler.backend.state
    state.claim([due.row_id], "test-engine", now, now + timedelta(minutes=5))
    next_run = scheduler.done(due, now)
    result = Result(Outcome.OK, "fine", started_at=now, finished_at=now, slot=due.slot,
                    audit_name=due.pair.audit_name, host=due.pair.host)  # fmt: skip
    state.record([(due.row_id, result, next_run)], "test-engine")
    return next_run


def run_for(scheduler: Scheduler, clock: FakeClock, seconds: float) -> list[Due]:
    """Take every batch until `seconds` of fake time pass; each audit finishes at once."""
    end = clock.now() + timedelta(seconds=seconds)
    ran: list[Due] = []
    while clock.now() < end:
        batch = scheduler.next_batch(timeout=(end - clock.now()).total_seconds())
        for due in batch:
            ran.append(due)
            complete(scheduler, due, clock.now())
    return ran


def slots_of(ran: list[Due], host: str) -> list:
    return [due.slot for due in ran if due.pair.host == host]


def test_slots_are_exactly_one_interval_apart(fleet: Path, clock: FakeClock) -> None:
    scheduler = make(fleet, clock, every(30))
    ran = run_for(scheduler, clock, 600)
    for host in HOSTS:
        slots = slots_of(ran, host)
        assert len(slots) in (19, 20, 21)
        assert {b - a for a, b in itertools.pairwise(slots)} == {timedelta(seconds=30)}


def test_slot_grid_stays_fixed_rate_when_audits_finish_late(fleet: Path, clock: FakeClock):
    scheduler = make(fleet, clock, every(60))
    first = scheduler.next_batch()
    clock.advance(seconds=7)  # the audit took 7 s
    next_runs = [complete(scheduler, due, clock.now()) for due in first]
    assert next_runs == [due.slot + timedelta(seconds=60) for due in first]


def test_ten_missed_slots_coalesce_into_one_run(fleet: Path, clock: FakeClock) -> None:
    scheduler = make(fleet, clock, every(60))
    batch = scheduler.next_batch()
    due = batch[0]
    clock.advance(seconds=10 * 60 + 5)  # the engine was away for ten slots
    next_run = complete(scheduler, due, clock.now())
    assert next_run == due.slot + timedelta(seconds=11 * 60)
    for other in batch[1:]:
        complete(scheduler, other, clock.now())
    ran = run_for(scheduler, clock, 0.5)  # everything due now comes out once
    assert [d for d in ran if d.pair.key == due.pair.key] == []
    ran = run_for(scheduler, clock, 60)
    assert [d.slot for d in ran if d.pair.key == due.pair.key] == [next_run]


def test_rows_overdue_after_downtime_run_once_on_restart(fleet: Path, clock: FakeClock):
    make(fleet, clock, every(60)).stop()
    clock.advance(hours=3)  # nobody ran anything for 180 slots
    restarted = Scheduler(open_backend(fleet), clock, refresh_in_background=False)
    restarted.refresh()
    restart = clock.now()
    ran = run_for(restarted, clock, 0.001)  # what is due at once
    assert sorted(d.pair.host for d in ran) == sorted(HOSTS)  # once each, no burst
    assert all(d.slot < restart - timedelta(hours=2) for d in ran)  # the old, missed slot
    ran = run_for(restarted, clock, 60)  # then each goes on from its next future slot
    assert sorted(d.pair.host for d in ran) == sorted(HOSTS)
    assert all(restart < d.slot <= restart + timedelta(seconds=60) for d in ran)


def test_splay_is_stable_across_restarts(fleet: Path, clock: FakeClock, tmp_path: Path):
    first = make(fleet, clock, every(3600))
    times = {d.pair.key: d.slot for d in run_for(first, clock, 3600)}
    assert len(set(times.values())) == len(HOSTS)  # spread out
    start = clock.now() - timedelta(seconds=3600)
    # Another state store, started at the same moment, computes the same first runs.
    other_clock = FakeClock(start)
    other = make(tmp_path / "other", other_clock, every(3600))
    assert {d.pair.key: d.slot for d in run_for(other, other_clock, 3600)} == times


def test_simultaneous_audits_come_as_one_list(fleet: Path, clock: FakeClock) -> None:
    scheduler = make(fleet, clock, {"x.yaml": {"compute": {"audits": {
        "check": {"cron": "*/5 * * * *"}}}}})  # fmt: skip
    batch = scheduler.next_batch()
    assert sorted(d.pair.host for d in batch) == sorted(HOSTS)
    assert len({d.slot for d in batch}) == 1
    assert batch[0].slot.minute % 5 == 0 and batch[0].slot.second == 0
    assert clock.now() == batch[0].slot  # it waited exactly until then


def test_linger_hands_out_audits_due_just_after_the_first_with_it(
    fleet: Path, clock: FakeClock
) -> None:
    """The broker executor's claim gathering: a trickle comes out a few at a time, the first
    of them late by the linger at most; what is already due is not held back."""
    scheduler = make(fleet, clock, every(1))  # splayed: three slots within a second
    alone = scheduler.next_batch()
    assert len(alone) == 1  # without linger, each as it comes due
    complete(scheduler, alone[0], clock.now())
    batch = scheduler.next_batch(linger=1.0)
    assert len(batch) == 3  # the other two, and the first's next slot, all within 1 s
    first = min(due.slot for due in batch)
    assert clock.now() == first + timedelta(seconds=1)  # the first waited the linger, no more
    for due in batch:
        complete(scheduler, due, clock.now())
    clock.advance(seconds=5)  # a backlog: everything overdue
    waited_from = clock.now()
    # (The first call may return [] at once: the wake-up that done() leaves.)
    backlog = scheduler.next_batch(linger=1.0) or scheduler.next_batch(linger=1.0)
    assert sorted(d.pair.host for d in backlog) == sorted(HOSTS)
    assert clock.now() == waited_from  # handed out at once


def test_wait_next_yields_batches_and_ends_after_its_timeout(fleet: Path, clock: FakeClock):
    scheduler = make(fleet, clock, every(10))
    batches = []
    for batch in scheduler.wait_next(timeout=30):
        batches.append(batch)
        for due in batch:
            complete(scheduler, due, clock.now())
        if len(batches) == 4:
            scheduler.stop()
    assert len(batches) == 4
    assert all(batches)


def test_refresh_picks_up_added_and_removed_schedules(fleet: Path, clock: FakeClock) -> None:
    scheduler = make(fleet, clock, every(60), max_removal=1, refresh_interval=300)
    run_for(scheduler, clock, 120)
    write_fleet("dir", fleet, hosts=HOSTS, scripts=SCRIPTS, schedules={"y.yaml": {
        "a.example": {"audits": {"other": {"run_every": "60s"}}}}})  # fmt: skip
    ran = run_for(scheduler, clock, 600)  # the refresh comes within 300 s
    late = [d for d in ran if d.slot > clock.now() - timedelta(seconds=200)]
    assert {d.pair.key for d in late} == {("other", "a.example")}


def test_a_file_change_triggers_a_refresh_before_the_interval(fleet: Path, clock: FakeClock):
    scheduler = make(fleet, clock, every(60), refresh_interval=3600, watch_interval=2)
    write_fleet("dir", fleet, hosts=HOSTS, scripts=SCRIPTS, schedules=every(5))
    ran = run_for(scheduler, clock, 90)
    assert len([d for d in ran if d.pair.host == "a.example"]) > 5


def test_an_invalid_change_keeps_the_old_schedule(
    fleet: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    scheduler = make(fleet, clock, every(60), refresh_interval=300)
    (fleet / "audits" / "x.yaml").write_text("compute:\n  audits:\n    check: {run_every: 1x}\n")
    assert scheduler.refresh() is False
    assert isinstance(scheduler.last_problem, ValidationError)
    assert "x.yaml:3:" in str(scheduler.last_problem)
    caplog.clear()
    with caplog.at_level("ERROR", logger="entropy.scheduler"):
        assert scheduler.refresh() is False  # the same problem: one line, not the list again
    (again,) = caplog.records
    assert again.getMessage().endswith("keeps running: 1 problem in the definitions")
    ran = run_for(scheduler, clock, 600)
    assert len([d for d in ran if d.pair.host == "a.example"]) in (9, 10, 11)


def test_an_emptied_schedule_file_keeps_the_old_schedule_and_says_so_at_error(
    fleet: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    scheduler = make(fleet, clock, every(60), refresh_interval=300, watch_interval=2)
    rows = scheduler.backend.audits()
    (fleet / "audits" / "x.yaml").write_text("{}\n")  # a truncated file, or an editor's slip
    with caplog.at_level("ERROR", logger="entropy.scheduler"):
        ran = run_for(scheduler, clock, 600)  # the watch sees the change within 2 s
    assert isinstance(scheduler.last_problem, RemovalRefused)
    assert len([d for d in ran if d.pair.host == "a.example"]) in (9, 10, 11)  # still running
    assert [(r.id, r.audit_name, r.host) for r in scheduler.backend.audits()] == [
        (r.id, r.audit_name, r.host) for r in rows
    ]
    refusals = [r for r in caplog.records if r.levelname == "ERROR"]
    # In full once (what would go, and from where), then one line per refused refresh.
    first = refusals[0].getMessage()
    assert "it would remove 3 of the 3 audit rows stored" in first
    assert (
        f"check on 3 hosts (a.example, b.example, c.example): from {fleet}/audits/x.yaml "
        "(target compute)" in first
    )
    assert f"schedule files that now define no audit: {fleet}/audits/x.yaml" in first
    assert len(refusals) == 3  # the watch's refresh, then the interval's at 300 s and 600 s
    assert all(
        "refresh still refused since" in r.getMessage() and "\n" not in r.getMessage()
        for r in refusals[1:]
    )
    # Once the operator consents, the next refresh goes through.
    scheduler.backend.sync(scheduler.backend.load(), clock.now(), force=True)
    assert scheduler.refresh() is True and scheduler.last_problem is None
    assert scheduler.backend.audits() == []


def test_an_invalid_first_refresh_raises(fleet: Path, clock: FakeClock) -> None:
    write_fleet("dir", fleet, hosts=HOSTS, scripts=SCRIPTS, schedules=every(60))
    (fleet / "audits" / "x.yaml").write_text("compute: [\n")
    with pytest.raises(ValidationError):
        Scheduler(open_backend(fleet), clock).refresh()


def test_disabled_audits_are_never_due(fleet: Path, clock: FakeClock) -> None:
    scheduler = make(fleet, clock, every(10, disabled=True, disabled_reason="later"))
    assert run_for(scheduler, clock, 300) == []
    assert len(scheduler) == 0


def test_operator_disable_takes_effect_at_the_next_refresh(fleet: Path, clock: FakeClock):
    scheduler = make(fleet, clock, every(10), refresh_interval=60)
    backend = scheduler.backend
    pairs = [p for p in scheduler.catalog.pairs if p.host == "b.example"]
    backend.set_disabled(pairs, "maintenance", clock.now())
    run_for(scheduler, clock, 61)
    ran = run_for(scheduler, clock, 100)
    assert ran and all(d.pair.host != "b.example" for d in ran)


def test_a_pair_removed_while_in_flight_is_not_put_back(fleet: Path, clock: FakeClock) -> None:
    scheduler = make(fleet, clock, every(10), max_removal=1)
    batch = scheduler.next_batch()
    write_fleet("dir", fleet, hosts={"a.example": HOSTS["a.example"]}, scripts=SCRIPTS,
                schedules=every(10))  # fmt: skip
    scheduler.refresh()
    for due in batch:
        complete(scheduler, due, clock.now())
    ran = run_for(scheduler, clock, 100)
    assert {d.pair.host for d in ran} == {"a.example"}


def test_pairs_in_flight_across_a_refresh_are_not_doubled(fleet: Path, clock: FakeClock):
    scheduler = make(fleet, clock, every(10))
    batch = scheduler.next_batch()
    scheduler.refresh()  # the rows still say due; the pairs are out with the engine
    assert scheduler.next_batch(timeout=0) == []
    (due,) = batch
    complete(scheduler, due, clock.now())
    ran = run_for(scheduler, clock, 10)
    assert [d.slot for d in ran if d.pair.key == due.pair.key] == [due.slot + timedelta(seconds=10)]


def test_seed_fleet_tables_every_pair(tmp_path: Path, clock: FakeClock) -> None:
    write_fleet("dir", tmp_path / "seed", hosts=SEED_HOSTS, scripts=SEED_SCRIPTS,
                schedules=SEED_SCHEDULES)  # fmt: skip
    scheduler = Scheduler(open_backend(tmp_path / "seed"), clock)
    scheduler.refresh()
    assert len(scheduler) == 8
    assert scheduler.next_due() is not None


def test_a_background_refresh_lets_due_audits_through_meanwhile(fleet: Path, clock: FakeClock):
    scheduler = make(fleet, clock, every(10), max_removal=1, refresh_in_background=True)
    write_fleet("dir", fleet, hosts=HOSTS, scripts=SCRIPTS, schedules={"y.yaml": {
        "a.example": {"audits": {"other": {"run_every": "10s"}}}}})  # fmt: skip
    backend, load, release = scheduler.backend, scheduler.backend.load, threading.Event()

    def slow_load() -> Any:  # a refresh that takes as long as the test wants
        release.wait(10)
        return load()

    backend.load = slow_load  # type: ignore[method-assign]
    scheduler.request_refresh()
    batches = [scheduler.next_batch() for _ in range(3)]  # the first returns on the request
    ran = [d for batch in batches for d in batch]
    assert ran and {d.pair.audit_name for d in ran} == {"check"}  # the old table, meanwhile
    assert scheduler._refresher is not None and scheduler._refresher.is_alive()
    release.set()
    scheduler._refresher.join(timeout=10)
    for due in ran:
        complete(scheduler, due, clock.now())
    ran = run_for(scheduler, clock, 30)
    assert {d.pair.key for d in ran} == {("other", "a.example")}
