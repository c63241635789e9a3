"""The service layer on the memory backend and a fake clock: fast, no processes.

The fleet is built through the service itself (hosts, scripts, schedules in
the editable memory definitions); the audits are python functions of this
module, run in this process.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from entropy.backends import fetch
from entropy.backends.impl_memory import forget
from entropy.clock import FakeClock
from entropy.config import load_conf
from entropy.errors import BackendError, NotFound, Unsupported, ValidationError
from entropy.model import Outcome, Status
from entropy.service import (
    adhoc,
    definitions,
    engines,
    fleet,
    monitoring,
    reads,
    repairs,
    schema,
)
from entropy.service.errors import BadRequest
from entropy.service.health import health
from entropy.service.runtime import Runtime

_names = itertools.count()


def healthy(host: Any, params: dict[str, Any]) -> tuple[str, str]:
    return "ok", f"{host.name} is fine"


def broken(host: Any, params: dict[str, Any]) -> tuple[str, str]:
    return ("critical", "down") if host.name.startswith("db") else ("ok", "up")


@pytest.fixture
def rt() -> Iterator[Runtime]:
    """A fleet of 3 compute hosts and 1 db host, synced; its own memory store."""
    url = f"memory:service-{next(_names)}"
    runtime = Runtime(backend_url=url, clock=FakeClock())
    for number in (1, 2, 3):
        definitions.add_host(runtime, f"web-{number}", f"10.0.0.{number}", "compute")
    definitions.add_host(runtime, "db-1", "10.0.1.1", "database", groups=["storage"])
    definitions.add_script(runtime, "healthy", "python", {"function": f"{__name__}:healthy"})
    definitions.add_script(runtime, "broken", "python", {"function": f"{__name__}:broken"})
    definitions.add_schedule(runtime, "compute", "healthy", every="10m")
    definitions.add_schedule(runtime, "database", "healthy", every="1h")
    definitions.add_schedule(runtime, "storage", "broken", every="5m")
    fleet.sync(runtime)
    yield runtime
    runtime.close()
    forget(url)


def test_sync_reports_what_it_did_and_what_the_definitions_give(rt: Runtime) -> None:
    definitions.add_schedule(rt, "web-1", "broken", every="1d")
    done = fleet.sync(rt)
    assert done.to_dict() == {"added": 1, "removed": 0, "kept": 5, "updated": 0,
                              "restored_disables": 0, "remembered_disables": 0,
                              "audits": 6}  # fmt: skip
    assert done.summary.endswith("-> 6 audits")
    assert fleet.counts(fleet.validate(rt))["audits"] == 6


def test_invalid_definitions_are_refused_and_listed_with_their_place(rt: Runtime) -> None:
    with pytest.raises(ValidationError) as refused:
        definitions.add_schedule(rt, "nowhere", "healthy", every="10m")
    found = fleet.problems(refused.value)
    assert found["valid"] is False
    assert "nowhere" in found["problems"][0]["message"]
    assert len(reads.audits(rt).items) == 5  # nothing changed


def test_audits_are_filtered_and_paged(rt: Runtime) -> None:
    first = reads.audits(rt, limit=2)
    assert [r.host for r in first.items] == ["db-1", "db-1"]
    assert first.next_offset == 2
    rest = reads.audits(rt, limit=10, offset=first.next_offset)
    assert [r.host for r in rest.items] == ["web-1", "web-2", "web-3"]
    assert rest.next_offset is None
    assert len(reads.audits(rt, audit_name="broken").items) == 1
    assert len(reads.audits(rt, status=Status.NEW).items) == 5
    assert reads.audits(rt, status="processed").items == []
    with pytest.raises(BadRequest, match="status 'done' is none of new, processing"):
        reads.audits(rt, status="done")
    with pytest.raises(BadRequest, match="limit must be at least 1"):
        reads.audits(rt, limit=0)


def test_hosts_are_listed_by_name_by_group_and_paged(rt: Runtime) -> None:
    assert [h.name for h in reads.hosts(rt).items] == ["db-1", "web-1", "web-2", "web-3"]
    assert [h.name for h in reads.hosts(rt, group="storage").items] == ["db-1"]
    page = reads.hosts(rt, group="compute", limit=2, offset=1)
    assert ([h.name for h in page.items], page.next_offset) == (["web-2", "web-3"], None)
    assert reads.hosts(rt, group="gpu").items == []


def test_status_shows_rows_and_the_latest_results(rt: Runtime) -> None:
    adhoc.run_audit(rt, "broken")
    view = reads.status(rt, host="db-1")
    assert [(r.audit_name, (r.result or {}).get("outcome")) for r in view.rows] == [
        ("broken", "critical"),
        ("healthy", None),
    ]
    assert view.flagged == [] and view.repairs == []
    assert len(reads.audits(rt, outcome=Outcome.CRITICAL).items) == 1
    assert reads.status(rt, host="nobody").rows == []


def test_plan_lists_runs_in_time_order_overdue_first_and_no_disabled_ones(rt: Runtime) -> None:
    clock: FakeClock = rt.clock  # type: ignore[assignment]
    ahead = reads.plan(rt, 3600)
    times = [run.time for run in ahead.runs]
    assert times == sorted(times)
    per_pair = {(r.audit_name, r.host) for r in ahead.runs}
    assert len(per_pair) == 5
    web = [r for r in ahead.runs if r.host == "web-1"]
    assert 6 <= len(web) <= 7  # every 10 minutes within the hour
    assert all(b.time - a.time == timedelta(minutes=10) for a, b in itertools.pairwise(web))
    clock.advance(7200)  # nothing ran for two hours: every row is overdue, runs once at once
    late = reads.plan(rt, 60, host="web-1")
    assert late.runs[0].time < late.now and late.runs[0].to_dict()["host"] == "web-1"
    assert len(late.runs) <= 2
    fleet.set_disabled(rt, "healthy", True, "maintenance", host="web-1")
    assert reads.plan(rt, 3600, host="web-1").runs == []


def test_disable_and_enable_a_group_and_what_the_definitions_keep_disabled(rt: Runtime) -> None:
    done = fleet.set_disabled(rt, "healthy", True, "patching", group="compute")
    assert done.to_dict() == {"disabled": 3, "hosts": ["web-1", "web-2", "web-3"],
                              "still_disabled_by_definitions": []}  # fmt: skip
    assert len(reads.audits(rt, disabled=True).items) == 3
    definitions.add_schedule(rt, "web-2", "broken", every="1d", disabled_reason="not yet")
    kept = fleet.set_disabled(rt, "broken", False, host="web-2")
    assert kept.still_disabled and kept.still_disabled[0][0] == "web-2"
    assert kept.to_dict()["still_disabled_by_definitions"] == ["web-2"]
    again = fleet.set_disabled(rt, "healthy", False, group="compute")
    assert again.changed == 3 and reads.audits(rt, disabled=True, audit_name="healthy").items == []


def test_a_wrong_name_says_what_was_meant(rt: Runtime) -> None:
    with pytest.raises(NotFound, match=r"unknown audit 'helthy'; did you mean healthy\?"):
        fleet.set_disabled(rt, "helthy", True, "x")
    with pytest.raises(NotFound, match="audit 'broken' does not run on host 'web-1'"):
        adhoc.run_audit(rt, "broken", host="web-1")
    with pytest.raises(NotFound, match="no host is in group 'gpu'"):
        adhoc.run_audit(rt, "healthy", group="gpu")


def test_an_ad_hoc_run_returns_and_stores_each_result_and_leaves_the_schedule(
    rt: Runtime,
) -> None:
    before = {r.host: r.next_run for r in reads.audits(rt, audit_name="healthy").items}
    seen = []
    done = adhoc.run_audit(rt, "healthy", on_result=seen.append)
    assert [r.host for r in done] == ["web-1", "web-2", "web-3", "db-1"]
    assert seen == done
    assert all(r.outcome is Outcome.OK and r.engine_id.endswith("(by hand)") for r in done)
    rows = reads.audits(rt, audit_name="healthy").items
    assert {r.host: r.next_run for r in rows} == before
    assert all((r.result or {}).get("summary", "").endswith("is fine") for r in rows)


def test_results_are_paged_newest_first_and_filtered(rt: Runtime) -> None:
    clock: FakeClock = rt.clock  # type: ignore[assignment]
    for _ in range(3):
        adhoc.run_audit(rt, "broken")
        clock.advance(60)
    adhoc.run_audit(rt, "healthy", host="web-1")
    first = reads.results(rt, limit=2)
    assert [r.audit_name for r in first.items] == ["healthy", "broken"]
    assert first.next_offset == 2
    second = reads.results(rt, limit=2, offset=2)
    assert [r.audit_name for r in second.items] == ["broken", "broken"]
    assert second.next_offset is None
    critical = reads.results(rt, outcome="critical", limit=50)
    assert len(critical.items) == 3 and critical.next_offset is None
    assert reads.results(rt, host="web-2").items == []
    with pytest.raises(BadRequest, match="outcome 'bad' is none of"):
        reads.results(rt, outcome="bad")


def test_repairs_plan_list_reset_and_history(rt: Runtime) -> None:
    repairs.add_rule(rt, "fix_db", "broken", "healthy", consecutive=2, max_attempts=1)
    adhoc.run_audit(rt, "broken")
    (waiting,) = repairs.plan(rt)
    assert (waiting.verdict, waiting.reason) == ("waiting", "1 of 2 failures in a row")
    adhoc.run_audit(rt, "broken")
    (firing,) = repairs.plan(rt)
    assert (firing.repair_name, firing.host, firing.verdict) == ("fix_db", "db-1", "fire")
    assert repairs.states(rt) == []  # no repair ran: the plan changes nothing
    assert repairs.reset(rt, "db-1") == 0
    assert reads.repair_results(rt).items == []
    repairs.remove_rule(rt, "fix_db")
    assert repairs.plan(rt) == []


def test_definitions_change_one_by_one_and_refuse_what_is_in_use(rt: Runtime) -> None:
    added = definitions.add_host(rt, "web-4", "10.0.0.4", "compute", host_vars={"rack": 1})
    assert added == "added"
    assert definitions.add_host(rt, "web-4", "10.0.0.5", "compute") == "replaced"
    assert fleet.sync(rt).report.added == 1
    with pytest.raises(ValidationError):  # a schedule uses it
        definitions.remove_script(rt, "healthy")
    change, timing = definitions.add_schedule(rt, "web-4", "broken", cron="*/5 * * * *")
    assert (change, timing) == ("added", "cron '*/5 * * * *' (UTC)")
    definitions.remove_schedule(rt, "web-4", "broken")
    assert definitions.add_script(rt, "spare", "tcp", {"port": 22}, timeout="5s") == "added"
    definitions.remove_script(rt, "spare")
    assert "spare" not in fleet.validate(rt).scripts


def test_yaml_definitions_cannot_be_changed_one_by_one(tmp_path: Any) -> None:
    (tmp_path / "audits").mkdir()
    for name in ("hosts.yaml", "scripts.yaml"):
        (tmp_path / name).write_text("{}\n")
    yaml_rt = Runtime(backend_url=f"dir:{tmp_path}", clock=FakeClock())
    with pytest.raises(Unsupported, match="backend's live in YAML: edit"):
        definitions.add_host(yaml_rt, "web-9", "10.0.0.9", "compute")


def test_engines_are_listed_and_asked_to_stop(rt: Runtime) -> None:
    assert engines.engines(rt).engines == []
    assert engines.stop(rt, None).to_dict() == {"asked": [], "still_running": None}
    from entropy.backends.base import EngineRecord

    now = rt.clock.now()
    registry = rt.backend.state.engine_registry()
    registry.register(EngineRecord("e1", "box", 42, "0", now, now), now, 32.0)
    found = engines.engines(rt)
    assert [e["engine_id"] for e in found.to_dicts()] == ["e1"]
    assert found.to_dicts()[0]["state"] == "running"
    asked = engines.stop(rt, None, wait=0.0)
    assert asked.asked == ["e1"] and asked.still_running == ["e1"]
    with pytest.raises(BackendError, match="no engine 'nobody'; known: e1"):
        engines.stop(rt, "nobody")


def test_the_memory_store_keeps_no_schema(rt: Runtime) -> None:
    assert schema.current(rt)["up_to_date"] is True
    done = schema.upgrade(rt)
    assert (done.migrations, done.upgraded) == (False, False)
    assert done.to_dict() == {"url": done.url, "before": None, "after": None, "upgraded": False}


def test_a_runtime_opens_nothing_until_used() -> None:
    rt = Runtime(backend_url="dir:/nonexistent/fleet", config_files=())
    assert rt.close() is None  # nothing was opened
    with pytest.raises(Exception, match="/nonexistent/fleet"):
        _ = rt.backend


def test_the_backend_a_runtime_is_given_is_the_one_it_uses() -> None:
    url = f"memory:service-{next(_names)}"
    backend = fetch(load_conf(), url)
    rt = Runtime(backend=backend, clock=FakeClock())
    assert rt.backend is backend and rt.conf is backend.conf
    assert reads.audits(rt).items == []
    rt.close()
    forget(url)


def test_health_counts_outcomes_and_finds_the_overdue_pairs(rt: Runtime) -> None:
    seen = health(rt)
    assert len(seen.pairs) == 5 and seen.overdue == []
    assert seen.outcomes == {"none": 5}
    adhoc.run_audit(rt, "broken")
    assert health(rt).outcomes == {"none": 4, "critical": 1}

    # 25 minutes on: the 5m and 10m pairs' next run (within one interval of the sync) is
    # more than an interval past; the 1h pair's is not. A disabled pair is never overdue.
    fleet.set_disabled(rt, "healthy", True, "maintenance", host="web-3")
    rt.clock.advance(minutes=25)  # type: ignore[attr-defined]
    late = health(rt).overdue
    assert {(p.audit_name, p.host) for p in late} == {
        ("healthy", "web-1"), ("healthy", "web-2"), ("broken", "db-1")}  # fmt: skip
    # The same pairs as `entropy status --overdue` names.
    cli = {(o.row.audit_name, o.row.host) for o in monitoring.overdue(rt)}
    assert cli == {(p.audit_name, p.host) for p in late}
    assert health(rt).repair_runs == {} and health(rt).flagged == []
