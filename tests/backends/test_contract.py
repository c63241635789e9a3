"""The one contract every backend keeps, run against each of them.

Like TaskFlow's persistence tests: one suite, on two axes: every
definitions source (dir, file, sqlalchemy, mongodb, memory) and every state
store (memory, SQLite, PostgreSQL, MariaDB, MongoDB), each at least once. A
backend-specific test only adds to it; a backend skips only what it declares
it cannot do (its capabilities).
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from entropy.backends import Backend, fetch, open_state_store
from entropy.backends.base import RepairStore
from entropy.backends.impl_memory import _space, forget, space_name
from entropy.backends.sqlalchemy.tables import schedules
from entropy.catalogdiff import SyncScope
from entropy.clock import FakeClock, to_micros
from entropy.config import load_conf
from entropy.dump import hosts_doc
from entropy.errors import StoreConflict, ValidationError
from entropy.model import (
    Ack,
    AuditRow,
    Dependency,
    DisabledBy,
    Downtime,
    Flapping,
    MonitorSettings,
    MonitorState,
    Outcome,
    RepairRule,
    RepairRun,
    Result,
    StateType,
    Status,
    Verify,
)
from entropy.removal import RemovalRefused
from entropy.repairs import judge
from entropy.timing import Every
from fleets import ROW_FIELDS, SEED_HOSTS, SEED_PAIRS, SEED_SCHEDULES, write_fleet


class Harness:
    """One definitions source over one state store, with its fleet in a temp dir.

    Sources kept in a database (sqlalchemy, mongodb, memory) get the same
    fleet: written as YAML, loaded by the dir source, then written into them.
    """

    OWN_STORE = ("sqlalchemy", "mongodb", "memory")

    def __init__(self, kind: str, root: Path, state_url: str | None) -> None:
        self.kind, self.root, self.state_url = kind, root, state_url
        self._open: list[Backend] = []
        if kind == "sqlalchemy":
            self.location = state_url or f"sqlite:///{root}/entropy.sqlite"
        elif kind in self.OWN_STORE:
            assert state_url, f"{kind} needs its store's URL"
            self.location = state_url
        if kind in self.OWN_STORE:
            root.mkdir(parents=True)
        self.write()

    def write(self, **parts: Any) -> None:
        if self.kind not in self.OWN_STORE:
            self.location = str(write_fleet(self.kind, self.root, **parts))
            return
        yaml_dir = write_fleet("dir", self.root / "yaml", **parts)
        source = fetch(load_conf(), f"dir:{yaml_dir}")
        self.backend().write_definitions(source.load())

    def break_a_schedule(self) -> list[str]:
        """Break vmbooter's schedule the way an operator's typo would; the error's words."""
        if self.kind == "memory":  # no typo gets in through the API: lose its script instead
            space = _space(space_name(self.location))
            del space.scripts["vmbooter"]
            return ["vmbooter", "has no script"]
        if self.kind == "sqlalchemy":  # by hand, as no command would
            with self.backend().state.transaction() as conn:
                conn.execute(
                    schedules.update()
                    .where(schedules.c.audit_name == "vmbooter")
                    .values(run_every=None, cron="61 * * * *")
                )
        elif self.kind == "mongodb":
            self.backend().state.mongo.db.schedules.update_one(
                {"audit_name": "vmbooter"}, {"$unset": {"run_every": ""},
                                             "$set": {"cron": "61 * * * *"}})  # fmt: skip
        else:
            broken = {"nova-api.mydomain.com": {"audits": {"vmbooter": {"cron": "61 * * * *"}}}}
            self.write(schedules={**SEED_SCHEDULES, "other_audits.yaml": broken})
        return ["vmbooter", "'61 * * * *'"]

    def backend(self, **overrides: Any) -> Backend:
        """A new backend object, as a restarted process would make it."""
        conf = load_conf()
        for name, value in overrides.items():
            conf.set_override(name, value)
        if self.state_url and self.kind not in self.OWN_STORE:
            conf.set_override("state_connection", self.state_url, group=self.kind)
        url = self.location if self.kind in self.OWN_STORE else f"{self.kind}:{self.location}"
        backend = fetch(conf, url)
        self._open.append(backend)
        return backend

    def close(self) -> None:
        for backend in self._open:
            backend.close()


# Each definitions source and each state store at least once; a source kept in a
# database keeps its state there too.
@pytest.fixture(
    params=[
        "dir",  # YAML, state in the default SQLite file
        "file",
        "sqlalchemy",  # on SQLite
        "memory",
        pytest.param("mongodb", marks=pytest.mark.mongodb),
        "dir+memory",  # YAML with state elsewhere (dir+mongodb: test_leases, test_mongodb)
        pytest.param("dir+postgresql", marks=pytest.mark.postgresql),
        pytest.param("dir+mysql", marks=pytest.mark.mysql),
        pytest.param("sqlalchemy+postgresql", marks=pytest.mark.postgresql),
        pytest.param("sqlalchemy+mysql", marks=pytest.mark.mysql),
    ]
)
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    kind, _, server = request.param.partition("+")
    if kind in ("memory", "mongodb"):
        server = kind
    state_url = request.getfixturevalue(f"{server}_url") if server else None
    h = Harness(kind, tmp_path / "fleet", state_url)
    yield h
    h.close()


def other_harness(harness: Harness, root: Path, request: pytest.FixtureRequest) -> Harness:
    """The same kind of backend on a store of its own (a fresh default, memory or database)."""
    state_url = None
    if harness.kind == "memory":
        state_url = request.getfixturevalue("memory_url") + "-other"
    elif harness.kind == "mongodb":
        state_url = harness.location.rsplit("/", 1)[0] + f"/o_{uuid.uuid4().hex[:12]}"
        store = open_state_store(state_url, check_schema=False)
        store.upgrade_schema()
        store.close()
    return Harness(harness.kind, root, state_url)


def rows_by_key(backend: Backend) -> dict[tuple[str, str], AuditRow]:
    return {(row.audit_name, row.host): row for row in backend.audits()}


def test_load_expands_the_seed_schedules_to_their_pairs(harness: Harness) -> None:
    catalog = harness.backend().load()
    got = {p.key: p.schedule.timing for p in catalog.pairs}
    assert got == {key: Every(seconds) for key, seconds in SEED_PAIRS.items()}
    assert set(catalog.hosts) == set(SEED_HOSTS)
    ips = {p.host: p.ip_address for p in catalog.pairs}
    assert ips["hv-01.example.com"] == "10.0.1.1"


def test_a_hosts_zone_round_trips(harness: Harness) -> None:
    hosts = {**SEED_HOSTS, "hv-01.example.com": {**SEED_HOSTS["hv-01.example.com"],
                                                  "zone": "site-b"}}  # fmt: skip
    harness.write(hosts=hosts)
    catalog = harness.backend().load()
    zones = {name: host.zone for name, host in catalog.hosts.items()}
    assert zones == {name: "site-b" if name == "hv-01.example.com" else "default"
                     for name in SEED_HOSTS}  # fmt: skip
    # Written back as hosts.yaml (export), only the zone that is not the default.
    written = hosts_doc(catalog)
    assert written["hv-01.example.com"]["zone"] == "site-b"
    assert "zone" not in written["compute-02.example.com"]


def test_first_sync_adds_a_row_per_pair_with_every_field(harness: Harness, clock: FakeClock):
    backend = harness.backend()
    now = clock.now()
    report = backend.sync(backend.load(), now)
    assert (report.added, report.removed, report.kept) == (len(SEED_PAIRS), 0, 0)
    rows = rows_by_key(backend)
    assert set(rows) == set(SEED_PAIRS)
    for key, row in rows.items():
        assert row.ip_address == SEED_HOSTS[row.host]["ip_address"]
        assert row.status is Status.NEW
        assert row.disabled is False and row.disabled_reason is None
        assert row.result is None
        assert row.created_at == now and row.updated_at == now  # microseconds survive
        # No max_splay by default: the first run lies anywhere in the pair's interval.
        assert now <= row.next_run <= now + timedelta(seconds=SEED_PAIRS[key] + 1)
        assert row.next_run.microsecond % 1000 == 0  # on the scheduler's millisecond grid
        assert set(row.public()) == ROW_FIELDS
    # The splay spreads the pairs out rather than firing them together.
    assert len({row.next_run for row in rows.values()}) == len(rows)


def test_resync_unchanged_keeps_rows_and_their_state(harness: Harness, clock: FakeClock):
    backend = harness.backend()
    backend.sync(backend.load(), clock.now())
    before = rows_by_key(backend)
    clock.advance(hours=1)
    restarted = harness.backend()
    report = restarted.sync(restarted.load(), clock.now())
    assert (report.added, report.removed, report.kept, report.updated) == (0, 0, 8, 0)
    after = rows_by_key(restarted)
    assert {k: (r.id, r.next_run, r.updated_at) for k, r in after.items()} == {
        k: (r.id, r.next_run, r.updated_at) for k, r in before.items()
    }


def test_sync_removes_gone_pairs_adds_new_ones_and_keeps_the_rest(
    harness: Harness, clock: FakeClock
) -> None:
    backend = harness.backend()
    backend.sync(backend.load(), clock.now())
    before = rows_by_key(backend)
    schedules = dict(SEED_SCHEDULES)
    del schedules["hypervisor_audits.yaml"]  # vm_count on 2 hosts goes
    hosts = {
        **SEED_HOSTS,
        "compute-03.example.com": {"ip_address": "10.0.0.13", "host_type": "compute"},
    }
    harness.write(hosts=hosts, schedules=schedules)
    clock.advance(minutes=5)
    report = backend.sync(backend.load(), clock.now(), force=True)  # 2 of 8: past max_removal
    assert (report.added, report.removed, report.kept) == (2, 2, 6)
    after = rows_by_key(backend)
    assert ("vm_count", "hv-01.example.com") not in after
    assert {
        ("check_nova_config_exists", "compute-03.example.com"),
        ("check_nova_compute_log_file_exists", "compute-03.example.com"),
    } <= set(after)
    for key, row in before.items():
        if key in after:
            assert (after[key].id, after[key].next_run) == (row.id, row.next_run)


def test_sync_follows_a_changed_ip_address(harness: Harness, clock: FakeClock) -> None:
    backend = harness.backend()
    backend.sync(backend.load(), clock.now())
    hosts = {
        **SEED_HOSTS,
        "hv-01.example.com": {"ip_address": "10.9.9.9", "host_type": "hypervisor"},
    }
    harness.write(hosts=hosts)
    report = backend.sync(backend.load(), clock.now())
    assert (report.kept, report.updated) == (8, 1)
    assert rows_by_key(backend)["vm_count", "hv-01.example.com"].ip_address == "10.9.9.9"


def test_shortened_interval_pulls_a_far_next_run_in(harness: Harness, clock: FakeClock):
    # A splay over the whole 2-day interval (the default) leaves the first run far out.
    backend = harness.backend()
    backend.sync(backend.load(), clock.now())
    key = ("vm_count", "hv-01.example.com")
    assert rows_by_key(backend)[key].next_run > clock.now() + timedelta(minutes=1)
    schedules = {
        **SEED_SCHEDULES,
        "hypervisor_audits.yaml": {"hypervisor": {"audits": {"vm_count": {"run_every": "1min"}}}},
    }
    harness.write(schedules=schedules)
    backend.sync(backend.load(), clock.now())
    row = rows_by_key(backend)[key]
    assert clock.now() <= row.next_run <= clock.now() + timedelta(minutes=1)


def test_operator_disable_persists_across_resync_and_enable_lifts_it(
    harness: Harness, clock: FakeClock
) -> None:
    backend = harness.backend()
    catalog = backend.load()
    backend.sync(catalog, clock.now())
    targets = [p for p in catalog.pairs if p.audit_name == "check_nova_config_exists"]
    assert backend.set_disabled(targets, "nova config moved, ticket OPS-12", clock.now()) == 2
    restarted = harness.backend()
    restarted.sync(restarted.load(), clock.now())
    rows = rows_by_key(restarted)
    for pair in targets:
        assert rows[pair.key].disabled is True
        assert rows[pair.key].disabled_reason == "nova config moved, ticket OPS-12"
    others = [row for key, row in rows.items() if key[0] != "check_nova_config_exists"]
    assert not any(row.disabled for row in others)

    assert restarted.set_disabled(targets, None, clock.now()) == 2
    restarted.sync(restarted.load(), clock.now())
    rows = rows_by_key(restarted)
    assert not any(rows[p.key].disabled or rows[p.key].disabled_reason for p in targets)


def test_definitions_disable_follows_the_yaml_but_not_over_the_operator(
    harness: Harness, clock: FakeClock
) -> None:
    backend = harness.backend()
    off = {
        **SEED_SCHEDULES,
        "other_audits.yaml": {
            "nova-api.mydomain.com": {
                "audits": {
                    "vmbooter": {
                        "run_every": "1hour",
                        "disabled": True,
                        "disabled_reason": "no ssh yet",
                    },
                    "api_availability": {"run_every": "30mins"},
                }
            }
        },
    }
    harness.write(schedules=off)
    catalog = backend.load()
    backend.sync(catalog, clock.now())
    key = ("vmbooter", "nova-api.mydomain.com")
    row = rows_by_key(backend)[key]
    assert (row.disabled, row.disabled_reason) == (True, "no ssh yet")

    # Enabling from the CLI cannot override what the definitions say.
    pair = next(p for p in catalog.pairs if p.key == key)
    backend.set_disabled([pair], None, clock.now())
    assert rows_by_key(backend)[key].disabled is True

    harness.write()  # the YAML enables it again
    backend.sync(backend.load(), clock.now())
    assert rows_by_key(backend)[key].disabled is False

    # An operator's disable is not undone by the definitions enabling the audit.
    catalog = backend.load()
    pair = next(p for p in catalog.pairs if p.key == key)
    backend.set_disabled([pair], "maintenance", clock.now())
    backend.sync(catalog, clock.now())
    assert rows_by_key(backend)[key].disabled_reason == "maintenance"


def _without(*files: str) -> dict[str, Any]:
    """The seed's schedules without these files."""
    return {name: audits for name, audits in SEED_SCHEDULES.items() if name not in files}


def test_a_sync_removing_more_than_max_removal_is_refused_and_changes_nothing(
    harness: Harness, clock: FakeClock
) -> None:
    backend = harness.backend()
    backend.sync(backend.load(), clock.now())
    before = rows_by_key(backend)
    harness.write(schedules=_without("hypervisor_audits.yaml", "compute_audits.yaml"))  # 6 of 8
    catalog = backend.load()
    with pytest.raises(RemovalRefused) as refused:
        backend.sync(catalog, clock.now())
    assert (len(refused.value.gone), refused.value.stored, refused.value.allowed) == (6, 8, 1)
    message = str(refused.value)
    assert "it would remove 6 of the 8 audit rows stored (max_removal = 10% allows 1 of 8)" in (
        message)  # fmt: skip
    assert "vm_count on 2 hosts (compute-01.example.com, hv-01.example.com)" in message
    assert "entropy sync --force" in message
    assert rows_by_key(backend) == before
    report = backend.sync(catalog, clock.now(), force=True)
    assert (report.removed, report.kept) == (6, 2)


def test_a_sync_may_remove_one_row_and_never_every_row_without_force(
    harness: Harness, clock: FakeClock
) -> None:
    backend = harness.backend()
    backend.sync(backend.load(), clock.now())
    one_less = {"nova-api.mydomain.com": {"audits": {"vmbooter": {"run_every": "1hour"}}}}
    harness.write(schedules={**SEED_SCHEDULES, "other_audits.yaml": one_less})
    assert backend.sync(backend.load(), clock.now()).removed == 1  # 1 of 8: at least one may go
    everything = harness.backend(max_removal=0.99)
    harness.write(hosts={"lonely.example.com": {"ip_address": "10.0.0.99", "host_type": "x"}},
                  scripts={}, schedules={"a.yaml": {}})  # fmt: skip
    with pytest.raises(RemovalRefused, match="removing every row always needs consent"):
        everything.sync(everything.load(), clock.now())
    assert len(rows_by_key(everything)) == 7
    assert harness.backend(max_removal=1.0).sync(everything.load(), clock.now()).removed == 7


def test_an_operator_disable_comes_back_with_its_pair(harness: Harness, clock: FakeClock):
    backend = harness.backend()
    catalog = backend.load()
    backend.sync(catalog, clock.now())
    key = ("vm_count", "hv-01.example.com")
    pair = next(p for p in catalog.pairs if p.key == key)
    backend.set_disabled([pair], "maintenance CHG-123", clock.now())
    harness.write(schedules=_without("hypervisor_audits.yaml"))
    clock.advance(hours=1)
    report = backend.sync(backend.load(), clock.now(), force=True, actor="test")
    assert (report.removed, report.remembered) == (2, 1)
    assert key not in rows_by_key(backend)

    harness.write()  # the file is back
    clock.advance(days=29)
    report = harness.backend().sync(backend.load(), clock.now())
    assert (report.added, report.restored) == (2, 1)
    rows = rows_by_key(backend)
    assert (rows[key].disabled, rows[key].disabled_reason, rows[key].disabled_by) == (
        True, "maintenance CHG-123", DisabledBy.OPERATOR)  # fmt: skip
    assert rows["vm_count", "compute-01.example.com"].disabled is False
    # Restored once: removed and back again, it is remembered afresh, not twice.
    assert harness.backend().sync(backend.load(), clock.now()).restored == 0


def test_a_removed_disable_is_forgotten_after_disable_retention(
    harness: Harness, clock: FakeClock
) -> None:
    backend = harness.backend(disable_retention=3600)
    catalog = backend.load()
    backend.sync(catalog, clock.now())
    vm_count = [p for p in catalog.pairs if p.audit_name == "vm_count"]
    backend.set_disabled(vm_count, "maintenance", clock.now())
    harness.write(schedules=_without("hypervisor_audits.yaml"))
    assert backend.sync(backend.load(), clock.now(), force=True).remembered == 2
    harness.write()
    clock.advance(seconds=3601)
    report = backend.sync(backend.load(), clock.now())
    assert (report.added, report.restored) == (2, 0)
    assert not any(rows_by_key(backend)[p.key].disabled for p in vm_count)


def test_invalid_definitions_raise_and_change_nothing(harness: Harness, clock: FakeClock):
    backend = harness.backend()
    backend.sync(backend.load(), clock.now())
    before = rows_by_key(backend)
    words = harness.break_a_schedule()
    with pytest.raises(ValidationError) as excinfo:
        backend.load()
    assert all(word in str(excinfo.value) for word in words), str(excinfo.value)
    assert rows_by_key(backend) == before


def test_splay_is_the_same_for_every_state_store(
    harness: Harness, clock: FakeClock, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    backend = harness.backend()
    backend.sync(backend.load(), clock.now())
    offsets = {k: r.next_run - clock.now() for k, r in rows_by_key(backend).items()}

    other = other_harness(harness, tmp_path / "other", request)
    try:
        fresh = other.backend()
        fresh.sync(fresh.load(), clock.now())
        assert {k: r.next_run - clock.now() for k, r in rows_by_key(fresh).items()} == offsets
    finally:
        other.close()


def test_audits_filters_by_host_and_audit(harness: Harness, clock: FakeClock) -> None:
    backend = harness.backend()
    backend.sync(backend.load(), clock.now())
    on_host = backend.audits(host="compute-01.example.com")
    assert {r.audit_name for r in on_host} == {
        "check_nova_config_exists",
        "check_nova_compute_log_file_exists",
        "vm_count",
    }
    one = backend.audits(host="compute-01.example.com", audit_name="vm_count")
    assert [(r.audit_name, r.host) for r in one] == [("vm_count", "compute-01.example.com")]
    assert backend.audits(audit_name="nope") == []


def test_pair_outcomes_are_every_rows_latest_outcome_and_end(
    harness: Harness, clock: FakeClock
) -> None:
    """What /metrics reads: one plain tuple per pair, as audits() would tell it, the end in
    microseconds since the epoch; whichever way the result came (the engine, a run
    outside the schedule, an import)."""
    backend = harness.backend()
    rows = _due_rows(backend, clock)
    now = clock.now()
    first, second, third = rows[0], rows[1], rows[2]
    backend.state.claim([first.id], "e", now, now + timedelta(minutes=1))
    bad = Result(Outcome.CRITICAL, "bad", "a long output " * 100, started_at=now,
                 finished_at=now + timedelta(seconds=2, microseconds=123457), slot=now,
                 engine_id="e", audit_name=first.audit_name, host=first.host)  # fmt: skip
    backend.state.record([(first.id, bad, now + timedelta(hours=1))], "e")
    odd = Result(Outcome.WARNING, "odd", started_at=now, finished_at=now + timedelta(seconds=5),
                 slot=now, audit_name=third.audit_name, host=third.host)  # fmt: skip
    backend.state.record_adhoc(third.id, odd)
    backend.set_disabled(backend.load().select(second.audit_name, second.host), "why", now)

    def check() -> None:
        got = backend.state.pair_outcomes()
        assert all(type(p) is tuple for p in got)  # plain: see PairOutcome
        found = {(audit_name, host): rest for audit_name, host, *rest in got}
        assert set(found) == set(SEED_PAIRS) and len(got) == len(SEED_PAIRS)
        for row in backend.audits():
            latest = row.result or {}
            ended = latest.get("finished_at")
            assert found[row.audit_name, row.host] == [
                latest.get("outcome"),
                to_micros(datetime.fromisoformat(ended)) if ended else None,
            ]
        assert found[first.audit_name, first.host] == [
            "critical",
            to_micros(now + timedelta(seconds=2, microseconds=123457)),
        ]
        assert found[third.audit_name, third.host] == [
            "warning", to_micros(now + timedelta(seconds=5))]  # fmt: skip

    check()
    # An export then an import (entropy import, a state copy between stores) keeps them.
    backend.state.import_rows(backend.state.export_rows())
    check()


def test_past_due_is_the_enabled_rows_whose_next_run_has_passed(
    harness: Harness, clock: FakeClock
) -> None:
    """Where overdue is looked for: past next_run, enabled, with the row's times."""
    backend = harness.backend()
    rows = _due_rows(backend, clock)
    now = clock.now()
    first, second = rows[0], rows[1]
    backend.state.claim([first.id], "e", now, now + timedelta(minutes=1))
    ended = now + timedelta(seconds=2)
    done = Result(Outcome.OK, "fine", started_at=now, finished_at=ended, slot=now,
                  engine_id="e", audit_name=first.audit_name, host=first.host)  # fmt: skip
    backend.state.record([(first.id, done, now + timedelta(hours=1))], "e")
    backend.set_disabled(backend.load().select(second.audit_name, second.host), "why", now)

    later = now + timedelta(seconds=1)
    found = {(p.audit_name, p.host): p for p in backend.state.past_due(later)}
    expected = {(r.audit_name, r.host): r for r in backend.audits()
                if not r.disabled and r.next_run < later}  # fmt: skip
    assert set(found) == set(expected)
    assert (first.audit_name, first.host) not in found  # its next run is an hour on
    assert (second.audit_name, second.host) not in found  # disabled
    for key, row in expected.items():
        got = found[key]
        assert (got.next_run, got.created_at) == (row.next_run, row.created_at)
        assert (got.outcome, got.finished_us) == (None, None)
    at_next = {(p.audit_name, p.host): p for p in backend.state.past_due(now + timedelta(hours=2))}
    assert at_next[first.audit_name, first.host][3:5] == ("ok", to_micros(ended))
    assert backend.state.past_due(now - timedelta(days=1)) == []


def test_repair_run_counts_by_repair_and_outcome(harness: Harness, clock: FakeClock) -> None:
    store = harness.backend().state.repairs
    assert store.run_counts() == {}
    now = clock.now()
    trigger = Result(Outcome.CRITICAL, "bad", started_at=now, finished_at=now, slot=now,
                     audit_name="check_a", host="h1")  # fmt: skip
    for n, (repair, outcome) in enumerate(
        [("fix", Outcome.OK), ("fix", Outcome.OK), ("fix", Outcome.ERROR), ("mend", Outcome.OK)]
    ):
        host = f"h{n}"
        rule = RepairRule(repair, "check_a", frozenset({Outcome.CRITICAL}), "s")
        assert store.start(repair, host, "check_a", rule.outcomes, judge(rule, "check_a", now),
                           "e1", now, now + timedelta(minutes=5)).fire  # fmt: skip
        result = Result(outcome, "done", started_at=now, finished_at=now, engine_id="e1",
                        audit_name="s", host=host)  # fmt: skip
        store.finish(RepairRun(repair, "check_a", "s", 1, result, trigger), "e1")
    assert store.run_counts() == {("fix", "ok"): 2, ("fix", "error"): 1, ("mend", "ok"): 1}


def _due_rows(backend: Backend, clock: FakeClock) -> list[AuditRow]:
    backend.sync(backend.load(), clock.now())
    rows = backend.audits()
    clock.set(max(row.next_run for row in rows))  # everything is due
    return rows


def test_claim_is_exclusive_and_record_is_fenced(harness: Harness, clock: FakeClock) -> None:
    backend = harness.backend()
    rows = _due_rows(backend, clock)
    ids = [row.id for row in rows]
    now = clock.now()
    lease = now + timedelta(minutes=1)
    # Each claimed row comes with its slot: its next_run as stored.
    assert backend.state.claim(ids, "engine-a", now, lease) == {r.id: r.next_run for r in rows}
    assert backend.state.claim(ids, "engine-b", now, lease) == {}  # live lease: not theirs
    claimed = {row.id: row for row in backend.audits()}
    assert {(r.status, r.claimed_by, r.lease_until) for r in claimed.values()} == {
        (Status.PROCESSING, "engine-a", lease)
    }

    finished = now + timedelta(seconds=1, microseconds=250)
    records = []
    for row in rows:
        result = Result(Outcome.WARNING, f"load high on {row.host}", "line 1\nline 2",
                        {"load": {"value": 3.5, "uom": ""}}, now, finished, row.next_run,
                        "engine-a", row.audit_name, row.host)  # fmt: skip
        records.append((row.id, result, row.next_run + timedelta(days=1)))
    assert backend.state.record(records, "engine-b") == 0  # not its claims: fenced out
    assert backend.state.record(records, "engine-a") == len(rows)

    after = {row.id: row for row in backend.audits()}
    for row in rows:
        got = after[row.id]
        assert got.status is Status.PROCESSED and got.claimed_by is None
        assert got.next_run == row.next_run + timedelta(days=1)
        assert got.updated_at == finished
        assert got.result["outcome"] == "warning"
        assert got.result["summary"] == f"load high on {row.host}"
    history = backend.state.results(host=rows[0].host, audit_name=rows[0].audit_name)
    assert len(history) == 1  # the fenced-out record left no history
    # microseconds survive every database
    assert history[0].finished_at == finished
    assert history[0].slot == rows[0].next_run
    assert history[0].metrics == {"load": {"value": 3.5, "uom": ""}}
    assert history[0].output == "line 1\nline 2"


def test_expired_leases_and_released_claims_go_back_to_new(harness: Harness, clock: FakeClock):
    backend = harness.backend()
    rows = _due_rows(backend, clock)
    first, second = rows[0].id, rows[1].id
    now = clock.now()
    backend.state.claim([first], "dead-engine", now, now + timedelta(seconds=30))
    backend.state.claim([second], "stopping-engine", now, now + timedelta(hours=1))
    assert backend.state.recover_expired(now) == 0
    clock.advance(seconds=31)
    assert backend.state.recover_expired(clock.now()) == 1
    assert backend.state.release("stopping-engine", clock.now()) == 1
    after = {row.id: row for row in backend.audits()}
    assert (after[first].status, after[first].attempts) == (Status.NEW, 1)
    assert (after[second].status, after[second].attempts) == (Status.NEW, 0)
    assert after[first].claimed_by is None and after[second].lease_until is None
    # Once back, another engine can take them.
    assert set(backend.state.claim([first, second], "b", clock.now(), clock.now())) == {
        first,
        second,
    }


def test_history_is_pruned_by_age(harness: Harness, clock: FakeClock) -> None:
    backend = harness.backend()
    rows = _due_rows(backend, clock)
    now = clock.now()
    backend.state.claim([rows[0].id], "e", now, now + timedelta(minutes=1))
    old = Result(Outcome.OK, "old", started_at=now - timedelta(days=9),
                 finished_at=now - timedelta(days=9), slot=now, engine_id="e",
                 audit_name=rows[0].audit_name, host=rows[0].host)  # fmt: skip
    new = Result(Outcome.OK, "new", started_at=now, finished_at=now, slot=now, engine_id="e",
                 audit_name=rows[0].audit_name, host=rows[0].host)  # fmt: skip
    backend.state.record([(rows[0].id, old, now), (rows[0].id, new, now)], "e")
    assert backend.state.prune_results(now - timedelta(days=7)) == 1
    assert [r.summary for r in backend.state.results()] == ["new"]


def test_odd_metric_values_are_stored_as_text(harness: Harness, clock: FakeClock) -> None:
    backend = harness.backend()
    rows = _due_rows(backend, clock)
    now = clock.now()
    backend.state.claim([rows[0].id], "e", now, now + timedelta(minutes=1))
    odd = Result(Outcome.OK, "fine", metrics={"checked": {"value": now}}, started_at=now,
                 finished_at=now, slot=now, engine_id="e", audit_name=rows[0].audit_name,
                 host=rows[0].host)  # fmt: skip
    assert backend.state.record([(rows[0].id, odd, now)], "e") == 1
    (stored,) = backend.state.results()
    assert stored.metrics == {"checked": {"value": str(now)}}


# -- repairs: rules from the definitions, guardrails in the state store -----------

REPAIRS = {
    "restart_it": {
        "when": {"audit": "check_*", "outcome": ["critical", "unknown"], "consecutive": 3},
        "run": "vmbooter",
        "cooldown": "30mins",
        "max_concurrent": 2,
        "max_attempts": 3,
        "verify": True,
    }
}


def test_repair_rules_load_from_the_definitions(harness: Harness) -> None:
    harness.write(repairs=REPAIRS)
    (rule,) = harness.backend().load().repairs.values()
    assert (rule.name, rule.audit, rule.run, rule.consecutive) == (
        "restart_it", "check_*", "vmbooter", 3)  # fmt: skip
    assert rule.outcomes == {Outcome.CRITICAL, Outcome.UNKNOWN}
    assert (rule.cooldown, rule.max_concurrent, rule.max_attempts, rule.verify) == (
        1800, 2, 3, True)  # fmt: skip


def test_engines_racing_to_start_repairs_never_exceed_the_guardrails(
    harness: Harness, clock: FakeClock
) -> None:
    """Eight engines at once: one run per host, and max_concurrent across hosts."""
    harness.write(repairs=REPAIRS)
    rule = harness.backend().load().repairs["restart_it"]
    now = clock.now()
    hosts = ["h1", "h1", "h1", "h1", "h2", "h3", "h4", "h5"]
    start = threading.Barrier(len(hosts))

    def race(n: int) -> tuple[str, bool]:
        store = harness.backend().state.repairs  # its own connections, like another engine
        start.wait()
        decision = store.start(
            rule.name, hosts[n], "check_a", rule.outcomes, judge(rule, "check_a", now),
            f"engine-{n}", now, now + timedelta(minutes=5),
        )  # fmt: skip
        return hosts[n], decision.fire

    with ThreadPoolExecutor(len(hosts)) as pool:
        outcomes = list(pool.map(race, range(len(hosts))))
    fired = [host for host, fire in outcomes if fire]
    assert len(fired) == 2 and len(set(fired)) == 2
    states = harness.backend().state.repairs.states(repair_name=rule.name)
    running = sorted(s.host for s in states if s.running(now))
    assert running == sorted(fired)
    assert {s.host for s in states} == set(hosts)


def test_repair_runs_are_recorded_and_a_flag_is_reset(harness: Harness, clock: FakeClock):
    store = harness.backend().state.repairs
    now = clock.now()
    fire = judge(_a_rule(), "check_a", now)
    assert store.start("fix", "h1", "check_a", frozenset({Outcome.CRITICAL}), fire, "e1", now,
                       now + timedelta(minutes=5)).fire  # fmt: skip
    trigger = Result(Outcome.CRITICAL, "bad", started_at=now, finished_at=now, slot=now,
                     audit_name="check_a", host="h1")  # fmt: skip
    result = Result(Outcome.OK, "fixed it", "out", started_at=now, finished_at=now,
                    engine_id="e1", audit_name="fix_script", host="h1")  # fmt: skip
    run = RepairRun(
        "fix",
        "check_a",
        "fix_script",
        1,
        result,
        trigger,
        Verify.NOT_FIXED,
        Result(Outcome.CRITICAL, "still bad", started_at=now, finished_at=now),
    )
    store.finish(run, "e1", flag="1 runs of fix did not fix check_a")
    (record,) = store.runs(host="h1")
    stored = record.to_dict()
    assert {k: stored[k] for k in ("repair_name", "audit_name", "script", "attempt", "outcome",
                                   "summary", "verify", "verify_outcome", "verify_summary")} == {
        "repair_name": "fix", "audit_name": "check_a", "script": "fix_script", "attempt": 1,
        "outcome": "ok", "summary": "fixed it", "verify": "not_fixed",
        "verify_outcome": "critical", "verify_summary": "still bad",
    }  # fmt: skip
    assert stored["trigger_result"]["outcome"] == "critical"
    (state,) = store.states()
    assert (state.flagged, state.running_by, state.attempts) == (True, None, 1)
    assert store.reset("h1", "fix", now) == 1
    (state,) = store.states()
    assert (state.flagged, state.flagged_reason, state.attempts) == (False, None, 0)
    assert store.prune(now + timedelta(seconds=1)) == 1


def _repair_runs(store: RepairStore, clock: FakeClock, runs: list[tuple[str, str, bool]]) -> None:
    """Run repairs through start and finish as an engine does: (repair, host, fixed) each,
    a minute apart; a run left unfixed is flagged when its rule's max_attempts is used up."""
    for repair, host, fixed in runs:
        clock.advance(minutes=1)
        now = clock.now()
        rule = RepairRule(repair, "check_a", frozenset({Outcome.CRITICAL}), f"{repair}_script",
                          max_attempts=2)  # fmt: skip
        decision = store.start(repair, host, "check_a", rule.outcomes, judge(rule, "check_a", now),
                               "e1", now, now + timedelta(minutes=5))  # fmt: skip
        assert decision.fire, decision.reason
        trigger = Result(Outcome.CRITICAL, f"{host} down", started_at=now, finished_at=now,
                         slot=now, engine_id="e1", audit_name="check_a", host=host)  # fmt: skip
        done = now + timedelta(seconds=2, microseconds=7)
        result = Result(Outcome.OK, f"{repair} ran on {host}", "out\nput", started_at=now,
                        finished_at=done, engine_id="e1", audit_name=f"{repair}_script",
                        host=host)  # fmt: skip
        verify = Result(Outcome.OK if fixed else Outcome.CRITICAL, "checked", started_at=done,
                        finished_at=done)  # fmt: skip
        run = RepairRun(repair, "check_a", f"{repair}_script", decision.attempt, result, trigger,
                        Verify.FIXED if fixed else Verify.NOT_FIXED, verify)  # fmt: skip
        unfixed = not fixed and decision.attempt >= 2
        store.finish(run, "e1", flag=f"{decision.attempt} runs of {repair} did not fix check_a"
                     if unfixed else None)  # fmt: skip


def test_repair_states_and_runs_move_to_another_store_replacing_its_own(
    harness: Harness, clock: FakeClock, memory_url: str
) -> None:
    """export_all/import_all, as `entropy import --with-state` uses them: to memory and back."""
    src = harness.backend().state.repairs
    # h1 flagged after two unfixed runs, h2 one unfixed run, h3 fixed (attempts back to 0).
    _repair_runs(src, clock, [("fix", "h1", False), ("fix", "h2", False), ("fix", "h1", False),
                              ("fix", "h3", True)])  # fmt: skip
    # mend left running on h4 by e2, as an engine that stopped mid-run leaves it.
    now = clock.now()
    mend = RepairRule("mend", "check_a", frozenset({Outcome.CRITICAL}), "mend_script")
    assert src.start("mend", "h4", "check_a", mend.outcomes, judge(mend, "check_a", now), "e2",
                     now, now + timedelta(hours=1)).fire  # fmt: skip
    dump = src.export_all()
    assert [(s.repair_name, s.host, s.attempts, s.flagged, s.running_by) for s in dump.states] == [
        ("fix", "h1", 2, True, None), ("fix", "h2", 1, False, None), ("fix", "h3", 0, False, None),
        ("mend", "h4", 1, False, "e2")]  # fmt: skip
    assert dump.states[0].flagged_reason == "2 runs of fix did not fix check_a"
    assert [(r.host, r.attempt) for r in dump.runs] == [("h1", 1), ("h2", 1), ("h1", 2), ("h3", 1)]
    arrived = [dataclasses.replace(s, running_by=None, running_until=None) for s in dump.states]

    # Into a memory store with repairs of its own: they go.
    other = open_state_store(f"{memory_url}-repairs")
    try:
        dst = other.repairs
        _repair_runs(dst, clock, [("stale", "hx", False)])
        dst.import_all(dump, clock.now())
        assert dst.states() == arrived  # h4's mend: not running, its attempt counted
        assert dst.runs(limit=100) == src.runs(limit=100)
        assert dst.run_counts() == {("fix", "ok"): 4}
        # And back into the harness's own kind of store, over repairs it has since.
        _repair_runs(src, clock, [("stale", "hy", False)])
        src.import_all(dst.export_all(), clock.now())
        moved = src.export_all()
        assert (moved.states, moved.runs) == (arrived, dump.runs)
        assert src.run_counts() == {("fix", "ok"): 4}
        # What arrived works as it did: h1 stays flagged, h4's mend starts its attempt 2.
        now = clock.now()
        fix = RepairRule("fix", "check_a", frozenset({Outcome.CRITICAL}), "fix_script")
        held = src.start("fix", "h1", "check_a", fix.outcomes, judge(fix, "check_a", now), "e3",
                         now, now + timedelta(minutes=5))  # fmt: skip
        assert not held.fire and held.reason.startswith("host flagged: 2 runs of fix")
        again = src.start("mend", "h4", "check_a", mend.outcomes, judge(mend, "check_a", now),
                          "e3", now, now + timedelta(minutes=5))  # fmt: skip
        assert (again.fire, again.attempt) == (True, 2)
    finally:
        other.close()
        forget(space_name(f"{memory_url}-repairs"))


def _a_rule() -> RepairRule:
    return RepairRule("fix", "check_a", frozenset({Outcome.CRITICAL}), "fix_script")


def test_an_odd_metric_value_is_stored_as_text(harness: Harness, clock: FakeClock) -> None:
    from decimal import Decimal

    backend = harness.backend()
    now = clock.now()
    metrics = {"load": {"value": Decimal("1.5")}}
    result = Result(Outcome.OK, "fine", metrics=metrics, started_at=now, finished_at=now,
                    slot=now, audit_name="a", host="h")  # fmt: skip
    backend.state.record_adhoc(None, result)
    (stored,) = backend.state.results(host="h")
    assert stored.metrics == {"load": {"value": "1.5"}}


# -- incremental refresh: a sync and a read of some rows only (issue 18) ---------------


def test_a_scoped_sync_reads_and_writes_only_the_rows_of_its_scope(
    harness: Harness, clock: FakeClock
) -> None:
    backend = harness.backend()
    backend.sync(backend.load(), clock.now())
    before = rows_by_key(backend)
    hosts = {k: v for k, v in SEED_HOSTS.items() if k != "compute-02.example.com"}
    hosts["hv-01.example.com"] = {"ip_address": "10.9.9.9", "host_type": "hypervisor"}
    harness.write(hosts=hosts)
    clock.advance(minutes=5)
    catalog = backend.load()
    scope = SyncScope(hosts=frozenset({"hv-01.example.com"}))
    report = backend.sync(catalog, clock.now(), scope=scope)
    assert (report.added, report.removed, report.kept, report.updated) == (0, 0, 1, 1)
    after = rows_by_key(backend)
    assert after["vm_count", "hv-01.example.com"].ip_address == "10.9.9.9"
    # compute-02 left the definitions, but not the scope: its rows stay until a full sync.
    assert after == {
        **before,
        ("vm_count", "hv-01.example.com"): after["vm_count", "hv-01.example.com"],
    }
    report = backend.sync(catalog, clock.now(), force=True)
    assert report.removed == 2 and ("vm_count", "compute-02.example.com") not in rows_by_key(
        backend
    )


def test_a_scoped_sync_counts_max_removal_over_every_stored_row(
    harness: Harness, clock: FakeClock
) -> None:
    backend = harness.backend(max_removal=0.3)  # 2 of 8 may go, but not 2 of the scope's 2
    backend.sync(backend.load(), clock.now())
    schedules = {k: v for k, v in SEED_SCHEDULES.items() if k != "hypervisor_audits.yaml"}
    harness.write(schedules=schedules)
    scope = SyncScope(audits=frozenset({"vm_count"}))
    report = backend.sync(backend.load(), clock.now(), scope=scope)
    assert (report.removed, report.kept) == (2, 0)
    assert len(rows_by_key(backend)) == 6
    strict = harness.backend(max_removal=0.1)
    harness.write()
    strict.sync(strict.load(), clock.now())
    harness.write(schedules=schedules)
    with pytest.raises(RemovalRefused):
        strict.sync(strict.load(), clock.now(), scope=scope)
    assert len(rows_by_key(strict)) == 8  # nothing changed


def test_schedule_rows_of_a_scope_or_of_ids_are_exactly_those_rows(
    harness: Harness, clock: FakeClock
) -> None:
    backend = harness.backend()
    backend.sync(backend.load(), clock.now())
    everything = {row.id: row for row in backend.state.schedule_rows()}
    assert {(r.audit_name, r.host) for r in everything.values()} == set(SEED_PAIRS)
    scope = SyncScope(audits=frozenset({"vm_count"}), hosts=frozenset({"nova-api.mydomain.com"}))
    got = {row.id: row for row in backend.state.schedule_rows(scope=scope)}
    assert got == {i: r for i, r in everything.items() if scope.covers(r.audit_name, r.host)}
    assert len(got) == 4
    some = sorted(everything)[:3]
    assert {row.id: row for row in backend.state.schedule_rows(ids=some)} == {
        i: everything[i] for i in some
    }
    assert backend.state.schedule_rows(ids=[]) == []


def test_take_back_expired_names_the_rows_it_took_and_disabled_ids_the_disabled(
    harness: Harness, clock: FakeClock
) -> None:
    backend = harness.backend()
    rows = _due_rows(backend, clock)
    first, second = rows[0].id, rows[1].id
    now = clock.now()
    backend.state.claim([first, second], "dead-engine", now, now + timedelta(seconds=30))
    assert backend.state.take_back_expired(now) == []
    clock.advance(seconds=31)
    assert sorted(backend.state.take_back_expired(clock.now())) == sorted([first, second])
    assert backend.state.take_back_expired(clock.now()) == []
    assert backend.state.disabled_ids() == set()
    catalog = backend.load()
    pairs = [p for p in catalog.pairs if p.audit_name == "vm_count"]
    backend.set_disabled(pairs, "maintenance", clock.now())
    disabled = {r.id for r in backend.audits() if r.audit_name == "vm_count"}
    assert backend.state.disabled_ids() == disabled and len(disabled) == 2


# -- monitoring state (issue 15): per-pair state, ad hoc downtimes, acknowledgements --------


def _monitor_state(at: datetime, attempt: int = 2) -> MonitorState:
    return MonitorState(Outcome.CRITICAL, StateType.SOFT, attempt, Outcome.OK, at, None, True,
                        0b1011, at - timedelta(minutes=5))  # fmt: skip


def test_a_monitor_state_is_written_with_its_result_fenced_and_read_back(
    harness: Harness, clock: FakeClock
) -> None:
    backend = harness.backend()
    rows = _due_rows(backend, clock)
    now = clock.now()
    watched, plain = rows[0], rows[1]
    state = backend.state
    state.claim([watched.id, plain.id], "engine-a", now, now + timedelta(minutes=1))
    at = now + timedelta(seconds=2, microseconds=7)
    soft = _monitor_state(at)
    records = [
        (row.id, Result(Outcome.CRITICAL, "down", started_at=now, finished_at=at, slot=now,
                        engine_id="engine-a", audit_name=row.audit_name, host=row.host),
         now + timedelta(minutes=1))
        for row in (watched, plain)
    ]  # fmt: skip
    assert state.record(records, "engine-b", {watched.id: soft}) == 0  # fenced out
    assert rows_by_key(backend)[(watched.audit_name, watched.host)].monitor is None
    assert state.record(records, "engine-a", {watched.id: soft}) == 2
    after = rows_by_key(backend)
    assert after[(watched.audit_name, watched.host)].monitor == soft  # microseconds kept
    assert after[(plain.audit_name, plain.host)].monitor is None  # no monitoring: none kept
    found = state.monitor_rows([(watched.audit_name, watched.host),
                                (plain.audit_name, plain.host), ("nope", "nohost")])  # fmt: skip
    assert set(found) == {(watched.audit_name, watched.host), (plain.audit_name, plain.host)}
    mine = found[(watched.audit_name, watched.host)]
    assert (mine.id, mine.monitor, mine.outcome, mine.last_result_at) == (
        watched.id,
        soft,
        Outcome.CRITICAL,
        at,
    )
    assert found[(plain.audit_name, plain.host)].monitor is None
    # A submitted result writes its state with it; a record without states leaves them.
    day = timedelta(days=1)
    hard = MonitorState(Outcome.CRITICAL, StateType.HARD, 1, Outcome.CRITICAL, at, at + day)
    later = Result(
        Outcome.CRITICAL,
        "still down",
        started_at=at,
        finished_at=at + timedelta(1),
        slot=at,
        engine_id="x",
        audit_name=watched.audit_name,
        host=watched.host,
    )
    state.record_adhoc(watched.id, later, hard)
    assert rows_by_key(backend)[(watched.audit_name, watched.host)].monitor == hard
    state.claim([watched.id], "engine-a", clock.advance(days=3), clock.now() + timedelta(1))
    state.record([(watched.id, later, clock.now() + timedelta(1))], "engine-a")
    assert rows_by_key(backend)[(watched.audit_name, watched.host)].monitor == hard


def test_ad_hoc_downtimes_are_kept_listed_removed_and_expired(
    harness: Harness, clock: FakeClock
) -> None:
    state = harness.backend().state
    now = clock.now()
    first = Downtime("dt-1", "kernel upgrade", hosts=("compute-*",), audits=("check_*",),
                     start=now, end=now + timedelta(hours=2), skip_checks=True,
                     created_by="alice", created_at=now)  # fmt: skip
    second = Downtime(
        "dt-0",
        "rack move",
        groups=("control",),
        start=now - timedelta(hours=1),
        end=now + timedelta(minutes=30),
        created_by="bob",
        created_at=now,
    )
    state.add_downtime(first)
    state.add_downtime(second)
    with pytest.raises(StoreConflict, match="dt-1"):
        state.add_downtime(first)
    # Another process (a restarted CLI) sees them, by start.
    assert harness.backend().state.downtimes() == [second, first]
    assert state.expire_downtimes(now + timedelta(minutes=30)) == 1  # dt-0 ended
    assert state.downtimes() == [first]
    assert state.remove_downtime("dt-1") is True
    assert state.remove_downtime("dt-1") is False
    assert state.downtimes() == []


def test_acks_are_one_per_pair_replaced_cleared_and_expired(
    harness: Harness, clock: FakeClock
) -> None:
    state = harness.backend().state
    now = clock.now()
    web = Ack("vmbooter", "nova-api.mydomain.com", "on it", Outcome.CRITICAL, False,
              now + timedelta(hours=4), "alice", now)  # fmt: skip
    db = Ack("vm_count", "hv-01.example.com", "known", Outcome.WARNING, True, None, "bob", now)
    state.set_ack(web)
    state.set_ack(db)
    sticky = Ack(web.audit_name, web.host, "still on it", Outcome.WARNING, True,
                 now + timedelta(hours=1), "carol", now)  # fmt: skip
    state.set_ack(sticky)  # replaces alice's
    assert harness.backend().state.acks() == [db, sticky]  # by host, then audit
    assert state.acks(host="hv-01.example.com") == [db]
    assert state.acks(audit_name="vmbooter") == [sticky]
    assert state.expire_acks(now + timedelta(minutes=59)) == 0
    assert state.expire_acks(now + timedelta(hours=1)) == 1  # the one without expiry stays
    assert state.acks() == [db]
    assert state.clear_ack(db.audit_name, db.host) is True
    assert state.clear_ack(db.audit_name, db.host) is False
    assert state.acks() == []


MONITORED_HOSTS = {
    **SEED_HOSTS,
    "compute-02.example.com": {
        **SEED_HOSTS["compute-02.example.com"],
        "parents": ["hv-01.example.com"],
    },
}
MONITORED_SCHEDULES = {
    **SEED_SCHEDULES,
    "compute_audits.yaml": {
        "compute": {
            "audits": {
                "check_nova_config_exists": {
                    "run_every": "1day", "max_attempts": 3, "retry_every": "2m",
                    "flapping": {"low": 20, "high": 40},
                    "depends_on": {"audit": "vm_count", "host": "parent"},
                },
                "check_nova_compute_log_file_exists": {"passive": True, "freshness": "1h"},
            }
        }
    },
}  # fmt: skip
MONITORED_DOWNTIMES = {
    "kernel": {"hosts": ["compute-*"], "audits": ["check_nova_*"], "cron": "0 2 * * 6",
               "duration": "2h", "reason": "kernel upgrades"},
    "dc-move": {"groups": ["control"], "start": "2026-03-01T22:00:00+00:00",
                "end": "2026-03-02T04:00:00+00:00", "reason": "moving racks",
                "skip_checks": True},
}  # fmt: skip


def test_monitoring_definitions_round_trip_through_every_source(
    harness: Harness,
) -> None:
    """parents, a schedule's monitoring keys and downtimes, as the dir backend reads them."""
    harness.write(hosts=MONITORED_HOSTS, schedules=MONITORED_SCHEDULES,
                  downtimes=MONITORED_DOWNTIMES)  # fmt: skip
    catalog = harness.backend().load()
    assert catalog.hosts["compute-02.example.com"].parents == ("hv-01.example.com",)
    schedules = {s.audit_name: s for s in catalog.schedules}
    watched = schedules["check_nova_config_exists"].monitoring
    assert watched == MonitorSettings(3, 120, Flapping(20.0, 40.0),
                                      Dependency("vm_count", "parent"))  # fmt: skip
    passive = schedules["check_nova_compute_log_file_exists"]
    assert passive.monitoring == MonitorSettings(passive=True, freshness=3600)
    assert passive.timing == Every(3600)
    assert schedules["vm_count"].monitoring is None
    assert set(catalog.downtimes) == {"kernel", "dc-move"}
    kernel, move = catalog.downtimes["kernel"], catalog.downtimes["dc-move"]
    assert (kernel.hosts, kernel.audits, kernel.cron.expr, kernel.duration) == (
        ("compute-*",),
        ("check_nova_*",),
        "0 2 * * 6",
        7200,
    )
    assert (move.groups, move.skip_checks, move.reason) == (("control",), True, "moving racks")
    assert (move.start, move.end) == (
        datetime.fromisoformat("2026-03-01T22:00:00+00:00"),
        datetime.fromisoformat("2026-03-02T04:00:00+00:00"),
    )
