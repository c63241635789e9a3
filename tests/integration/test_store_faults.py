"""A state store that fails for real: a database that never answers, a read-only or full disk.

Each test makes the fault itself (a TCP server in a thread that accepts and
never answers, a small tmpfs remounted read-only or filled up) and runs real
`entropy` processes against it.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from entropy.cli import main
from faults import fill, remount_read_only, silent_server, tmpfs
from fleets import write_fleet
from processes import ENTROPY, wait_for

pytestmark = pytest.mark.slow

SCHEMES = ["postgresql+psycopg", "mysql+pymysql"]
CONNECT_TIMEOUT = 2  # seconds, the least PostgreSQL honours
# Commands that open the state store in different ways; each must fail, not hang.
COMMANDS = [("status",), ("results",), ("sync",), ("db", "upgrade"), ("engine", "run")]


def _start(fleet: Path, args: tuple[str, ...], env: dict[str, str], out: Path) -> subprocess.Popen:
    with open(out, "w") as sink:
        command = [*ENTROPY, "--backend", f"dir:{fleet}", *args]
        return subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env, text=True)


def _silent_env(scheme: str, port: int, connect_timeout: int) -> dict[str, str]:
    url = f"{scheme}://entropy:s3cret@127.0.0.1:{port}/entropy"
    return {**os.environ, "OS_DIR__STATE_CONNECTION": url,
            "OS_DATABASE__CONNECT_TIMEOUT": str(connect_timeout)}  # fmt: skip


def _failed_naming_the_store(output: str, scheme: str, port: int) -> None:
    assert "Traceback" not in output, output
    assert f"state store {scheme}://entropy:***@127.0.0.1:{port}/entropy" in output, output
    assert f"no answer within {CONNECT_TIMEOUT}s while connecting" in output, output
    assert "[database] connect_timeout" in output and "s3cret" not in output


@pytest.mark.parametrize("scheme", SCHEMES)
def test_an_engine_on_a_database_that_never_answers_fails_within_the_timeout(
    tmp_path: Path, scheme: str
) -> None:
    fleet = write_fleet("dir", tmp_path / "fleet")
    with silent_server() as server:
        env = _silent_env(scheme, server.port, CONNECT_TIMEOUT)
        engine = _start(fleet, ("engine", "run"), env, tmp_path / "engine.out")
        try:
            engine.wait(timeout=30)
        finally:
            engine.kill()
        ended = time.monotonic()
    output = (tmp_path / "engine.out").read_text()
    assert engine.returncode == 1, output
    assert server.first_accepted_at is not None, output
    # From the moment it reached the database: the timeout, and little more.
    waited = ended - server.first_accepted_at
    assert CONNECT_TIMEOUT - 0.2 < waited < CONNECT_TIMEOUT + 1.5, (waited, output)
    _failed_naming_the_store(output, scheme, server.port)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_a_database_that_never_answers_fails_every_command(tmp_path: Path, scheme: str) -> None:
    fleet = write_fleet("dir", tmp_path / "fleet")
    with silent_server() as server:
        env = _silent_env(scheme, server.port, CONNECT_TIMEOUT)
        # All at once (start-up under load takes seconds of its own; the test above
        # measures the bound itself).
        running = {args: _start(fleet, args, env, tmp_path / f"{'-'.join(args)}.out")
                   for args in COMMANDS}  # fmt: skip
        deadline = time.monotonic() + 30
        while any(proc.poll() is None for proc in running.values()):
            assert time.monotonic() < deadline, "still running after 30 s"
            time.sleep(0.05)
    for args, proc in running.items():
        output = (tmp_path / f"{'-'.join(args)}.out").read_text()
        assert proc.returncode == 1, (args, output)
        _failed_naming_the_store(output, scheme, server.port)
    assert server.accepted >= len(COMMANDS)  # each one did reach the silent server


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("scheme", SCHEMES)
def test_a_signal_during_start_up_stops_the_engine_at_once(
    tmp_path: Path, scheme: str, signum: signal.Signals
) -> None:
    fleet = write_fleet("dir", tmp_path / "fleet")
    with silent_server() as server:
        env = {**os.environ, "OS_DATABASE__CONNECT_TIMEOUT": "120",
               "OS_DIR__STATE_CONNECTION": f"{scheme}://e@127.0.0.1:{server.port}/e"}  # fmt: skip
        engine = _start(fleet, ("engine", "run"), env, tmp_path / "engine.out")
        try:
            wait_for(lambda: server.accepted, 20, "the engine to connect to the silent server")
            time.sleep(0.2)  # well inside the handshake it waits on
            sent = time.monotonic()
            engine.send_signal(signum)
            engine.wait(timeout=10)
            took = time.monotonic() - sent
        finally:
            engine.kill()
    output = (tmp_path / "engine.out").read_text()
    assert took < 2, output
    assert engine.returncode == 128 + signum, output
    assert f"interrupted by {signum.name} during start-up; the engine did not start" in output
    assert "Traceback" not in output


# -- a read-only filesystem ---------------------------------------------------------------

READ_COMMANDS = [
    ("status",), ("results",), ("plan",), ("engines",), ("repair", "list"), ("repair", "plan"),
    ("db", "current"), ("validate",),
]  # fmt: skip


def _entropy(fleet: Path | str, *args: str, env: dict[str, str]) -> Done:
    """`entropy --backend dir:FLEET ARGS` in this process (an exception fails the test)."""
    backend = fleet if isinstance(fleet, str) else f"dir:{fleet}"
    result = CliRunner().invoke(main, ["--backend", backend, *args], env=env,
                                catch_exceptions=False)  # fmt: skip
    return Done(result.exit_code, result.stdout, result.stderr)


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("engine_left_it_open", [False, True])
def test_read_only_commands_work_on_a_read_only_filesystem(
    tmp_path: Path, engine_left_it_open: bool
) -> None:
    """The fleet and its state on a tmpfs remounted read-only: reading works, nothing is made.

    With engine_left_it_open, the -wal and -shm files of a running engine are
    still there (it was killed); without, the state file was closed cleanly.
    """
    with tmpfs(tmp_path / "mnt", "16m") as mnt:
        fleet = write_fleet("dir", mnt / "fleet", scripts={
            "check_nova_config_exists": {"kind": "command", "command": ["true"]},
            "check_nova_compute_log_file_exists": {"kind": "command", "command": ["false"]},
            "vm_count": {"kind": "command", "command": ["true"]},
            "vmbooter": {"kind": "command", "command": ["true"]},
            "api_availability": {"kind": "command", "command": ["true"]},
        })  # fmt: skip
        env = {"OS_DEFAULT__STATE_DIR": str(mnt / "state")}
        assert _entropy(fleet, "sync", env=env).returncode == 0
        ran = _entropy(fleet, "audit", "run", "check_nova_compute_log_file_exists", env=env)
        assert ran.returncode == 1 and "compute-01" in ran.stdout, ran.stderr
        (state,) = (mnt / "state").glob("*.sqlite")
        if engine_left_it_open:  # a process that dies holding it leaves -wal and -shm
            subprocess.run([sys.executable, "-c", "import os, sqlite3, sys; "
                            "sqlite3.connect(sys.argv[1]).execute('SELECT 1 FROM audits'); "
                            "os._exit(0)", str(state)], check=True)  # fmt: skip
            assert Path(f"{state}-shm").exists()
        else:
            sqlite3.connect(state).close()  # the last connection out takes -wal and -shm along
            assert not Path(f"{state}-shm").exists()
        before = _tree(mnt)
        remount_read_only(mnt)
        outputs = {args: _entropy(fleet, *args, env=env) for args in READ_COMMANDS}
        assert _tree(mnt) == before
    for args, done in outputs.items():
        assert done.returncode == 0, (args, done.stderr)
        assert "Traceback" not in done.stderr and "Read-only file system" not in done.stderr
    assert "check_nova_compute_log_file_exists" in outputs[("status",)].stdout
    assert "WARNING  exit code 1" in outputs[("results",)].stdout


def test_read_only_commands_create_no_state_where_there_is_none(tmp_path: Path) -> None:
    fleet = write_fleet("dir", tmp_path / "fleet")
    files = _tree(fleet)
    state = tmp_path / "state"
    env = {"OS_DEFAULT__STATE_DIR": str(state)}
    for args in READ_COMMANDS:
        done = _entropy(fleet, *args, env=env)
        assert done.returncode == 0, (args, done.stderr)  # as an empty store would
        if args != ("validate",):  # the definitions alone answer that one
            assert "no state yet at " in done.stderr, (args, done.stderr)
            assert "run `entropy sync` or `entropy engine run` first" in done.stderr
    assert _entropy(fleet, "status", "--json", env=env).stdout.strip() == "[]"
    assert " runs within 1d" in _entropy(fleet, "plan", env=env).stderr  # first runs, unsynced
    assert "revision (empty)" in _entropy(fleet, "db", "current", env=env).stdout
    assert not state.exists() or not list(state.iterdir())
    assert _tree(fleet) == files  # no .entropy-state either
    # A state file that is there is read without a lock file beside it.
    assert _entropy(fleet, "sync", env=env).returncode == 0
    for lock in state.glob("*.lock"):
        lock.unlink()
    assert _entropy(fleet, "status", env=env).returncode == 0
    assert not list(state.glob("*.lock"))


# -- a definitions path that is not there -------------------------------------------------

EVERY_COMMAND = [
    *READ_COMMANDS, ("sync",), ("engine", "run"), ("db", "upgrade"),
    ("disable", "vm_count", "--reason", "x"), ("audit", "run", "vm_count"),
]  # fmt: skip


@pytest.mark.parametrize("kind", ["dir", "file"])
def test_a_mistyped_backend_path_is_an_error_for_every_command(tmp_path: Path, kind: str) -> None:
    state = tmp_path / "state"
    env = {"OS_DEFAULT__STATE_DIR": str(state)}
    missing = tmp_path / ("nonexistent" if kind == "dir" else "nonexistent.yaml")
    what = "directory" if kind == "dir" else "file"
    for args in EVERY_COMMAND:
        done = _entropy(f"{kind}:{missing}", *args, env=env)
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        assert f"entropy: error: definitions {what} {missing} not found" in done.stderr, args
    assert not state.exists() or not list(state.iterdir())  # no stray state file


# -- a full disk --------------------------------------------------------------------------


def test_a_full_disk_at_start_is_reported_as_a_full_disk(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "mnt", "2m") as mnt:
        fleet = write_fleet("dir", tmp_path / "fleet")
        state = mnt / "state.sqlite"
        env = {"OS_DIR__STATE_CONNECTION": f"sqlite:///{state}"}
        assert _entropy(fleet, "sync", env=env).returncode == 0
        sqlite3.connect(state).close()  # closed cleanly: no -shm, to be made at the next open
        filler = fill(mnt)
        commands = [
            ("sync",),
            ("engine", "run", "--for", "1s"),
            ("disable", "vm_count", "--reason", "x"),
        ]
        for args in commands:
            done = _entropy(fleet, *args, env=env)
            assert done.returncode == 1, (args, done.stderr)
            assert f"disk full: no space left to write {state}" in done.stderr, (args, done.stderr)
            assert "Traceback" not in done.stderr
        # A new state file on the full disk, too.
        env["OS_DIR__STATE_CONNECTION"] = f"sqlite:///{mnt}/new.sqlite"
        done = _entropy(fleet, "sync", env=env)
        assert done.returncode == 1 and "disk full" in done.stderr, done.stderr
        filler.unlink()
        env["OS_DIR__STATE_CONNECTION"] = f"sqlite:///{state}"
        assert _entropy(fleet, "sync", env=env).returncode == 0  # nothing was lost


def test_an_engine_that_stops_with_unrecorded_results_says_so_and_exits_non_zero(
    tmp_path: Path,
) -> None:
    # Results of 60 KB each, so recording needs room. Each run says when it starts,
    # then waits for the gate: the disk is filled while runs wait there.
    started, gate = tmp_path / "started", tmp_path / "gate"
    started.mkdir()
    gate.touch()
    script = (f"touch {started}/$ENTROPY_HOST.$$; while [ ! -e {gate} ]; do sleep 0.05; done; "
              "head -c 60000 /dev/urandom | od -A n -t x1 | head -c 60000")  # fmt: skip
    fleet = write_fleet("dir", tmp_path / "fleet",
        hosts={f"web-{i}.test": {"ip_address": "127.0.0.1", "host_type": "web"} for i in range(4)},
        scripts={"big": {"kind": "command", "command": ["sh", "-c", script]}},
        schedules={"a.yaml": {"web": {"audits": {"big": {"run_every": "1s"}}}}},
    )  # fmt: skip
    with tmpfs(tmp_path / "mnt", "8m") as mnt:
        state = mnt / "state.sqlite"
        env = {**os.environ, "OS_DIR__STATE_CONNECTION": f"sqlite:///{state}",
               "OS_DEFAULT__MAX_SPLAY": "0"}  # fmt: skip
        log = tmp_path / "engine.out"
        engine = _start(fleet, ("engine", "run", "--json"), env, log)
        try:
            wait_for(lambda: log.read_text().count('"outcome"') >= 4, 30, "results recorded")
            gate.unlink()
            seen = len(list(started.iterdir()))
            wait_for(lambda: len(list(started.iterdir())) > seen, 10, "the next runs to start")
            fill(mnt)
            gate.touch()  # the waiting runs finish now, with nowhere to record
            wait_for(lambda: "cannot record" in log.read_text(), 30, "a failed record")
            engine.send_signal(signal.SIGTERM)
            engine.wait(timeout=30)
        finally:
            engine.kill()
    output = log.read_text()
    assert engine.returncode == 1, output
    tail = output[output.index("engine stopped;") :]
    assert " results could not be recorded: state store sqlite:///" in tail, tail
    assert "disk full" in tail and "Traceback" not in output
    count = int(tail.split("entropy: error: ")[1].split()[0])
    assert count > 0
