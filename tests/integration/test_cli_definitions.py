"""Managing definitions in a database from the CLI: host, schedule, script, repair.

On every editable backend: sqlalchemy (SQLite, PostgreSQL) and mongodb.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import insert

from entropy.backends import fetch
from entropy.backends.sqlalchemy.tables import hosts
from entropy.cli import main
from entropy.config import load_conf
from entropy.model import Catalog
from fleets import write_fleet


def run(*args: str, ok: bool = True):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output + result.stderr
    return result


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgresql),
        pytest.param("mongodb", marks=pytest.mark.mongodb),
    ]
)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/fleet.db"
    return request.getfixturevalue(f"{request.param}_url")


def build_fleet(db: str, tmp_path: Path) -> None:
    run("--backend", db, "host", "add", "compute-01.example.com", "--ip", "10.0.0.11",
        "--type", "compute", "--group", "hypervisor", "--var", "rack=r1")  # fmt: skip
    run("--backend", db, "host", "add", "nova-api.mydomain.com", "--ip", "10.0.2.1",
        "--type", "control")  # fmt: skip
    scripts = tmp_path / "scripts.yaml"
    scripts.write_text(
        "check_nova_config_exists: {kind: command, command: [test, -f, /etc/nova/nova.conf]}\n"
        "vm_count: {kind: python, function: 'os:getcwd'}\n"
    )
    assert "imported 2 scripts" in run("--backend", db, "script", "import", str(scripts)).stdout
    run("--backend", db, "script", "add", "vmbooter", "--kind", "tcp", "--set", "port=22",
        "--timeout", "5s")  # fmt: skip
    run("--backend", db, "schedule", "add", "compute", "check_nova_config_exists",
        "--every", "1day")  # fmt: skip
    run("--backend", db, "schedule", "add", "hypervisor", "vm_count", "--cron", "0 * * * *",
        "--param", "limit=12")  # fmt: skip
    run("--backend", db, "schedule", "add", "nova-api.mydomain.com", "vmbooter",
        "--every", "1hour")  # fmt: skip


def test_a_fleet_built_from_the_cli_loads_and_syncs(db: str, tmp_path: Path) -> None:
    build_fleet(db, tmp_path)
    assert "2 hosts, 3 scripts" in run("--backend", db, "validate").stdout
    assert "-> 3 audits; added 3" in run("--backend", db, "sync").stdout
    rows = json.loads(run("--backend", db, "status", "--json").stdout)
    assert {(r["audit_name"], r["host"]) for r in rows} == {
        ("check_nova_config_exists", "compute-01.example.com"),
        ("vm_count", "compute-01.example.com"),
        ("vmbooter", "nova-api.mydomain.com"),
    }


def test_changes_that_break_the_definitions_are_refused(db: str, tmp_path: Path) -> None:
    build_fleet(db, tmp_path)
    refused = run("--backend", db, "host", "remove", "nova-api.mydomain.com", ok=False)
    assert refused.exit_code == 2
    assert "unknown target 'nova-api.mydomain.com'" in refused.stderr
    refused = run("--backend", db, "schedule", "add", "storage", "vm_count", "--every", "1h",
                  ok=False)  # fmt: skip
    assert "unknown target 'storage'" in refused.stderr
    refused = run("--backend", db, "host", "add", "x", "--ip", "nope", "--type", "c", ok=False)
    assert "entropy host add: host 'x': ip_address must be an IP address" in refused.stderr
    refused = run("--backend", db, "schedule", "add", "compute", "vm_count", "--every", "1x",
                  ok=False)  # fmt: skip
    assert "invalid duration '1x'" in refused.stderr
    # Nothing of the refused changes stuck.
    assert "2 hosts, 3 scripts" in run("--backend", db, "validate").stdout
    assert "-> 3 audits" in run("--backend", db, "validate").stdout


def test_remove_and_replace(db: str, tmp_path: Path) -> None:
    build_fleet(db, tmp_path)
    run("--backend", db, "schedule", "remove", "nova-api.mydomain.com", "vmbooter")
    run("--backend", db, "host", "remove", "nova-api.mydomain.com")
    out = run("--backend", db, "schedule", "add", "compute", "check_nova_config_exists",
              "--every", "30mins").stdout  # fmt: skip
    assert out.strip() == "replaced check_nova_config_exists on compute: every 30m"
    assert "1 hosts, 3 scripts" in run("--backend", db, "validate").stdout
    missing = run("--backend", db, "host", "remove", "nope", ok=False)
    assert missing.exit_code == 1 and "no host 'nope'" in missing.stderr


def test_yaml_backends_say_where_to_edit(tmp_path: Path) -> None:
    fleet = write_fleet("dir", tmp_path / "fleet")
    result = run("--backend", f"dir:{fleet}", "host", "add", "a", "--ip", "10.0.0.1",
                 "--type", "compute", ok=False)  # fmt: skip
    assert result.exit_code == 1
    assert f"live in YAML: edit {fleet}/hosts.yaml" in result.stderr


def test_repairs_are_added_checked_and_removed_from_the_cli(db: str, tmp_path: Path) -> None:
    build_fleet(db, tmp_path)
    out = run("--backend", db, "repair", "add", "reboot_vm", "--audit", "vm_*", "--outcome",
              "critical", "--outcome", "unknown", "--consecutive", "3", "--run", "vmbooter",
              "--cooldown", "30mins", "--max-concurrent", "2", "--max-attempts", "3",
              "--verify").stdout  # fmt: skip
    assert out == "added repair reboot_vm: vmbooter when vm_* fails\n"
    (rule,) = fetch_catalog(db).repairs.values()
    assert (rule.audit, rule.consecutive, rule.cooldown, rule.max_attempts, rule.verify) == (
        "vm_*", 3, 1800, 3, True)  # fmt: skip
    refused = run("--backend", db, "repair", "add", "bad", "--audit", "nothing_*", "--run",
                  "nope", ok=False)  # fmt: skip
    assert refused.exit_code == 2
    # Checked against the rest of the fleet before it commits: the new row is named.
    assert "#repairs:2:1: repair 'bad': run: no script 'nope'\n" in refused.stderr
    assert "#repairs:2:1: repair 'bad': when.audit: pattern 'nothing_*' matches no script\n" in (
        refused.stderr)  # fmt: skip
    assert len(fetch_catalog(db).repairs) == 1
    run("--backend", db, "repair", "remove", "reboot_vm")
    assert fetch_catalog(db).repairs == {}


def test_repair_add_on_yaml_backends_names_the_file_to_edit(tmp_path: Path) -> None:
    fleet = write_fleet("dir", tmp_path / "fleet")
    refused = run("--backend", f"dir:{fleet}", "repair", "add", "x", "--audit", "a", "--run",
                  "b", ok=False)  # fmt: skip
    assert refused.exit_code == 1
    assert f"edit {fleet}/hosts.yaml" in refused.stderr
    assert f"{fleet}/repairs.yaml" in refused.stderr


def fetch_catalog(db: str) -> Catalog:
    backend = fetch(load_conf(), db)
    try:
        return backend.load()
    finally:
        backend.close()


def test_hosts_stored_before_the_name_check_can_be_removed_one_at_a_time(
    db: str, tmp_path: Path
) -> None:
    """A database written by an older Entropy may hold names now refused (issue 11)."""
    build_fleet(db, tmp_path)
    backend = fetch(load_conf(), db)
    now = datetime.now(UTC)
    names = ("db_1", "$(touch pwned)")
    if db.startswith("mongodb"):  # written as an older Entropy would have, unchecked
        backend.definitions._db()["hosts"].insert_many([
            {"_id": name, "ip_address": "10.0.0.9", "host_type": "compute", "seq": 100 + n}
            for n, name in enumerate(names)
        ])  # fmt: skip
    else:
        with backend.state.transaction() as conn:
            conn.execute(insert(hosts), [
                {"name": name, "ip_address": "10.0.0.9", "host_type": "compute", "groups": [],
                 "vars": {}, "created_at": now, "updated_at": now}
                for name in names
            ])  # fmt: skip
    backend.close()
    assert run("--backend", db, "validate", ok=False).exit_code == 2
    refused = run("--backend", db, "host", "add", "a;b", "--ip", "10.0.0.1", "--type", "web",
                  ok=False)  # fmt: skip
    assert refused.exit_code == 2 and "DNS name" in refused.stderr  # adds a problem: refused
    run("--backend", db, "host", "remove", "db_1")  # fixes one of two: goes through
    run("--backend", db, "host", "remove", "$(touch pwned)")
    assert run("--backend", db, "validate").stdout.startswith("2 hosts, ")


def test_host_add_takes_how_ssh_reaches_it(db: str, tmp_path: Path) -> None:
    build_fleet(db, tmp_path)
    run("--backend", db, "host", "add", "compute-02.example.com", "--ip", "10.0.0.12",
        "--type", "compute", "--ssh", "user=admin", "--ssh", "port=2222",
        "--ssh", "jump=ops@bastion:2200")  # fmt: skip
    backend = fetch(load_conf(), db)
    try:
        host = backend.load().hosts["compute-02.example.com"]
    finally:
        backend.close()
    assert host.ssh is not None and host.ssh.to_dict() == {
        "port": 2222,
        "user": "admin",
        "jump": "ops@bastion:2200",
    }
    refused = run("--backend", db, "host", "add", "x", "--ip", "10.0.0.9", "--type", "c",
                  "--ssh", "port=http", ok=False)  # fmt: skip
    assert "host 'x': ssh: port must be a number from 1 to 65535" in refused.stderr
