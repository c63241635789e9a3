"""Incremental refreshes on a fake clock: what changed is re-read, re-synced and
re-timed, and nothing else (issue 18). Each test runs on the memory store and
on SQLite; the stores' side of it is in tests/backends/test_contract.py."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from entropy.backends import Backend, fetch
from entropy.backends.impl_memory import _space, space_name
from entropy.catalogdiff import SyncScope
from entropy.clock import FakeClock
from entropy.config import load_conf
from entropy.model import AuditRow, Outcome, Result, Status
from entropy.scheduler import Due, Scheduler
from fleets import write_fleet

HOSTS = {f"h{i}.example": {"ip_address": f"10.0.0.{i}", "host_type": "web"} for i in range(1, 5)}
HOSTS["db1.example"] = {"ip_address": "10.0.1.1", "host_type": "db"}
SCRIPTS = {name: {"kind": "command", "command": ["true"]} for name in ("a", "b", "c", "d")}


def schedules(a: str = "1hour", c_target: str = "db") -> dict[str, Any]:
    return {
        "one.yaml": {"web": {"audits": {"a": {"run_every": a}}}},
        "two.yaml": {"web": {"audits": {"b": {"run_every": "1hour"}}}},
        "three.yaml": {c_target: {"audits": {"c": {"run_every": "1hour"}}},
                       "h1.example": {"audits": {"d": {"run_every": "2hours"}}}},
    }  # fmt: skip


@pytest.fixture(params=["memory", "sqlite"])
def make(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Any:
    fleet = tmp_path / "fleet"
    state = f"memory:{fleet}" if request.param == "memory" else f"sqlite:///{tmp_path}/s.sqlite"
    opened: list[Backend] = []

    def make(max_removal: float = 0.5, **kw: Any) -> Scheduler:
        if not (fleet / "hosts.yaml").exists():
            write_fleet("dir", fleet, hosts=HOSTS, scripts=SCRIPTS, schedules=schedules())
        conf = load_conf()
        conf.set_override("state_connection", state, group="dir")
        conf.set_override("max_removal", max_removal)
        backend = fetch(conf, f"dir:{fleet}")
        opened.append(backend)
        kw.setdefault("refresh_in_background", False)
        scheduler = Scheduler(backend, clock, **kw)
        scheduler.refresh()
        return scheduler

    make.fleet = fleet  # type: ignore[attr-defined]
    yield make
    for backend in opened:
        backend.close()


def rows(scheduler: Scheduler) -> dict[tuple[str, str], AuditRow]:
    return {(r.audit_name, r.host): r for r in scheduler.backend.audits()}


def table(scheduler: Scheduler) -> dict[tuple[str, str], int]:
    """key -> the ms each pair is on the time table for (pairs in flight left out)."""
    live, when = scheduler._live, scheduler._when
    return {live.key(i): when[i] for i in live.alive() if when[i] != -(1 << 62)}


def rewrite(make: Any, **kw: Any) -> None:
    write_fleet("dir", make.fleet, hosts=kw.pop("hosts", HOSTS), scripts=SCRIPTS,
                schedules=schedules(**kw))  # fmt: skip


def by_hand(scheduler: Scheduler, key: tuple[str, str], **values: Any) -> None:
    """Change a row as no command would: straight in the store."""
    state = scheduler.backend.state
    if hasattr(state, "space"):
        row = next(r for r in state.space.rows.values() if (r.audit_name, r.host) == key)
        if values.get("delete"):
            del state.space.rows[row.id]
            del state.space.keys[key]
            return
        for name, value in values.items():
            setattr(row, name, value)
        return
    from entropy.backends.sqlalchemy.tables import audits

    where = (audits.c.audit_name == key[0]) & (audits.c.host == key[1])
    with state.transaction() as conn:
        if values.get("delete"):
            conn.execute(audits.delete().where(where))
        else:
            conn.execute(audits.update().where(where).values(**values))


def test_one_changed_schedule_file_re_times_only_its_pairs(make: Any, clock: FakeClock):
    scheduler = make()
    before_rows, before_table = rows(scheduler), table(scheduler)
    clock.advance(minutes=1)
    rewrite(make, a="10mins")  # one.yaml; every file is written again, the others unchanged
    assert scheduler.refresh()
    assert scheduler.last_refresh.startswith("incremental, 1 audits, 0 hosts changed")
    assert scheduler.backend.definitions._cache.parsed == 1  # only one.yaml was parsed again
    after_rows, after_table = rows(scheduler), table(scheduler)
    changed = {k for k in after_rows if after_rows[k] != before_rows[k]}
    assert changed and {audit for audit, _ in changed} == {"a"}
    assert {k for k in after_table if after_table[k] != before_table[k]} == changed
    for key in changed:  # pulled in to the new interval
        assert after_rows[key].next_run <= clock.now() + timedelta(minutes=10, seconds=1)
    due = [d for d in run(scheduler, clock, 11 * 60) if d.pair.audit_name == "a"]
    assert {d.pair.key for d in due} == {k for k in after_rows if k[0] == "a"}  # 10 min apart
    assert all(d.pair.schedule.timing.seconds == 600 for d in due)


def test_a_host_removed_from_hosts_yaml_removes_only_its_pairs(make: Any, clock: FakeClock):
    scheduler = make()
    before_rows, before_table = rows(scheduler), table(scheduler)
    hosts = {k: v for k, v in HOSTS.items() if k != "h2.example"}
    rewrite(make, hosts=hosts)
    assert scheduler.refresh()
    assert scheduler.last_refresh.startswith("incremental, 0 audits, 1 hosts changed")
    after_rows, after_table = rows(scheduler), table(scheduler)
    gone = set(before_rows) - set(after_rows)
    assert gone == {("a", "h2.example"), ("b", "h2.example")}
    assert after_rows == {k: v for k, v in before_rows.items() if k not in gone}
    assert after_table == {k: v for k, v in before_table.items() if k not in gone}
    assert "h2.example" not in {d.pair.host for d in run(scheduler, clock, 3 * 3600)}


def test_a_row_edited_by_hand_is_put_right_by_the_full_resync_not_the_incremental_one(
    make: Any, clock: FakeClock
):
    scheduler = make(full_resync_interval=3600, refresh_interval=300)
    by_hand(scheduler, ("b", "h3.example"), ip_address="192.0.2.99")
    by_hand(scheduler, ("c", "db1.example"), delete=True)
    clock.advance(seconds=301)
    assert scheduler.refresh()  # due by refresh_interval: incremental, nothing changed
    assert scheduler.last_refresh.startswith("incremental, 0 audits, 0 hosts")
    got = rows(scheduler)
    assert got["b", "h3.example"].ip_address == "192.0.2.99" and ("c", "db1.example") not in got
    clock.advance(seconds=3600)
    assert scheduler.refresh()  # full_resync_interval passed
    assert scheduler.last_refresh.startswith("full")
    got = rows(scheduler)
    assert got["b", "h3.example"].ip_address == "10.0.0.3" and ("c", "db1.example") in got
    assert ("c", "db1.example") in table(scheduler)


@pytest.mark.parametrize("kind", ["incremental", "full"])
def test_attempts_leases_and_in_flight_results_survive_a_refresh(
    make: Any, clock: FakeClock, kind: str
):
    scheduler = make()
    state = scheduler.backend.state
    clock.set(max(r.next_run for r in rows(scheduler).values()))
    batch = scheduler.next_batch(timeout=0)
    flying = next(d for d in batch if d.pair.key == ("a", "h1.example"))
    others = [d for d in batch if d is not flying]
    now = clock.now()
    for due in others:
        scheduler.done(due, now)
    lease = now + timedelta(minutes=5)
    assert state.claim([flying.row_id], "me", now, lease) == {flying.row_id: flying.slot}
    by_hand(scheduler, flying.pair.key, attempts=3)  # taken back three times before
    rewrite(make, a="30mins")  # its own audit changes while it runs
    assert scheduler.refresh(full=kind == "full")
    assert scheduler.last_refresh.startswith(kind)
    row = rows(scheduler)[flying.pair.key]
    assert (row.status, row.claimed_by, row.lease_until, row.attempts) == (
        Status.PROCESSING, "me", lease, 3)  # fmt: skip
    assert flying.pair.key not in table(scheduler) and scheduler.in_flight() == 1
    result = Result(Outcome.OK, "fine", started_at=now, finished_at=now, slot=flying.slot,
                    audit_name="a", host="h1.example")  # fmt: skip
    next_run = scheduler.done(flying, now)
    assert state.record([(flying.row_id, result, next_run)], "me") == 1
    assert table(scheduler)[flying.pair.key] > 0 and scheduler.in_flight() == 0
    assert rows(scheduler)[flying.pair.key].result["summary"] == "fine"


def test_an_incremental_refresh_validates_the_whole_catalog(make: Any, clock: FakeClock):
    """A change in one file is checked against every other: c's entry in three.yaml targets
    db; removing db1 from hosts.yaml (the only db host) makes it an unknown target."""
    scheduler = make()
    before_rows, before_table = rows(scheduler), table(scheduler)
    hosts = {k: v for k, v in HOSTS.items() if k != "db1.example"}
    rewrite(make, hosts=hosts)
    assert not scheduler.refresh()
    assert "unknown target 'db'" in str(scheduler.last_problem)
    assert (rows(scheduler), table(scheduler)) == (before_rows, before_table)
    rewrite(make, hosts=hosts, c_target="h2.example")  # fixed in another file: now it passes
    assert scheduler.refresh()
    assert ("c", "h2.example") in rows(scheduler) and ("c", "db1.example") not in rows(scheduler)


def test_an_incremental_removal_past_max_removal_is_refused(make: Any, clock: FakeClock):
    scheduler = make(max_removal=0.1)
    before_rows, before_table = rows(scheduler), table(scheduler)
    kept = ("h1.example", "db1.example")
    rewrite(make, hosts={k: v for k, v in HOSTS.items() if k in kept})  # 6 of 10 rows would go
    assert not scheduler.refresh()
    assert "refused: it would remove 6 of the 10 audit rows" in str(scheduler.last_problem)
    assert (rows(scheduler), table(scheduler)) == (before_rows, before_table)


def test_nothing_changed_costs_no_parse_and_no_sync(make: Any, clock: FakeClock):
    scheduler = make()
    calls: list[Any] = []
    sync = scheduler.backend.sync
    scheduler.backend.sync = lambda *a, **kw: calls.append(kw) or sync(*a, **kw)  # type: ignore
    rewrite(make)  # the same content, written again: new mtimes
    assert scheduler.refresh()
    assert scheduler.backend.definitions._cache.parsed == 0 and calls == []
    assert scheduler.refresh(full=True) and len(calls) == 1 and "scope" not in calls[0]


def run(scheduler: Scheduler, clock: FakeClock, seconds: float) -> list[Due]:
    end = clock.now() + timedelta(seconds=seconds)
    ran: list[Due] = []
    while clock.now() < end:
        for due in scheduler.next_batch(timeout=(end - clock.now()).total_seconds()):
            ran.append(due)
            scheduler.done(due, clock.now())
    return ran


def test_the_memory_space_is_per_fleet(make: Any) -> None:  # the fixture's own sanity
    scheduler = make()
    state = scheduler.backend.state
    if hasattr(state, "space"):
        assert state.space is _space(space_name(str(make.fleet)))


def test_a_full_resync_in_a_child_process_puts_rows_right_and_re_reads_only_those(
    tmp_path: Path, clock: FakeClock
):
    """What an engine does every full_resync_interval (entropy.resync): the child syncs
    every row; this process re-reads the rows the child changed, and refusals come back
    as they would in-process."""
    fleet = tmp_path / "fleet"
    write_fleet("dir", fleet, hosts=HOSTS, scripts=SCRIPTS, schedules=schedules())
    conf = load_conf()
    conf.set_override("state_connection", f"sqlite:///{tmp_path}/s.sqlite", group="dir")
    conf.set_override("max_removal", 0.1)
    backend = fetch(conf, f"dir:{fleet}")
    try:
        scheduler = Scheduler(backend, clock, refresh_in_background=False,
                              full_resync_in_child=True)  # fmt: skip
        scheduler.refresh()
        before = rows(scheduler)
        by_hand(scheduler, ("c", "db1.example"), delete=True)
        by_hand(scheduler, ("b", "h3.example"), ip_address="192.0.2.99")
        read: list[Any] = []
        schedule_rows = backend.state.schedule_rows
        backend.state.schedule_rows = lambda **kw: read.append(kw) or schedule_rows(**kw)  # type: ignore
        assert scheduler.refresh(full=True)
        assert scheduler.last_refresh.startswith("full, in a child process: 1 rows changed")
        assert read == [{"scope": SyncScope(hosts=frozenset({"db1.example"}))}]
        got = rows(scheduler)
        assert got["b", "h3.example"].ip_address == "10.0.0.3"
        assert got["c", "db1.example"].id != before["c", "db1.example"].id
        assert (
            scheduler._live.ids[
                scheduler._live.find(frozenset({"c"}), frozenset())[("c", "db1.example")]
            ]
            == got["c", "db1.example"].id
        )
        assert ("c", "db1.example") in table(scheduler)
        write_fleet("dir", fleet, hosts={k: v for k, v in HOSTS.items() if k in ("h1.example",
                    "db1.example")}, scripts=SCRIPTS, schedules=schedules())  # fmt: skip
        assert not scheduler.refresh(full=True)
        assert "refused: it would remove 6 of the 10 audit rows" in str(scheduler.last_problem)
        assert set(rows(scheduler)) == set(before)
    finally:
        backend.close()


def test_rows_taken_back_during_a_refresh_are_re_read_when_it_ends(
    make: Any, clock: FakeClock
) -> None:
    """A heartbeat's retime() never waits for a refresh, nor races its swap of the table."""
    scheduler = make()
    key = ("b", "h2.example")
    row = rows(scheduler)[key]
    earlier = row.next_run - timedelta(minutes=30)
    by_hand(scheduler, key, next_run=earlier)  # as recover_expired leaves a row: due again
    with scheduler._refreshing:  # a refresh is running
        assert scheduler.retime([row.id]) == 0
    assert table(scheduler)[key] != int(earlier.timestamp() * 1000)
    assert scheduler.refresh()  # ... and re-reads that row when it ends
    assert table(scheduler)[key] == int(earlier.timestamp() * 1000)


@pytest.mark.parametrize("full", [True, False])
def test_what_done_puts_back_during_a_refresh_is_not_undone_by_its_swap(
    make: Any, clock: FakeClock, full: bool
) -> None:
    """Rows read during a refresh may not show a result the recorder has not written yet;
    the pair's next slot from done() stands."""
    import threading

    from entropy.scheduler import to_ms

    scheduler = make(refresh_in_background=True, full_resync_in_child=False,
                     refresh_interval=10**7, full_resync_interval=10**7)  # fmt: skip
    clock.set(max(r.next_run for r in rows(scheduler).values()))
    batch = scheduler.next_batch(timeout=0)
    assert batch
    if not full:
        rewrite(make, a="10mins")  # the flying pairs' own audit changes: they are in scope
    load, release, loading = scheduler.backend.load, threading.Event(), threading.Event()

    def slow_load() -> Any:
        loading.set()
        release.wait(10)
        return load()

    scheduler.backend.load = slow_load  # type: ignore[method-assign]
    scheduler.request_refresh(full=full)
    scheduler.next_batch(timeout=0)  # the wake-up request_refresh() gave
    scheduler.next_batch(timeout=0)  # starts the refresh thread
    assert loading.wait(10)
    expected = {due.pair.key: to_ms(scheduler.done(due, clock.now())) for due in batch}
    release.set()
    assert scheduler._refresher is not None
    scheduler._refresher.join(10)
    assert scheduler.last_refresh.startswith("full" if full else "incremental")
    got = table(scheduler)
    assert {key: got[key] for key in expected} == expected


@pytest.mark.parametrize("full", [True, False])
def test_a_result_recorded_while_a_refresh_loads_keeps_its_next_run(
    make: Any, clock: FakeClock, full: bool
) -> None:
    """The sync compares next_runs with the time it reads the rows: a slot recorded after
    the refresh began (next_run up to an interval past it) is not old timing to re-splay."""
    scheduler = make(max_removal=1)
    key = ("b", "h2.example")
    load = scheduler.backend.load

    def load_taking_a_minute() -> Any:  # meanwhile the engine records a result
        catalog = load()
        clock.advance(seconds=60)
        by_hand(scheduler, key, next_run=clock.now() + timedelta(hours=1))
        return catalog

    scheduler.backend.load = load_taking_a_minute  # type: ignore[method-assign]
    if not full:  # h2's address changes: its rows are in the incremental sync's scope
        rewrite(make, hosts={**HOSTS, "h2.example": {"ip_address": "10.0.9.2",
                                                     "host_type": "web"}})  # fmt: skip
    assert scheduler.refresh(full=full)
    assert scheduler.last_refresh.startswith("full" if full else "incremental")
    assert rows(scheduler)[key].next_run == clock.now() + timedelta(hours=1)
