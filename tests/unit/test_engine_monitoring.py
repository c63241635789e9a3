"""The engine under the monitoring rules (issue 15), on the fake clock and the memory store.

The pool runs inline, in the test's thread; each audit is a python function
answering what VERDICTS says for its host. What is checked is what the
engine stores and when it runs a pair next: soft/hard states and retries,
the regular slots resumed, unreachable children, and a pair without
monitoring recorded exactly as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from entropy.backends.base import Backend
from entropy.backends.impl_dir import DirDefinitions
from entropy.backends.impl_memory import MemoryStateStore, forget
from entropy.clock import FakeClock
from entropy.config import load_conf
from entropy.engine import Engine, EngineSettings, WorkerPool
from entropy.errors import StorageFailure
from entropy.events import Events
from entropy.model import Ack, AuditRow, Downtime, Outcome, Result, StateType
from fleets import write_fleet

VERDICTS: dict[str, str] = {}  # host -> the outcome its audits answer


def verdict(host: Any, params: dict[str, Any]) -> str:
    return VERDICTS.get(host.name, "ok")


HOSTS = {
    "sw-1": {"ip_address": "10.0.9.1", "host_type": "switch"},
    "h1": {"ip_address": "10.0.0.1", "host_type": "compute", "parents": ["sw-1"]},
    "h2": {"ip_address": "10.0.0.2", "host_type": "compute"},
}
SCRIPTS = {name: {"kind": "python", "function": f"{__name__}:verdict"}
           for name in ("check", "ping", "plain")}  # fmt: skip


@pytest.fixture(autouse=True)
def _fresh_verdicts() -> Iterator[None]:
    VERDICTS.clear()
    yield
    VERDICTS.clear()


class Fleet:
    def __init__(
        self,
        tmp_path: Path,
        clock: FakeClock,
        check: dict[str, Any],
        more: dict[str, Any] | None = None,
        events: Events | None = None,
    ) -> None:
        schedules = {
            "compute.yaml": {"compute": {"audits": {
                "check": {"run_every": "10m", **check},
                "plain": {"run_every": "10m"},
            }}},
            "switch.yaml": {"switch": {"audits": {"ping": {"run_every": "10m"}}}},
            **(more or {}),
        }  # fmt: skip
        root = write_fleet("dir", tmp_path / "fleet", hosts=HOSTS, scripts=SCRIPTS,
                           schedules=schedules)  # fmt: skip
        conf = load_conf()
        conf.set_override("max_splay", 0)  # every pair's first slot is now
        self.store = MemoryStateStore(f"memory:{tmp_path}")
        self.backend = Backend(conf, DirDefinitions(conf, str(root)), state=self.store)
        from entropy.scheduler import Scheduler

        self.clock = clock
        self.scheduler = Scheduler(self.backend, clock, refresh_in_background=False)
        self.scheduler.refresh()
        settings = EngineSettings("e1")
        pool = WorkerPool(settings.max_workers, clock, "e1", inline=True)
        self.engine = Engine(self.backend, self.scheduler, clock, settings, executor=pool,
                             events=events)  # fmt: skip

    def run_at(self, when: Any) -> list[tuple[str, str]]:
        """Move the clock there and run one pass: the (audit, host) pairs that ran."""
        self.clock.set(when)
        return sorted(due.pair.key for due in self.engine.run_once())

    def row(self, audit: str, host: str) -> AuditRow:
        (found,) = self.backend.audits(host=host, audit_name=audit)
        return found


@pytest.fixture
def make_fleet(tmp_path: Path, clock: FakeClock) -> Iterator[Any]:
    yield lambda check: Fleet(tmp_path, clock, check)
    forget(str(tmp_path))


def test_a_failure_is_retried_at_retry_every_until_hard_then_back_on_its_slots(make_fleet):
    fleet = make_fleet({"max_attempts": 3, "retry_every": "1m"})
    start = fleet.scheduler.next_due()
    VERDICTS["h2"] = "critical"
    assert ("check", "h2") in fleet.run_at(start)
    row = fleet.row("check", "h2")
    assert (row.monitor.state, row.monitor.state_type, row.monitor.attempt) == (
        Outcome.CRITICAL,
        StateType.SOFT,
        1,
    )
    assert row.next_run == start + timedelta(minutes=1)  # a retry, in the store too
    assert fleet.row("plain", "h2").next_run == start + timedelta(minutes=10)
    assert fleet.run_at(start + timedelta(minutes=1)) == [("check", "h2")]
    assert fleet.row("check", "h2").monitor.attempt == 2
    assert fleet.run_at(start + timedelta(minutes=2)) == [("check", "h2")]
    hard = fleet.row("check", "h2")
    assert (hard.monitor.state_type, hard.monitor.hard_state) == (StateType.HARD, Outcome.CRITICAL)
    assert hard.monitor.last_hard_state_change == start + timedelta(minutes=2)
    assert hard.next_run == start + timedelta(minutes=10)  # hard: its regular slot again
    assert fleet.scheduler.next_due() == start + timedelta(minutes=10)
    outcomes = [r.outcome for r in fleet.store.results(host="h2", audit_name="check")]
    assert outcomes == [Outcome.CRITICAL] * 3


def test_a_retry_is_never_later_than_the_regular_slot(make_fleet):
    fleet = make_fleet({"max_attempts": 3, "retry_every": "1h"})
    start = fleet.scheduler.next_due()
    VERDICTS["h2"] = "critical"
    fleet.run_at(start)
    assert fleet.row("check", "h2").next_run == start + timedelta(minutes=10)


def test_recovery_while_soft_returns_to_the_regular_slots(make_fleet):
    fleet = make_fleet({"max_attempts": 3, "retry_every": "1m"})
    start = fleet.scheduler.next_due()
    VERDICTS["h2"] = "critical"
    fleet.run_at(start)
    VERDICTS["h2"] = "ok"
    fleet.run_at(start + timedelta(minutes=1))
    row = fleet.row("check", "h2")
    assert (row.monitor.state, row.monitor.state_type) == (Outcome.OK, StateType.HARD)
    assert row.monitor.hard_state is Outcome.OK  # it never changed: no hard state change
    assert row.next_run == start + timedelta(minutes=10)


def test_a_child_behind_a_failed_parent_is_recorded_unreachable(make_fleet):
    fleet = make_fleet({"depends_on": {"audit": "ping", "host": "parent"}})
    start = fleet.scheduler.next_due()
    VERDICTS["sw-1"] = "critical"
    fleet.run_at(start)  # the parent's ping fails (its child is fine)
    VERDICTS["h1"] = "critical"
    fleet.run_at(start + timedelta(minutes=10))
    child = fleet.store.results(host="h1", audit_name="check")[0]
    assert child.outcome is Outcome.UNREACHABLE
    assert (
        child.summary
        == "unreachable (parent down: ping on sw-1 is critical); was critical: critical"
    )
    # The parent is back: the child's next failure is its own.
    VERDICTS["sw-1"] = "ok"
    fleet.run_at(start + timedelta(minutes=20))
    assert fleet.store.results(host="h1", audit_name="check")[0].outcome is Outcome.CRITICAL


def test_pairs_without_monitoring_are_recorded_as_before(make_fleet):
    fleet = make_fleet({})
    VERDICTS["h2"] = "critical"
    start = fleet.scheduler.next_due()
    assert len(fleet.run_at(start)) == 5
    assert fleet.engine.monitoring.used is False  # the recorder never looked at a batch
    assert all(row.monitor is None for row in fleet.backend.audits())
    assert fleet.row("check", "h2").next_run == start + timedelta(minutes=10)


def test_a_passive_audit_turns_unknown_after_its_freshness(tmp_path: Path, clock: FakeClock):
    backups = {"backup.yaml": {"compute": {"audits": {
        "backup_done": {"passive": True, "freshness": "1h"}}}}}  # fmt: skip
    fleet = Fleet(tmp_path, clock, {}, backups)
    created = fleet.row("backup_done", "h2").created_at
    # A result submitted in time keeps it fresh: nothing is recorded at its first check.
    submitted = Result(Outcome.OK, "backup 42 GiB", started_at=clock.now(),
                       finished_at=clock.now() + timedelta(minutes=30),
                       audit_name="backup_done", host="h2")  # fmt: skip
    fleet.store.record_adhoc(fleet.row("backup_done", "h2").id, submitted)
    first = fleet.scheduler.next_due()
    assert first <= created + timedelta(hours=1)
    fleet.run_at(first)
    assert fleet.store.results(host="h2", audit_name="backup_done") == [submitted]

    # Checked again when it would go stale; nothing more came: unknown.
    def backups() -> int:
        return len(fleet.store.results(host="h2", audit_name="backup_done"))

    stale_at = submitted.finished_at + timedelta(hours=1)
    fleet.run_at(stale_at - timedelta(seconds=1))
    assert backups() == 1
    fleet.run_at(stale_at)
    assert backups() == 2
    latest = fleet.store.results(host="h2", audit_name="backup_done")[0]
    assert (latest.outcome, latest.summary) == (
        Outcome.UNKNOWN,
        "no result for backup_done on h2 in 1h",
    )
    assert latest.engine_id == "e1"
    assert fleet.row("backup_done", "h2").monitor.state is Outcome.UNKNOWN
    # And again every freshness while nothing arrives.
    fleet.run_at(stale_at + timedelta(minutes=59))
    assert backups() == 2
    fleet.run_at(stale_at + timedelta(hours=1))
    assert backups() == 3


def test_events_state_changes_flapping_downtime_ack_and_unreachable(
    tmp_path: Path, clock: FakeClock
) -> None:
    from test_events import collect

    url = f"memory://{tmp_path.name}"
    connection, queue = collect(url)
    events = Events(url)
    check = {"max_attempts": 2, "retry_every": "1m", "flapping": {"low": 2, "high": 5},
             "depends_on": {"audit": "ping", "host": "parent"}}  # fmt: skip
    fleet = Fleet(tmp_path, clock, check, events=events)
    start = fleet.scheduler.next_due()
    VERDICTS["h2"] = "critical"
    fleet.run_at(start)  # soft: its audit event only
    fleet.run_at(start + timedelta(minutes=1))  # hard: and state.check.critical
    now = fleet.clock.now()
    fleet.store.set_ack(Ack("check", "h2", "on it", Outcome.CRITICAL, created_at=now))
    fleet.run_at(start + timedelta(minutes=10))  # acknowledged, no change: not published
    fleet.store.clear_ack("check", "h2")
    fleet.store.add_downtime(Downtime("dt-9", "kernel", hosts=("h2",), start=now,
                                      end=now + timedelta(hours=1)))  # fmt: skip
    fleet.run_at(start + timedelta(minutes=20))  # in downtime: marked
    VERDICTS["sw-1"] = "critical"  # h1's parent: h1's failure is unreachable, not published
    fleet.run_at(start + timedelta(minutes=30))
    VERDICTS["h1"] = "critical"
    fleet.run_at(start + timedelta(minutes=40))
    events.close()
    got = []
    while True:
        try:
            message = queue.get(timeout=0.5)
        except Exception:
            break
        message.ack()
        got.append((message.delivery_info["routing_key"], message.payload))
    connection.close()
    checks = [(key, body) for key, body in got if body.get("audit_name") == "check"]
    h2 = [(key, body) for key, body in checks if body["host"] == "h2"]
    keys = [key for key, _ in h2]
    assert keys[:4] == ["audit.check.critical", "flapping.check.start", "audit.check.critical",
                        "state.check.critical"]  # fmt: skip
    state = h2[3][1]
    assert (state["state"], state["previous_state"], state["state_type"]) == (
        "critical",
        "ok",
        "hard",
    )
    assert h2[1][1]["percent"] == 6.0  # ok -> critical: 1.2 of 20 weighted changes, over 5 %
    marked = [body for key, body in h2 if body.get("downtime") == "dt-9"]
    assert len(marked) == 3 and marked[0]["downtime_reason"] == "kernel"  # +20, +30, +40 min
    audit_times = [body["finished_at"] for key, body in h2 if key.startswith("audit.")]
    assert len(audit_times) == len(set(audit_times)) == 5  # the acknowledged one left out
    h1 = [key for key, body in checks if body["host"] == "h1"]
    assert "audit.check.unreachable" not in h1 and not any(k.startswith("state.") for k in h1)


def test_a_downtime_with_skip_checks_skips_the_audits_it_covers(make_fleet) -> None:
    fleet = make_fleet({})
    start = fleet.scheduler.next_due()
    end = start + timedelta(minutes=15)
    fleet.store.add_downtime(
        Downtime("dt-1", "rack move", hosts=("h2",), start=start, end=end, skip_checks=True)
    )
    fleet.run_at(start)
    assert fleet.store.results(host="h2") == []  # skipped
    assert len(fleet.store.results(host="h1")) == 2  # not covered: ran
    fleet.run_at(start + timedelta(minutes=10))
    assert fleet.store.results(host="h2") == []
    fleet.run_at(start + timedelta(minutes=20))  # the window is over
    assert len(fleet.store.results(host="h2")) == 2


def test_pruning_forgets_ended_downtimes_and_expired_acks(make_fleet) -> None:
    fleet = make_fleet({})
    now = fleet.clock.now()
    fleet.store.add_downtime(Downtime("dt-1", "x", hosts=("h2",), start=now,
                                      end=now + timedelta(minutes=5)))  # fmt: skip
    fleet.store.set_ack(Ack("check", "h2", "x", Outcome.CRITICAL,
                            expires_at=now + timedelta(minutes=5)))  # fmt: skip
    fleet.engine.recorder.prune()
    assert fleet.store.downtimes() and fleet.store.acks()
    fleet.clock.advance(minutes=5)
    fleet.engine.recorder.prune()
    assert fleet.store.downtimes() == [] and fleet.store.acks() == []


def test_an_ack_is_lifted_only_by_a_result_that_was_written(make_fleet) -> None:
    """A recovery the store refused to record must not lift the operator's ack: the
    ack is cleared after the write, in the recorder, not while the rules are applied."""
    fleet = make_fleet({"max_attempts": 2, "retry_every": "1m"})
    start = fleet.scheduler.next_due()
    VERDICTS["h2"] = "critical"
    fleet.run_at(start)
    fleet.run_at(start + timedelta(minutes=1))
    assert fleet.row("check", "h2").monitor.hard_state is Outcome.CRITICAL
    fleet.store.set_ack(Ack("check", "h2", "on it", Outcome.CRITICAL, created_at=start))
    VERDICTS["h2"] = "ok"
    record = fleet.store.record

    def refused(*args: Any, **kwargs: Any) -> int:
        raise StorageFailure("value too long for the results table")

    fleet.store.record = refused  # the store refuses the batch for good: it is dropped
    fleet.run_at(start + timedelta(minutes=10))
    assert fleet.engine.recorder.dropped > 0
    assert [a.host for a in fleet.store.acks()] == ["h2"]  # the recovery was never recorded
    fleet.store.record = record
    fleet.clock.set(start + timedelta(minutes=20))
    fleet.store.take_back_expired(fleet.clock.now())  # the dropped result's lease ran out
    fleet.run_at(start + timedelta(minutes=20))
    assert fleet.row("check", "h2").monitor.state is Outcome.OK
    assert fleet.store.acks() == []
    assert fleet.row("check", "h2").monitor.state is Outcome.OK
    assert fleet.store.acks() == []
