"""`validate` refuses what sync, the engine or a runner would trip on later.

On 156156c each of these validated, then crashed sync or the engine
(CroniterBadDateError, OverflowError, a 4300-digit ValueError, RecursionError)
or turned every run of an audit into `error`.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from entropy.backends import fetch
from entropy.backends.impl_dir import DirBackend
from entropy.cli import main
from entropy.clock import FakeClock
from entropy.config import load_conf
from entropy.errors import ConfigError, ValidationError
from entropy.scheduler import Scheduler

HOSTS = {"web-1.example": {"ip_address": "10.0.0.1", "host_type": "web"}}
ECHO = {"kind": "command", "command": ["echo", "hi"]}


@pytest.fixture
def conf():
    return load_conf()


def write(
    root: Path,
    schedule: dict[str, Any],
    script: dict[str, Any] = ECHO,
    hosts: dict[str, Any] = HOSTS,
    repairs: dict[str, Any] | None = None,
) -> Path:
    (root / "audits").mkdir(parents=True, exist_ok=True)
    (root / "hosts.yaml").write_text(yaml.safe_dump(hosts))
    (root / "scripts.yaml").write_text(yaml.safe_dump({"check": script}))
    # libyaml's emitter when there is one: for every schedule below it writes the same
    # text as PyYAML's own, and the 100,000-key params in 2 s rather than 5.6 s.
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    (root / "audits" / "a.yaml").write_text(
        yaml.dump({"web": {"audits": {"check": schedule}}}, Dumper=dumper, sort_keys=False)
    )
    if repairs is not None:
        (root / "repairs.yaml").write_text(yaml.safe_dump(repairs))
    return root


def only_problem(conf, root: Path) -> ConfigError:
    with pytest.raises(ValidationError) as info:
        DirBackend(conf, str(root)).load()
    assert len(info.value.problems) == 1, info.value
    return info.value.problems[0]


@pytest.mark.parametrize(
    ("schedule", "key", "message"),
    [
        ({"cron": "0 0 30 2 *"}, "cron", "never fires (no run within 5 years)"),
        ({"cron": "0 0 31 4 *"}, "cron", "never fires"),
        ({"run_every": "100000000w"}, "run_every", "is longer than 366 days"),
        ({"run_every": "367d"}, "run_every", "is longer than 366 days"),
        ({"run_every": "9" * 5000 + "s"}, "run_every", "is longer than 366 days"),
        ({"run_every": "1h", "timeout": "2d"}, "timeout", "is longer than 1d"),
        ({"run_every": "1h", "params": {"x": float("nan")}}, "params", "not a finite number"),
        ({"run_every": "1h", "params": {"x": float("inf")}}, "params", "not a finite number"),
        ({"run_every": "1h", "params": {"x": 10**30}}, "params", "too large"),
        ({"run_every": "1h", "params": {7: "x"}}, "params", "the key 7 is not text"),
        ({"run_every": "1h", "disabled_reason": "a\x00b"}, "disabled_reason", "NUL"),
        ({"run_every": "1h", "disabled_reason": "x" * 2000}, "disabled_reason", "longer than"),
        ({"cron": "0 " * 200 + "*"}, "cron", "cron must be five fields"),
        ({"run_every": "1h", "params": {"x": "y" * 70000}}, "params", "longer than 65,536"),
        # Each param is an environment variable of every run: past ARG_MAX, exec fails (E2BIG).
        (
            {"run_every": "1h", "params": {f"p{i}": i for i in range(100_000)}},
            "params",
            "has 100,000 keys; at most 1,000",
        ),
        (
            {"run_every": "1h", "params": {f"p{i}": "y" * 60_000 for i in range(5)}},
            "params",
            "KiB of text; at most 256 KiB",
        ),
        (
            {"run_every": "1h", "params": {"list": ["y" * 60_000] * 5}},
            "params",
            "KiB of text; at most 256 KiB",
        ),
    ],
)
def test_schedule_values_that_would_crash_later(
    conf, tmp_path: Path, schedule: dict, key: str, message: str
) -> None:
    root = write(tmp_path, schedule)
    problem = only_problem(conf, root)
    assert problem.where.path == str(root / "audits" / "a.yaml")
    lines = (root / "audits" / "a.yaml").read_text().splitlines()
    assert lines[problem.where.line - 1].strip().startswith(f"{key}:"), problem
    assert message in problem.message


def test_a_year_is_the_longest_interval(conf, tmp_path: Path) -> None:
    root = write(tmp_path, {"run_every": "366d", "timeout": "1d"})
    (pair,) = DirBackend(conf, str(root)).load().pairs
    assert pair.schedule.timing.seconds == 366 * 86400


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ({**ECHO, "timeout": "100000000w"}, "timeout: duration '100000000w' is longer than 1d"),
        ({**ECHO, "output_limit": 0}, "output_limit: must be a number of bytes from 1 to"),
        ({**ECHO, "output_limit": 10**12}, "output_limit: must be a number of bytes from 1 to"),
        ({**ECHO, "shell": "yes"}, "shell: must be true or false"),
        ({**ECHO, "env": {"A=B": "x"}}, "can't be an environment variable's name"),
        ({**ECHO, "env": ["A=1"]}, "env: must be a mapping"),
        ({"kind": "command", "command": "echo hi"}, "command: must be a list of arguments"),
        ({"kind": "command", "command": []}, "command: must be a list of arguments"),
        ({"kind": "command", "command": ["echo", {"a": 1}]}, "each argument must be text"),
        ({"kind": "command", "command": ["echo", "a\x00b"]}, "NUL"),
        ({"kind": "tcp", "port": 70000}, "port: must be a number from 1 to 65535"),
        ({"kind": "tcp", "port": True}, "port: must be a number from 1 to 65535"),
        ({"kind": "tcp", "port": "ssh"}, "port: must be a number from 1 to 65535"),
        ({"kind": "tcp", "port": 22, "warning_ms": float("nan")}, "warning_ms: nan is not a"),
        ({"kind": "tcp", "port": 22, "critical_ms": -1}, "critical_ms: must be a number of"),
        ({"kind": "http", "url": "ftp://x/"}, "url: must be an http:// or https:// URL"),
        ({"kind": "http", "url": "http://x:99999999/"}, "Port out of range 0-65535"),
        ({"kind": "http", "url": "http://{ip_address}:99999999/"}, "Port out of range"),
        ({"kind": "http", "url": "http://x:eighty/"}, "Port could not be cast"),
        ({"kind": "http", "url": "http://x/", "expect_status": [200, 42]}, "expect_status"),
        ({"kind": "http", "url": "http://x/", "body_regex": "("}, "is not a valid regex"),
        ({"kind": "http", "url": "http://x/", "method": "GE T"}, "method: must be an HTTP"),
        ({"kind": "http", "url": "http://x/", "verify_tls": "no"}, "verify_tls: must be"),
        ({"kind": "python", "function": "not a function!"}, "function: must be 'module:func"),
    ],
)
def test_script_values_a_runner_would_refuse_at_every_run(
    conf, tmp_path: Path, script: dict, message: str
) -> None:
    root = write(tmp_path, {"run_every": "1h"}, script)
    problem = only_problem(conf, root)
    assert problem.where.path == str(root / "scripts.yaml")
    assert message in problem.message


def test_a_placeholder_port_and_host_pass_the_script_check(conf, tmp_path: Path) -> None:
    script = {"kind": "http", "url": "http://[{ip_address}]:{params.port}/"}
    root = write(tmp_path, {"run_every": "1h", "params": {"port": 8080}}, script)
    assert len(DirBackend(conf, str(root)).load().pairs) == 1


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_a_relative_upload_is_checked_beside_the_scripts_file(
    conf, tmp_path: Path, kind: str
) -> None:
    """As the runner reads it: relative to scripts.yaml, not to where validate runs."""
    root = write(tmp_path, {"run_every": "1h"}, {"kind": "ssh", "upload": "check.sh"})
    if kind == "fifo":
        os.mkfifo(root / "check.sh")
    else:
        (root / "check.sh").mkdir()
    problem = only_problem(conf, root)
    assert problem.where.path == str(root / "scripts.yaml")
    assert "upload: 'check.sh' is a" in problem.message
    assert "not a regular file" in problem.message


def test_a_relative_upload_that_is_a_file_or_absent_here_passes(conf, tmp_path: Path) -> None:
    """Absent is no problem here: with executor = broker it is looked for on the workers."""
    root = write(tmp_path, {"run_every": "1h"}, {"kind": "ssh", "upload": "check.sh"})
    assert len(DirBackend(conf, str(root)).load().pairs) == 1
    (root / "check.sh").write_text("#!/bin/sh\necho OK\n")
    assert len(DirBackend(conf, str(root)).load().pairs) == 1


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"cooldown": "400d"}, "cooldown: duration '400d' is longer than 366 days"),
        ({"max_attempts": 10**12}, "max_attempts must be a whole number from 1 to 1000000"),
        ({"max_concurrent": 0}, "max_concurrent must be a whole number from 1 to 1000000"),
    ],
)
def test_repair_values_that_would_crash_later(
    conf, tmp_path: Path, rule: dict, message: str
) -> None:
    repairs = {"fix": {"when": {"audit": "check"}, "run": "check", **rule}}
    root = write(tmp_path, {"run_every": "1h"}, repairs=repairs)
    problem = only_problem(conf, root)
    assert problem.where.path == str(root / "repairs.yaml")
    assert message in problem.message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("n: " + "9" * 5000 + "\n", "cannot read '9999"),  # ValueError in int() on 156156c
        ("n: " + "[" * 300 + "]" * 300 + "\n", "nested deeper than 64 levels"),  # RecursionError
        ("a: 1\n---\nb: 2\n", "found a second document"),
        ("a: !!python/object:os.system x\n", "python/object:os.system' is not supported"),
        ("a: !!set {x, y}\n", "is not supported here"),
    ],
)
def test_yaml_that_crashed_the_loader_is_a_problem_at_its_line(
    conf, tmp_path: Path, text: str, message: str
) -> None:
    root = write(tmp_path, {"run_every": "1h"})
    (root / "audits" / "b.yaml").write_text(text)
    problem = only_problem(conf, root)
    assert problem.where.path == str(root / "audits" / "b.yaml")
    assert problem.where.line >= 1
    assert message in problem.message


def test_sync_refuses_a_cron_that_never_fires_without_a_traceback(tmp_path: Path) -> None:
    root = write(tmp_path, {"cron": "0 0 30 2 *"})
    result = CliRunner().invoke(main, ["--backend", f"dir:{root}", "sync"])
    assert result.exit_code == 2, result.output
    assert f"{root / 'audits' / 'a.yaml'}:4:7: audit 'check' on 'web': cron:" in result.stderr
    assert "never fires" in result.stderr
    assert "Traceback" not in result.output + result.stderr


def test_a_refresh_with_such_a_problem_keeps_the_old_schedule(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    root = write(tmp_path, {"run_every": "60s"})
    scheduler = Scheduler(fetch(load_conf(), f"dir:{root}"), clock, refresh_in_background=False)
    assert scheduler.refresh() is True
    before = scheduler.catalog
    for bad in ({"cron": "0 0 30 2 *"}, {"run_every": "100000000w"}):
        write(tmp_path, bad)
        with caplog.at_level(logging.ERROR, logger="entropy.scheduler"):
            assert scheduler.refresh() is False
        assert isinstance(scheduler.last_problem, ValidationError)
        assert scheduler.catalog is before
        assert any(r.levelno == logging.ERROR and "previous schedule keeps running" in r.message
                   for r in caplog.records)  # fmt: skip
        caplog.clear()
    clock.advance(timedelta(seconds=120).total_seconds())
    assert [d.pair.audit_name for d in scheduler.next_batch()] == ["check"]


@pytest.mark.parametrize(
    ("scripts", "repairs", "message"),
    [
        ({"check": {"kind": {}}}, None, "kind must be one of"),
        ({"check": {"kind": ["command"]}}, None, "kind must be one of"),
        ({"check": ECHO}, {"r": {"when": {"audit": "check", "outcome": [{}]}, "run": "check"}},
         "when.outcome must be one or more of"),
    ],
)  # fmt: skip
def test_values_of_the_wrong_type_found_by_fuzzing(
    conf, tmp_path: Path, scripts: dict, repairs: dict | None, message: str
) -> None:
    """A TypeError traceback on 156156c: an unhashable kind or outcome."""
    root = write(tmp_path, {"run_every": "1h"}, repairs=repairs)
    (root / "scripts.yaml").write_text(yaml.safe_dump(scripts))
    with pytest.raises(ValidationError) as info:
        DirBackend(conf, str(root)).load()
    assert any(message in p.message for p in info.value.problems), info.value
