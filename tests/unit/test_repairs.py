"""Repair rules and their guardrails, on a fake clock and the memory state store.

Results are stored as the engine stores them (history first), then handed
to Repairer.handle, which the engine calls on its repair pool.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from entropy.backends import Backend, fetch
from entropy.clock import FakeClock
from entropy.config import load_conf
from entropy.errors import ValidationError
from entropy.model import Catalog, Outcome, RepairDecision, RepairRun, Result, Verify
from entropy.repairs import Repairer, plan
from fleets import write_fleet

HOSTS = {
    f"h{i}.example": {"ip_address": f"10.0.0.{i}", "host_type": "compute"} for i in range(1, 5)
}
SCHEDULES = {"compute.yaml": {"compute": {"audits": {"marker": {"run_every": "1m"}}}}}


def scripts(marker_dir: Path) -> dict[str, Any]:
    """`marker` is critical until the file DIR/HOST exists; `make_marker` creates it."""
    marker = f'{marker_dir}/"$ENTROPY_HOST"'  # from the environment: never parsed as code
    check = f'test -f {marker} && echo "OK - there" || {{ echo "CRITICAL"; exit 2; }}'
    return {
        "marker": {"kind": "command", "command": ["sh", "-c", check]},
        "make_marker": {"kind": "command", "command": ["touch", f"{marker_dir}/{{host}}"]},
        "do_nothing": {"kind": "command", "command": ["true"]},
    }


def rule(**settings: Any) -> dict[str, Any]:
    when = {"audit": "marker", "outcome": ["critical"]}
    when.update(settings.pop("when", {}))
    return {"when": when, "run": "make_marker", **settings}


class Fleet:
    def __init__(self, tmp_path: Path, clock: FakeClock, repairs: dict[str, Any]) -> None:
        self.markers = tmp_path / "markers"
        self.markers.mkdir()
        root = write_fleet(
            "dir", tmp_path / "fleet", hosts=HOSTS, scripts=scripts(self.markers),
            schedules=SCHEDULES, repairs=repairs,
        )  # fmt: skip
        self.clock = clock
        conf = load_conf()  # state in the reference store (every store runs the contract suite)
        conf.set_override("state_connection", f"memory:{root}", group="dir")
        self.backend: Backend = fetch(conf, f"dir:{root}")
        self.catalog: Catalog = self.backend.load()
        self.backend.sync(self.catalog, clock.now())
        self.rows = {row.host: row.id for row in self.backend.audits()}
        self.repairer = self.fresh_repairer()

    def fresh_repairer(self, engine_id: str = "engine-1") -> Repairer:
        """As after an engine restart: nothing in memory, everything from the store."""
        return Repairer(self.backend, self.clock, engine_id, default_timeout=10)

    def result(self, host: str, outcome: Outcome) -> RepairDecision | RepairRun | None:
        """Store one scheduled result of `marker` on host, then let the rules act on it."""
        now = self.clock.now()
        result = Result(outcome, f"{outcome.value} on {host}", started_at=now, finished_at=now,
                        slot=now, engine_id="engine-1", audit_name="marker", host=host)  # fmt: skip
        self.backend.state.record_adhoc(self.rows[host], result)
        self.clock.advance(60)
        (only,) = self.catalog.repairs.values()
        (pair,) = [p for p in self.catalog.pairs if p.host == host]
        return self.repairer.handle(self.catalog, only, self.rows[host], pair, result)


@pytest.fixture
def make_fleet(tmp_path: Path, clock: FakeClock):
    return lambda **repairs: Fleet(tmp_path, clock, repairs)


def test_consecutive_fires_on_the_third_failure_in_a_row_and_resets_after_ok(make_fleet) -> None:
    fleet = make_fleet(fix=rule(when={"consecutive": 3}))
    crit = Outcome.CRITICAL
    assert fleet.result("h1.example", crit) is None
    assert fleet.result("h1.example", crit) is None
    assert fleet.result("h1.example", Outcome.OK) is None  # the streak starts again
    assert fleet.result("h1.example", crit) is None
    assert fleet.result("h1.example", crit) is None
    run = fleet.result("h1.example", crit)
    assert isinstance(run, RepairRun)
    assert (run.repair_name, run.result.host, run.attempt) == ("fix", "h1.example", 1)
    assert run.result.outcome is Outcome.OK
    assert (fleet.markers / "h1.example").exists()


def test_a_warning_breaks_a_critical_streak(make_fleet) -> None:
    fleet = make_fleet(fix=rule(when={"consecutive": 2}))
    assert fleet.result("h1.example", Outcome.CRITICAL) is None
    assert fleet.result("h1.example", Outcome.WARNING) is None  # not a rule outcome
    assert fleet.result("h1.example", Outcome.CRITICAL) is None
    assert isinstance(fleet.result("h1.example", Outcome.CRITICAL), RepairRun)


def test_the_streak_is_counted_from_stored_results_across_a_restart(make_fleet) -> None:
    fleet = make_fleet(fix=rule(when={"consecutive": 3}))
    fleet.result("h1.example", Outcome.CRITICAL)
    fleet.result("h1.example", Outcome.CRITICAL)
    fleet.repairer = fleet.fresh_repairer("engine-2")
    assert isinstance(fleet.result("h1.example", Outcome.CRITICAL), RepairRun)


def test_cooldown_holds_the_next_repair_on_that_host_only(make_fleet) -> None:
    fleet = make_fleet(fix=rule(run="do_nothing", cooldown="30m"))
    assert isinstance(fleet.result("h1.example", Outcome.CRITICAL), RepairRun)
    held = fleet.result("h1.example", Outcome.CRITICAL)
    assert isinstance(held, RepairDecision) and not held.fire
    assert held.reason.startswith("cooldown until ")
    assert isinstance(fleet.result("h2.example", Outcome.CRITICAL), RepairRun)  # per host
    fleet.clock.advance(30 * 60)
    run = fleet.result("h1.example", Outcome.CRITICAL)
    assert isinstance(run, RepairRun) and run.attempt == 2


def test_max_concurrent_holds_the_third_host(make_fleet) -> None:
    fleet = make_fleet(fix=rule(max_concurrent=2))
    store, now = fleet.backend.state.repairs, fleet.clock.now()
    # Two hosts are being repaired (by other engines, say): their runs are claimed.
    for host in ("h1.example", "h2.example"):
        claimed = store.start("fix", host, "marker", frozenset({Outcome.CRITICAL}),
                              lambda own, others: RepairDecision(True, "test", attempt=1),
                              "engine-9", now, now + timedelta(minutes=10))  # fmt: skip
        assert claimed.fire
    held = fleet.result("h3.example", Outcome.CRITICAL)
    assert isinstance(held, RepairDecision) and not held.fire
    assert held.reason == "max_concurrent (2) reached: running on h1.example, h2.example"
    again = fleet.result("h1.example", Outcome.CRITICAL)  # never twice at once on one host
    assert isinstance(again, RepairDecision) and "already running" in again.reason
    # A run whose lease ran out (its engine died) no longer counts.
    fleet.clock.advance(11 * 60)
    assert isinstance(fleet.result("h3.example", Outcome.CRITICAL), RepairRun)


def test_max_attempts_flags_the_host_and_stops_until_reset(make_fleet) -> None:
    fleet = make_fleet(fix=rule(run="do_nothing", max_attempts=2))
    first, second = (fleet.result("h1.example", Outcome.CRITICAL) for _ in range(2))
    assert isinstance(first, RepairRun) and first.attempt == 1
    assert isinstance(second, RepairRun) and second.attempt == 2
    third = fleet.result("h1.example", Outcome.CRITICAL)
    assert isinstance(third, RepairDecision) and not third.fire
    assert third.flag == "2 runs of fix did not fix marker"
    (state,) = fleet.backend.state.repairs.states(host="h1.example")
    assert state.flagged and state.flagged_reason == "2 runs of fix did not fix marker"
    held = fleet.result("h1.example", Outcome.CRITICAL)
    assert isinstance(held, RepairDecision) and held.reason.startswith("host flagged: ")
    assert len(fleet.backend.state.repairs.runs(host="h1.example")) == 2
    assert fleet.backend.state.repairs.reset("h1.example", None, fleet.clock.now()) == 1
    run = fleet.result("h1.example", Outcome.CRITICAL)
    assert isinstance(run, RepairRun) and run.attempt == 1


def test_attempts_start_again_once_the_audit_was_healthy(make_fleet) -> None:
    fleet = make_fleet(fix=rule(run="do_nothing", max_attempts=2))
    fleet.result("h1.example", Outcome.CRITICAL)
    fleet.result("h1.example", Outcome.OK)  # fixed, later if not at once
    run = fleet.result("h1.example", Outcome.CRITICAL)
    assert isinstance(run, RepairRun) and run.attempt == 1


def test_verify_records_fixed(make_fleet) -> None:
    fleet = make_fleet(fix=rule(verify=True))
    run = fleet.result("h1.example", Outcome.CRITICAL)
    assert isinstance(run, RepairRun)
    assert run.verify is Verify.FIXED and run.verify_result.outcome is Outcome.OK
    (stored,) = fleet.backend.state.repairs.runs(host="h1.example")
    assert (stored.verify, stored.verify_outcome) == ("fixed", "ok")
    assert stored.trigger_result["outcome"] == "critical"
    # The verify run is an audit result like any other: history and the row's latest.
    latest = fleet.backend.state.results(host="h1.example", limit=1)[0]
    assert (latest.outcome, latest.summary) == ("ok", "OK - there")
    (row,) = fleet.backend.audits(host="h1.example")
    assert row.result["outcome"] == "ok"


def test_verify_records_not_fixed_and_the_last_attempt_flags(make_fleet) -> None:
    fleet = make_fleet(fix=rule(run="do_nothing", verify=True, max_attempts=1))
    run = fleet.result("h1.example", Outcome.CRITICAL)
    assert isinstance(run, RepairRun)
    assert run.verify is Verify.NOT_FIXED and run.verify_result.outcome is Outcome.CRITICAL
    (stored,) = fleet.backend.state.repairs.runs(host="h1.example")
    assert (stored.verify, stored.verify_outcome) == ("not_fixed", "critical")
    (state,) = fleet.backend.state.repairs.states(host="h1.example")
    assert state.flagged and state.running_by is None


def test_plan_says_what_would_fire_and_what_holds_the_rest(make_fleet) -> None:
    fleet = make_fleet(fix=rule(max_concurrent=1, when={"consecutive": 2}))
    store = fleet.backend.state
    now = fleet.clock.now()
    for host, outcomes in (("h1.example", "cc"), ("h2.example", "cc"), ("h3.example", "oc")):
        for letter in outcomes:
            outcome = Outcome.CRITICAL if letter == "c" else Outcome.OK
            store.record_adhoc(fleet.rows[host], Result(
                outcome, "x", started_at=now, finished_at=now, slot=now, audit_name="marker",
                host=host))  # fmt: skip
            now += timedelta(seconds=1)
    fleet.clock.advance(10)
    items = {item.host: item for item in plan(fleet.backend, fleet.catalog, fleet.clock.now())}
    assert set(items) == {"h1.example", "h2.example", "h3.example"}
    assert items["h1.example"].verdict == "fire"
    assert items["h2.example"].verdict == "held"
    assert items["h2.example"].reason.startswith("max_concurrent (1) reached")
    assert (items["h3.example"].verdict, items["h3.example"].reason) == (
        "waiting", "1 of 2 failures in a row")  # fmt: skip
    assert not (fleet.markers / "h1.example").exists()  # a plan runs nothing
    assert store.repairs.states() == []


def test_rules_are_checked_against_the_scripts(tmp_path: Path, clock: FakeClock) -> None:
    with pytest.raises(ValidationError) as failure:
        Fleet(tmp_path, clock, {
            "a": rule(run="nope"),
            "b": rule(when={"audit": "mark*x"}),
            "c": rule(when={"outcome": ["ok"], "consecutive": 0}),
        })  # fmt: skip
    messages = sorted(p.message for p in failure.value.problems)
    assert messages == [
        "repair 'a': run: no script 'nope'",
        "repair 'b': when.audit: pattern 'mark*x' matches no script",
        "repair 'c': when.consecutive must be a whole number from 1 to 1000000, got 0",
        "repair 'c': when.outcome must be one or more of critical, error, timeout, unknown, "
        "warning, got ['ok']",
    ]
    assert all(str(p.where).startswith(str(tmp_path / "fleet" / "repairs.yaml"))
               for p in failure.value.problems)  # fmt: skip


def test_a_glob_watches_every_audit_it_matches(make_fleet) -> None:
    fleet = make_fleet(fix=rule(when={"audit": "mark*"}))
    (only,) = fleet.catalog.repairs.values()
    assert only.matches("marker") and not only.matches("make_marker2")
    assert isinstance(fleet.result("h1.example", Outcome.CRITICAL), RepairRun)


def test_repairs_queued_when_the_engine_stops_are_not_started(make_fleet) -> None:
    fleet = make_fleet(fix=rule())
    now = fleet.clock.now()
    failing = Result(Outcome.CRITICAL, "x", started_at=now, finished_at=now, slot=now,
                     audit_name="marker", host="h1.example")  # fmt: skip
    fleet.backend.state.record_adhoc(fleet.rows["h1.example"], failing)
    (pair,) = [p for p in fleet.catalog.pairs if p.host == "h1.example"]
    fleet.repairer.shutdown()  # the engine stops before the pool gets to it
    fleet.repairer._executor = None
    fleet.repairer.consider(fleet.catalog, [(fleet.rows["h1.example"], pair, failing)])
    fleet.repairer.shutdown()
    assert not (fleet.markers / "h1.example").exists()
    assert fleet.backend.state.repairs.runs() == []


def test_a_repair_no_worker_ran_is_recorded_over_the_time_it_waited(make_fleet) -> None:
    """A repair (and its verify) sent to a zone where no worker takes it is answered with a
    result of no times of its own (engine.broker_runs): recorded from its hand-over to the
    answer, not refused by the store (SQL: NOT NULL) and left `running` until its lease."""
    fleet = make_fleet(fix=rule(verify=True))
    why = "the job was not taken by any worker of zone z within 30s (no live worker there?)"

    def nowhere(job: Any) -> Result:
        fleet.clock.advance(30)  # the job's TTL on the broker
        return Result(Outcome.ERROR, why)

    fleet.repairer = Repairer(fleet.backend, fleet.clock, "engine-1", 10, runner=nowhere)
    handed = fleet.clock.now() + timedelta(seconds=60)  # result() stores, then advances 60 s
    run = fleet.result("h1.example", Outcome.CRITICAL)
    assert isinstance(run, RepairRun) and run.verify is Verify.NOT_FIXED
    (stored,) = fleet.backend.state.repairs.runs(host="h1.example")
    assert (stored.outcome, stored.summary, stored.verify_summary) == ("error", why, why)
    assert (stored.started_at, stored.finished_at) == (handed, handed + timedelta(seconds=30))
    (state,) = fleet.backend.state.repairs.states(host="h1.example")
    assert state.running_by is None and state.attempts == 1
    verified = fleet.backend.state.results(host="h1.example", limit=1)[0]
    assert (verified.outcome, verified.summary) == ("error", why)
    assert (verified.started_at, verified.finished_at) == (
        handed + timedelta(seconds=30), handed + timedelta(seconds=60))  # fmt: skip
