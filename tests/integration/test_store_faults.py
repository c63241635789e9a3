"""A state store that fails for real: a database that never answers, a read-only or full disk.

Each test makes the fault itself (a TCP server in a thread that accepts and
never answers, a small tmpfs remounted read-only or filled up) and runs real
`entropy` processes against it.
"""

from __future__ import annotations

import contextlib
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


def _ended(running: dict[str, subprocess.Popen], within: float) -> dict[str, float]:
    """When each process ended (time.monotonic()); fails if one is still running after `within`."""
    ended: dict[str, float] = {}
    deadline = time.monotonic() + within
    while len(ended) < len(running):
        now = time.monotonic()
        if now > deadline:
            for proc in running.values():
                proc.kill()
            raise AssertionError(
                f"still running after {within}s: {sorted(set(running) - set(ended))}"
            )
        ended.update(
            (name, now) for name, p in running.items() if name not in ended and p.poll() is not None
        )
        time.sleep(0.02)
    return ended


def test_a_database_that_never_answers_fails_every_command_within_the_timeout(
    tmp_path: Path,
) -> None:
    """Every command against each driver at once, each with a silent server of its own."""
    fleet = write_fleet("dir", tmp_path / "fleet")
    cases = [(scheme, args) for scheme in SCHEMES for args in COMMANDS]
    with contextlib.ExitStack() as stack:
        servers = {case: stack.enter_context(silent_server()) for case in cases}
        running = {
            f"{scheme} {' '.join(args)}": _start(fleet, args, _silent_env(
                scheme, servers[scheme, args].port, CONNECT_TIMEOUT), tmp_path / f"{n}.out")
            for n, (scheme, args) in enumerate(cases)
        }  # fmt: skip
        ended = _ended(running, 60)
    for n, (scheme, args) in enumerate(cases):
        name, server = f"{scheme} {' '.join(args)}", servers[scheme, args]
        output = (tmp_path / f"{n}.out").read_text()
        assert running[name].returncode == 1, (name, output)
        assert server.first_accepted_at is not None, (name, output)  # it did reach the server
        # From the moment it reached the database: the timeout, and little more. The
        # margin is the exit of a dozen interpreters started together on 2 busy cores
        # (seen up to +3.6 s under load); a hang would last the 60 s _ended allows.
        waited = ended[name] - server.first_accepted_at
        assert CONNECT_TIMEOUT - 0.2 < waited < CONNECT_TIMEOUT + 5, (name, waited, output)
        _failed_naming_the_store(output, scheme, server.port)


def test_a_signal_during_start_up_stops_the_engine_at_once(tmp_path: Path) -> None:
    """SIGINT and SIGTERM, on each driver, while the engine waits for a silent database."""
    fleet = write_fleet("dir", tmp_path / "fleet")
    cases = [(scheme, signum) for scheme in SCHEMES for signum in (signal.SIGINT, signal.SIGTERM)]
    with contextlib.ExitStack() as stack:
        servers = {case: stack.enter_context(silent_server()) for case in cases}
        engines = {}
        for n, (scheme, signum) in enumerate(cases):
            env = {**os.environ, "OS_DATABASE__CONNECT_TIMEOUT": "120", "OS_DIR__STATE_CONNECTION":
                   f"{scheme}://e@127.0.0.1:{servers[scheme, signum].port}/e"}  # fmt: skip
            engines[n] = _start(fleet, ("engine", "run"), env, tmp_path / f"{n}.out")
        sent: dict[int, float] = {}
        deadline = time.monotonic() + 30
        while len(sent) < len(cases) and time.monotonic() < deadline:
            for n, case in enumerate(cases):
                accepted = servers[case].first_accepted_at
                # Well inside the handshake it waits on: signal it.
                if n not in sent and accepted is not None and time.monotonic() > accepted + 0.2:
                    engines[n].send_signal(case[1])
                    sent[n] = time.monotonic()
            time.sleep(0.02)
        ended = _ended({str(n): engine for n, engine in engines.items()}, 30)
    assert len(sent) == len(cases), "some engines never reached their database"
    for n, (_, signum) in enumerate(cases):
        output = (tmp_path / f"{n}.out").read_text()
        # At once, next to the 120 s connect timeout it would otherwise wait out; the
        # bound leaves room for six engines exiting together on 2 busy cores (seen 2.15 s).
        assert ended[str(n)] - sent[n] < 5, output
        assert engines[n].returncode == 128 + signum, output
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
        # As an empty store would: `db current` says it is behind (exit 1).
        assert done.returncode == (1 if args == ("db", "current") else 0), (args, done.stderr)
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
            wait_for(lambda: "database or disk is full" in log.read_text(), 30, "a failed record")
            engine.send_signal(signal.SIGTERM)
            engine.wait(timeout=30)
        finally:
            engine.kill()
    output = log.read_text()
    said = "\n".join(line for line in output.splitlines() if not line.startswith("{"))
    assert engine.returncode == 1, said
    tail = output[output.index("engine stopped;") :]
    assert " results could not be recorded: state store sqlite:///" in tail, tail
    assert "disk full" in tail and "Traceback" not in output
    count = int(tail.split("entropy: error: ")[1].split()[0])
    assert count > 0
