"""Mass removal needs consent, through the real CLI and a real engine process.

The scenario of issue 11: a schedule file is emptied (truncated, an
editor's slip), `sync` would remove most of the fleet, and the operator's
disable must still be there when the file comes back.
"""

from __future__ import annotations

import json
import re
import shutil
from datetime import datetime
from pathlib import Path

import pytest

from clirunner import run
from fleets import SEED_PAIRS, write_fleet
from processes import start_engine, wait_for

COMPUTE = "compute_audits.yaml"  # 4 of the seed's 8 pairs


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def fleet(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The seed fleet as dir:PATH, its state in SQLite or in PostgreSQL."""
    if request.param == "postgresql":
        monkeypatch.setenv("OS_DIR__STATE_CONNECTION", request.getfixturevalue("postgresql_url"))
    return f"dir:{write_fleet('dir', tmp_path / 'fleet')}"


def rows(fleet: str) -> dict[tuple[str, str], dict]:
    return {(r["audit_name"], r["host"]): r
            for r in json.loads(run("--backend", fleet, "status", "--json").stdout)}  # fmt: skip


def test_an_emptied_schedule_file_is_refused_until_forced_and_the_disable_comes_back(
    fleet: str,
) -> None:
    path = Path(fleet.removeprefix("dir:")) / "audits" / COMPUTE
    run("--backend", fleet, "sync")
    run("--backend", fleet, "disable", "check_nova_config_exists", "--host",
        "compute-01.example.com", "--reason", "maintenance CHG-123")  # fmt: skip
    before = rows(fleet)
    saved = path.read_text()
    path.write_text("{}\n")

    refused = run("--backend", fleet, "sync", code=1)
    assert refused.stdout == ""
    assert refused.stderr.startswith(
        "entropy: error: sync refused: it would remove 4 of the 8 audit rows stored "
        "(max_removal = 10% allows 1 of 8); nothing was changed:\n"
    )
    assert (
        "  check_nova_compute_log_file_exists on 2 hosts (compute-01.example.com, "
        "compute-02.example.com): no schedule runs this audit any more\n"
    ) in refused.stderr
    assert f"  schedule files that now define no audit: {path}\n" in refused.stderr
    assert "run `entropy sync --force` to accept the removal" in refused.stderr
    assert rows(fleet) == before

    as_json = json.loads(run("--backend", fleet, "sync", "--json", code=1).stdout)
    assert as_json == {
        "refused": True, "would_remove": 4, "stored": 8, "allowed": 1, "max_removal": 0.1,
        "by_audit": {"check_nova_compute_log_file_exists": 2, "check_nova_config_exists": 2},
        "message": as_json["message"],
    }  # fmt: skip
    # disable and enable sync first, but only to add: they never remove.
    run("--backend", fleet, "disable", "vmbooter", "--reason", "x")
    run("--backend", fleet, "enable", "vmbooter")
    assert set(rows(fleet)) == set(SEED_PAIRS)

    forced = run("--backend", fleet, "sync", "--force", "--json")
    assert json.loads(forced.stdout) == {
        "added": 0, "removed": 4, "kept": 4, "updated": 0, "restored_disables": 0,
        "remembered_disables": 1, "audits": 4,
    }  # fmt: skip
    path.write_text(saved)  # the file is back
    back = run("--backend", fleet, "sync")
    assert back.stdout.endswith("added 4, removed 0, kept 4 (0 of them updated); "
                                "1 operator disable put back\n")  # fmt: skip
    assert re.fullmatch(
        r"put back the operator's disable of check_nova_config_exists on compute-01.example.com: "
        r"maintenance CHG-123 \(its pair was removed \S+ by entropy sync by \S+@\S+\)\n",
        back.stderr,
    )
    row = rows(fleet)["check_nova_config_exists", "compute-01.example.com"]
    assert (row["disabled"], row["disabled_reason"]) == (True, "maintenance CHG-123")
    assert not rows(fleet)["check_nova_config_exists", "compute-02.example.com"]["disabled"]


def test_max_removal_is_a_config_option(fleet: str, tmp_path: Path) -> None:
    run("--backend", fleet, "sync")
    (Path(fleet.removeprefix("dir:")) / "audits" / COMPUTE).write_text("{}\n")
    conf = tmp_path / "entropy.conf"
    conf.write_text("[DEFAULT]\nmax_removal = 0.5\n")
    out = run("--backend", fleet, "sync", "--config-file", str(conf)).stdout
    assert "removed 4, kept 4" in out


@pytest.mark.slow
def test_a_running_engine_keeps_its_schedule_and_logs_the_refusal(tmp_path: Path) -> None:
    hosts = {f"web-{i}.test": {"ip_address": "127.0.0.1", "host_type": "web"} for i in (1, 2)}
    scripts = {name: {"kind": "command", "command": ["true"]} for name in ("a", "b")}
    schedules = {f"{name}.yaml": {"web": {"audits": {name: {"run_every": "1s"}}}}
                 for name in ("a", "b")}  # fmt: skip
    fleet = write_fleet("dir", tmp_path / "fleet", hosts=hosts, scripts=scripts,
                        schedules=schedules)  # fmt: skip
    engine = start_engine(fleet, "--for", "5s")
    try:
        wait_for(lambda: any(r["result"] for r in rows(f"dir:{fleet}").values()), 10,
                 "a first result")  # fmt: skip
        emptied = datetime.now().astimezone()
        (fleet / "audits" / "a.yaml").write_text("{}\n")
        out, err = engine.communicate(timeout=30)
    finally:
        if engine.poll() is None:
            engine.kill()
    assert engine.returncode == 0, err
    assert (
        " ERROR entropy.scheduler: refresh refused, the previous schedule keeps running: "
        "sync refused: it would remove 2 of the 4 audit rows stored" in err
    )
    assert f"a on 2 hosts (web-1.test, web-2.test): from {fleet}/audits/a.yaml (target web)" in err
    # The rows stayed, and audit `a` kept running after its file was emptied.
    assert len(rows(f"dir:{fleet}")) == 4
    late = [json.loads(line) for line in out.splitlines()]
    late = [r for r in late if r["audit_name"] == "a"
            and datetime.fromisoformat(r["finished_at"]) > emptied]  # fmt: skip
    assert late


def test_the_engine_refuses_to_start_on_a_mass_removal(tmp_path: Path) -> None:
    fleet = write_fleet("dir", tmp_path / "fleet")
    run("--backend", f"dir:{fleet}", "sync")
    shutil.rmtree(fleet / "audits")
    (fleet / "audits").mkdir()
    (fleet / "audits" / "empty.yaml").write_text("{}\n")
    refused = run("--backend", f"dir:{fleet}", "engine", "run", "--for", "1s", code=1)
    assert (
        "sync refused: it would remove 8 of the 8 audit rows stored (removing every row "
        "always needs consent)" in refused.stderr
    )
    assert len(rows(f"dir:{fleet}")) == 8
