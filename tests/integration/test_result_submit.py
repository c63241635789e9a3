"""`entropy result submit` end to end: a result from outside, stored as any other result.

Real YAML definitions, a real SQLite state store (and the service call the
HTTP API makes, on every kind of store through the contract: see
tests/backends/test_contract.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clirunner import run
from fleets import write_fleet

AUDIT, HOST = "check_nova_config_exists", "compute-01.example.com"


@pytest.fixture
def fleet(tmp_path: Path) -> str:
    return f"dir:{write_fleet('dir', tmp_path / 'fleet')}"


def test_a_submitted_result_is_in_the_history_and_the_row(fleet: str) -> None:
    metrics = '{"files": 0, "age": {"value": 3.5, "uom": "s"}}'
    done = run("--backend", fleet, "result", "submit", AUDIT, "--host", HOST,
               "--outcome", "critical", "--summary", "config missing",
               "--metrics", metrics, "--json")  # fmt: skip
    stored = json.loads(done.stdout)
    assert stored["outcome"] == "critical" and stored["summary"] == "config missing"
    assert stored["metrics"]["files"]["value"] == 0.0
    assert stored["metrics"]["age"] == {"value": 3.5, "uom": "s", "warn": None, "crit": None,
                                        "min": None, "max": None}  # fmt: skip
    assert stored["engine_id"].startswith("entropy result submit by ")
    # Not synced before: the row was added, and now holds the result as its latest.
    rows = json.loads(run("--backend", fleet, "status", "--json").stdout)
    (row,) = [r for r in rows if (r["audit_name"], r["host"]) == (AUDIT, HOST)]
    assert row["id"] == stored["row_id"]
    assert row["result"]["outcome"] == "critical"
    assert row["result"]["summary"] == "config missing"
    history = json.loads(run("--backend", fleet, "results", "--host", HOST, "--json").stdout)
    assert [(r["audit_name"], r["outcome"]) for r in history] == [(AUDIT, "critical")]
    assert history[0]["metrics"]["files"]["value"] == 0.0
    # The text form: one result line.
    text = run("--backend", fleet, "result", "submit", AUDIT, "--host", HOST,
               "--outcome", "ok").stdout  # fmt: skip
    assert HOST in text and "OK" in text and "ok (submitted)" in text
    history = json.loads(run("--backend", fleet, "results", "--host", HOST, "--json").stdout)
    assert [r["outcome"] for r in history] == ["ok", "critical"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope", "--host", HOST, "--outcome", "ok"], "unknown audit 'nope'"),
        ([AUDIT, "--host", "nohost", "--outcome", "ok"], "unknown host 'nohost'"),
        (
            [AUDIT, "--host", "hv-01.example.com", "--outcome", "ok"],
            f"audit {AUDIT!r} does not run on host 'hv-01.example.com'",
        ),
    ],
)
def test_a_pair_not_in_the_definitions_is_refused_and_nothing_stored(
    fleet: str, args: list[str], message: str
) -> None:
    done = run("--backend", fleet, "result", "submit", *args, code=1)
    assert message in done.stderr
    assert json.loads(run("--backend", fleet, "results", "--json").stdout) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--outcome", "fine"], "'fine' is not one of"),
        (["--outcome", "unreachable"], "'unreachable' is not one of"),
        (["--outcome", "ok", "--metrics", "{nope"], "metrics are not JSON"),
        (["--outcome", "ok", "--metrics", "[1]"], "metrics must be a JSON object"),
        (["--outcome", "ok", "--metrics", '{"x": "high"}'], "'high' is not a finite number"),
    ],
)
def test_bad_outcomes_and_metrics_are_usage_errors(fleet: str, args: list[str], message: str):
    done = run("--backend", fleet, "result", "submit", AUDIT, "--host", HOST, *args, code=2)
    assert message in done.stderr
    assert json.loads(run("--backend", fleet, "results", "--json").stdout) == []


def test_the_service_refuses_what_the_cli_cannot_send(fleet: str) -> None:
    """The API calls the service directly: its checks are the service's, not click's."""
    from entropy.errors import NotFound
    from entropy.service.errors import BadRequest
    from entropy.service.results import submit_result
    from entropy.service.runtime import Runtime

    rt = Runtime(backend_url=fleet)
    try:
        with pytest.raises(BadRequest, match="outcome 'unreachable' is none of ok, warning"):
            submit_result(rt, AUDIT, HOST, "unreachable")
        with pytest.raises(BadRequest) as bad:
            submit_result(rt, AUDIT, HOST, "ok", metrics={"x": float("nan")})
        assert bad.value.param == "metrics"
        with pytest.raises(NotFound, match="unknown host"):
            submit_result(rt, AUDIT, "nohost.example.com", "ok")
        done = submit_result(rt, AUDIT, HOST, "warning", "disk 91%", {"used": 91},
                             source="api by alice")  # fmt: skip
        assert done.result.engine_id == "api by alice"
        assert rt.backend.state.results(HOST, AUDIT)[0].summary == "disk 91%"
    finally:
        rt.close()


def test_submitted_results_count_toward_soft_and_hard_states(
    tmp_path: Path,
) -> None:
    """A passive audit with max_attempts 2: soft after one critical, hard after two."""
    from fleets import SEED_SCHEDULES

    schedules = {
        **SEED_SCHEDULES,
        "backups.yaml": {"compute": {"audits": {"backup_done": {
            "passive": True, "freshness": "1d", "max_attempts": 2}}}},
    }  # fmt: skip
    fleet = f"dir:{write_fleet('dir', tmp_path / 'fleet', schedules=schedules)}"
    host = "compute-02.example.com"

    def submit(outcome: str) -> dict:
        return json.loads(run("--backend", fleet, "result", "submit", "backup_done",
                              "--host", host, "--outcome", outcome, "--json").stdout)  # fmt: skip

    first = submit("critical")["monitor"]
    assert (first["state"], first["state_type"], first["attempt"]) == ("critical", "soft", 1)
    assert first["hard_state"] == "ok"
    second = submit("critical")["monitor"]
    assert (second["state"], second["state_type"], second["hard_state"]) == (
        "critical",
        "hard",
        "critical",
    )
    assert second["last_hard_state_change"] is not None
    back = submit("ok")["monitor"]
    assert (back["state"], back["state_type"], back["hard_state"]) == ("ok", "hard", "ok")


def test_a_submitted_result_is_published_as_events(tmp_path: Path) -> None:
    """[notifications] transport_url set: the audit event, and state.* on a hard change."""
    import kombu

    from entropy.events import exchange
    from entropy.service.results import submit_result
    from entropy.service.runtime import Runtime
    from fleets import SEED_SCHEDULES

    schedules = {**SEED_SCHEDULES, "backups.yaml": {"compute": {"audits": {
        "backup_done": {"passive": True, "freshness": "1d"}}}}}  # fmt: skip
    fleet = f"dir:{write_fleet('dir', tmp_path / 'fleet', schedules=schedules)}"
    url = f"memory://{tmp_path.name}"
    connection = kombu.Connection(url)
    queue = connection.SimpleQueue(kombu.Queue(f"t-{tmp_path.name}", exchange(), routing_key="#"))
    rt = Runtime(backend_url=fleet)
    rt.conf.set_override("transport_url", url, group="notifications")
    try:
        submit_result(rt, "backup_done", HOST, "critical", "backup failed")
    finally:
        rt.close()
    got = []
    for _ in range(2):
        message = queue.get(timeout=5)
        message.ack()
        got.append((message.delivery_info["routing_key"], message.payload))
    connection.close()
    (audit_key, audit), (state_key, state) = got
    assert (audit_key, audit["summary"]) == ("audit.backup_done.critical", "backup failed")
    assert (state_key, state["state"], state["previous_state"]) == (
        "state.backup_done.critical",
        "critical",
        "ok",
    )
