"""Real `entropy` processes on a hostile fleet: nothing it holds may run (issue 11, item 1).

On 156156c, `audit run` and `engine run` ran `touch pwned` from a host name
spliced into the bundled example's `[sh, -c, "... {host} ..."]`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from entropy.cli import main
from faults import deadline
from fleets import write_fleet
from processes import ENTROPY

pytestmark = pytest.mark.slow

HOSTILE_HOSTS = {
    "web-1.example": {"ip_address": "127.0.0.1", "host_type": "web",
                      "vars": {"note": "$(touch pwned-var)", "jump": "-oProxyCommand=touch pwned"}},
    "$(touch pwned-name)": {"ip_address": "127.0.0.1", "host_type": "web"},
    "a;touch pwned-semicolon": {"ip_address": "127.0.0.1", "host_type": "web"},
    "`touch pwned-backquote`": {"ip_address": "127.0.0.1", "host_type": "web"},
    "-oProxyCommand=touch pwned-dash": {"ip_address": "127.0.0.1", "host_type": "web"},
    "web-2.example": {"ip_address": "fe80::1%$(touch pwned-zone)", "host_type": "web"},
}  # fmt: skip
HOSTILE_SCRIPTS = {
    "tmp_writable": {"kind": "command",  # the pattern examples/local taught
                     "command": ["sh", "-c", 'test -w /tmp && echo "OK - {host}"']},
    "noted": {"kind": "command", "command": ["bash", "-c", "echo {vars.note}"]},
    "jumped": {"kind": "command", "command": ["ssh", "{vars.jump}", "true"]},
}  # fmt: skip
SCHEDULES = {"web": {"audits": {name: {"run_every": "1s"} for name in HOSTILE_SCRIPTS}}}


def write(root: Path) -> Path:
    (root / "audits").mkdir(parents=True)
    (root / "hosts.yaml").write_text(yaml.safe_dump(HOSTILE_HOSTS))
    (root / "scripts.yaml").write_text(yaml.safe_dump(HOSTILE_SCRIPTS))
    (root / "audits" / "web.yaml").write_text(yaml.safe_dump(SCHEDULES))
    return root


def run(cwd: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ENTROPY, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def assert_nothing_ran(cwd: Path) -> None:
    assert sorted(p.name for p in cwd.iterdir() if p.name.startswith("pwned")) == []


def invoke(*args: str) -> Any:
    """The command in this process (fast); a traceback would fail the test."""
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_nothing_in_a_hostile_fleet_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fleet = write(tmp_path / "fleet")
    backend = ["--backend", f"dir:{fleet}"]
    monkeypatch.chdir(tmp_path)  # where a `touch pwned` would land

    checked = invoke(*backend, "validate", "--json")
    assert checked.exit_code == 2, checked.output
    problems = json.loads(checked.stdout)["problems"]
    hosts = [p for p in problems if p["path"].endswith("hosts.yaml")]
    named = {p["line"] for p in hosts if "DNS name" in p["message"] or "ip_address" in p["message"]}
    assert len(named) == 5  # 4 names and 1 address, each at its own line
    assert any("'-oProxyCommand=touch pwned' starts with '-'" in p["message"] for p in hosts)
    scripts = [p["message"] for p in problems if p["path"].endswith("scripts.yaml")]
    assert any("$ENTROPY_HOST" in m for m in scripts)
    assert any("$ENTROPY_VAR_NOTE" in m for m in scripts)

    for args in (["audit", "run", "tmp_writable"], ["audit", "run", "noted"], ["sync"]):
        done = invoke(*backend, *args)
        assert done.exit_code == 2, (args, done.output)
    engine = run(tmp_path, *backend, "engine", "run", "--for", "3s")  # a real engine process
    assert engine.returncode == 2, (engine.stdout, engine.stderr)
    assert "Traceback" not in engine.stderr
    assert_nothing_ran(tmp_path)


def test_host_add_refuses_a_hostile_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    db = ["--backend", f"sqlite:///{tmp_path / 'fleet.db'}"]
    assert invoke(*db, "db", "upgrade").exit_code == 0
    for name in ("$(touch pwned)", "-oProxyCommand=touch pwned", "a b"):
        done = invoke(*db, "host", "add", "--ip", "10.0.0.1", "--type", "web", "--", name)
        assert done.exit_code == 2, done.output
        assert "DNS name" in done.stderr
    done = invoke(*db, "host", "add", "web-1.example", "--ip", "10.0.0.1", "--type", "web")
    assert done.exit_code == 0, done.output
    assert_nothing_ran(tmp_path)


@pytest.mark.parametrize(
    "var",
    [
        "n=" + "9" * 5000,  # a ValueError traceback on 156156c
        "x=[&a [1,1,1,1,1,1,1,1,1,1], &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a], "
        "&c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b], &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c], "
        "&e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d], &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e], "
        "&g [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f], &h [*g,*g,*g,*g,*g,*g,*g,*g,*g,*g]]",
    ],
    ids=["huge-int", "laughs"],
)
def test_host_add_reads_var_values_bounded(tmp_path: Path, var: str) -> None:
    db = ["--backend", f"sqlite:///{tmp_path / 'fleet.db'}"]
    runner = CliRunner()
    assert runner.invoke(main, [*db, "db", "upgrade"]).exit_code == 0
    args = [*db, "host", "add", "web-1.example", "--ip", "10.0.0.1", "--type", "web"]
    done = runner.invoke(main, [*args, "--var", var], catch_exceptions=False)
    assert done.exit_code == 0, done.output  # kept as the text it is
    (row,) = json_rows(tmp_path)
    assert row == var.partition("=")[2]


def json_rows(tmp_path: Path) -> list[str]:
    """The value of each host's one var, as stored."""
    with sqlite3.connect(tmp_path / "fleet.db") as db:
        return [
            json.loads(v)[next(iter(json.loads(v)))]
            for (v,) in db.execute("SELECT vars FROM hosts")
        ]


# -- mistyped paths: a clear error naming the path, non-zero, nothing created -----------------


def _state_files() -> list[Path]:
    """Every file under the state directory the tests use (conftest's XDG_STATE_HOME)."""
    return sorted(p for p in Path(os.environ["XDG_STATE_HOME"]).rglob("*") if p.is_file())


def _make_mistakes(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    fleet = write(tmp_path / "fleet")
    (tmp_path / "adir.yaml").mkdir()
    os.mkfifo(tmp_path / "pipe.conf")
    (tmp_path / "binary.conf").write_bytes(b"[DEFAULT]\n\xd0\xff\x00junk\n")
    (tmp_path / "adir.conf").mkdir()
    ok = ["--backend", f"dir:{fleet}"]
    return {
        "dir missing": (["--backend", "dir:/nonexistent/fleet"], "/nonexistent/fleet not found"),
        "dir is a file": (["--backend", f"dir:{fleet}/hosts.yaml"], "is a file, not a directory"),
        "file is a dir": (["--backend", f"file:{tmp_path}/adir.yaml"], "is a directory"),
        "file missing": (["--backend", f"file:{tmp_path}/nope.yaml"], "nope.yaml not found"),
        "config missing": (["--config-file", f"{tmp_path}/nope.conf", *ok], "nope.conf: not found"),
        "config is a FIFO": (["--config-file", f"{tmp_path}/pipe.conf", *ok], "named pipe"),
        "config is a dir": (["--config-file", f"{tmp_path}/adir.conf", *ok], "is a directory"),
        "config is binary": (["--config-file", f"{tmp_path}/binary.conf", *ok], "not UTF-8"),
        "config dir is a file": (["--config-dir", f"{fleet}/hosts.yaml", *ok], "not a directory"),
    }


MISTAKES = [
    "dir missing", "dir is a file", "file is a dir", "file missing", "config missing",
    "config is a FIFO", "config is a dir", "config is binary", "config dir is a file",
]  # fmt: skip


@pytest.mark.parametrize("mistake", MISTAKES)
@pytest.mark.parametrize("command", [["status"], ["sync"], ["validate"]], ids=" ".join)
def test_a_mistyped_path_is_an_error_naming_it(
    tmp_path: Path, mistake: str, command: list[str]
) -> None:
    args, said = _make_mistakes(tmp_path)[mistake]
    before = _state_files()
    with deadline(20):  # before: a FIFO config blocked for ever
        done = CliRunner().invoke(main, [*args, *command], catch_exceptions=False)
    assert done.exit_code != 0, done.output
    assert said in done.stderr, done.stderr
    assert _state_files() == before


# -- numbers in entropy.conf past any sane bound ---------------------------------------------


@pytest.mark.parametrize(
    "setting",
    [
        "[DEFAULT]\nrefresh_interval = 99999999999999999999",  # OverflowError before
        "[DEFAULT]\ndisable_retention = 99999999999999999999",
        "[DEFAULT]\nclaim_lease = inf",
        "[DEFAULT]\nmax_clock_skew = nan",  # ValueError before: nan passes min=
        "[database]\nconnect_timeout = 99999999999999999999",
    ],
    ids=lambda s: s.split("\n")[1],
)
def test_a_config_number_past_its_bound_is_an_error_naming_it(tmp_path: Path, setting: str) -> None:
    fleet = write_fleet("dir", tmp_path / "fleet")  # a good one: the config is what is wrong
    conf = tmp_path / "entropy.conf"
    conf.write_text(setting + "\n")
    name = setting.split("\n")[1].split(" = ")[0]
    done = run(tmp_path, "--config-file", str(conf), "--backend", f"dir:{fleet}",
               "engine", "run", "--for", "1s", timeout=60)  # fmt: skip
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert f"config [{setting[1:].split(']')[0]}] {name}:" in done.stderr
