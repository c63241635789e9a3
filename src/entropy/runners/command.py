"""kind: command - run a program here, read its result as a Nagios plugin's.

`command` is an argv list run without a shell; with `shell: true` it is one
string for /bin/sh -c, every substituted value quoted. Output goes to
temporary files, not pipes: memory stays bounded whatever a script prints,
and a grandchild holding the files open can't make us wait for it. Each run
is its own process group, so a timeout (or kill_all at shutdown) kills the
script's children too; only a child that started a new session escapes.

Each group is also announced to a reaper process (runners/reaper.py),
started once per process: when this process dies, even by kill -9, the
reaper kills every group still running, so no command outlives its engine.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import IO, Any

from ..model import Outcome, Result
from ..scriptcheck import argv_problem
from .base import Job
from .nagios import cut, exit_outcome, parse_perfdata, split_output
from .template import ScriptError, as_text, environment, render, render_shell

LOG = logging.getLogger(__name__)

DEFAULT_OUTPUT_LIMIT = 64 * 1024  # bytes of stdout (and of stderr) kept per run

_lock = threading.Lock()
_running: dict[int, subprocess.Popen[bytes]] = {}  # process group id -> its leader
_killed: set[int] = set()  # groups kill_all() ended, so their run says why
# kill_all() calls so far: a command that began starting before one and is registered after
# it (a Ctrl-C between its exec and _wait) is killed at registration, not missed.
_kills = 0
_refusing = False  # kill_all(refuse_new=True): this process is ending, no command starts


def run(job: Job) -> Result:
    try:
        argv, shell_values = _argv(job)
        env = _env(job)
        env.update(shell_values)
        cwd = _cwd(job)
        limit = output_limit(job.script.params)
    except ScriptError as exc:
        return Result(Outcome.ERROR, str(exc))
    timeout = job.timeout if job.timeout and job.timeout > 0 else None
    with _lock:
        if _refusing:
            return Result(Outcome.ERROR, "not run: this process is stopping")
        kills = _kills
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=env,
                cwd=cwd,
                start_new_session=True,  # its own process group, killed as one
            )
        except OSError as exc:
            return Result(Outcome.ERROR, _start_error(exc, argv, cwd))
        except ValueError as exc:  # a NUL byte in an argument or a variable
            return Result(Outcome.ERROR, f"cannot run {argv[0]!r}: {exc}")
        code, timed_out, shut_down = _wait(proc, timeout, kills)
        stdout, stderr = _read(out, limit), _read(err, limit)
    return verdict(code, stdout, stderr, timeout if timed_out else None, shut_down)


def verdict(
    code: int, stdout: str, stderr: str, timed_out: float | None = None, shut_down: bool = False
) -> Result:
    """A finished plugin's Result: exit code (or -signal), its capped output, how it ended.

    Shared by every kind that runs a program (here, or on a host over SSH), so
    they read exit codes, summaries and perfdata the same way.
    """
    output = join_output(stdout, stderr)
    if shut_down:
        return Result(Outcome.ERROR, "killed: the engine is shutting down", output)
    if timed_out is not None:
        return Result(Outcome.TIMEOUT, f"timed out after {timed_out:g}s", output)
    summary, perfdata = split_output(stdout)
    summary = summary or stderr.strip().partition("\n")[0]
    if code < 0:
        why = f"killed by signal {_signal_name(-code)}"
        summary = f"{why}: {summary}" if summary else why
    elif code not in (0, 1, 2, 3):
        why = f"exit code {code} is out of bounds"
        summary = f"{why}: {summary}" if summary else why
    elif not summary:
        summary = f"exit code {code}, no output"
    return Result(exit_outcome(code), summary, output, parse_perfdata(perfdata))


def join_output(stdout: str, stderr: str) -> str:
    """stdout, then stderr under a `[stderr]` line, as a result's output."""
    if not stderr:
        return stdout
    return stdout + ("\n" if stdout and not stdout.endswith("\n") else "") + "[stderr]\n" + stderr


def kill_all(refuse_new: bool = False) -> int:
    """SIGKILL every running command's process group; how many there were.

    The engine calls this at shutdown once its grace period is over, a
    Ctrl-C of a command at once. A command starting at this very moment is
    killed as soon as it is registered. refuse_new: the process is ending,
    so no command starts after this (each says so). Each killed run returns
    outcome `error` saying so.
    """
    global _kills, _refusing
    count = 0
    with _lock:
        _kills += 1
        _refusing = _refusing or refuse_new
        for pgid, proc in _running.items():
            if proc.returncode is None:
                _killed.add(pgid)
                _killpg(pgid)
                count += 1
    return count


def allow_new() -> None:
    """Let commands start again after kill_all(refuse_new=True) (its command is over)."""
    global _refusing
    with _lock:
        _refusing = False


def _wait(
    proc: subprocess.Popen[bytes], timeout: float | None, kills: int
) -> tuple[int, bool, bool]:
    """(exit code, timed out, killed by kill_all) once the process has ended; `kills`:
    kill_all()'s count when it began starting."""
    with _lock:
        _running[proc.pid] = proc
        if _kills != kills:  # kill_all() ran while it was starting
            _killed.add(proc.pid)
            _killpg(proc.pid)
    _reaper.announce(b"+%d\n" % proc.pid)
    timed_out = False
    try:
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _killpg(proc.pid)
            code = proc.wait()
        except BaseException:  # interrupted: don't leave the script running
            _killpg(proc.pid)
            proc.wait()
            raise
    finally:
        with _lock:
            del _running[proc.pid]
            shut_down = proc.pid in _killed
            _killed.discard(proc.pid)
        _reaper.announce(b"-%d\n" % proc.pid)
    return code, timed_out, shut_down


class _Reaper:
    """This process's reaper (runners/reaper.py): told of each command's group.

    Started on first use. Announcing is one write of a few bytes to a pipe
    (atomic, so threads need no lock). Should the reaper die, the next
    announcement starts another and tells it of every group running.
    """

    SCRIPT = Path(__file__).with_name("reaper.py")

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._fd = -1
        self._owner = 0  # the pid that started it: a forked child needs its own
        self._start_lock = threading.Lock()
        self._failed = False  # could not start one: commands still run, unguarded

    def announce(self, line: bytes) -> None:
        fd = self._fd if self._owner == os.getpid() else self._start()
        if fd < 0:
            return
        try:
            os.write(fd, line)
        except OSError:  # it died (or was killed): start another with what runs now
            fd = self._start(replace=fd)
            if fd >= 0 and line.startswith(b"+"):
                with contextlib.suppress(OSError):
                    os.write(fd, line)

    def _start(self, replace: int | None = None) -> int:
        with self._start_lock:
            if self._owner == os.getpid() and self._fd != replace:
                return self._fd  # another thread started it meanwhile
            if self._failed:
                return -1
            if self._proc is not None and self._owner == os.getpid():
                LOG.warning("the reaper of audit commands ended; starting another")
                with contextlib.suppress(OSError):  # stdin=PIPE: never None (also below)
                    self._proc.stdin.close()  # type: ignore[union-attr]
                self._proc.poll()
            try:
                proc = subprocess.Popen(
                    [sys.executable, "-I", "-S", str(self.SCRIPT), str(os.getpid())],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,  # no terminal's Ctrl-C; it ends with our pipe
                )
            except OSError as exc:
                self._failed = True
                LOG.warning("cannot start the reaper of audit commands (%s): commands of "
                            "an engine that dies are not killed", exc)  # fmt: skip
                return -1
            self._proc, self._fd, self._owner = proc, proc.stdin.fileno(), os.getpid()  # type: ignore[union-attr]
            with _lock:
                running = list(_running)
        with contextlib.suppress(OSError):
            for pgid in running:
                os.write(self._fd, b"+%d\n" % pgid)
        return self._fd


_reaper = _Reaper()


def _killpg(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group has gone
        os.killpg(pgid, signal.SIGKILL)


def _read(stream: IO[bytes], limit: int) -> str:
    """The first `limit` bytes a stream's file got, marked if there was more."""
    total = os.fstat(stream.fileno()).st_size
    stream.seek(0)
    return cut(stream.read(limit), limit, total)


def _argv(job: Job) -> tuple[list[str], dict[str, str]]:
    """The argv to run, and the values a shell command reads from its environment."""
    command, values = command_of(job)
    return (["/bin/sh", "-c", command] if isinstance(command, str) else command), values


def command_of(job: Job) -> tuple[list[str] | str, dict[str, str]]:
    """The script's `command` rendered: an argv list, or with `shell: true` one sh string
    and the values its placeholders read from the environment."""
    params = job.script.params
    command = params.get("command")
    shell = params.get("shell", False)
    if not isinstance(shell, bool):
        raise ScriptError(f"shell must be true or false, got {shell!r}")
    if shell:
        if not isinstance(command, str) or not command.strip():
            raise ScriptError("with shell: true, command must be one string")
        return render_shell(command, job)
    if not isinstance(command, list | tuple) or not command:
        raise ScriptError(
            "command must be a list of arguments, e.g. [check_disk, -w, '10%'] "
            "(or one string with shell: true)"
        )
    template = tuple(as_text(arg) for arg in command)
    problem = argv_problem(template)  # refused by validate already; scripts made in code too
    if problem:
        raise ScriptError(problem)
    return [render(arg, job) for arg in template], {}


def _env(job: Job) -> dict[str, str]:
    """os.environ, then the script's `env`, then the ENTROPY_* values, each overriding."""
    return {**os.environ, **script_env(job)}


def script_env(job: Job) -> dict[str, str]:
    """The script's `env` rendered, then the ENTROPY_* values (which win)."""
    extra: Any = job.script.params.get("env") or {}
    if not isinstance(extra, dict):
        raise ScriptError(f"env must be a mapping of names to values, got {extra!r}")
    env = {str(name): render(as_text(value), job) for name, value in extra.items()}
    env.update(environment(job))
    return env


def _cwd(job: Job) -> str | None:
    cwd = job.script.params.get("cwd")
    if cwd is None:
        return None
    if not isinstance(cwd, str) or not cwd:
        raise ScriptError(f"cwd must be a directory path, got {cwd!r}")
    return render(cwd, job)


def output_limit(params: dict[str, Any]) -> int:
    limit = params.get("output_limit", DEFAULT_OUTPUT_LIMIT)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
        raise ScriptError(f"output_limit must be a positive number of bytes, got {limit!r}")
    return limit


def _start_error(exc: OSError, argv: list[str], cwd: str | None) -> str:
    # Popen names the directory in exc.filename when it is cwd that is missing.
    if cwd is not None and exc.filename == cwd:
        return f"cannot use cwd {cwd!r}: {exc.strerror}"
    return f"cannot run {argv[0]!r}: {exc.strerror or exc}"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)
