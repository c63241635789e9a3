"""`entropy import` and `entropy export` end to end: YAML and SQL, definitions and state.

The commands run through `entropy.cli.main`, as an operator runs them.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from clirunner import run
from entropy.backends import Backend, fetch
from entropy.clock import FakeClock
from entropy.config import load_conf
from entropy.model import Ack, Catalog, Downtime, Outcome, RepairRun, Verify
from entropy.model import Result as AuditResult
from entropy.repairs import judge
from entropy.transfer import catalog_differences
from fleets import (
    RICH_HOSTS,
    RICH_REPAIRS,
    RICH_SCHEDULES,
    RICH_SCRIPTS,
    SEED_PAIRS,
    write_fleet,
)
from processes import ENTROPY


@pytest.fixture
def backends() -> Iterator[Any]:
    """open(url) -> a backend, closed after the test."""
    opened: list[Backend] = []

    def open_(url: str) -> Backend:
        opened.append(fetch(load_conf(), url))
        return opened[-1]

    yield open_
    for backend in opened:
        backend.close()


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    return write_fleet("dir", tmp_path / "fleet")


def with_history(backend: Backend, clock: FakeClock) -> None:
    """Sync, then give the rows the state a running fleet has: results, advances, a disable."""
    catalog = backend.load()
    backend.sync(catalog, clock.now())
    state = backend.state
    rows = {(r.audit_name, r.host): r for r in state.audits()}
    pairs = {p.key: p for p in catalog.pairs}
    backend.set_disabled(
        [pairs["vm_count", "hv-01.example.com"]], "hypervisor being rebuilt", clock.now()
    )
    for round_ in range(3):
        clock.advance(days=3)
        now = clock.now()
        ids = [r.id for key, r in rows.items() if key != ("vm_count", "hv-01.example.com")]
        claimed = state.claim(ids, "engine-1", now, now + timedelta(minutes=5))
        records = []
        for key, row in rows.items():
            if row.id not in claimed:
                continue
            outcome = Outcome.CRITICAL if key[0] == "vmbooter" else Outcome.OK
            result = AuditResult(
                outcome,
                f"{key[0]} round {round_}",
                output="x" * 10,
                metrics={"time": {"value": 0.5 + round_, "uom": "s"}},
                started_at=now,
                finished_at=now + timedelta(seconds=1),
                slot=row.next_run,
                engine_id="engine-1",
                audit_name=key[0],
                host=key[1],
            )
            next_run = pairs[key].schedule.timing.next_slot(row.next_run, now)
            records.append((row.id, result, next_run))
        assert state.record(records, "engine-1") == len(records)
    # One row left mid-run, as an engine that stopped while it ran leaves it.
    now = clock.now() + timedelta(days=3)
    state.claim([rows["vmbooter", "nova-api.mydomain.com"].id], "engine-2", now, now)
    # An operator's downtime and ack: state too, kept by the store, not the definitions.
    rewired = Downtime("dt-rack-7", "rack 7 rewired", hosts=("hv-*",), start=now,
                       end=now + timedelta(days=30), created_by="ops", created_at=now)  # fmt: skip
    state.add_downtime(rewired)
    state.set_ack(Ack("vmbooter", "nova-api.mydomain.com", "known, ticket 42", Outcome.CRITICAL,
                      sticky=True, created_by="ops", created_at=now))  # fmt: skip


def state_of(backend: Backend) -> tuple[list[dict], list[dict], list[Downtime], list[Ack]]:
    """Rows (ids aside), history (ids aside), downtimes and acks, in a stable order."""
    state = backend.state
    rows = [{k: v for k, v in dataclasses.asdict(r).items() if k != "id"} for r in state.audits()]
    history = [dataclasses.asdict(r) for r in state.results(limit=10**6)]
    history.sort(key=lambda r: (r["host"], r["audit_name"], r["finished_at"]))
    return rows, history, state.downtimes(), state.acks()


def same_fleet(a: Catalog, b: Catalog) -> None:
    assert catalog_differences(a, b) == []
    assert {p.key for p in b.pairs} == set(SEED_PAIRS)


def test_dir_to_file_to_dir_gives_the_same_definitions(
    fleet: Path, tmp_path: Path, backends: Any
) -> None:
    out = run("import", f"dir:{fleet}", f"file:{tmp_path}/fleet.yaml").stdout
    assert out == (
        f"copied 4 hosts, 5 scripts, 5 schedules (8 audits) from dir:{fleet} "
        f"to file:{tmp_path}/fleet.yaml\n"
    )
    run("import", f"file:{tmp_path}/fleet.yaml", f"dir:{tmp_path}/back")
    original = backends(f"dir:{fleet}").load()
    same_fleet(original, backends(f"file:{tmp_path}/fleet.yaml").load())
    same_fleet(original, backends(f"dir:{tmp_path}/back").load())


def test_dir_to_sqlalchemy_to_dir_gives_the_same_definitions(
    fleet: Path, tmp_path: Path, backends: Any
) -> None:
    db = f"sqlite:///{tmp_path}/fleet.db"
    run("import", f"dir:{fleet}", db)
    run("export", db, "--to", f"dir:{tmp_path}/back")
    original = backends(f"dir:{fleet}").load()
    same_fleet(original, backends(db).load())
    same_fleet(original, backends(f"dir:{tmp_path}/back").load())


def _without_the_repeated_group_entry() -> dict[str, Any]:
    schedules = json.loads(json.dumps(RICH_SCHEDULES))
    del schedules["extra.yaml"]["hypervisor"]
    return schedules


@pytest.mark.parametrize(
    "schedules",
    [
        pytest.param(_without_the_repeated_group_entry(), id="distinct-entries"),
        pytest.param(RICH_SCHEDULES, id="a-group-entry-repeated-in-agreement"),
    ],
)
def test_everything_the_seed_can_say_survives_dir_to_sqlalchemy_to_dir(
    schedules: dict[str, Any], tmp_path: Path, backends: Any
) -> None:
    fleet = write_fleet("dir", tmp_path / "rich", RICH_HOSTS, RICH_SCRIPTS, schedules, RICH_REPAIRS)
    db = f"sqlite:///{tmp_path}/fleet.db"
    run("import", f"dir:{fleet}", db)
    run("export", db, "--to", f"dir:{tmp_path}/back")
    original = backends(f"dir:{fleet}").load()
    assert catalog_differences(original, backends(db).load()) == []
    assert catalog_differences(original, backends(f"dir:{tmp_path}/back").load()) == []


def test_with_state_keeps_rows_and_history(
    fleet: Path, tmp_path: Path, backends: Any, clock: FakeClock
) -> None:
    source = backends(f"dir:{fleet}")
    with_history(source, clock)
    before = state_of(source)
    assert len(before[1]) == 3 * 7  # 7 enabled pairs, 3 rounds
    out = run("import", f"dir:{fleet}", f"file:{tmp_path}/f.yaml", "--with-state").stdout
    assert out.endswith("; state: 8 rows, 21 results, 1 downtime, 1 ack\n")
    copied = backends(f"file:{tmp_path}/f.yaml")
    assert state_of(copied) == before
    rows = {(r.audit_name, r.host): r for r in copied.audits()}
    hv = rows["vm_count", "hv-01.example.com"]
    assert (hv.disabled, hv.disabled_reason, hv.disabled_by) == (
        True,
        "hypervisor being rebuilt",
        "operator",
    )
    # The operator's disable is still the operator's: a sync keeps it.
    copied.sync(copied.load(), clock.now())
    assert copied.audits(host="hv-01.example.com", audit_name="vm_count")[0].disabled
    # And back again, through a database.
    db = f"sqlite:///{tmp_path}/fleet.db"
    run("import", f"file:{tmp_path}/f.yaml", db, "--with-state")
    run("import", db, f"dir:{tmp_path}/back", "--with-state")
    assert state_of(backends(f"dir:{tmp_path}/back")) == before


@pytest.mark.parametrize(
    "server", [pytest.param("postgresql", marks=pytest.mark.postgresql),
               pytest.param("mysql", marks=pytest.mark.mysql),
               pytest.param("mongodb", marks=pytest.mark.mongodb)]
)  # fmt: skip
def test_with_state_into_a_shared_database(
    server: str,
    fleet: Path,
    tmp_path: Path,
    backends: Any,
    clock: FakeClock,
    request: pytest.FixtureRequest,
) -> None:
    url = request.getfixturevalue(f"{server}_url")
    source = backends(f"dir:{fleet}")
    with_history(source, clock)
    before = state_of(source)
    out = run("import", f"dir:{fleet}", url, "--with-state", "--json").stdout
    assert json.loads(out)["state"] == {
        "rows": 8, "results": 21, "downtimes": 1, "acks": 1, "repair_states": 0,
        "repair_runs": 0, "removed": 0}  # fmt: skip
    assert state_of(backends(url)) == before
    same_fleet(source.load(), backends(url).load())
    run("import", url, f"dir:{tmp_path}/back", "--with-state")
    assert state_of(backends(f"dir:{tmp_path}/back")) == before


REPAIR_HOSTS = {f"h{i}": {"ip_address": f"10.0.0.{i}", "host_type": "compute"} for i in (1, 2)}
REPAIR_SCRIPTS = {"check": {"kind": "command", "command": ["true"]},
                  "fix": {"kind": "command", "command": ["true"]}}  # fmt: skip
REPAIR_SCHEDULES = {"a.yaml": {"compute": {"audits": {"check": {"run_every": "1m"}}}}}
REPAIR_RULES = {"fix": {"when": {"audit": "check", "consecutive": 2}, "run": "fix",
                        "max_attempts": 1, "verify": True}}  # fmt: skip


def with_repairs(backend: Backend) -> None:
    """h1 flagged after a repair that did not fix it; h2's repair left running by a stopped engine.

    In wall-clock time: the commands below run in processes of their own, on the system clock.
    """
    backend.sync(backend.load(), datetime.now(UTC))
    store, now = backend.state.repairs, datetime.now(UTC) - timedelta(minutes=5)
    rule = backend.load().repairs["fix"]
    for host in ("h1", "h2"):
        decision = store.start("fix", host, "check", rule.outcomes, judge(rule, "check", now),
                               "engine-1", now, now + timedelta(hours=1))  # fmt: skip
        assert decision.fire, decision.reason
    trigger = AuditResult(Outcome.CRITICAL, "check failed on h1", started_at=now,
                          finished_at=now, slot=now, engine_id="engine-1")  # fmt: skip
    done = AuditResult(Outcome.OK, "restarted", "restart: done", started_at=now,
                       finished_at=now + timedelta(seconds=3), engine_id="engine-1",
                       audit_name="fix", host="h1")  # fmt: skip
    verify = AuditResult(Outcome.CRITICAL, "still down", started_at=now, finished_at=now)
    store.finish(RepairRun("fix", "check", "fix", 1, done, trigger, Verify.NOT_FIXED, verify),
                 "engine-1", flag="1 runs of fix did not fix check")  # fmt: skip


def cli(*args: str) -> Any:
    """`entropy ARGS --json` as its own process, as an operator runs it; its parsed output."""
    done = subprocess.run([*ENTROPY, *args, "--json"], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize(
    "server", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql),
               pytest.param("mysql", marks=pytest.mark.mysql),
               pytest.param("mongodb", marks=pytest.mark.mongodb)]
)  # fmt: skip
def test_with_state_moves_flagged_hosts_and_the_repair_history(
    server: str, tmp_path: Path, backends: Any, request: pytest.FixtureRequest
) -> None:
    src = write_fleet("dir", tmp_path / "src", REPAIR_HOSTS, REPAIR_SCRIPTS, REPAIR_SCHEDULES,
                      REPAIR_RULES)  # fmt: skip
    with_repairs(backends(f"dir:{src}"))
    url = (f"sqlite:///{tmp_path}/dst.db" if server == "sqlite"
           else request.getfixturevalue(f"{server}_url"))  # fmt: skip
    # DST ran the fleet on its own, with repairs since reset and a run that must not survive.
    cli("import", f"dir:{src}", url)
    stale = backends(url)
    with_repairs(stale)
    for host in ("h1", "h2"):
        stale.state.repairs.reset(host, None, datetime.now(UTC))
    stale.close()

    before = {"list": cli("--backend", f"dir:{src}", "repair", "list"),
              "runs": cli("--backend", f"dir:{src}", "results", "--kind", "repair")}  # fmt: skip
    assert [(s["host"], s["flagged"], s["running"]) for s in before["list"]] == [
        ("h1", True, False), ("h2", False, True)]  # fmt: skip
    copied = cli("import", f"dir:{src}", url, "--with-state")

    listed = cli("--backend", url, "repair", "list")
    h1, h2 = listed
    assert h1 == before["list"][0]  # flagged at SRC, flagged at DST, the same reason
    assert (h1["flagged"], h1["flagged_reason"]) == (True, "1 runs of fix did not fix check")
    # h2's run had an engine of SRC's: at DST it is not running, its attempt still counted.
    assert h2 == {**before["list"][1], "running": False, "running_by": None,
                  "running_until": None}  # fmt: skip
    assert h2["attempts"] == 1
    runs = cli("--backend", url, "results", "--kind", "repair")
    assert runs == before["runs"] and len(runs) == 1
    assert (runs[0]["host"], runs[0]["verify"], runs[0]["verify_summary"]) == (
        "h1", "not_fixed", "still down")  # fmt: skip
    assert copied["state"] == {"rows": 2, "results": 0, "downtimes": 0, "acks": 0,
                               "repair_states": 2, "repair_runs": 1, "removed": 0}  # fmt: skip
    again = subprocess.run([*ENTROPY, "import", f"dir:{src}", url, "--with-state"],
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert again.stdout.endswith("; state: 2 rows, 0 results, 2 repair states, 1 repair run\n")
    assert cli("--backend", url, "repair", "list") == listed  # replaced, not added to


def test_with_state_that_would_drop_most_of_the_destination_needs_force(
    fleet: Path, tmp_path: Path, backends: Any, clock: FakeClock
) -> None:
    with_history(backends(f"dir:{fleet}"), clock)
    # The destination runs another fleet: 3 hosts x 1 audit that the source has no row for.
    hosts = {f"web-0{i}.example.com": {"ip_address": f"10.1.0.{i}", "host_type": "web"}
             for i in (1, 2, 3)}  # fmt: skip
    target = write_fleet("file", tmp_path / "dst", hosts=hosts,
                         scripts={"check_http": {"kind": "tcp", "port": 80}},
                         schedules={"web.yaml": {"web": {"audits": {"check_http": {
                             "run_every": "1m"}}}}})  # fmt: skip
    dst = backends(f"file:{target}")
    dst.sync(dst.load(), clock.now())
    before = (target.read_text(), state_of(dst))
    refused = run("import", f"dir:{fleet}", f"file:{target}", "--with-state", code=1)
    assert "import --with-state refused: it would remove 3 of the 3 audit rows stored" in (
        refused.stderr)  # fmt: skip
    assert "check_http on 3 hosts (web-01.example.com, web-02.example.com, web-03" in (
        refused.stderr)  # fmt: skip
    assert "Nothing was written. To replace them anyway, add --force" in refused.stderr
    assert (target.read_text(), state_of(dst)) == before
    out = run("import", f"dir:{fleet}", f"file:{target}", "--with-state", "--force").stdout
    assert out.endswith("; state: 8 rows, 21 results, 1 downtime, 1 ack (3 rows of DST "
                        "without a row at SRC removed)\n")  # fmt: skip
    assert {(r.audit_name, r.host) for r in dst.audits()} == set(SEED_PAIRS)


def test_without_state_the_destination_keeps_its_rows(
    fleet: Path, tmp_path: Path, backends: Any, clock: FakeClock
) -> None:
    with_history(backends(f"dir:{fleet}"), clock)
    target = write_fleet("file", tmp_path / "dst")
    dst = backends(f"file:{target}")
    dst.sync(dst.load(), clock.now())
    before = state_of(dst)
    run("import", f"dir:{fleet}", f"file:{target}")
    assert state_of(dst) == before


def test_invalid_definitions_change_nothing_at_the_destination(
    fleet: Path, tmp_path: Path, backends: Any, clock: FakeClock
) -> None:
    target = write_fleet("file", tmp_path / "dst")
    dst = backends(f"file:{target}")
    dst.sync(dst.load(), clock.now())
    before = (target.read_text(), state_of(dst))
    (fleet / "scripts.yaml").write_text("vmbooter: {kind: tcp, port: 22}\n")
    result = run("import", f"dir:{fleet}", f"file:{target}", "--with-state", code=2)
    assert "has no script in scripts.yaml" in result.stderr
    assert result.stderr.endswith("nothing was changed\n")
    assert (target.read_text(), state_of(dst)) == before


def test_import_json_counts(fleet: Path, tmp_path: Path) -> None:
    out = run("import", f"dir:{fleet}", f"dir:{tmp_path}/copy", "--json").stdout
    assert json.loads(out) == {
        "source": f"dir:{fleet}",
        "destination": f"dir:{tmp_path}/copy",
        "hosts": 4,
        "scripts": 5,
        "schedules": 5,
        "audits": 8,
        "state": None,
    }


def test_import_refuses_a_copy_onto_itself(fleet: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = run("import", f"dir:{fleet}", f"dir:{fleet}/../fleet", code=2)
    assert "SRC_URL and DST_URL are the same place" in result.stderr


def test_import_refuses_state_both_sides_share(
    fleet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = f"sqlite:///{tmp_path}/shared.db"
    monkeypatch.setenv("OS_DIR__STATE_CONNECTION", shared)
    monkeypatch.setenv("OS_FILE__STATE_CONNECTION", shared)
    result = run("import", f"dir:{fleet}", f"file:{tmp_path}/f.yaml", "--with-state", code=1)
    assert "share the state store" in result.stderr
    assert not (tmp_path / "f.yaml").exists()


def test_export_writes_the_seed_format_and_refuses_to_overwrite(
    fleet: Path, tmp_path: Path, backends: Any
) -> None:
    out = run("export", f"dir:{fleet}", "--to", f"dir:{tmp_path}/out").stdout
    assert out == (
        f"exported 4 hosts, 5 scripts, 5 schedules (8 audits) from dir:{fleet} "
        f"to dir:{tmp_path}/out (5 files)\n"
    )
    assert (tmp_path / "out" / "audits" / "compute.yaml").read_text() == (
        "---\ncompute:\n  audits:\n    check_nova_config_exists:\n      run_every: 1d\n"
        "    check_nova_compute_log_file_exists:\n      run_every: 30m\n"
    )
    result = run("export", f"dir:{fleet}", "--to", f"dir:{tmp_path}/out", code=1)
    assert result.stderr.startswith(f"entropy: error: {tmp_path}/out already holds definitions")
    run("export", f"dir:{fleet}", "--to", f"dir:{tmp_path}/out", "--force")
    report = json.loads(
        run("export", f"dir:{fleet}", "--to", f"file:{tmp_path}/f.yaml", "--json").stdout
    )
    assert report["files"] == [f"{tmp_path}/f.yaml"] and report["audits"] == 8
    same_fleet(backends(f"dir:{fleet}").load(), backends(f"file:{tmp_path}/f.yaml").load())


def test_export_only_writes_yaml(fleet: Path, tmp_path: Path) -> None:
    result = run("export", f"dir:{fleet}", "--to", f"sqlite:///{tmp_path}/x.db", code=2)
    assert "export writes YAML" in result.stderr
    result = run("export", f"dir:{fleet}", "--to", "dir:", code=2)
    assert "give dir:PATH or file:PATH.yaml" in result.stderr


@pytest.mark.mongodb
def test_dir_to_mongodb_to_dir_gives_the_same_definitions(
    tmp_path: Path, backends: Any, mongodb_url: str
) -> None:
    rich = write_fleet("dir", tmp_path / "rich", hosts=RICH_HOSTS, scripts=RICH_SCRIPTS,
                       schedules=RICH_SCHEDULES, repairs=RICH_REPAIRS)  # fmt: skip
    run("import", f"dir:{rich}", mongodb_url)
    run("import", mongodb_url, f"dir:{tmp_path}/back")
    original = backends(f"dir:{rich}").load()
    assert catalog_differences(original, backends(mongodb_url).load()) == []
    assert catalog_differences(original, backends(f"dir:{tmp_path}/back").load()) == []
