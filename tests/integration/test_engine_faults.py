"""A real engine process stopped hard or softly: kill -9, SIGINT, SIGINT again.

Audit commands must not outlive an engine killed with kill -9 (else the
engine taking over its rows runs them a second time while they still run),
and a graceful stop says when it begins and when its grace period ends.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fleets import write_fleet
from processes import ENTROPY, entropy, wait_for

pytestmark = pytest.mark.slow

HOST = {"web-1.test": {"ip_address": "127.0.0.1", "host_type": "web"}}


def _processes_with(marker: str) -> list[int]:
    """Pids of the processes whose command line holds marker (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # ended meanwhile
            continue
        if marker.encode() in cmdline.replace(b"\0", b" "):
            found.append(int(entry.name))
    return found


def _start(fleet: Path, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    with open(log, "w") as sink:
        command = [*ENTROPY, "--backend", f"dir:{fleet}", "engine", "run", "--json"]
        return subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)


def test_kill_9_of_an_engine_takes_its_audit_commands_along(tmp_path: Path) -> None:
    # Unique sleeps to find in /proc: one the engine runs, one a shell runs for it.
    direct = f"1000.{random.randrange(10**8)}"
    nested = f"1000.{random.randrange(10**8)}"
    fleet = write_fleet("dir", tmp_path / "fleet", hosts=HOST,
        scripts={"direct": {"kind": "command", "command": ["sleep", direct], "timeout": "1h"},
                 "nested": {"kind": "command", "timeout": "1h",
                            "command": ["sh", "-c", f"sleep {nested}; true"]}},
        schedules={"a.yaml": {"web": {"audits": {"direct": {"run_every": "2s"},
                                                 "nested": {"run_every": "2s"}}}}},
    )  # fmt: skip
    engine = _start(fleet, tmp_path / "engine.out")
    try:
        # The engine's child sleep; the shell and the shell's child sleep.
        markers = (f"sleep {direct}", f"-c sleep {nested}", f"sleep {nested}")
        wait_for(lambda: all(_processes_with(m) for m in markers), 20, "the audits to be running")
        engine.kill()  # SIGKILL: nothing of the engine's own runs after this
        engine.wait(timeout=10)
        wait_for(lambda: not (_processes_with(direct) or _processes_with(nested)), 5,
                 "the audit processes to be gone")  # fmt: skip
    finally:
        engine.kill()
        for pid in _processes_with(direct) + _processes_with(nested):
            os.kill(pid, signal.SIGKILL)


def test_sigint_stops_gracefully_and_says_when_the_grace_period_ends(tmp_path: Path) -> None:
    marker = f"60.{random.randrange(10**8)}"
    fleet = write_fleet("dir", tmp_path / "fleet", hosts=HOST,
        scripts={"slow": {"kind": "command", "command": ["sleep", marker], "timeout": "2m"}},
        schedules={"a.yaml": {"web": {"audits": {"slow": {"run_every": "2s"}}}}},
    )  # fmt: skip
    log = tmp_path / "engine.out"
    engine = _start(fleet, log, env={**os.environ, "OS_DEFAULT__SHUTDOWN_GRACE": "30"})
    try:
        wait_for(lambda: _processes_with(f"sleep {marker}"), 20, "the audit to be running")
        engine.send_signal(signal.SIGINT)
        wait_for(lambda: "stopping:" in log.read_text(), 10, "the stop to begin")
        assert engine.poll() is None  # the audit has 30 s of grace
        asked = time.monotonic()
        engine.send_signal(signal.SIGINT)  # again: do not wait for the grace period
        engine.wait(timeout=10)
        took = time.monotonic() - asked
    finally:
        engine.kill()
        left = _processes_with(f"sleep {marker}")
        for pid in left:  # what a failure leaves behind
            os.kill(pid, signal.SIGKILL)
    output = log.read_text()
    assert engine.returncode == 0, output
    assert took < 5, output
    assert "stopping: no new claims; 1 audits running get 30s" in output
    assert "grace period over: killing 1 audits still running; they go back to new" in output
    assert "engine stopped; 0 results recorded" in output
    assert "Traceback" not in output
    rows = entropy(fleet, "status", "--json")
    assert [r["status"] for r in rows] == ["new"]
    assert not left


def test_ctrl_c_ends_audit_run_and_its_command(tmp_path: Path) -> None:
    marker = f"1000.{random.randrange(10**8)}"
    fleet = write_fleet("dir", tmp_path / "fleet", hosts=HOST,
        scripts={"slow": {"kind": "command", "command": ["sleep", marker], "timeout": "1h"}},
        schedules={"a.yaml": {"web": {"audits": {"slow": {"run_every": "1h"}}}}},
    )  # fmt: skip
    command = [*ENTROPY, "--backend", f"dir:{fleet}", "audit", "run", "slow"]
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: _processes_with(f"sleep {marker}"), 20, "the audit to be running")
        run.send_signal(signal.SIGINT)
        # What is checked is that it ends and takes its command along, not how fast: once in
        # CI's parallel phase (4 workers on 2 cores, the servers' fsyncs) it had printed
        # nothing after 5 s.
        _, err = run.communicate(timeout=20)
    finally:
        run.kill()
        left = _processes_with(f"sleep {marker}")
        for pid in left:  # what a failure leaves behind
            os.kill(pid, signal.SIGKILL)
    assert run.returncode == 130, err
    assert "entropy: interrupted by SIGINT" in err and "Traceback" not in err
    assert not left


HOLDER = """
import sys, threading
from entropy.model import Host, Script
from entropy.runners import command
from entropy.runners.base import Job

def start(marker):
    job = Job("a", Host("h", "127.0.0.1", "web"),
              Script("a", "command", {"command": ["sleep", marker]}), timeout=600)
    threading.Thread(target=command.run, args=(job,), daemon=True).start()

for line in sys.stdin:
    start(line.strip())
"""


def _parent(pid: int) -> int:
    return int((Path("/proc") / str(pid) / "stat").read_text().rpartition(")")[2].split()[1])


def test_a_reaper_that_was_killed_is_replaced_and_told_what_runs(tmp_path: Path) -> None:
    """Commands started before and after the reaper was killed still die with their process."""
    first, second = (f"1000.{random.randrange(10**8)}" for _ in range(2))
    holder = subprocess.Popen([sys.executable, "-c", HOLDER], stdin=subprocess.PIPE, text=True)
    try:
        holder.stdin.write(f"{first}\n")
        holder.stdin.flush()
        wait_for(lambda: _processes_with(f"sleep {first}"), 20, "the first command")

        def reapers() -> list[int]:
            return [p for p in _processes_with("reaper.py") if _parent(p) == holder.pid]

        (reaper,) = wait_for(reapers, 5, "the reaper")
        os.kill(reaper, signal.SIGKILL)
        holder.stdin.write(f"{second}\n")  # the next announcement finds it gone
        holder.stdin.flush()
        wait_for(lambda: _processes_with(f"sleep {second}"), 20, "the second command")
        wait_for(lambda: [p for p in reapers() if p != reaper and _alive(p)], 5, "a new reaper")
        holder.kill()
        holder.wait(timeout=10)
        wait_for(lambda: not (_processes_with(first) or _processes_with(second)), 5,
                 "both commands to be gone")  # fmt: skip
    finally:
        holder.kill()
        for pid in _processes_with(first) + _processes_with(second):
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for its parent."""
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"
