"""A real `entropy api serve` process on a PostgreSQL state store, talked to over HTTP.

What issue 16 judges: the auth matrix (none -> 401, a reader acting -> 403,
an operator acting -> 200 and logged with the token's name), a disable
through the API seen by `entropy status`, an ad-hoc run's result, and the
filters and pagination of /v1/audits on 10,000 pairs. A real engine runs
beside the first server, so results, repairs and a flagged host are real.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import processes
from apiserver import SCRIPTS, Api, flagged, serve, server_env, small_fleet
from entropy.api.metrics import OUTCOME_VALUES
from entropy.events import Events
from entropy.model import Outcome, Result
from fleets import write_fleet

# Each test runs a real API server and engine processes on one store: the serial phase's.
pytestmark = [pytest.mark.slow, pytest.mark.postgresql, pytest.mark.multiprocess]


@pytest.fixture
def small(tmp_path: Path, postgresql_url: str) -> Iterator[tuple[Api, subprocess.Popen]]:
    with small_fleet(tmp_path, postgresql_url) as served:
        yield served


def test_auth_matrix_acts_and_what_the_cli_sees(small: tuple[Api, subprocess.Popen]) -> None:
    api, engine = small
    # The engine ran bad_check on both web hosts, repaired, verified, flagged them.
    both = processes.wait_for(lambda: len(flagged(api)) == 2 and flagged(api), 60,
                              "the engine to flag both web hosts")  # fmt: skip
    assert {s["host"] for s in both} == {"web-1.test", "web-2.test"}
    disable = ("/v1/audits/ok_check/disable", {"host": "db-1.test", "reason": "disk swap"})

    with api.client() as anyone:  # no token: 401 on reads and acts alike
        for path in ("/v1/hosts", "/v1/audits", "/v1/engines", "/healthz", "/metrics"):
            assert anyone.get(path).status_code == 401, path
        assert anyone.post(disable[0], json=disable[1]).status_code == 401
        wrong = anyone.get("/v1/audits", headers={"Authorization": "Bearer not-a-token"})
        assert wrong.status_code == 401
        assert anyone.get("/openapi.json").json()["paths"]["/v1/audits"]["get"]

    with api.client("viewer") as viewer:  # a reader reads, and may not act
        assert viewer.get("/healthz").json()["status"] == "ok"
        engines = viewer.get("/v1/engines").json()["items"]
        assert [e["pid"] for e in engines if e["state"] == "running"] == [engine.pid]
        refused = viewer.post(disable[0], json=disable[1])
        assert refused.status_code == 403 and "viewer" in refused.json()["detail"]
        assert viewer.post("/v1/repairs/fix_bad/reset", json={"host": "web-1.test"}
                           ).status_code == 403  # fmt: skip
        critical = viewer.get("/v1/audits", params={"outcome": "critical"}).json()["items"]
        assert {(r["host"], r["audit_name"]) for r in critical} == {
            ("web-1.test", "bad_check"), ("web-2.test", "bad_check")}  # fmt: skip
        repairs = viewer.get("/v1/repairs", params={"host": "web-1.test"}).json()["items"]
        assert [(r["repair_name"], r["verify"]) for r in repairs] == [("fix_bad", "not_fixed")]
        results = viewer.get("/v1/results", params={"host": "db-1.test"}).json()["items"]
        assert [(r["audit_name"], r["outcome"]) for r in results] == [("ok_check", "ok")]
        hosts = viewer.get("/v1/hosts", params={"group": "web"}).json()
        assert [h["name"] for h in hosts["items"]] == ["web-1.test", "web-2.test"]
        plan = viewer.get("/v1/plan", params={"within": "2h"}).json()["items"]
        assert {(p["host"], p["audit_name"]) for p in plan} >= {("db-1.test", "ok_check")}
        assert viewer.get("/v1/plan", params={"within": "soon"}).status_code == 400
        no_bus = viewer.get("/v1/events")  # no [notifications] transport_url here
        assert no_bus.status_code == 400 and "transport_url" in no_bus.json()["error"]

    with api.client("ops") as ops:  # an operator acts; each act is logged with its name
        done = ops.post(disable[0], json=disable[1])
        assert done.status_code == 200, done.text
        assert done.json() == {"disabled": 1, "hosts": ["db-1.test"],
                               "still_disabled_by_definitions": []}  # fmt: skip
        ran = ops.post("/v1/audits/bad_check/run", json={"host": "web-2.test"})
        assert [(r["host"], r["outcome"]) for r in ran.json()["items"]] == [
            ("web-2.test", "critical")]  # fmt: skip
        reset = ops.post("/v1/repairs/fix_bad/reset", json={"host": "web-1.test"})
        assert reset.json() == {"host": "web-1.test", "repair_name": "fix_bad", "reset": 1}
        assert ops.post("/v1/audits/nope/disable", json={"reason": "x"}).status_code == 404
        both = ops.post("/v1/audits/ok_check/enable", json={"host": "db-1.test", "group": "db"})
        assert both.status_code == 400

    # The CLI reads the same store: the disable, the reset.
    (row,) = api.entropy("status", "--json", "--host", "db-1.test")
    assert (row["disabled"], row["disabled_reason"]) == (True, "disk swap")
    assert [s["host"] for s in flagged(api)] == ["web-2.test"]
    log = api.log.read_text()
    assert "disable by token 'ops' (audit=ok_check, host=db-1.test, reason=disk swap)" in log
    assert "run by token 'ops' (audit=bad_check, host=web-2.test)" in log
    assert "reset by token 'ops' (repair=fix_bad, host=web-1.test)" in log
    assert "viewer" not in log  # refused requests act on nothing

    # A token removed is refused at once, by the running server.
    api.entropy("api", "token", "remove", "viewer", "--json")
    with api.client("viewer") as viewer:
        assert viewer.get("/v1/hosts").status_code == 401


def test_a_posted_result_is_stored_and_triggers_its_repair(
    small: tuple[Api, subprocess.Popen],
) -> None:
    api, _engine = small
    processes.wait_for(lambda: len(flagged(api)) == 2, 60, "the engine to flag both web hosts")
    posted = {
        "audit": "ok_check",
        "host": "db-1.test",
        "outcome": "critical",
        "summary": "CRITICAL - from outside",
        "metrics": {"age": {"value": 3, "uom": "d"}},
    }
    with api.client("viewer") as viewer:
        assert viewer.post("/v1/results", json=posted).status_code == 403
    with api.client("ops") as ops:
        done = ops.post("/v1/results", json=posted)
        assert done.status_code == 200, done.text
        assert done.json()["engine_id"] == "api token ops"
        (considered,) = done.json()["repairs"]  # fix_ok watches ok_check: it ran, waited for
        assert (considered["repair_name"], considered["verdict"]) == ("fix_ok", "ran")
        bad = ops.post("/v1/results", json={**posted, "outcome": "unreachable"})
        assert bad.status_code == 400 and bad.json()["param"] == "outcome"
        assert ops.post("/v1/results", json={**posted, "host": "nope"}).status_code == 404

    with api.client("viewer") as viewer:
        (latest, *_) = viewer.get("/v1/results", params={"host": "db-1.test"}).json()["items"]
        assert (latest["audit_name"], latest["outcome"], latest["summary"]) == (
            "ok_check", "critical", "CRITICAL - from outside")  # fmt: skip
        assert latest["metrics"]["age"]["value"] == 3
        (row,) = viewer.get("/v1/audits", params={"host": "db-1.test"}).json()["items"]
        assert row["result"]["outcome"] == "critical"
        runs = viewer.get("/v1/repairs", params={"host": "db-1.test"}).json()["items"]
        assert [(r["repair_name"], r["audit_name"], r["trigger_result"]["summary"])
                for r in runs] == [("fix_ok", "ok_check", "CRITICAL - from outside")]  # fmt: skip
    assert "submit by token 'ops' (audit=ok_check, host=db-1.test, outcome=critical)" in (
        api.log.read_text())  # fmt: skip
    (row,) = api.entropy("status", "--json", "--host", "db-1.test")
    assert row["result"]["summary"] == "CRITICAL - from outside"


# -- 10,000 pairs ---------------------------------------------------------------------

BIG_HOSTS = {f"web-{i:04d}.test": {"ip_address": "127.0.0.1", "host_type": "web",
                                    "groups": [f"rack-{i % 10}"]}
             for i in range(1000)}  # fmt: skip
AUDITS = [f"check_{n}" for n in range(9)]
BIG_SCRIPTS = {**{a: SCRIPTS["ok_check"] for a in AUDITS}, "bad_check": SCRIPTS["bad_check"]}
BIG_SCHEDULES = {"web.yaml": {"web": {"audits": {a: {"run_every": "1d"}
                                                 for a in [*AUDITS, "bad_check"]}}}}  # fmt: skip


@pytest.fixture
def big(tmp_path: Path, postgresql_url: str) -> Iterator[Api]:
    fleet = write_fleet("dir", tmp_path / "fleet", BIG_HOSTS, BIG_SCRIPTS, BIG_SCHEDULES)
    env = server_env(postgresql_url, OS_API__HEALTHZ_WITHOUT_TOKEN="true",
               OS_API__METRICS_WITHOUT_TOKEN="true")  # fmt: skip
    with serve(tmp_path, fleet, env) as api:
        yield api


def _walk(http: httpx.Client, path: str, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """Every item of a listing, page by page; and how many pages it took."""
    items: list[dict[str, Any]] = []
    offset: int | None = 0
    pages = 0
    while offset is not None:
        got = http.get(path, params={**params, "offset": offset})
        assert got.status_code == 200, got.text
        body = got.json()
        assert body["offset"] == offset
        items += body["items"]
        offset, pages = body["next_offset"], pages + 1
    return items, pages


def test_filters_and_pagination_on_10000_pairs(big: Api) -> None:
    with httpx.Client(base_url=big.url) as anyone:  # configured open; the rest is not
        assert anyone.get("/healthz").status_code == 200
        assert "entropy_audits_overdue 0.0" in anyone.get("/metrics").text
        assert anyone.get("/v1/audits", params={"host": "web-0001.test"}).status_code == 401
    with big.client("ops") as ops:
        ran = ops.post("/v1/audits/bad_check/run", json={"group": "rack-3"}).json()["items"]
        assert len(ran) == 100 and {r["outcome"] for r in ran} == {"critical"}
        off = ops.post("/v1/audits/check_4/disable", json={"group": "rack-7", "reason": "r7"})
        assert off.json()["disabled"] == 100

    with big.client("viewer") as http:
        every, pages = _walk(http, "/v1/audits", limit=1000)
        assert (len(every), pages) == (10000, 10)
        assert len({r["id"] for r in every}) == 10000
        keys = [(r["host"], r["audit_name"]) for r in every]
        assert keys == sorted(keys)  # by host, then audit: stable across pages

        one = http.get("/v1/audits", params={"host": "web-0042.test"}).json()
        assert [r["audit_name"] for r in one["items"]] == sorted([*AUDITS, "bad_check"])
        assert one["next_offset"] is None

        check_2, pages = _walk(http, "/v1/audits", audit="check_2", limit=300)
        assert (len(check_2), pages) == (1000, 4)
        assert {r["audit_name"] for r in check_2} == {"check_2"}

        critical, _ = _walk(http, "/v1/audits", outcome="critical", limit=1000)
        assert {r["host"] for r in critical} == {f"web-{i:04d}.test" for i in range(3, 1000, 10)}
        assert {r["audit_name"] for r in critical} == {"bad_check"}

        disabled, _ = _walk(http, "/v1/audits", disabled="true", limit=1000)
        assert len(disabled) == 100
        assert {(r["audit_name"], r["disabled_reason"]) for r in disabled} == {("check_4", "r7")}
        enabled = http.get("/v1/audits", params={"disabled": "false", "limit": 1}).json()
        assert enabled["next_offset"] == 1

        both = http.get("/v1/audits", params={"audit": "check_4", "disabled": "true",
                                              "host": "web-0017.test"}).json()["items"]  # fmt: skip
        assert [r["host"] for r in both] == ["web-0017.test"]
        new = http.get("/v1/audits", params={"status": "new", "limit": 10000}).json()
        assert len(new["items"]) == 10000  # no engine here: nothing ran on schedule

        results, _ = _walk(http, "/v1/results", audit="bad_check", limit=40)
        assert len(results) == 100
        hosts, pages = _walk(http, "/v1/hosts", limit=250)
        assert (len(hosts), pages) == (1000, 4)

        assert http.get("/v1/audits", params={"status": "lost"}).status_code == 422
        assert http.get("/v1/audits", params={"limit": 0}).status_code == 422


def _samples(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Prometheus' own parser: metric name -> {sorted labels: value}."""
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return found


def test_metrics_parse_and_match_what_the_cli_says(small: tuple[Api, subprocess.Popen]) -> None:
    api, engine = small
    processes.wait_for(lambda: len(flagged(api)) == 2, 60, "the engine to flag both web hosts")
    with api.client("viewer") as viewer:
        scraped = viewer.get("/metrics")
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    got = _samples(scraped.text)

    rows = api.entropy("status", "--json")
    assert len(rows) == 5
    outcomes = {(("audit", r["audit_name"]), ("host", r["host"])): OUTCOME_VALUES[
        r["result"]["outcome"]] for r in rows}  # fmt: skip
    assert got["entropy_audit_outcome"] == outcomes
    assert {v for v in outcomes.values()} == {0, 2}  # ok and critical
    ended = {(r["audit_name"], r["host"]): r["result"]["finished_at"] for r in rows}
    last_runs = {(("audit", audit), ("host", host)): datetime.fromisoformat(t).timestamp()
                 for (audit, host), t in ended.items()}  # fmt: skip
    assert got["entropy_audit_last_run_timestamp_seconds"] == pytest.approx(last_runs)
    assert got["entropy_audits"][(("outcome", "critical"),)] == 2
    assert got["entropy_audits_overdue"] == {(): 0}

    runs = api.entropy("results", "--kind", "repair", "--json")
    assert got["entropy_repair_runs_total"] == {
        (("outcome", "ok"), ("repair", "fix_bad")): len(runs)}  # fmt: skip
    states = api.entropy("repair", "list", "--json")
    assert got["entropy_host_flagged"] == {
        (("host", s["host"]),): 1.0 for s in states if s["flagged"]}  # fmt: skip
    (listed,) = [e for e in api.entropy("engines", "--json") if e["pid"] == engine.pid]
    ages = got["entropy_engine_heartbeat_age_seconds"]
    assert set(ages) == {(("engine", listed["engine_id"]),)}
    assert 0 <= ages[(("engine", listed["engine_id"]),)] < 30


def test_events_stream_from_the_notifications_bus(
    tmp_path: Path, postgresql_url: str, rabbitmq_url: str
) -> None:
    """An event published on RabbitMQ reaches a /v1/events client as one SSE frame."""
    sent = threading.Event()

    def publish_until_seen() -> None:
        # The stream's queue is bound a moment after it opens: publish until it is read.
        publisher = Events(rabbitmq_url)
        while not sent.wait(0.5):
            now = datetime.now(UTC)
            publisher.audit(
                Result(
                    Outcome.CRITICAL,
                    "seen from outside",
                    started_at=now,
                    finished_at=now,
                    audit_name="from_outside",
                    host="web-1.test",
                )
            )
        publisher.close()

    with small_fleet(tmp_path, postgresql_url, OS_NOTIFICATIONS__TRANSPORT_URL=rabbitmq_url) as (
        api, _engine,
    ), api.client("viewer") as viewer:  # fmt: skip
        with viewer.stream("GET", "/v1/events", params={"key": "audit.from_outside.#"}) as got:
            assert got.status_code == 200
            assert got.headers["content-type"].startswith("text/event-stream")
            lines = got.iter_lines()
            assert next(lines) == ": connected"
            publishing = threading.Thread(target=publish_until_seen)
            publishing.start()
            try:
                frame = list(itertools.islice(
                    (line for line in lines if line and not line.startswith(":")), 2))  # fmt: skip
            finally:
                sent.set()
                publishing.join()
        assert frame[0] == "event: audit"
        body = json.loads(frame[1].removeprefix("data: "))
        assert (body["key"], body["host"], body["summary"]) == (
            "audit.from_outside.critical", "web-1.test", "seen from outside")  # fmt: skip


def test_a_long_ad_hoc_run_holds_up_no_other_request(tmp_path: Path, postgresql_url: str) -> None:
    """Requests share one backend across uvicorn's threads: a run that takes seconds
    (or a scrape) leaves reads and the dashboard answering meanwhile."""
    started, release = tmp_path / "started", tmp_path / "release"
    scripts = {"slow_check": {"kind": "command", "timeout": "60s", "command": [
        "sh", "-c", f'touch "{started}"; while [ ! -e "{release}" ]; do sleep 0.05; done; '
        'echo "OK - released"']}}  # fmt: skip
    schedules = {"web.yaml": {"web": {"audits": {"slow_check": {"run_every": "1d"}}}}}
    hosts = {"web-1.test": {"ip_address": "127.0.0.1", "host_type": "web"}}
    fleet = write_fleet("dir", tmp_path / "fleet", hosts, scripts, schedules)
    with serve(tmp_path, fleet, server_env(postgresql_url)) as api, api.client("ops") as ops:
        answer: list[httpx.Response] = []
        running = threading.Thread(target=lambda: answer.append(
            ops.post("/v1/audits/slow_check/run", json={"host": "web-1.test"})))  # fmt: skip
        running.start()
        try:
            processes.wait_for(started.exists, 30, "the ad hoc run to start")
            with api.client("viewer") as viewer:  # while the run holds its request open
                assert viewer.get("/v1/hosts").json()["items"][0]["name"] == "web-1.test"
                assert viewer.get("/healthz").status_code == 200
                assert viewer.get("/metrics").status_code == 200
                assert viewer.get("/").status_code == 200
            assert running.is_alive() and not answer  # answered before the run ended
        finally:
            release.touch()
            running.join(timeout=60)
        (ran,) = answer[0].json()["items"]
        assert (ran["host"], ran["outcome"]) == ("web-1.test", "ok")
        assert ran["summary"] == "OK - released"


def test_downtimes_and_acks_through_the_api_are_the_clis(
    small: tuple[Api, subprocess.Popen],
) -> None:
    api, _engine = small
    processes.wait_for(lambda: len(flagged(api)) == 2, 60, "the engine to flag both web hosts")
    window = {"reason": "rack move", "group": "web", "for": "2h", "skip_checks": True}
    acked = {"host": "web-1.test", "reason": "ticket 42", "expire": "4h"}
    with api.client("viewer") as viewer:
        assert viewer.post("/v1/downtimes", json=window).status_code == 403
        assert viewer.post("/v1/audits/bad_check/ack", json=acked).status_code == 403
    with api.client("ops") as ops:
        made = ops.post("/v1/downtimes", json=window)
        assert made.status_code == 200, made.text
        name = made.json()["name"]
        assert made.json()["created_by"] == "api token ops"
        assert ops.post("/v1/downtimes", json={**window, "for": "soon"}).status_code == 400
        assert ops.post("/v1/downtimes", json={**window, "group": "nope"}).status_code == 404
        done = ops.post("/v1/audits/bad_check/ack", json=acked)
        assert done.status_code == 200, done.text
        (one,) = done.json()["acknowledged"]
        assert (one["host"], one["state"], one["created_by"]) == (
            "web-1.test", "critical", "api token ops")  # fmt: skip
        ok = ops.post("/v1/audits/ok_check/ack", json={**acked, "host": "db-1.test"})
        assert ok.status_code == 400  # ok: nothing to acknowledge

    # The CLI reads the same store.
    (listed,) = api.entropy("downtime", "list", "--json")
    assert (listed["name"], listed["reason"], listed["active"]) == (name, "rack move", True)
    with api.client("viewer") as viewer:
        (seen,) = viewer.get("/v1/downtimes").json()["items"]
        assert (seen["name"], seen["groups"], seen["skip_checks"]) == (name, ["web"], True)
        (ack,) = viewer.get("/v1/acks", params={"host": "web-1.test"}).json()["items"]
        assert (ack["audit_name"], ack["reason"]) == ("bad_check", "ticket 42")

    with api.client("ops") as ops:
        lifted = ops.post("/v1/audits/bad_check/unack", json={"host": "web-1.test"})
        assert lifted.json() == {"unacknowledged": ["web-1.test"]}
        assert ops.delete(f"/v1/downtimes/{name}").json() == {"removed": name}
        assert ops.delete(f"/v1/downtimes/{name}").status_code == 404
    assert api.entropy("downtime", "list", "--json") == []
    with api.client("viewer") as viewer:
        assert viewer.get("/v1/acks").json()["items"] == []
    log = api.log.read_text()
    assert f"downtime by token 'ops' (downtime={name}, group=web" in log
    assert "ack by token 'ops' (audit=bad_check, host=web-1.test, reason=ticket 42)" in log
    assert "unack by token 'ops' (audit=bad_check, host=web-1.test)" in log
    assert f"downtime remove by token 'ops' (downtime={name})" in log
