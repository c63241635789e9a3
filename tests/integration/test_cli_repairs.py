"""`entropy repair plan|list|reset`, `results --kind repair` and status, on the dir backend."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from entropy.backends import Backend, fetch
from entropy.cli import main
from entropy.config import load_conf
from entropy.model import Outcome, RepairRun, Result, Verify
from entropy.repairs import judge
from fleets import write_fleet

HOSTS = {f"h{i}": {"ip_address": f"10.0.0.{i}", "host_type": "compute"} for i in (1, 2, 3)}
SCRIPTS = {"check": {"kind": "command", "command": ["true"]},
           "fix": {"kind": "command", "command": ["true"]}}  # fmt: skip
SCHEDULES = {"a.yaml": {"compute": {"audits": {"check": {"run_every": "1m"}}}}}
REPAIRS = {"fix": {"when": {"audit": "check", "consecutive": 2}, "run": "fix",
                   "max_concurrent": 1, "max_attempts": 1}}  # fmt: skip


def run(*args: str, ok: bool = True):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output + result.stderr
    return result


@pytest.fixture
def fleet(tmp_path: Path) -> tuple[str, Backend]:
    root = write_fleet("dir", tmp_path / "fleet", HOSTS, SCRIPTS, SCHEDULES, REPAIRS)
    backend = fetch(load_conf(), f"dir:{root}")
    backend.sync(backend.load(), datetime.now(UTC))
    ids = {row.host: row.id for row in backend.audits()}
    now = datetime.now(UTC) - timedelta(minutes=5)
    for host, outcomes in (("h1", "cc"), ("h2", "cc"), ("h3", "oc")):
        for letter in outcomes:
            now += timedelta(seconds=1)
            outcome = Outcome.CRITICAL if letter == "c" else Outcome.OK
            backend.state.record_adhoc(ids[host], Result(
                outcome, f"{outcome.value} on {host}", started_at=now, finished_at=now,
                slot=now, audit_name="check", host=host))  # fmt: skip
    yield f"dir:{root}", backend
    backend.close()


def test_plan_shows_fire_held_and_waiting(fleet: tuple[str, Backend]) -> None:
    url, _ = fleet
    items = json.loads(run("--backend", url, "repair", "plan", "--json").stdout)
    assert [(i["host"], i["verdict"]) for i in items] == [
        ("h1", "fire"), ("h2", "held"), ("h3", "waiting")]  # fmt: skip
    assert items[1]["reason"] == "max_concurrent (1) reached: running on h1"
    text = run("--backend", url, "repair", "plan").stdout
    assert text.splitlines()[0].split() == ["REPAIR", "HOST", "AUDIT", "LATEST", "VERDICT", "WHY"]
    assert "1 of 2 failures in a row" in text


def test_a_flagged_host_shows_in_status_and_list_until_reset(fleet: tuple[str, Backend]) -> None:
    url, backend = fleet
    store, now = backend.state.repairs, datetime.now(UTC)
    rule = backend.load().repairs["fix"]
    assert store.start("fix", "h1", "check", rule.outcomes, judge(rule, "check", now), "e1",
                       now, now + timedelta(minutes=1)).fire  # fmt: skip
    trigger = Result(Outcome.CRITICAL, "critical on h1", finished_at=now, slot=now)
    done = Result(Outcome.OK, "restarted", started_at=now, finished_at=now, engine_id="e1",
                  audit_name="fix", host="h1")  # fmt: skip
    verify = Result(Outcome.CRITICAL, "still down", started_at=now, finished_at=now)
    store.finish(RepairRun("fix", "check", "fix", 1, done, trigger, Verify.NOT_FIXED, verify),
                 "e1", flag="1 runs of fix did not fix check")  # fmt: skip

    status = run("--backend", url, "status").stdout
    assert "FLAGGED h1: 1 runs of fix did not fix check (entropy repair reset h1 fix)" in status
    assert "repair fix" in status and "(attempt 1, not fixed; after check critical)" in status
    (listed,) = json.loads(run("--backend", url, "repair", "list", "--json").stdout)
    assert (listed["host"], listed["flagged"], listed["attempts"], listed["running"]) == (
        "h1", True, 1, False)  # fmt: skip
    (runs,) = json.loads(run("--backend", url, "results", "--kind", "repair", "--json").stdout)
    assert (runs["kind"], runs["repair_name"], runs["verify"], runs["verify_summary"]) == (
        "repair", "fix", "not_fixed", "still down")  # fmt: skip
    held = json.loads(run("--backend", url, "repair", "plan", "--json").stdout)[0]
    assert (held["host"], held["verdict"]) == ("h1", "held")
    assert held["reason"].startswith("host flagged: 1 runs of fix did not fix check")

    assert run("--backend", url, "repair", "reset", "h1").stdout.startswith("reset h1")
    assert "FLAGGED" not in run("--backend", url, "status").stdout
    assert "nothing to reset" in run("--backend", url, "repair", "reset", "h1").stdout


def test_repair_filter_needs_kind_repair(fleet: tuple[str, Backend]) -> None:
    url, _ = fleet
    refused = run("--backend", url, "results", "--repair", "fix", ok=False)
    assert refused.exit_code == 2 and "--repair needs --kind repair" in refused.stderr


def test_events_tail_without_a_broker_says_how_to_set_one(fleet: tuple[str, Backend]) -> None:
    url, _ = fleet
    refused = run("--backend", url, "events", "tail", ok=False)
    assert refused.exit_code == 1
    assert "set [notifications] transport_url" in refused.stderr
