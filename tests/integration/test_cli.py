"""The `entropy` command end to end, on real YAML files and a real SQLite state store."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from entropy.cli import main
from fleets import ROW_FIELDS, SEED_PAIRS, SEED_SCHEDULES, write_fleet

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "fleet"


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    return write_fleet("dir", tmp_path / "fleet")


def run(*args: str, ok: bool = True):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output + result.stderr
    return result


def status_json(location: str) -> list[dict]:
    return json.loads(run("--backend", location, "status", "--json").stdout)


def test_validate_summarises_a_clean_fleet(fleet: Path) -> None:
    result = run("--backend", f"dir:{fleet}", "validate")
    assert result.stdout.strip() == "4 hosts, 5 scripts, 3 schedule files -> 8 audits"


def test_validate_reports_each_problem_at_its_line_and_exits_2(fleet: Path) -> None:
    (fleet / "audits" / "other_audits.yaml").write_text(
        "---\nnova-api.mydomain.com:\n  audits:\n    vmbooter:\n      run_every: 1fortnight\n"
    )
    (fleet / "audits" / "zz.yaml").write_text(
        "---\nstorage:\n  audits:\n    vmbooter: {run_every: 1h}\n"
    )
    result = run("--backend", f"dir:{fleet}", "validate", ok=False)
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[0] == (
        f"{fleet}/audits/other_audits.yaml:5:7: audit 'vmbooter' on "
        f"'nova-api.mydomain.com': run_every: invalid duration '1fortnight' "
        f"(e.g. 90s, 30mins, 1hour, 1day, 2days, 1h30m)"
    )
    assert lines[1].startswith(f"{fleet}/audits/zz.yaml:4:5: unknown target 'storage'")
    assert lines[-1] == "2 problems; nothing was changed"


def test_validate_json_lists_problems(fleet: Path) -> None:
    (fleet / "hosts.yaml").write_text("a: [unclosed\n")
    result = run("--backend", f"dir:{fleet}", "validate", "--json", ok=False)
    assert result.exit_code == 2
    report = json.loads(result.stdout)
    assert report["valid"] is False
    assert report["problems"][0]["path"] == f"{fleet}/hosts.yaml"
    assert report["problems"][0]["line"] == 2


def test_sync_then_status_json_has_exactly_the_row_fields(fleet: Path) -> None:
    out = run("--backend", f"dir:{fleet}", "sync").stdout
    assert "added 8, removed 0, kept 0" in out
    rows = status_json(f"dir:{fleet}")
    assert {(r["audit_name"], r["host"]) for r in rows} == set(SEED_PAIRS)
    assert all(set(r) == ROW_FIELDS for r in rows)
    assert all(datetime.fromisoformat(r["next_run"]).tzinfo is not None for r in rows)
    assert "added 0, removed 0, kept 8" in run("--backend", f"dir:{fleet}", "sync").stdout


def test_sync_with_invalid_definitions_changes_nothing(fleet: Path) -> None:
    run("--backend", f"dir:{fleet}", "sync")
    before = status_json(f"dir:{fleet}")
    (fleet / "scripts.yaml").write_text("vmbooter: {kind: tcp, port: 22}\n")  # scripts gone
    result = run("--backend", f"dir:{fleet}", "sync", ok=False)
    assert result.exit_code == 2
    assert "has no script in scripts.yaml" in result.stderr
    assert status_json(f"dir:{fleet}") == before


def test_plan_lists_runs_in_time_order(fleet: Path) -> None:
    run("--backend", f"dir:{fleet}", "sync")
    runs = json.loads(run("--backend", f"dir:{fleet}", "plan", "--within", "2h", "--json").stdout)
    times = [datetime.fromisoformat(r["time"]) for r in runs]
    assert times == sorted(times)
    assert all(set(r) == {"time", "host", "audit_name"} for r in runs)
    per_pair = {}
    for r in runs:
        per_pair.setdefault((r["audit_name"], r["host"]), []).append(
            datetime.fromisoformat(r["time"])
        )
    # 30-minute audits run 4 times in 2h (first within their interval), each 30m apart.
    api = per_pair["api_availability", "nova-api.mydomain.com"]
    assert len(api) == 4
    assert {b - a for a, b in itertools.pairwise(api)} == {timedelta(minutes=30)}
    # 1-day and 2-day audits appear at most once (their first run is splayed over the interval).
    assert len(per_pair.get(("vm_count", "hv-01.example.com"), [])) <= 1


def test_disable_and_enable_persist_and_survive_resync(fleet: Path) -> None:
    loc = f"dir:{fleet}"
    out = run(
        "--backend",
        loc,
        "disable",
        "vm_count",
        "--group",
        "hypervisor",
        "--reason",
        "hypervisors being rebuilt",
    ).stdout
    assert out.strip() == "disabled vm_count on 2 hosts: hypervisors being rebuilt"
    run("--backend", loc, "sync")
    disabled = {(r["host"], r["disabled_reason"]) for r in status_json(loc) if r["disabled"]}
    assert disabled == {
        ("compute-01.example.com", "hypervisors being rebuilt"),
        ("hv-01.example.com", "hypervisors being rebuilt"),
    }
    run("--backend", loc, "enable", "vm_count", "--host", "hv-01.example.com")
    disabled = {r["host"] for r in status_json(loc) if r["disabled"]}
    assert disabled == {"compute-01.example.com"}
    text = run("--backend", loc, "status", "--host", "compute-01.example.com").stdout
    assert "disabled: hypervisors being rebuilt" in text


def test_disable_names_unknown_audits_hosts_and_groups(fleet: Path) -> None:
    loc = f"dir:{fleet}"
    result = run("--backend", loc, "disable", "vm_cuont", "--reason", "x", ok=False)
    assert result.exit_code == 1
    assert "unknown audit 'vm_cuont'; did you mean vm_count?" in result.stderr
    result = run(
        "--backend", loc, "disable", "vm_count", "--host", "nope", "--reason", "x", ok=False
    )
    assert "unknown host 'nope'" in result.stderr
    result = run(
        "--backend", loc, "disable", "vm_count", "--group", "storage", "--reason", "x", ok=False
    )
    assert "no host is in group 'storage'" in result.stderr
    result = run("--backend", loc, "disable", "vm_count", ok=False)
    assert result.exit_code == 2 and "--reason" in result.stderr


def test_file_backend_and_bare_paths_pick_the_right_backend(tmp_path: Path) -> None:
    path = write_fleet("file", tmp_path / "f")
    assert "-> 8 audits" in run("--backend", f"file:{path}", "validate").stdout
    assert "-> 8 audits" in run("--backend", str(path), "validate").stdout
    assert (
        "-> 8 audits"
        in run("--backend", str(write_fleet("dir", tmp_path / "d")), "validate").stdout
    )


def test_unknown_backend_lists_the_available_ones() -> None:
    result = run("--backend", "foo", "validate", ok=False)
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "entropy: error: unknown backend 'foo'; available: dir, file, memory, mongodb, sqlalchemy"
    )


def test_config_file_and_environment_choose_the_backend(
    fleet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "entropy.conf"
    conf.write_text(f"[DEFAULT]\nentropy_backend = dir\n[dir]\npath = {fleet}\n")
    assert "-> 8 audits" in run("--config-file", str(conf), "validate").stdout
    file_fleet = write_fleet(
        "file", tmp_path / "f", schedules={"a.yaml": SEED_SCHEDULES["other_audits.yaml"]}
    )
    monkeypatch.setenv("OS_DEFAULT__ENTROPY_BACKEND", "file")
    monkeypatch.setenv("OS_FILE__PATH", str(file_fleet))
    assert "-> 2 audits" in run("--config-file", str(conf), "validate").stdout


def test_missing_definitions_directory_is_a_clear_error(tmp_path: Path) -> None:
    result = run("--backend", f"dir:{tmp_path}/nope", "sync", ok=False)
    assert result.stderr.startswith(
        f"entropy: error: definitions directory {tmp_path}/nope not found"
    )


def test_the_console_script_runs_the_bundled_example(tmp_path: Path) -> None:
    entropy = shutil.which("entropy", path=str(Path(sys.executable).parent))
    assert entropy, "the entropy console script is installed beside the interpreter"
    fleet = tmp_path / "fleet"
    shutil.copytree(EXAMPLES, fleet)
    out = subprocess.run(
        [entropy, "--backend", f"dir:{fleet}", "sync"], check=True, capture_output=True, text=True
    ).stdout
    assert "5 hosts, 5 scripts, 3 schedule files -> 11 audits; added 11" in out


def test_db_current_and_upgrade(fleet: Path) -> None:
    loc = f"dir:{fleet}"
    empty = run("--backend", loc, "db", "current", "--json", ok=False)
    assert empty.exit_code == 1  # out of date (here: no tables at all)
    before = json.loads(empty.stdout)
    assert before["current"] is None and before["up_to_date"] is False
    assert "upgraded from (empty) to" in run("--backend", loc, "db", "upgrade").stdout
    after = json.loads(run("--backend", loc, "db", "current", "--json").stdout)
    assert after == {"url": before["url"], "current": after["head"], "head": after["head"],
                     "up_to_date": True}  # fmt: skip
    assert "already at revision" in run("--backend", loc, "db", "upgrade").stdout


@pytest.mark.postgresql
def test_a_shared_state_store_must_be_upgraded_first(
    fleet: Path, empty_postgresql_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OS_DIR__STATE_CONNECTION", empty_postgresql_url)
    loc = f"dir:{fleet}"
    refused = run("--backend", loc, "sync", ok=False)
    assert refused.exit_code == 1
    assert "has no Entropy tables" in refused.stderr and "entropy db upgrade" in refused.stderr
    run("--backend", loc, "db", "upgrade")
    assert "added 8" in run("--backend", loc, "sync").stdout
