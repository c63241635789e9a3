"""etc/entropy-engine.service: systemd accepts it, and the engine it starts stops as it says.

systemd cannot start services in this test machine (PID 1 is not systemd), so
the unit is checked by `systemd-analyze verify` (installed with apt-get when
missing, as root), and its ExecStartPre/ExecStart command lines are run as real
processes, stopped the way systemd stops them (SIGTERM to the main process),
within the unit's TimeoutStopSec.
"""

from __future__ import annotations

import configparser
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from entropy.config import DEFAULT_OPTS
from faults import silent_server
from fleets import write_fleet
from processes import wait_for
from sshd import ensure_package

UNIT = Path(__file__).resolve().parents[2] / "etc" / "entropy-engine.service"
INSTALLED = "/opt/entropy/bin/entropy"  # where the unit expects Entropy's venv
HERE = str(Path(sys.executable).parent / "entropy")


def read_unit(text: str) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # keys keep their case
    unit.read_string(text)
    return unit


def verify(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    """systemd-analyze verify on the unit, its commands pointed at this venv's entropy."""
    ensure_package("/usr/bin/systemd-analyze", "systemd")
    path = tmp_path / "entropy-engine.service"
    path.write_text(text.replace(INSTALLED, HERE))
    return subprocess.run(["systemd-analyze", "verify", str(path)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_systemd_analyze_verify_accepts_the_unit_and_would_catch_a_mistake(tmp_path: Path) -> None:
    done = verify(tmp_path, UNIT.read_text())
    assert done.returncode == 0, done.stderr
    # verify only warns about unknown or misplaced keys: a clean unit prints nothing of its own.
    assert "entropy-engine.service" not in done.stderr, done.stderr
    typo = UNIT.read_text().replace("\nTimeoutStopSec=", "\nTimeoutStopSecs=")
    assert "Unknown key 'TimeoutStopSecs' in section [Service]" in verify(tmp_path, typo).stderr


def test_the_unit_stops_the_engine_gracefully_within_its_timeout() -> None:
    service = read_unit(UNIT.read_text())["Service"]
    grace = next(opt.default for opt in DEFAULT_OPTS if opt.name == "shutdown_grace")
    assert service["KillSignal"] == "SIGTERM"
    assert service["KillMode"] == "mixed"  # SIGTERM to the engine alone: it ends its audits
    assert int(service["TimeoutStopSec"]) > grace + 10  # the grace, then the last records
    assert service["Restart"] == "on-failure"
    assert service["User"] not in ("", "root") and service["StateDirectory"] == "entropy"
    assert service["ExecStart"].split()[-2:] == ["engine", "run"]


def commands(tmp_path: Path, conf_text: str) -> tuple[list[str], list[str]]:
    """ExecStartPre and ExecStart as written, with entropy.conf in tmp_path holding conf_text."""
    service = read_unit(UNIT.read_text())["Service"]
    conf = tmp_path / "entropy.conf"
    conf.write_text(conf_text)

    def argv(line: str) -> list[str]:
        words = shlex.split(line.replace(INSTALLED, HERE))
        return [str(conf) if word == "/etc/entropy/entropy.conf" else word for word in words]

    return argv(service["ExecStartPre"]), argv(service["ExecStart"])


def stop_like_systemd(command: list[str], log: Path, started: Callable[[], bool]) -> int:
    """Start command, SIGTERM it once started() says so; its exit status within TimeoutStopSec.

    Its output goes to log (stdout) and log.err (stderr).
    """
    timeout = float(read_unit(UNIT.read_text())["Service"]["TimeoutStopSec"])
    with log.open("w") as out, log.with_suffix(".err").open("w") as err:
        engine = subprocess.Popen(command, stdout=out, stderr=err)
        try:
            wait_for(started, 30, "the engine to start")
            engine.send_signal(signal.SIGTERM)
            return engine.wait(timeout=timeout)
        finally:
            engine.kill()
            engine.wait()


def success(status: int) -> bool:
    listed = read_unit(UNIT.read_text())["Service"]["SuccessExitStatus"].split()
    return status == 0 or str(status) in listed


def test_its_commands_validate_run_and_stop_on_sigterm(tmp_path: Path) -> None:
    every_second = {
        "a.yaml": {"compute": {"audits": {"check_nova_config_exists": {"run_every": "1s"}}}}
    }
    fleet = write_fleet("dir", tmp_path / "fleet", schedules=every_second)
    pre, start = commands(
        tmp_path, f"[DEFAULT]\nstate_dir = {tmp_path}/state\n[dir]\npath = {fleet}\n"
    )
    validated = subprocess.run(pre, capture_output=True, text=True, timeout=60)
    assert validated.returncode == 0, validated.stderr
    log = tmp_path / "engine.log"
    status = stop_like_systemd(start, log, lambda: "check_nova_config_exists" in log.read_text())
    stderr = log.with_suffix(".err").read_text()
    assert status == 0, stderr
    assert "stopping: no new claims" in stderr and "engine stopped" in stderr


def test_sigterm_while_the_database_does_not_answer_is_a_clean_stop_for_the_unit(
    tmp_path: Path,
) -> None:
    """Stopped while connecting, `entropy` exits 143: systemd must not count it a failure."""
    fleet = write_fleet("dir", tmp_path / "fleet")
    with silent_server() as db:
        url = f"postgresql+psycopg://entropy@127.0.0.1:{db.port}/entropy"
        conf = (
            f"[database]\nconnect_timeout = 60\n[dir]\npath = {fleet}\nstate_connection = {url}\n"
        )
        _, start = commands(tmp_path, conf)
        log = tmp_path / "engine.log"
        status = stop_like_systemd(start, log, lambda: db.accepted > 0)
    stderr = log.with_suffix(".err").read_text()
    assert status == 128 + signal.SIGTERM, stderr
    assert "during start-up; the engine did not start" in stderr
    assert success(status)
