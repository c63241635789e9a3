"""`entropy downtime`, `ack`, `unack` and `status --overdue` end to end (issue 15).

Real YAML definitions and a real SQLite state store; results are sent with
`entropy result submit`, as a cron job would.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from clirunner import run
from entropy.cli import main
from fleets import write_fleet

AUDIT, HOST = "check_nova_config_exists", "compute-01.example.com"
REPAIRS = {"fix_config": {"when": {"audit": AUDIT, "outcome": ["warning", "critical"]},
                          "run": "check_nova_compute_log_file_exists"}}  # fmt: skip


@pytest.fixture
def fleet(tmp_path: Path) -> str:
    return f"dir:{write_fleet('dir', tmp_path / 'fleet', repairs=REPAIRS)}"


def as_json(*args: str) -> object:
    return json.loads(run(*args, "--json").stdout)


def test_a_downtime_is_added_listed_holds_a_repair_and_is_removed(fleet: str) -> None:
    run("--backend", fleet, "result", "submit", AUDIT, "--host", HOST, "--outcome", "critical")
    plan = as_json("--backend", fleet, "repair", "plan")
    assert [(i["host"], i["verdict"]) for i in plan] == [(HOST, "fire")]
    made = as_json("--backend", fleet, "downtime", "add", "--group", "compute", "--for", "2h",
                   "--reason", "kernel upgrade")  # fmt: skip
    assert made["groups"] == ["compute"] and made["created_by"]
    start, end = datetime.fromisoformat(made["start"]), datetime.fromisoformat(made["end"])
    assert end - start == timedelta(hours=2)
    listed = as_json("--backend", fleet, "downtime", "list")
    assert [(d["name"], d["source"], d["active"]) for d in listed] == [
        (made["name"], "ad hoc", True)
    ]
    (held,) = as_json("--backend", fleet, "repair", "plan")
    assert held["verdict"] == "held"
    assert held["reason"].startswith(f"in downtime '{made['name']}' until ")
    assert held["reason"].endswith(": kernel upgrade")
    text = run("--backend", fleet, "repair", "plan").stdout
    assert "held" in text and "kernel upgrade" in text
    status = run("--backend", fleet, "status", "--host", HOST).stdout
    assert f"in downtime {made['name']}" in status
    assert "removed" in run("--backend", fleet, "downtime", "remove", made["name"]).stdout
    assert as_json("--backend", fleet, "downtime", "list") == []
    gone = run("--backend", fleet, "downtime", "remove", made["name"], code=1)
    assert f"no downtime {made['name']!r}" in gone.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--host", HOST, "--group", "compute", "--for", "1h"], "not both"),
        (["--host", HOST], "give --for or --until"),
        (["--host", "nohost", "--for", "1h"], "unknown host 'nohost'"),
        (["--group", "compute", "--until", "2001-01-01T00:00Z"], "before now"),
        (["--host", HOST, "--for", "1fortnight"], "invalid duration"),
    ],
)
def test_a_bad_downtime_is_refused_and_nothing_kept(fleet: str, args: list[str], message: str):
    done = CliRunner().invoke(main, ["--backend", fleet, "downtime", "add", *args,
                                     "--reason", "x"])  # fmt: skip
    assert done.exit_code != 0 and message in done.stderr
    assert as_json("--backend", fleet, "downtime", "list") == []


def test_an_ack_holds_a_repair_is_refused_on_an_ok_pair_and_is_lifted(fleet: str) -> None:
    refused = run("--backend", fleet, "ack", AUDIT, "--host", HOST, "--reason", "x", code=1)
    assert "has no result yet: nothing to ack" in refused.stderr
    run("--backend", fleet, "result", "submit", AUDIT, "--host", HOST, "--outcome", "warning")
    done = as_json("--backend", fleet, "ack", AUDIT, "--group", "compute", "--reason", "on it",
                   "--expire", "4h", "--sticky")  # fmt: skip
    (made,) = done["acknowledged"]
    assert (made["host"], made["state"], made["sticky"]) == (HOST, "warning", True)
    assert [s["host"] for s in done["skipped"]] == ["compute-02.example.com"]  # no result
    (held,) = as_json("--backend", fleet, "repair", "plan")
    assert held["verdict"] == "held" and held["reason"].startswith("acknowledged by ")
    assert held["reason"].endswith(": on it")
    assert "acknowledged by" in run("--backend", fleet, "status", "--host", HOST).stdout
    # Sticky: warning -> critical keeps it.
    run("--backend", fleet, "result", "submit", AUDIT, "--host", HOST, "--outcome", "critical")
    assert as_json("--backend", fleet, "repair", "plan")[0]["verdict"] == "held"
    assert as_json("--backend", fleet, "unack", AUDIT, "--host", HOST) == {"unacknowledged": [HOST]}
    assert as_json("--backend", fleet, "repair", "plan")[0]["verdict"] == "fire"
    run("--backend", fleet, "unack", AUDIT, "--host", HOST, code=1)  # nothing left to lift


def test_status_overdue_lists_pairs_silent_for_twice_their_interval(
    fleet: str, tmp_path: Path
) -> None:
    run("--backend", fleet, "sync")
    assert as_json("--backend", fleet, "status", "--overdue") == []
    # Every pair's last result (none: its row's creation) is now days old: the 30min and
    # 1h audits are overdue, the daily ones not yet (twice 1 day has not passed).
    from entropy.clock import FakeClock
    from entropy.service import monitoring
    from entropy.service.runtime import Runtime

    later = FakeClock(datetime.now(UTC) + timedelta(hours=3))
    rt = Runtime(backend_url=fleet, clock=later)
    try:
        found = {(o.row.audit_name, o.row.host) for o in monitoring.overdue(rt)}
    finally:
        rt.close()
    assert found == {
        ("check_nova_compute_log_file_exists", "compute-01.example.com"),
        ("check_nova_compute_log_file_exists", "compute-02.example.com"),
        ("vmbooter", "nova-api.mydomain.com"),
        ("api_availability", "nova-api.mydomain.com"),
    }


def test_plan_marks_runs_in_a_downtime(fleet: str) -> None:
    run("--backend", fleet, "sync")
    made = as_json("--backend", fleet, "downtime", "add", "--host", HOST, "--audit", AUDIT,
                   "--for", "1d", "--reason", "moving it")  # fmt: skip
    lines = run("--backend", fleet, "plan", "--within", "2d").stdout.splitlines()
    marked = [line for line in lines if f"in downtime {made['name']}" in line]
    assert marked and all(HOST in line and AUDIT in line for line in marked)
