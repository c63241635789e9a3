"""A submitted failure meets the repair rules, as the engine's own results do (issue 15 item 6).

Real `entropy` processes on real YAML definitions and the fleet's SQLite
state store; the repair is a real command that leaves a line in a file.
Where time matters (a cooldown), the service call on a fake clock.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from entropy.clock import FakeClock
from entropy.service.results import submit_result
from entropy.service.runtime import Runtime
from fleets import SEED_SCHEDULES, SEED_SCRIPTS, write_fleet
from processes import entropy

HOST = "compute-02.example.com"


def make_fleet(tmp_path: Path, audit: dict[str, Any], **rule: Any) -> tuple[Path, Path]:
    """A passive backup_done on the compute hosts, a repair `rerun_backup` on its critical."""
    marker = tmp_path / "repaired"
    scripts = {**SEED_SCRIPTS, "rerun_backup": {
        "kind": "command", "command": ["sh", "-c", f"echo fixed >> {marker}"]}}  # fmt: skip
    schedules = {**SEED_SCHEDULES, "backups.yaml": {"compute": {"audits": {
        "backup_done": {"passive": True, "freshness": "1d", **audit}}}}}  # fmt: skip
    when = {"audit": "backup_done", "outcome": ["critical"], "consecutive": 1}
    repairs = {"rerun_backup": {"when": when, "run": "rerun_backup", **rule}}
    root = write_fleet("dir", tmp_path / "fleet", scripts=scripts, schedules=schedules,
                       repairs=repairs)  # fmt: skip
    return root, marker


def submit(root: Path, outcome: str, *extra: str) -> dict[str, Any]:
    return entropy(root, "result", "submit", "backup_done", "--host", HOST,
                   "--outcome", outcome, "--json", *extra)  # fmt: skip


def runs(root: Path) -> list[dict[str, Any]]:
    return entropy(root, "results", "--kind", "repair", "--json")


def test_a_submitted_failure_runs_its_repair_and_it_is_in_the_history(tmp_path: Path) -> None:
    root, marker = make_fleet(tmp_path, {})
    done = submit(root, "critical", "--summary", "backup failed")
    (repair,) = done["repairs"]
    assert (repair["repair_name"], repair["host"], repair["verdict"]) == (
        "rerun_backup", HOST, "ran")  # fmt: skip
    assert repair["reason"] == "attempt 1: ok"
    assert (repair["run"]["outcome"], repair["run"]["attempt"]) == ("ok", 1)
    assert marker.read_text() == "fixed\n"  # it ran, in the submitting process
    (run,) = runs(root)
    assert (run["repair_name"], run["host"], run["outcome"], run["attempt"]) == (
        "rerun_backup", HOST, "ok", 1)  # fmt: skip
    assert run["trigger_result"]["summary"] == "backup failed"
    assert run["engine_id"].startswith("entropy result submit by ")
    (state,) = entropy(root, "repair", "list", "--json")
    assert (state["attempts"], state["running"], state["flagged"]) == (1, False, False)
    # An ok result is no failure: no rule looks at it.
    assert submit(root, "ok")["repairs"] == []
    assert len(runs(root)) == 1


def test_a_repair_in_a_downtime_is_held_and_says_why(tmp_path: Path) -> None:
    root, marker = make_fleet(tmp_path, {})
    entropy(root, "downtime", "add", "--host", HOST, "--for", "1h",
            "--reason", "moving racks", "--json")  # fmt: skip
    (repair,) = submit(root, "critical")["repairs"]
    assert repair["verdict"] == "held" and repair["run"] is None
    assert repair["reason"].startswith("in downtime") and "moving racks" in repair["reason"]
    assert not marker.exists() and runs(root) == []


def test_a_soft_state_holds_the_repair_until_it_is_hard(tmp_path: Path) -> None:
    root, marker = make_fleet(tmp_path, {"max_attempts": 2})
    (first,) = submit(root, "critical")["repairs"]
    assert (first["verdict"], first["reason"]) == (
        "held",
        "soft state: critical, attempt 1 of 2; waiting for a hard state",
    )
    assert not marker.exists() and runs(root) == []
    (second,) = submit(root, "critical")["repairs"]  # hard now: consecutive 1 hard failure
    assert second["verdict"] == "ran"
    assert marker.read_text() == "fixed\n"
    assert [r["attempt"] for r in runs(root)] == [1]


def test_no_repair_stores_the_result_and_runs_nothing(tmp_path: Path) -> None:
    root, marker = make_fleet(tmp_path, {})
    done = submit(root, "critical", "--no-repair")
    assert done["outcome"] == "critical" and done["repairs"] is None
    assert not marker.exists() and runs(root) == []
    assert entropy(root, "repair", "list", "--json") == []
    (latest,) = entropy(root, "results", "--host", HOST, "--audit", "backup_done", "--json")
    assert latest["outcome"] == "critical"


def test_the_text_form_prints_what_each_repair_did(tmp_path: Path) -> None:
    import subprocess

    from processes import ENTROPY

    root, _ = make_fleet(tmp_path, {"max_attempts": 2})

    def text(*args: str) -> str:
        done = subprocess.run([*ENTROPY, "--backend", f"dir:{root}", "result", "submit",
                               "backup_done", "--host", HOST, *args],
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    held = text("--outcome", "critical").splitlines()
    assert len(held) == 2 and "CRITICAL" in held[0]
    assert held[1] == (f"repair rerun_backup on {HOST} held: soft state: critical, "
                       "attempt 1 of 2; waiting for a hard state")  # fmt: skip
    ran = text("--outcome", "critical").splitlines()
    assert len(ran) == 2 and "repair rerun_backup" in ran[1] and "(attempt 1;" in ran[1]
    assert len(text("--outcome", "critical", "--no-repair").splitlines()) == 1


def test_the_guardrails_count_submitted_repairs_on_the_clock(tmp_path: Path) -> None:
    """A cooldown set by a submitted repair holds the next one until it is over."""
    root, marker = make_fleet(tmp_path, {}, cooldown="30mins")
    clock = FakeClock()
    rt = Runtime(backend_url=f"dir:{root}", clock=clock)
    try:

        def verdict() -> tuple[str, str]:
            (c,) = submit_result(rt, "backup_done", HOST, "critical").repairs or ()
            return c.verdict, c.reason

        assert verdict() == ("ran", "attempt 1: ok")
        clock.advance(10 * 60)
        held, why = verdict()
        assert held == "held" and why.startswith("cooldown until ")
        clock.advance(21 * 60)
        assert verdict() == ("ran", "attempt 2: ok")
    finally:
        rt.close()
    assert marker.read_text() == "fixed\nfixed\n"
    history = json.loads(json.dumps(runs(root)))
    assert [r["attempt"] for r in history] == [2, 1]
