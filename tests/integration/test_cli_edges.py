"""The CLI's edges: global options anywhere, --json on every change (docs: tests/unit/test_docs.py).

Each runs the real `entropy` command (click's runner) on a real SQLite or
PostgreSQL store.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from alembic import command

from clirunner import run
from entropy.backends.sqlalchemy import schema
from entropy.backends.sqlalchemy.state import SqlStateStore
from entropy.cli import main
from fleets import write_fleet

# Commands that change something: each takes --json and its --help says what it prints.
CHANGING = {
    ("sync",), ("disable",), ("enable",), ("import",), ("export",), ("audit", "run"),
    ("engine", "stop"), ("db", "upgrade"), ("host", "add"), ("host", "remove"),
    ("schedule", "add"), ("schedule", "remove"), ("script", "add"), ("script", "remove"),
    ("script", "import"), ("repair", "add"), ("repair", "remove"), ("repair", "reset"),
}  # fmt: skip


def leaves(group: click.Group = main, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            yield from leaves(cmd, (*path, name))
        else:
            yield (*path, name)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/fleet.db"
    return request.getfixturevalue("postgresql_url")


def small_fleet(db: str, tmp_path: Path) -> None:
    run("--backend", db, "host", "add", "web-01.example.com", "--ip", "10.0.0.1", "--type", "web")
    run("--backend", db, "script", "add", "check_http", "--kind", "tcp", "--set", "port=80")
    run("--backend", db, "script", "add", "restart", "--kind", "command", "--set",
        "command=[true]")  # fmt: skip
    run("--backend", db, "schedule", "add", "web", "check_http", "--every", "1m")


def test_script_remove_is_refused_while_used_and_removes_when_not(db: str, tmp_path: Path) -> None:
    small_fleet(db, tmp_path)
    run("--backend", db, "repair", "add", "fix", "--audit", "check_http", "--run", "restart")
    used = run("--backend", db, "script", "remove", "check_http", code=2)
    assert "audit 'check_http' has no script" in used.stderr
    assert "repair 'fix': when.audit: audit 'check_http' matches no script" in used.stderr
    assert used.stderr.endswith("nothing was changed\n")
    by_repair = run("--backend", db, "script", "remove", "restart", code=2)
    assert "repair 'fix': run: no script 'restart'" in by_repair.stderr
    run("--backend", db, "repair", "remove", "fix")
    assert run("--backend", db, "script", "remove", "restart").stdout == "removed script restart\n"
    missing = run("--backend", db, "script", "remove", "restart", code=1)
    assert "no script 'restart'" in missing.stderr
    assert "2 hosts" not in run("--backend", db, "validate").stdout
    assert "1 hosts, 1 scripts" in run("--backend", db, "validate").stdout


def test_script_remove_on_yaml_names_the_file_to_edit(tmp_path: Path) -> None:
    fleet = write_fleet("dir", tmp_path / "fleet")
    refused = run("--backend", f"dir:{fleet}", "script", "remove", "vmbooter", code=1)
    assert f"live in YAML: edit {fleet}/hosts.yaml, {fleet}/scripts.yaml" in refused.stderr


def test_global_options_work_after_the_command_too(tmp_path: Path) -> None:
    fleet = write_fleet("dir", tmp_path / "fleet")
    solo = {"solo.example.com": {"ip_address": "10.0.0.9", "host_type": "compute"}}
    one = {"a.yaml": {"compute": {"audits": {"vmbooter": {"run_every": "1h"}}}}}
    other = write_fleet("dir", tmp_path / "other", hosts=solo, schedules=one)
    run("sync", "--backend", f"dir:{fleet}")
    after = json.loads(run("status", "--json", "--backend", f"dir:{fleet}").stdout)
    before = json.loads(run("--backend", f"dir:{fleet}", "status", "--json").stdout)
    assert len(after) == len(before) == 8
    # After the command wins over before it, as a later option does.
    late = run("--backend", f"dir:{other}", "validate", "--backend", f"dir:{fleet}").stdout
    assert late.startswith("4 hosts")
    # Sub-groups and their commands take them as well.
    assert "up to date" in run("db", "current", "--backend", f"dir:{fleet}").stdout
    assert "up to date" in run("db", "--backend", f"dir:{fleet}", "current").stdout
    db = f"sqlite:///{tmp_path}/fleet.db"
    run("host", "add", "a.example.com", "--ip", "10.0.0.1", "--type", "web", "--backend", db)
    assert "1 hosts" in run("validate", "--backend", db).stdout
    # --config-file after the command: its [dir] path picks the fleet.
    conf = tmp_path / "entropy.conf"
    conf.write_text(f"[DEFAULT]\nentropy_backend = dir\n[dir]\npath = {other}\n")
    assert run("validate", "--config-file", str(conf)).stdout.startswith("1 hosts")
    # -v after the command turns logging up, like before it.
    root = logging.getLogger()
    level = root.level
    try:
        run("validate", "--backend", f"dir:{fleet}", "-vv")
        assert root.level == logging.DEBUG
    finally:
        root.setLevel(level)
    # import and export name their backends as arguments: --backend there is an error.
    wrong = run("export", f"dir:{fleet}", "--to", f"dir:{tmp_path}/x", "--backend", "y", code=2)
    assert "No such option '--backend'" in wrong.stderr


def test_every_changing_command_has_json_and_says_what_it_holds() -> None:
    commands = {path: cmd for path, cmd in _commands()}
    assert set(commands) >= CHANGING
    for path in sorted(CHANGING):
        cmd = commands[path]
        assert any(p.name == "as_json" for p in cmd.params), path
        assert "--json prints" in (cmd.help or ""), path


def _commands() -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for path in leaves():
        cmd: click.Command = main
        for name in path:
            cmd = cmd.commands[name]  # type: ignore[attr-defined]
        yield path, cmd


def test_definition_commands_print_their_documented_json(db: str, tmp_path: Path) -> None:
    def j(*args: str) -> dict:
        return json.loads(run("--backend", db, *args, "--json").stdout)

    assert j("host", "add", "web-01.example.com", "--ip", "10.0.0.1", "--type", "web") == {
        "change": "added", "host": "web-01.example.com"}  # fmt: skip
    assert j("host", "add", "web-01.example.com", "--ip", "10.0.0.2", "--type", "web") == {
        "change": "replaced", "host": "web-01.example.com"}  # fmt: skip
    assert j("host", "add", "web-02.example.com", "--ip", "10.0.0.3", "--type", "web")[
        "change"] == "added"  # fmt: skip
    assert j("script", "add", "check_http", "--kind", "tcp", "--set", "port=80") == {
        "change": "added", "script": "check_http", "kind": "tcp"}  # fmt: skip
    scripts = tmp_path / "scripts.yaml"
    scripts.write_text("check_http: {kind: tcp, port: 8080}\nrestart: {kind: command, "
                       "command: ['true']}\n")  # fmt: skip
    assert j("script", "import", str(scripts)) == {
        "change": "imported", "path": str(scripts), "added": ["restart"],
        "replaced": ["check_http"]}  # fmt: skip
    assert j("schedule", "add", "web", "check_http", "--every", "30mins") == {
        "change": "added", "target": "web", "audit_name": "check_http",
        "timing": "every 30m"}  # fmt: skip
    assert j("repair", "add", "fix", "--audit", "check_http", "--run", "restart") == {
        "change": "added", "repair": "fix", "audit": "check_http", "script": "restart"}  # fmt: skip
    assert j("repair", "reset", "web-01.example.com") == {
        "host": "web-01.example.com", "repair_name": None, "reset": 0}  # fmt: skip
    assert j("repair", "remove", "fix") == {"change": "removed", "repair": "fix"}
    assert j("script", "remove", "restart") == {"change": "removed", "script": "restart"}
    assert j("schedule", "remove", "web", "check_http") == {
        "change": "removed", "target": "web", "audit_name": "check_http"}  # fmt: skip
    assert j("host", "remove", "web-02.example.com") == {
        "change": "removed", "host": "web-02.example.com"}  # fmt: skip
    upgraded = j("db", "upgrade")
    assert upgraded == {"url": upgraded["url"], "before": schema.head(), "after": schema.head(),
                        "upgraded": False}  # fmt: skip


def test_db_current_exits_1_when_the_schema_is_absent_or_behind(db: str, tmp_path: Path) -> None:
    fleet = write_fleet("dir", tmp_path / "fleet")
    state = f"{db}" if db.startswith("postgresql") else f"sqlite:///{tmp_path}/state.sqlite"
    conf = tmp_path / "entropy.conf"
    conf.write_text(f"[dir]\nstate_connection = {state}\n")
    loc = ("--config-file", str(conf), "--backend", f"dir:{fleet}")
    if db.startswith("sqlite"):  # an empty file; the PostgreSQL fixture is upgraded already
        absent = run(*loc, "db", "current", code=1)
        assert "revision (empty)" in absent.stdout and "out of date" in absent.stdout
        assert json.loads(run(*loc, "db", "current", "--json", code=1).stdout)["current"] is None
        fresh = json.loads(run(*loc, "db", "upgrade", "--json").stdout)
        assert (fresh["before"], fresh["after"], fresh["upgraded"]) == (None, schema.head(), True)
    assert "up to date" in run(*loc, "db", "current").stdout
    store = SqlStateStore(state, check_schema=False)
    try:
        with store.engine.begin() as conn:
            command.downgrade(schema._config(conn), "0005")
    finally:
        store.close()
    behind = run(*loc, "db", "current", code=1)
    assert f"revision 0005, needs {schema.head()}; out of date: run `entropy db upgrade`" in (
        behind.stdout)  # fmt: skip
    report = json.loads(run(*loc, "db", "current", "--json", code=1).stdout)
    assert (report["current"], report["up_to_date"]) == ("0005", False)
    run(*loc, "db", "upgrade")
    assert run(*loc, "db", "current").exit_code == 0
