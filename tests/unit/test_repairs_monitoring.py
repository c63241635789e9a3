"""Repairs under the monitoring rules (issue 15), on a fake clock and the memory store.

Results go through monitor_record.apply and are stored with their state, as
the engine's recorder and `result submit` store them; then Repairer.handle
decides, as on the engine's repair pool. Each hold has its reason, and
`repair plan` shows it.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from entropy.backends import Backend, fetch
from entropy.clock import FakeClock
from entropy.config import load_conf
from entropy.model import Ack, Catalog, Downtime, Outcome, RepairDecision, RepairRun, Result
from entropy.monitor_record import apply, clear_ended_acks
from entropy.repairs import Repairer, plan
from fleets import write_fleet

HOSTS = {
    "sw-1": {"ip_address": "10.0.9.1", "host_type": "switch"},
    **{f"h{i}": {"ip_address": f"10.0.0.{i}", "host_type": "compute", "parents": ["sw-1"]}
       for i in (1, 2)},
}  # fmt: skip
SCRIPTS = {
    "marker": {"kind": "command", "command": ["true"]},  # results are given, never run
    "ping": {"kind": "command", "command": ["true"]},
    "fix": {"kind": "command", "command": ["true"]},
}
C, W, OK = Outcome.CRITICAL, Outcome.WARNING, Outcome.OK


class Fleet:
    def __init__(self, tmp_path: Path, clock: FakeClock, marker: dict[str, Any],
                 repair: dict[str, Any] | None = None) -> None:  # fmt: skip
        schedules = {
            "compute.yaml": {
                "compute": {
                    "audits": {
                        "marker": {
                            **({} if marker.get("passive") else {"run_every": "10m"}),
                            **marker,
                        }
                    }
                }
            },
            "switch.yaml": {"switch": {"audits": {"ping": {"run_every": "1m"}}}},
        }
        when = {"audit": "marker", "outcome": ["warning", "critical"], **(repair or {})}
        repairs = {"fix": {"when": when, "run": "fix"}}
        root = write_fleet("dir", tmp_path / "fleet", hosts=HOSTS, scripts=SCRIPTS,
                           schedules=schedules, repairs=repairs)  # fmt: skip
        conf = load_conf()
        conf.set_override("state_connection", f"memory:{root}", group="dir")
        self.clock = clock
        self.backend: Backend = fetch(conf, f"dir:{root}")
        self.catalog: Catalog = self.backend.load()
        self.backend.sync(self.catalog, clock.now())
        self.rows = {(r.audit_name, r.host): r.id for r in self.backend.audits()}
        self.repairer = Repairer(self.backend, clock, "engine-1", default_timeout=10)

    def result(self, outcome: Outcome, host: str = "h1", audit: str = "marker") -> Any:
        """Store one result with its monitoring state; the repair decision for it."""
        row_id, pair, result = self.record(outcome, host, audit)
        if audit != "marker" or result.outcome not in (C, W):
            return None  # what Repairer.consider filters out: no rule watches it
        (rule,) = self.catalog.repairs.values()
        return self.repairer.handle(self.catalog, rule, row_id, pair, result)

    def record(self, outcome: Outcome, host: str = "h1", audit: str = "marker") -> Any:
        """Store one result with its monitoring state: (row id, pair, result) as recorded."""
        now = self.clock.now()
        (pair,) = [p for p in self.catalog.pairs if p.key == (audit, host)]
        result = Result(outcome, f"{outcome.value} on {host}", started_at=now, finished_at=now,
                        slot=now, engine_id="engine-1", audit_name=audit, host=host)  # fmt: skip
        row_id = self.rows[pair.key]
        state = None
        if pair.schedule.monitoring is not None:
            (done,) = apply(self.backend.state, self.catalog, [(row_id, pair, result, now)], now)
            result, state = done.result, done.state
        self.backend.state.record_adhoc(row_id, result, state)
        if state is not None:  # as the recorder and result submit do, once written
            clear_ended_acks(self.backend.state, [done])
        self.clock.advance(60)
        self.last = result
        return row_id, pair, result

    def plan(self) -> dict[str, tuple[str, str]]:
        return {i.host: (i.verdict, i.reason) for i in
                plan(self.backend, self.catalog, self.clock.now())}  # fmt: skip


def held(decision: Any, starts: str) -> bool:
    return (
        isinstance(decision, RepairDecision)
        and not decision.fire
        and (decision.reason.startswith(starts))
    )


@pytest.fixture
def make_fleet(tmp_path: Path, clock: FakeClock):
    return lambda marker, **repair: Fleet(tmp_path, clock, marker, repair)


@pytest.mark.parametrize("attempts", [1, 2, 3])
def test_a_repair_fires_on_the_hard_state_only(make_fleet, attempts: int) -> None:
    fleet = make_fleet(
        {"max_attempts": attempts, **({"retry_every": "1m"} if attempts > 1 else {})}
    )
    for attempt in range(1, attempts):
        decision = fleet.result(C)
        assert held(decision, f"soft state: critical, attempt {attempt} of {attempts}")
        assert fleet.plan()["h1"] == ("held", decision.reason)
    assert isinstance(fleet.result(C), RepairRun)


def test_recovery_from_a_soft_state_fires_no_repair(make_fleet) -> None:
    fleet = make_fleet({"max_attempts": 3, "retry_every": "1m"})
    assert held(fleet.result(C), "soft state")
    assert held(fleet.result(C), "soft state")
    assert fleet.result(OK) is None
    assert fleet.backend.state.repairs.runs() == []
    assert held(fleet.result(C), "soft state: critical, attempt 1 of 3")  # counts again


def test_consecutive_counts_hard_results(make_fleet) -> None:
    fleet = make_fleet({"max_attempts": 2, "retry_every": "1m"}, consecutive=2)
    assert held(fleet.result(C), "soft state")
    assert fleet.result(C) is None  # hard, but the first hard failure
    assert fleet.plan()["h1"] == ("waiting", "1 of 2 hard failures in a row")
    assert isinstance(fleet.result(C), RepairRun)


def test_a_repair_due_in_a_downtime_is_held_and_fires_after_it(make_fleet) -> None:
    fleet = make_fleet({})
    now = fleet.clock.now()
    window = {"start": now, "end": now + timedelta(minutes=5)}
    fleet.backend.state.add_downtime(Downtime("dt-1", "kernel upgrade", hosts=("h*",), **window))
    decision = fleet.result(C)
    assert held(decision, "in downtime 'dt-1' until ")
    assert decision.reason.endswith(": kernel upgrade")
    assert fleet.plan()["h1"] == ("held", fleet.plan()["h1"][1])
    assert fleet.plan()["h1"][1].startswith("in downtime 'dt-1'")
    fleet.clock.advance(minutes=5)  # the window is over; the audit still fails
    assert isinstance(fleet.result(C), RepairRun)


def test_a_definitions_downtime_by_group_holds_too(tmp_path: Path, clock: FakeClock) -> None:
    fleet = Fleet(tmp_path, clock, {})
    start = clock.now() - timedelta(minutes=1)
    window = {"start": start, "end": start + timedelta(hours=1)}
    fleet.catalog.downtimes["racks"] = Downtime("racks", "moving racks", groups=("compute",),
                                                **window)  # fmt: skip
    assert held(fleet.result(C), "in downtime 'racks'")


def test_an_ack_holds_repairs_until_it_expires(make_fleet) -> None:
    fleet = make_fleet({"max_attempts": 1})
    fleet.result(C)  # the first one fires
    now = fleet.clock.now()
    fleet.backend.state.set_ack(Ack("marker", "h1", "on it", C, expires_at=now + timedelta(
        minutes=3), created_by="alice", created_at=now))  # fmt: skip
    decision = fleet.result(C)
    assert held(decision, "acknowledged by alice until ")
    assert decision.reason.endswith(": on it")
    assert fleet.plan()["h1"][0] == "held"
    fleet.clock.advance(minutes=3)  # it expires
    assert not held(fleet.result(C), "acknowledged")
    assert fleet.backend.state.acks() == []  # cleared once found expired


def test_a_sticky_ack_survives_warning_to_critical_a_plain_one_does_not(make_fleet) -> None:
    fleet = make_fleet({"max_attempts": 2, "retry_every": "1m"})
    for sticky in (True, False):
        fleet.result(W)
        now = fleet.clock.now()
        fleet.backend.state.set_ack(Ack("marker", "h1", "known", W, sticky, None, "bob", now))
        decision = fleet.result(C)  # a state change, and the hard state
        assert held(decision, "acknowledged by bob") is sticky
        assert bool(fleet.backend.state.acks()) is sticky
        if not sticky:
            assert isinstance(decision, RepairRun)
        fleet.result(OK)  # recovery clears even a sticky one, as the result is recorded
        assert fleet.backend.state.acks() == []


def test_an_ack_of_a_pair_without_monitoring_clears_on_recovery(make_fleet) -> None:
    fleet = make_fleet({})
    fleet.result(C)
    now = fleet.clock.now()
    fleet.backend.state.set_ack(Ack("marker", "h1", "known", C, False, None, "bob", now))
    assert held(fleet.result(C), "acknowledged by bob")
    fleet.result(OK)
    assert not held(fleet.result(C), "acknowledged")  # it was ok since: the ack is gone
    assert fleet.backend.state.acks() == []


def test_a_child_behind_a_failed_parent_is_unreachable_with_no_repair(make_fleet) -> None:
    fleet = make_fleet({"depends_on": {"audit": "ping", "host": "parent"}})
    fleet.result(C, host="sw-1", audit="ping")  # the parent's ping is hard critical
    assert fleet.result(C, host="h1") is None  # no rule may watch unreachable
    assert fleet.last.outcome is Outcome.UNREACHABLE
    assert fleet.last.summary.startswith("unreachable (parent down: ping on sw-1 is critical)")
    assert fleet.plan()["h1"] == ("held", "unreachable: a dependency (ping on its parents) is down")
    assert fleet.backend.state.repairs.runs() == []
    fleet.result(OK, host="sw-1", audit="ping")  # the parent is back: a failure is the child's
    assert isinstance(fleet.result(C, host="h1"), RepairRun)


def test_a_flapping_pair_holds_its_repairs(make_fleet) -> None:
    fleet = make_fleet({"flapping": True})
    decision = None
    for outcome in [C, OK] * 4:
        decision = fleet.result(outcome) or decision
    assert held(fleet.result(C), "flapping: ")
    assert fleet.plan()["h1"][1].startswith("flapping: ")


def test_a_passive_audits_failures_reach_the_engines_repairer(make_fleet) -> None:
    """A passive audit has no script: its rules are found by its schedule's name."""
    fleet = make_fleet({"passive": True, "freshness": "1d"})
    fleet.catalog.scripts.pop("marker", None)  # SCRIPTS has one; a passive audit needs none
    fleet.repairer.consider(fleet.catalog, [fleet.record(C)])  # the engine's publisher's call
    fleet.repairer.drain()
    (run,) = fleet.backend.state.repairs.runs()
    assert (run.repair_name, run.host, run.audit_name) == ("fix", "h1", "marker")


def test_consider_now_says_what_each_rule_made_of_a_result(make_fleet) -> None:
    """`result submit`'s step: the engine's filter and handle(), waited for, each verdict said."""
    fleet = make_fleet({"depends_on": {"audit": "ping", "host": "parent"}, "max_attempts": 2})
    now = fleet.repairer.consider_now
    fleet.result(C, host="sw-1", audit="ping")  # the parent's ping is hard critical
    (held_,) = now(fleet.catalog, [fleet.record(C)])  # unreachable: read, not left out
    assert (held_.repair_name, held_.host, held_.verdict, held_.reason) == (
        "fix", "h1", "held", "unreachable: a dependency (ping on its parents) is down")  # fmt: skip
    assert now(fleet.catalog, [fleet.record(OK)]) == []  # no rule watches ok
    fleet.result(OK, host="sw-1", audit="ping")
    (soft,) = now(fleet.catalog, [fleet.record(C)])
    assert (soft.verdict, soft.run) == ("held", None) and soft.reason.startswith("soft state")
    (ran,) = now(fleet.catalog, [fleet.record(C)])
    assert (ran.verdict, ran.reason) == ("ran", "attempt 1: ok") and ran.run is not None
    assert ran.to_dict()["run"]["attempt"] == 1
    assert [r.attempt for r in fleet.backend.state.repairs.runs()] == [1]
